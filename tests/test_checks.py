"""The one integer check behind API arguments and command-line options."""

from __future__ import annotations

import numpy as np
import pytest

from universalclassifier.checks import checked_int, int_at_least
from universalclassifier.cli import summarize_main, train_main
from universalclassifier.errors import UserInputError
from universalclassifier.preprocessing.preprocessor import InputLimits
from universalclassifier.training.trainer import TrainingOptions

TRAIN = ["DATA", "3d_fullres", "ClassifierTrainer", "1", "0"]


def test_checked_int_accepts_integers_and_refuses_the_rest():
    assert checked_int(3, "n", 1) == 3 and checked_int(np.int64(0), "n", 0) == 0
    for bad in (0, -2, 1.0, "2", True, None):
        with pytest.raises(ValueError, match=rf"n must be an integer >= 1, got {bad!r}"):
            checked_int(bad, "n", 1)
    with pytest.raises(UserInputError, match="--epochs must be an integer >= 1, got 0"):
        checked_int(0, "--epochs", 1, UserInputError)


def test_api_records_use_it():
    with pytest.raises(UserInputError, match="max_resampled_voxels must be an integer >= 1, got 0"):
        InputLimits(max_resampled_voxels=0)
    with pytest.raises(UserInputError, match="--num_workers must be an integer >= 0, got -1"):
        TrainingOptions(num_workers=-1).check()
    with pytest.raises(UserInputError, match="--save_every must be an integer >= 1, got 2.5"):
        TrainingOptions(save_every=2.5).check()  # type: ignore[arg-type]


@pytest.mark.parametrize(
    "main, argv, option",
    [
        (train_main, [*TRAIN, "--max_num_epochs", "0"], "--max_num_epochs"),
        (train_main, [*TRAIN, "--num_workers", "-1"], "--num_workers"),
        (summarize_main, ["DATA", "-t", "1", "--num_resamples", "x"], "--num_resamples"),
    ],
)
def test_command_line_options_are_refused_before_any_work(main, argv, option, capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(argv)
    assert exit_info.value.code == 2
    assert f"argument {option}: must be an integer >= " in capsys.readouterr().err
    assert int_at_least(2)("7") == 7
