"""universalclassifier: a self-configuring classifier for 3D medical images.

Importing the package is cheap; the pipeline stages live in sub-packages and load on demand.
"""

__version__ = "0.1.0"
