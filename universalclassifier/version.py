"""The package version (as in pyproject.toml), importable without importing the package's entry points."""

__version__ = "0.1.0"
