"""Evaluation of trained models: calibration, bootstrap confidence intervals and the cross-validation summary."""
