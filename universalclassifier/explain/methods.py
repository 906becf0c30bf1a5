"""The attribution methods by name; light, so that the command line can offer them without importing torch."""

from __future__ import annotations

METHODS = ("gradcam", "occlusion")
METHOD_CHOICES = (*METHODS, "both")
