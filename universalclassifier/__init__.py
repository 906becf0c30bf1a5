"""universalclassifier: a self-configuring classifier for 3D medical images.

`from universalclassifier import predict` is the entry point of challenge containers (`predict_detailed` also names
each head's predicted value); `train` trains one fold from Python, as `uc_train` does. Importing the package is
cheap: these and the pipeline stages load on first use.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from universalclassifier.version import __version__

__all__ = ["predict", "predict_detailed", "train", "__version__"]

if TYPE_CHECKING:
    from universalclassifier.inference.predict import predict, predict_detailed
    from universalclassifier.training.train_fold import train

_LAZY = {
    "predict": "universalclassifier.inference.predict",
    "predict_detailed": "universalclassifier.inference.predict",
    "train": "universalclassifier.training.train_fold",
}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'universalclassifier' has no attribute {name!r}")
