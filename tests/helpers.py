"""Helpers shared by several test modules, which import them from here, never from conftest or from one another."""

from __future__ import annotations

import json
import locale
import os
import re
import subprocess
import sys
from collections.abc import Callable
from html.parser import HTMLParser
from pathlib import Path

import numpy as np
import pytest
import SimpleITK as sitk
import torch

from universalclassifier.dataset.validation import ValidatedTask, validate_task
from universalclassifier.errors import TaskValidationError
from universalclassifier.plans import ClassificationLabel, Plans
from universalclassifier.synthetic import generate_task

REPO = Path(__file__).resolve().parents[1]
NUM_ROI_CLASSES = 3  # of the fake preprocessed cases of `write_cases`


def run_script(script: str, *args: str) -> subprocess.CompletedProcess:
    """Run one of the repository's uc_*.sh scripts with this interpreter's environment."""
    env = dict(os.environ, VIRTUAL_ENV=str(Path(sys.executable).parent.parent))
    return subprocess.run(
        ["bash", str(REPO / script), *args], capture_output=True, text=True, env=env, timeout=600
    )


# ---------------------------------------------------------------------------------- raw task folders


def make_task(root: Path, **kwargs) -> Path:
    """A tiny synthetic task (6 cases, about 8x12x12 voxels) in the raw layout; returns the task folder."""
    kwargs.setdefault("num_cases", 6)
    kwargs.setdefault("base_size", (8, 12, 12))
    return generate_task(root, **kwargs)


def load_json(folder: Path) -> dict:
    """The dataset.json of a task folder."""
    return json.loads((folder / "dataset.json").read_text())


def write_json(folder: Path, dataset: dict) -> None:
    """Replace the dataset.json of a task folder."""
    (folder / "dataset.json").write_text(json.dumps(dataset, indent=2) + "\n")


def edit_json(folder: Path, change: Callable[[dict], None]) -> dict:
    """Load dataset.json, let `change` modify it in place, write it back and return it."""
    dataset = load_json(folder)
    change(dataset)
    write_json(folder, dataset)
    return dataset


def entry(dataset: dict, case_id: str) -> dict:
    """The training entry of a case in a loaded dataset.json."""
    for item in dataset["training"]:
        if Path(item["image"]).name.startswith(case_id + "."):
            return item
    raise KeyError(case_id)


def validate(folder: Path, num_workers: int = 1) -> ValidatedTask:
    """Validate a task folder without progress bars."""
    return validate_task(folder, num_workers=num_workers, show_progress=False)


def validation_error(folder: Path) -> TaskValidationError:
    """Run validation expecting it to fail; returns the error."""
    with pytest.raises(TaskValidationError) as info:
        validate(folder)
    return info.value


def assert_in(message: str, *parts: str) -> None:
    """Assert that every part occurs in the message, showing the message when one does not."""
    for part in parts:
        assert part in message, f"{part!r} not in message:\n{message}"



# ---------------------------------------------------------------------------- fake preprocessed cases


def make_plans(num_modalities: int, image_size: tuple[int, ...], dummy_2d: bool = False) -> Plans:
    """Plans of a fake task with ROIs (NUM_ROI_CLASSES classes) and two heads: binary and 3-value ordinal."""
    return Plans(
        task_name="Task001_Fake",
        modalities=[f"m{i}" for i in range(num_modalities)],
        normalization_schemes=["zscore"] * num_modalities,
        use_mask_for_norm=[False] * num_modalities,
        intensity_properties={},
        transpose_forward=[0, 1, 2],
        transpose_backward=[0, 1, 2],
        target_spacing=[1.0, 1.0, 1.0],
        image_size=list(image_size),
        batch_size=2,
        do_dummy_2D_data_aug=dummy_2d,
        num_roi_classes=NUM_ROI_CLASSES,
        uses_roi=True,
        classification_labels=[
            ClassificationLabel(name="malignant", type="nominal", values=("no", "yes")),
            ClassificationLabel(name="grade", type="ordinal", values=("1", "2", "3")),
        ],
        num_training_cases=4,
    )


def write_cases(
    folder: Path, num_modalities: int, size: tuple[int, ...], num_cases: int = 4
) -> tuple[list[Path], np.ndarray]:
    """Fake preprocessed arrays: smooth image channels (different per case) + an ROI with -1/0/1/2 regions."""
    rng = np.random.default_rng(7)
    grid = np.stack(np.meshgrid(*[np.linspace(-1, 1, n) for n in size], indexing="ij"))
    files = []
    for case in range(num_cases):
        images = [np.sin(3 * (grid * rng.normal(size=(3, 1, 1, 1))).sum(0)) + case for _ in range(num_modalities)]
        radius = np.sqrt((grid**2).sum(0))
        roi = np.where(radius < 1.2, 0.0, -1.0)
        roi[radius < 0.8] = 1
        roi[(radius < 0.8) & (grid[-1] > 0.1)] = 2
        path = folder / f"case_{case:04d}.npy"
        np.save(path, np.stack([*images, roi]).astype(np.float32))
        files.append(path)
    targets = np.array([[case % 2, case % 3] for case in range(num_cases)], dtype=np.int64)
    return files, targets


@pytest.fixture(scope="module", autouse=True)
def one_torch_thread():
    """Tiny networks on a busy 2-core machine: one thread avoids oversubscription (restored afterwards).

    Import it into a test module to apply it to every test there.
    """
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def write_series(image: sitk.Image, folder: Path, series_uid: str) -> Path:
    """Write a 3D image as a DICOM series, one file per slice (SimpleITK's documented DICOM series writing pattern)."""
    saved_locale = locale.setlocale(locale.LC_ALL)
    try:
        return _write_series(image, folder, series_uid)
    finally:  # GDCM's writer of decimal-string tags leaves the process in the C locale, breaking later text I/O
        locale.setlocale(locale.LC_ALL, saved_locale)


def _write_series(image: sitk.Image, folder: Path, series_uid: str) -> Path:
    folder.mkdir(parents=True)
    writer = sitk.ImageFileWriter()
    writer.KeepOriginalImageUIDOn()
    d = image.GetDirection()
    orientation = "\\".join(repr(v) for v in (d[0], d[3], d[6], d[1], d[4], d[7]))
    spacing = image.GetSpacing()
    for index in range(image.GetDepth()):
        slice_image = image[:, :, index]
        for tag, value in (
            ("0008|0060", "CT"),
            ("0020|000d", f"{series_uid}.0"),  # study instance UID
            ("0020|000e", series_uid),  # series instance UID
            ("0008|0018", f"{series_uid}.{index + 1}"),  # SOP instance UID
            ("0020|0037", orientation),
            ("0020|0032", "\\".join(repr(v) for v in image.TransformIndexToPhysicalPoint((0, 0, index)))),
            ("0020|0013", str(index + 1)),  # instance number
            ("0018|0050", repr(spacing[2])),  # slice thickness
            ("0028|0030", f"{spacing[1]!r}\\{spacing[0]!r}"),  # pixel spacing: row, column
        ):
            slice_image.SetMetaData(tag, value)
        writer.SetFileName(str(folder / f"IM{index:04d}.dcm"))
        writer.Execute(slice_image)
    return folder


def series_from_file(path: Path, folder: Path, series_uid: str) -> Path:
    """The image file `path` written as a DICOM series in `folder`."""
    return write_series(sitk.ReadImage(str(path)), folder, series_uid)


# ------------------------------------------------------------------------------------------ reports as HTML
class _Tables(HTMLParser):
    """The text of every table cell of a page, table by table and row by row."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.tables: list[list[list[str]]] = []
        self._cell: list[str] | None = None

    def handle_starttag(self, tag: str, attrs: list) -> None:
        if tag == "table":
            self.tables.append([])
        elif tag == "tr":
            self.tables[-1].append([])
        elif tag in ("td", "th"):
            self._cell = []

    def handle_endtag(self, tag: str) -> None:
        if tag in ("td", "th") and self._cell is not None:
            self.tables[-1][-1].append("".join(self._cell))
            self._cell = None

    def handle_data(self, data: str) -> None:
        if self._cell is not None:
            self._cell.append(data)


def html_tables(page: str) -> list[list[list[str]]]:
    """Every table of an HTML page as rows of cell texts (entities decoded, tags dropped)."""
    parser = _Tables()
    parser.feed(page)
    return parser.tables


def markdown_tables(text: str) -> list[list[list[str]]]:
    """Every pipe table of a markdown text as rows of cell texts (rule rows left out, `\\|` unescaped)."""
    tables: list[list[list[str]]] = []
    previous_was_row = False
    for line in text.splitlines():
        is_row = line.startswith("|")
        if is_row and not previous_was_row:
            tables.append([])
        if is_row and not re.fullmatch(r"(\|---)+\|", line):
            cells = re.split(r"(?<!\\)\|", line.strip()[1:-1])
            tables[-1].append([cell.strip().replace("\\|", "|") for cell in cells])
        previous_was_row = is_row
    return tables


def assert_self_contained(page: str, num_figures: int) -> None:
    """`page` embeds `num_figures` PNGs and refers to no other file or server (no link, script or URL)."""
    assert page.count('<img src="data:image/png;base64,') == num_figures
    text = re.sub(r"data:image/png;base64,[A-Za-z0-9+/=]*", "", page)  # base64 may spell anything
    assert "http" not in text.lower() and "<script" not in text and "<link" not in text and "url(" not in text
    assert all(value.startswith("data:image/png;base64,") for value in re.findall(r'(?:src|href)="([^"]*)"', page))
