"""The radiomics reference: mirp features inside the ROI and a logistic or ridge regression per head, on the deep
model's folds.

Needs the optional dependency mirp (`pip install 'universalclassifier[radiomics]'`); mirp is imported only when
features are computed, never by `import universalclassifier` or `predict()`. The public functions load lazily so
that feature-extraction worker processes do not import scikit-learn.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

__all__ = ["reference_scores", "run_radiomics_reference"]

if TYPE_CHECKING:
    from universalclassifier.radiomics.reference import reference_scores, run_radiomics_reference


def __getattr__(name: str) -> Any:
    if name in __all__:
        from universalclassifier.radiomics import reference

        return getattr(reference, name)
    raise AttributeError(f"module 'universalclassifier.radiomics' has no attribute {name!r}")
