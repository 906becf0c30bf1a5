"""universalclassifier: a self-configuring classifier for 3D medical images.

`from universalclassifier import predict` is the entry point of challenge containers. Importing the package is
cheap: `predict` and the pipeline stages load on first use.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"
__all__ = ["predict", "__version__"]

if TYPE_CHECKING:
    from universalclassifier.inference.predict import predict


def __getattr__(name: str) -> Any:
    if name == "predict":
        from universalclassifier.inference.predict import predict

        return predict
    raise AttributeError(f"module 'universalclassifier' has no attribute {name!r}")
