"""Training: splits, data loading, augmentation, metrics, trainer."""
