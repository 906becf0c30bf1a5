"""Command-line error handling: user mistakes and operating-system errors end in one `error:` line and exit code 2."""

from __future__ import annotations

import argparse
import errno

import numpy as np
import pytest

from universalclassifier.console import describe_os_error, run_command
from universalclassifier.errors import UserInputError
from universalclassifier.importing.cli import import_main

ARGS = argparse.Namespace(verbose=False, quiet=True)


def _fail_with(exc: BaseException):
    def job(_args: argparse.Namespace) -> None:
        raise exc

    return job


@pytest.mark.parametrize(
    ("error", "expected"),
    [
        (OSError(errno.ENOSPC, "No space left on device", "/data/preprocessed/Task001/a.npy"),
         "error: No space left on device: /data/preprocessed/Task001/a.npy; free disk space"),
        (PermissionError(errno.EACCES, "Permission denied", "/data/results"),
         "error: Permission denied: /data/results; make the folder writable for you"),
        (OSError(errno.EROFS, "Read-only file system", "/mnt/ro/x.json"),
         "error: Read-only file system: /mnt/ro/x.json; the file system is read-only"),
        (UserInputError("bad value"), "error: bad value"),
    ],
)
def test_os_and_user_errors_give_one_line_and_exit_code_2(capsys, error, expected):
    assert run_command(ARGS, _fail_with(error)) == 2
    err = capsys.readouterr().err
    assert err.startswith(expected) and err.count("\n") == 1 and "Traceback" not in err


def test_rename_errors_name_both_files():
    error = OSError(errno.EXDEV, "Invalid cross-device link", "/a/x.tmp", None, "/b/x")  # as os.replace raises it
    assert describe_os_error(error) == "Invalid cross-device link: /a/x.tmp -> /b/x."


def test_an_output_folder_that_is_a_file_is_a_one_line_error(tmp_path, capsys):
    blocker = tmp_path / "data_root"
    blocker.write_text("a file where the data root should be")
    source = tmp_path / "set.npz"
    images = np.zeros((6, 8, 8, 8), np.uint8)
    np.savez(source, train_images=images, train_labels=np.array([[0], [1]] * 3, np.uint8),
             val_images=images[:2], val_labels=np.array([[0], [1]], np.uint8))
    code = import_main([str(blocker), "--from", "medmnist", str(source), "-t", "7", "--name", "X", "--quiet"])
    err = capsys.readouterr().err
    assert code == 2 and err.startswith("error: ") and str(blocker) in err and "Traceback" not in err
    assert blocker.read_text() == "a file where the data root should be"
