"""Saliency maps: which voxels drive a trained ensemble's prediction (Grad-CAM and occlusion), on the input's grid.

Needs the optional dependency captum (`pip install 'universalclassifier[explain]'`); captum is imported only when maps
are computed, never by `import universalclassifier` or `predict()`. `explain` loads lazily, like `predict`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

__all__ = ["explain"]

if TYPE_CHECKING:
    from universalclassifier.explain.explainer import explain


def __getattr__(name: str) -> Any:
    if name in __all__:
        from universalclassifier.explain import explainer

        return getattr(explainer, name)
    raise AttributeError(f"module 'universalclassifier.explain' has no attribute {name!r}")
