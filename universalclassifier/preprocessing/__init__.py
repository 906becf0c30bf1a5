"""Preprocessing: cropping, resampling, normalization and the single-case preprocessor."""
