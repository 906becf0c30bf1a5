"""The trained-model artifact (the `trained_models` folder): its folder chain, its folds, and checkpoint I/O.

Nothing in an artifact is a pickle: weights are read with `torch.load(weights_only=True)`, everything else is JSON.
Checkpoint reading and writing (`universalclassifier.artifact.checkpoint`) loads torch; importing this package
does not.
"""

from universalclassifier.artifact.folders import (
    find_fold_folders,
    find_trainer_folder,
    numbered_fold_folders,
)
from universalclassifier.artifact.loading import (
    check_folds_match_plans,
    load_network_weights,
    load_plans,
    network_from_weights,
)

__all__ = [
    "check_folds_match_plans",
    "find_fold_folders",
    "find_trainer_folder",
    "load_network_weights",
    "load_plans",
    "network_from_weights",
    "numbered_fold_folders",
]
