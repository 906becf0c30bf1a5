"""The classical model on radiomics features: one regularised logistic regression per classification head.

Per head: median imputation -> removal of constant features -> standardisation -> L2 logistic regression with
balanced class weights, its inverse regularisation strength C chosen by an inner stratified cross-validation
on the training cases only.
"""

from __future__ import annotations

import logging
import warnings
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass

import numpy as np
from sklearn.feature_selection import VarianceThreshold
from sklearn.impute import SimpleImputer
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import GridSearchCV, StratifiedKFold
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import StandardScaler
from threadpoolctl import threadpool_limits

logger = logging.getLogger(__name__)

C_GRID = (0.01, 0.1, 1.0, 10.0)
INNER_FOLDS = 3
DEFAULT_C = 1.0
MAX_ITERATIONS = 5000


@dataclass
class HeadModel:
    """A fitted head: the pipeline (None when training held one value only), the values seen and the chosen C."""

    num_values: int
    classes: list[int]
    pipeline: Pipeline | None
    c: float | None


def _pipeline(c: float, seed: int) -> Pipeline:
    return Pipeline(
        [
            ("impute", SimpleImputer(strategy="median")),
            ("constant", VarianceThreshold()),
            ("scale", StandardScaler()),
            ("classify", LogisticRegression(C=c, class_weight="balanced", max_iter=MAX_ITERATIONS, random_state=seed)),
        ]
    )


@contextmanager
def _expected_warnings_silenced() -> Iterator[None]:
    """All-NaN columns (an ROI label absent from every training case) are dropped by the imputer on purpose."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="Skipping features without any observed values")
        yield


def _fit_head(name: str, features: np.ndarray, targets: np.ndarray, num_values: int, seed: int) -> HeadModel:
    classes, counts = np.unique(targets, return_counts=True)
    if len(classes) < 2:
        logger.warning(
            "Head '%s': the training cases hold only value %d; the reference predicts it with probability 1.",
            name, classes[0],
        )
        return HeadModel(num_values, classes.tolist(), None, None)
    inner_folds = min(INNER_FOLDS, int(counts.min()))
    with _expected_warnings_silenced():
        if inner_folds < 2:
            logger.info(
                "Head '%s': a value has a single training case, too few for an inner cross-validation; C = %g.",
                name, DEFAULT_C,
            )
            pipeline = _pipeline(DEFAULT_C, seed).fit(features, targets)
            return HeadModel(num_values, classes.tolist(), pipeline, DEFAULT_C)
        search = GridSearchCV(
            _pipeline(DEFAULT_C, seed),
            {"classify__C": list(C_GRID)},
            scoring="roc_auc" if len(classes) == 2 else "roc_auc_ovr",
            cv=StratifiedKFold(n_splits=inner_folds, shuffle=True, random_state=seed),
            error_score=np.nan,
        ).fit(features, targets)
    c = float(search.best_params_["classify__C"])
    logger.debug("Head '%s': C = %g (inner %d-fold AUC %.3f).", name, c, inner_folds, search.best_score_)
    return HeadModel(num_values, classes.tolist(), search.best_estimator_, c)


def fit_reference(
    features: np.ndarray, targets: Mapping[str, Sequence[int]], num_values: Mapping[str, int], seed: int = 12345
) -> dict[str, HeadModel]:
    """Fit one model per head on `features` (cases x features, NaN = missing) and each head's integer targets.

    `num_values[head]` is the number of values of that head (its probabilities' width). Deterministic for a seed.
    """
    x = np.asarray(features, dtype=np.float64)
    if x.ndim != 2:
        raise ValueError(f"Expected a 2D feature table (cases x features), got shape {x.shape}.")
    models = {}
    for name, values in targets.items():
        y = np.asarray(values, dtype=np.int64)
        if len(y) != len(x):
            raise ValueError(f"Head '{name}' has {len(y)} targets for {len(x)} cases.")
        if y.min() < 0 or y.max() >= num_values[name]:
            raise ValueError(f"Head '{name}': targets must lie in 0..{num_values[name] - 1}.")
        # problems this small only lose time to BLAS threads (8x slower on a busy 2-core machine)
        with threadpool_limits(limits=1):
            models[name] = _fit_head(name, x, y, num_values[name], seed)
    return models


def predict_reference(models: Mapping[str, HeadModel], features: np.ndarray) -> dict[str, np.ndarray]:
    """Per head, the probabilities (cases x num_values) of every value; values unseen in training get 0."""
    x = np.asarray(features, dtype=np.float64)
    result = {}
    for name, model in models.items():
        probabilities = np.zeros((len(x), model.num_values))
        if model.pipeline is None:
            probabilities[:, model.classes[0]] = 1.0
        else:
            with _expected_warnings_silenced():
                probabilities[:, model.classes] = model.pipeline.predict_proba(x)
        result[name] = probabilities
    return result
