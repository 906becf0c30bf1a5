"""universalclassifier: a self-configuring classifier for 3D medical images.

`from universalclassifier import predict` is the entry point of challenge containers (`predict_detailed` also names
each head's predicted value). Importing the package is cheap: both and the pipeline stages load on first use.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from universalclassifier.version import __version__

__all__ = ["predict", "predict_detailed", "__version__"]

if TYPE_CHECKING:
    from universalclassifier.inference.predict import predict, predict_detailed


def __getattr__(name: str) -> Any:
    if name in ("predict", "predict_detailed"):
        from universalclassifier.inference import predict as module

        return getattr(module, name)
    raise AttributeError(f"module 'universalclassifier' has no attribute {name!r}")
