"""The classical model on radiomics features: one regularised linear model per head.

Classification heads (nominal and ordinal): median imputation -> removal of constant features -> standardisation ->
L2 logistic regression with balanced class weights, its inverse regularisation strength C chosen by an inner
stratified cross-validation on the training cases only. Regression heads: the same preprocessing -> ridge
regression, its alpha chosen by an inner shuffled K-fold cross-validation on R². Each head is fitted on the training
cases whose value for that head is known (None or NaN: unknown) and predicts every case.
"""

from __future__ import annotations

import logging
import warnings
from collections.abc import Collection, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass

import numpy as np
from sklearn.base import BaseEstimator
from sklearn.dummy import DummyRegressor
from sklearn.feature_selection import VarianceThreshold
from sklearn.impute import SimpleImputer
from sklearn.linear_model import LogisticRegression, Ridge
from sklearn.model_selection import GridSearchCV, KFold, StratifiedKFold
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import StandardScaler
from threadpoolctl import threadpool_limits

logger = logging.getLogger(__name__)

C_GRID = (0.01, 0.1, 1.0, 10.0)
ALPHA_GRID = (0.1, 1.0, 10.0, 100.0)
INNER_FOLDS = 3
DEFAULT_C = 1.0
DEFAULT_ALPHA = 1.0
MIN_CASES_FOR_ALPHA_SEARCH = 6  # two held-out values per inner fold: R² is defined
MAX_ITERATIONS = 5000


@dataclass
class ClassificationHead:
    """A fitted classification head: the pipeline (None when training held one value only), the values seen, C."""

    num_values: int
    classes: list[int]
    pipeline: Pipeline | None
    c: float | None
    num_cases: int

    def predict(self, features: np.ndarray) -> np.ndarray:
        """The probabilities (cases x num_values) of every value; values unseen in training get 0."""
        probabilities = np.zeros((len(features), self.num_values))
        if self.pipeline is None:
            probabilities[:, self.classes[0]] = 1.0
        else:
            with _expected_warnings_silenced():
                probabilities[:, self.classes] = self.pipeline.predict_proba(features)
        return probabilities


@dataclass
class RegressionHead:
    """A fitted regression head: the ridge pipeline and its alpha, or the training mean (a DummyRegressor, alpha
    None) when fewer than two distinct values were known."""

    estimator: BaseEstimator
    alpha: float | None
    num_cases: int

    def predict(self, features: np.ndarray) -> np.ndarray:
        """The predicted values (cases x 1), in the target's units."""
        with _expected_warnings_silenced():
            return np.asarray(self.estimator.predict(features), dtype=np.float64).reshape(-1, 1)


HeadModel = ClassificationHead | RegressionHead


def _preprocessing() -> list[tuple[str, BaseEstimator]]:
    return [
        ("impute", SimpleImputer(strategy="median")),
        ("constant", VarianceThreshold()),
        ("scale", StandardScaler()),
    ]


def _classifier(c: float, seed: int) -> Pipeline:
    logistic = LogisticRegression(C=c, class_weight="balanced", max_iter=MAX_ITERATIONS, random_state=seed)
    return Pipeline([*_preprocessing(), ("classify", logistic)])


def _regressor(alpha: float) -> Pipeline:
    return Pipeline([*_preprocessing(), ("regress", Ridge(alpha=alpha))])


@contextmanager
def _expected_warnings_silenced() -> Iterator[None]:
    """All-NaN columns (an ROI label absent from every training case) are dropped by the imputer on purpose."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="Skipping features without any observed values")
        yield


def _fit_classifier(
    name: str, features: np.ndarray, targets: np.ndarray, num_values: int, seed: int
) -> ClassificationHead:
    classes, counts = np.unique(targets, return_counts=True)
    if len(classes) < 2:
        logger.warning(
            "Head '%s': the training cases hold only value %d; the reference predicts it with probability 1.",
            name, classes[0],
        )
        return ClassificationHead(num_values, classes.tolist(), None, None, len(targets))
    inner_folds = min(INNER_FOLDS, int(counts.min()))
    with _expected_warnings_silenced():
        if inner_folds < 2:
            logger.info(
                "Head '%s': a value has a single training case, too few for an inner cross-validation; C = %g.",
                name, DEFAULT_C,
            )
            pipeline = _classifier(DEFAULT_C, seed).fit(features, targets)
            return ClassificationHead(num_values, classes.tolist(), pipeline, DEFAULT_C, len(targets))
        search = GridSearchCV(
            _classifier(DEFAULT_C, seed),
            {"classify__C": list(C_GRID)},
            scoring="roc_auc" if len(classes) == 2 else "roc_auc_ovr",
            cv=StratifiedKFold(n_splits=inner_folds, shuffle=True, random_state=seed),
            error_score=np.nan,
        ).fit(features, targets)
    c = float(search.best_params_["classify__C"])
    logger.debug("Head '%s': C = %g (inner %d-fold AUC %.3f).", name, c, inner_folds, search.best_score_)
    return ClassificationHead(num_values, classes.tolist(), search.best_estimator_, c, len(targets))


def _fit_regressor(name: str, features: np.ndarray, targets: np.ndarray, seed: int) -> RegressionHead:
    if np.ptp(targets) == 0:
        logger.warning(
            "Head '%s': the training cases hold only the value %g; the reference predicts it for every case.",
            name, targets[0],
        )
        return RegressionHead(DummyRegressor().fit(features, targets), None, len(targets))
    with _expected_warnings_silenced():
        if len(targets) < MIN_CASES_FOR_ALPHA_SEARCH:
            logger.info(
                "Head '%s': %d training values are too few for an inner cross-validation; alpha = %g.",
                name, len(targets), DEFAULT_ALPHA,
            )
            return RegressionHead(_regressor(DEFAULT_ALPHA).fit(features, targets), DEFAULT_ALPHA, len(targets))
        search = GridSearchCV(
            _regressor(DEFAULT_ALPHA),
            {"regress__alpha": list(ALPHA_GRID)},
            scoring="r2",
            cv=KFold(n_splits=INNER_FOLDS, shuffle=True, random_state=seed),
            error_score=np.nan,
        ).fit(features, targets)
    alpha = float(search.best_params_["regress__alpha"])
    logger.debug("Head '%s': alpha = %g (inner %d-fold R² %.3f).", name, alpha, INNER_FOLDS, search.best_score_)
    return RegressionHead(search.best_estimator_, alpha, len(targets))


def fit_reference(
    features: np.ndarray,
    targets: Mapping[str, Sequence[int | float | None]],
    num_values: Mapping[str, int],
    seed: int = 12345,
    *,
    regression_heads: Collection[str] = (),
) -> dict[str, HeadModel]:
    """Fit one model per head on `features` (cases x features, NaN = missing) and each head's targets.

    `targets[head]` holds one value per case, None (or NaN) where unknown: each head is fitted on its known cases
    only. Heads in `regression_heads` get a ridge regression on their float values; the others a logistic regression
    on their integer values, `num_values[head]` being that head's number of values (its probabilities' width).
    Deterministic for a seed.
    """
    x = np.asarray(features, dtype=np.float64)
    if x.ndim != 2:
        raise ValueError(f"Expected a 2D feature table (cases x features), got shape {x.shape}.")
    models: dict[str, HeadModel] = {}
    for name, values in targets.items():
        y = np.array([np.nan if v is None else v for v in values], dtype=np.float64)
        if len(y) != len(x):
            raise ValueError(f"Head '{name}' has {len(y)} targets for {len(x)} cases.")
        known = ~np.isnan(y)
        if not known.any():
            raise ValueError(f"Head '{name}' has no training case with a known value.")
        regression = name in regression_heads
        if not regression and (y[known].min() < 0 or y[known].max() >= num_values[name] or (y[known] % 1).any()):
            raise ValueError(f"Head '{name}': targets must be integers in 0..{num_values[name] - 1}.")
        # problems this small only lose time to BLAS threads (8x slower on a busy 2-core machine)
        with threadpool_limits(limits=1):
            if regression:
                models[name] = _fit_regressor(name, x[known], y[known], seed)
            else:
                models[name] = _fit_classifier(name, x[known], y[known].astype(np.int64), num_values[name], seed)
    return models


def predict_reference(models: Mapping[str, HeadModel], features: np.ndarray) -> dict[str, np.ndarray]:
    """Per head, (cases x width) predictions as the deep model gives them: the probabilities of every value
    (values unseen in training get 0), or the predicted value of a regression head (width 1)."""
    x = np.asarray(features, dtype=np.float64)
    return {name: model.predict(x) for name, model in models.items()}
