"""Mutated tasks and prediction inputs, for tests/test_fuzz_inputs.py and benchmarks/bench_fuzz_inputs.py.

From a valid small synthetic task, each mutation breaks one thing: a field of dataset.json (wrong types, missing
keys, path-like and unicode names, absurd numbers), the bytes of dataset.json, or one image / ROI file (empty,
garbage, a header claiming a huge size or a zero / negative / NaN spacing, 2D / 4D / vector images, NaN voxels,
absurd label values, another grid). A task mutation then runs plan & preprocess on a copy of the task, a
prediction mutation runs predict() on the untrained artifact. Every run must end as accepted or refused with a
UserInputError (for tasks, the validation report TaskValidationError, unless only reading the pixels shows the
damage); anything else, a run past its deadline, a changed raw task folder or a file written outside
DATA/preprocessed counts as a failure.
"""

from __future__ import annotations

import copy
import hashlib
import json
import os
import shutil
import signal
import struct
import zlib
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import SimpleITK as sitk

from universalclassifier.errors import TaskValidationError, UserInputError

TASK_ID = 41
TASK_NAME = "Fuzz"
EVIL_STRINGS = [
    "", " ", ".", "..", "x/../../escaped", "../../outside", "/absolute/path", "C:\\temp\\x", "a\x00b", "ünïcødé",
    "名前", "🙂", "a b", "x" * 300, "CON", "-rf", "\n", "%s%n", "${HOME}", "~",
]
EVIL_VALUES: list = [
    None, True, False, 0, -1, 7, 1.5, float("nan"), float("inf"), 10**30, "1", [], [0, 1], {}, {"0": "a"},
    *EVIL_STRINGS[::3],
]


@dataclass(frozen=True)
class Outcome:
    """How one mutated run ended: "accepted", "refused" (a UserInputError) or "failure" (anything else)."""

    mutation: str
    result: str
    detail: str = ""
    error: str = ""  # the exception's type name


class Deadline(BaseException):
    """Raised in the main thread when a run takes longer than its deadline (a hang)."""


@contextmanager
def deadline(seconds: float) -> Iterator[None]:
    """Interrupt the block with Deadline after `seconds` (main thread, POSIX)."""

    def expire(signum, frame):
        raise Deadline(f"no result after {seconds} s")

    previous = signal.signal(signal.SIGALRM, expire)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


@contextmanager
def quiet_itk() -> Iterator[None]:
    """No ITK warnings on stderr while broken files are written and read."""
    shown = sitk.ProcessObject.GetGlobalWarningDisplay()
    sitk.ProcessObject.SetGlobalWarningDisplay(False)
    try:
        yield
    finally:
        sitk.ProcessObject.SetGlobalWarningDisplay(shown)


# ------------------------------------------------------------------------------------------- file mutations


def _read(path: Path) -> sitk.Image:
    return sitk.ReadImage(str(path))


def _write_array(path: Path, array: np.ndarray, reference: sitk.Image | None = None, suffix: str = ".mha") -> Path:
    """Write `array` (copying the reference grid when given) as `suffix` next to `path`, replacing `path`."""
    image = sitk.GetImageFromArray(array)
    if reference is not None and image.GetDimension() == reference.GetDimension():
        image.SetSpacing(reference.GetSpacing())
        image.SetOrigin(reference.GetOrigin())
        image.SetDirection(reference.GetDirection())
    target = _with_suffix(path, suffix)
    path.unlink()
    sitk.WriteImage(image, str(target), False)
    return target


def _with_suffix(path: Path, suffix: str) -> Path:
    name = path.name
    for ext in (".nii.gz", ".nii", ".mha", ".mhd", ".nrrd"):
        if name.endswith(ext):
            return path.with_name(name[: -len(ext)] + suffix)
    return path.with_name(name + suffix)


def _patched_mha(path: Path, field: str, value: str) -> Path:
    """Rewrite `path` as an uncompressed .mha whose header line `field = ...` reads `field = value`."""
    image = _read(path)
    target = _with_suffix(path, ".mha")
    path.unlink()
    sitk.WriteImage(image, str(target), False)
    header, data = target.read_bytes().split(b"ElementDataFile = LOCAL\n")
    lines = [f"{field} = {value}" if line.startswith(f"{field} ") else line for line in header.decode().splitlines()]
    target.write_bytes(("\n".join(lines) + "\n").encode() + b"ElementDataFile = LOCAL\n" + data)
    return target


def _patched_nii(path: Path, offset: int, fmt: str, values: tuple) -> Path:
    """Rewrite `path` as an uncompressed .nii with `values` packed at `offset` of its header."""
    image = _read(path)
    target = _with_suffix(path, ".nii")
    path.unlink()
    sitk.WriteImage(image, str(target), False)
    raw = bytearray(target.read_bytes())
    struct.pack_into(fmt, raw, offset, *values)
    target.write_bytes(bytes(raw))
    return target


def _array(path: Path) -> np.ndarray:
    return sitk.GetArrayFromImage(_read(path))


def _set_values(path: Path, rng: np.random.Generator, value: float, dtype: type) -> Path:
    """Set a random block of voxels to `value` (stored as `dtype`)."""
    array = _array(path).astype(dtype)
    z, y, x = (int(rng.integers(0, max(1, s - 2))) for s in array.shape)
    array[z : z + 2, y : y + 2, x : x + 2] = value
    return _write_array(path, array, _read(path))


def _bytes(path: Path, data: bytes) -> Path:
    path.write_bytes(data)
    return path


def _directory(path: Path) -> Path:
    path.unlink()
    path.mkdir()
    return path


def _four_d(path: Path) -> Path:
    image = _read(path)
    target = _with_suffix(path, ".mha")
    path.unlink()
    sitk.WriteImage(sitk.JoinSeries([image, image]), str(target), False)
    return target


def _vector(path: Path) -> Path:
    image = sitk.Cast(_read(path), sitk.sitkFloat32)
    target = _with_suffix(path, ".mha")
    path.unlink()
    sitk.WriteImage(sitk.Compose([image] * 3), str(target), False)
    return target


def _respaced(path: Path, factor: float) -> Path:
    image = _read(path)
    image.SetSpacing(tuple(s * factor for s in image.GetSpacing()))
    return _write_array(path, sitk.GetArrayFromImage(image), image)


def _redirected(path: Path) -> Path:
    image = _read(path)
    image.SetDirection((-1.0, 0.0, 0.0, 0.0, 1.0, 0.0, 0.0, 0.0, -1.0))
    return _write_array(path, sitk.GetArrayFromImage(image), image)


def _many_labels(path: Path) -> Path:
    shape = _array(path).shape
    return _write_array(path, (np.arange(np.prod(shape)) % 3000).reshape(shape).astype(np.int32), _read(path))


FileMutation = Callable[[Path, np.random.Generator], Path]

FILE_MUTATIONS: dict[str, FileMutation] = {
    "empty file": lambda p, r: _bytes(p, b""),
    "garbage bytes": lambda p, r: _bytes(p, r.bytes(int(r.integers(1, 4000)))),
    "truncated file": lambda p, r: _bytes(p, p.read_bytes()[: int(r.integers(1, p.stat().st_size))]),
    "a directory instead of a file": lambda p, r: _directory(p),
    "mha header: huge size": lambda p, r: _patched_mha(
        p, "DimSize", " ".join(str(int(r.integers(2000, 10**6))) for _ in range(3))
    ),
    "mha header: zero size": lambda p, r: _patched_mha(p, "DimSize", "0 12 12"),
    "mha header: 4 dimensions": lambda p, r: _patched_mha(p, "NDims", "4"),
    "mha header: zero spacing": lambda p, r: _patched_mha(p, "ElementSpacing", "0 1 1"),
    "mha header: negative spacing": lambda p, r: _patched_mha(p, "ElementSpacing", "1 -2 1"),
    "mha header: NaN spacing": lambda p, r: _patched_mha(p, "ElementSpacing", "nan 1 1"),
    "mha header: inf spacing": lambda p, r: _patched_mha(p, "ElementSpacing", "1 1 inf"),
    "mha header: tiny spacing": lambda p, r: _patched_mha(p, "ElementSpacing", "1e-30 1e-30 1e-30"),
    "mha header: NaN origin": lambda p, r: _patched_mha(p, "Offset", "nan 0 0"),
    "mha header: unknown element type": lambda p, r: _patched_mha(p, "ElementType", "MET_NOPE"),
    "nii header: huge size": lambda p, r: _patched_nii(p, 42, "<3h", (32000, 32000, 32000)),
    "nii header: NaN spacing": lambda p, r: _patched_nii(p, 80, "<f", (float("nan"),)),
    "nii header: zero spacing": lambda p, r: _patched_nii(p, 80, "<f", (0.0,)),
    "nii header: negative spacing": lambda p, r: _patched_nii(p, 80, "<f", (-3.0,)),
    "nii header: negative size": lambda p, r: _patched_nii(p, 42, "<h", (-5,)),
    "2D image": lambda p, r: _write_array(p, _array(p)[0]),
    "4D image": lambda p, r: _four_d(p),
    "vector image": lambda p, r: _vector(p),
    "NaN voxels": lambda p, r: _set_values(p, r, np.nan, np.float32),
    "all voxels NaN": lambda p, r: _write_array(p, np.full(_array(p).shape, np.nan, np.float32), _read(p)),
    "inf voxels": lambda p, r: _set_values(p, r, np.inf, np.float32),
    "huge voxel values": lambda p, r: _set_values(p, r, 3e38, np.float32),
    "all zero": lambda p, r: _write_array(p, np.zeros(_array(p).shape, np.int16), _read(p)),
    "int64 voxels": lambda p, r: _write_array(p, _array(p).astype(np.int64) * 2**40, _read(p)),
    "label 40000": lambda p, r: _set_values(p, r, 40000, np.int32),
    "negative label": lambda p, r: _set_values(p, r, -3, np.int16),
    "fractional label": lambda p, r: _set_values(p, r, 0.5, np.float32),
    "thousands of labels": lambda p, r: _many_labels(p),
    "one slice fewer": lambda p, r: _write_array(p, _array(p)[1:], _read(p)),
    "spacing off by 1%": lambda p, r: _respaced(p, 1.01),
    "spacing x1000": lambda p, r: _respaced(p, 1000.0),
    "flipped direction": lambda p, r: _redirected(p),
}
ROI_ONLY = ("label 40000", "negative label", "fractional label", "thousands of labels")


def mutate_file(path: Path, name: str, rng: np.random.Generator) -> Path:
    """Apply the file mutation `name` to `path`; returns the file's new path (its extension may change)."""
    return FILE_MUTATIONS[name](path, rng)


# ------------------------------------------------------------------------------------ dataset.json mutations


def _nodes(value: object, path: tuple = ()) -> Iterator[tuple]:
    """Every (key path) inside a JSON value, containers included."""
    yield path
    if isinstance(value, dict):
        for key, item in value.items():
            yield from _nodes(item, path + (key,))
    elif isinstance(value, list):
        for index, item in enumerate(value):
            yield from _nodes(item, path + (index,))


def _pick(rng: np.random.Generator, items: list):
    return items[int(rng.integers(len(items)))]


def _replace_random_node(dataset: dict, rng: np.random.Generator) -> str:
    path = _pick(rng, [p for p in _nodes(dataset) if p])
    parent = dataset
    for key in path[:-1]:
        parent = parent[key]
    if rng.random() < 0.25:
        del parent[path[-1]]
        return f"delete {list(path)}"
    parent[path[-1]] = copy.deepcopy(_pick(rng, EVIL_VALUES))
    return f"set {list(path)} = {parent[path[-1]]!r:.40}"


def _entry(dataset: dict, rng: np.random.Generator) -> dict:
    return _pick(rng, dataset["training"])


def _rename_head(dataset: dict, rng: np.random.Generator) -> str:
    head = _pick(rng, dataset["classification_labels"])
    new = _pick(rng, EVIL_STRINGS)
    for item in dataset["training"]:
        item[new] = item.pop(head["name"])
    head["name"] = new
    return f"head name {new!r:.40}"


def _set(container: dict | list, key: object, value: object) -> str:
    container[key] = copy.deepcopy(value)
    return f"{key!r} = {value!r:.40}"


def _delete(dataset: dict, key: str) -> str:
    del dataset[key]
    return f"no {key!r}"


def _single_class(dataset: dict) -> str:
    for item in dataset["training"]:
        item["lesion_contrast"] = 0
    return "every case lesion_contrast = 0"


JsonMutation = Callable[[dict, np.random.Generator], str]

JSON_MUTATIONS: dict[str, JsonMutation] = {
    "random field": _replace_random_node,
    "head name": _rename_head,
    "modality name": lambda d, r: _set(d["modality"], "0", _pick(r, EVIL_STRINGS)),
    "image path": lambda d, r: _set(_entry(d, r), "image", _pick(r, EVIL_STRINGS) + ".nii.gz"),
    "absolute image path": lambda d, r: _set(_entry(d, r), "image", "/nonexistent/case_0001.nii.gz"),
    "overlong image folder": lambda d, r: _set(_entry(d, r), "image", "./" + "x" * 300 + "/case_0001.nii.gz"),
    "overlong label path": lambda d, r: _set(_entry(d, r), "label", "./labelsTr/" + "x" * 300 + ".nii.gz"),
    "label path": lambda d, r: _set(_entry(d, r), "label", _pick(r, EVIL_STRINGS)),
    "class value": lambda d, r: _set(_entry(d, r), "lesion_size", _pick(r, EVIL_VALUES)),
    "values keys": lambda d, r: _set(d["classification_labels"][0], "values", {"1": "a", "2": "b"}),
    "ordinal": lambda d, r: _set(d["classification_labels"][1], "ordinal", _pick(r, EVIL_VALUES)),
    "labels map": lambda d, r: _set(d, "labels", _pick(r, [{}, [], {"1": "x"}, {str(i): i for i in range(300)}])),
    "modality map": lambda d, r: _set(
        d, "modality", _pick(r, [{}, [], {"1": "CT"}, {str(i): "CT" for i in range(40)}])
    ),
    "heads": lambda d, r: _set(d, "classification_labels", _pick(r, EVIL_VALUES)),
    "training": lambda d, r: _set(d, "training", _pick(r, EVIL_VALUES)),
    "required key": lambda d, r: _delete(d, _pick(r, ["modality", "classification_labels", "training"])),
    "duplicate case": lambda d, r: _set(d["training"], len(d["training"]) - 1, d["training"][0]),
    "single class": lambda d, r: _single_class(d),
    "numTraining": lambda d, r: _set(d, "numTraining", _pick(r, EVIL_VALUES)),
}

RAW_JSON_MUTATIONS: dict[str, Callable[[Path, np.random.Generator], None]] = {
    "dataset.json empty": lambda p, r: p.write_bytes(b""),
    "dataset.json truncated": lambda p, r: p.write_bytes(p.read_bytes()[: int(r.integers(1, p.stat().st_size))]),
    "dataset.json garbage": lambda p, r: p.write_bytes(r.bytes(200)),
    "dataset.json deeply nested": lambda p, r: p.write_text("[" * 200_000 + "]" * 200_000),
    "dataset.json a list": lambda p, r: p.write_text("[]"),
    "dataset.json with BOM": lambda p, r: p.write_bytes(b"\xef\xbb\xbf" + p.read_bytes()),
    "dataset.json latin-1": lambda p, r: p.write_bytes(p.read_bytes().replace(b"darker", "dünkler".encode("latin-1"))),
    "dataset.json a directory": lambda p, r: (p.unlink(), p.mkdir()),
    "dataset.json missing": lambda p, r: p.unlink(),
}


# ----------------------------------------------------------------------------------------------- the runs


def make_pristine(root: Path, seed: int) -> Path:
    """The valid task every task mutation starts from: 6 CT cases with ROIs (.nii.gz or .mha by seed)."""
    from universalclassifier.synthetic import generate_task

    return generate_task(
        root, TASK_ID, TASK_NAME, num_cases=6, base_size=(8, 12, 12), extension=(".nii.gz", ".mha")[seed % 2], seed=seed
    )


def digest(folder: Path, content: bool = True) -> dict[str, str]:
    """Every path below `folder` with the hash of its bytes, or only its size and mtime ("dir" for folders)."""
    result = {}
    for path in sorted(folder.rglob("*")):
        key = str(path.relative_to(folder))
        if path.is_dir() and not path.is_symlink():
            result[key] = "dir"
        elif content:
            result[key] = hashlib.sha256(path.read_bytes()).hexdigest()
        else:
            result[key] = f"{path.lstat().st_size} {path.lstat().st_mtime_ns}"
    return result


def task_mutation_names() -> list[str]:
    """Every task mutation: dataset.json fields, dataset.json bytes, and each file mutation on an image or ROI."""
    files = [f"image: {n}" for n in FILE_MUTATIONS if n not in ROI_ONLY] + [f"roi: {n}" for n in FILE_MUTATIONS]
    extra = ["case: spacing x1000", "every ROI empty", "missing modality file", "stray file"]
    return [f"json: {n}" for n in JSON_MUTATIONS] + list(RAW_JSON_MUTATIONS) + files + extra


def _mutate_task(task: Path, name: str, rng: np.random.Generator) -> str:
    """Apply one task mutation in place; returns a description."""
    dataset_file = task / "dataset.json"
    if name.startswith("json: "):
        dataset = json.loads(dataset_file.read_text())
        detail = JSON_MUTATIONS[name[6:]](dataset, rng)
        dataset_file.write_text(json.dumps(dataset, indent=2))
        return f"{name} ({detail:.60})"
    if name in RAW_JSON_MUTATIONS:
        RAW_JSON_MUTATIONS[name](dataset_file, rng)
        return name
    dataset = json.loads(dataset_file.read_text())
    item = _pick(rng, dataset["training"])
    image = _image_of(task, item)
    roi = task / item["label"]
    if name.startswith("image: "):
        mutate_file(image, name[7:], rng)
    elif name.startswith("roi: "):
        item["label"] = "./" + str(mutate_file(roi, name[5:], rng).relative_to(task))
        dataset_file.write_text(json.dumps(dataset, indent=2))
    elif name == "case: spacing x1000":
        mutate_file(image, "spacing x1000", rng)
        item["label"] = "./" + str(mutate_file(roi, "spacing x1000", rng).relative_to(task))
        dataset_file.write_text(json.dumps(dataset, indent=2))
    elif name == "every ROI empty":
        for entry in dataset["training"]:
            roi_file = task / entry["label"]
            mutate_file(roi_file, "all zero", rng)
            entry["label"] = "./" + str(_with_suffix(roi_file, ".mha").relative_to(task))
        dataset_file.write_text(json.dumps(dataset, indent=2))
    elif name == "missing modality file":
        image.unlink()
    elif name == "stray file":
        shutil.copy(image, image.with_name(image.name.replace(image.name.split("_0000")[0], "stray", 1)))
    else:
        raise KeyError(name)
    return f"{name} (case {Path(item['image']).name})"


def _image_of(task: Path, item: dict) -> Path:
    reference = task / item["image"]
    return next(reference.parent.glob(reference.name.split(".")[0] + "_0000.*"))


def _classify(run: Callable[[], object]) -> tuple[str, str, str]:
    """(result, detail, exception type) of one run."""
    try:
        run()
    except UserInputError as exc:
        lines = str(exc).splitlines()
        return "refused", (lines[1] if isinstance(exc, TaskValidationError) else lines[0])[:200], type(exc).__name__
    except Deadline as exc:
        return "failure", f"hang: {exc}", "Deadline"
    except Exception as exc:  # the fuzzer's purpose: anything else is a bug
        return "failure", f"{type(exc).__name__}: {str(exc)[:300]}", type(exc).__name__
    return "accepted", "", ""


def _rng(name: str, seed: int, variant: int) -> np.random.Generator:
    return np.random.default_rng([seed, variant, zlib.crc32(name.encode())])


def run_task_mutation(
    pristine_root: Path, sandbox: Path, name: str, seed: int, seconds: float = 60.0, variant: int = 0
) -> Outcome:
    """Copy the pristine data root into `sandbox`, mutate its task, run plan & preprocess, check what it touched.

    The mutation's random choices follow (`seed`, `variant`).
    """
    from universalclassifier.planning.plan_and_preprocess import plan_and_preprocess

    data_root = sandbox / "a" / "b" / "data"
    shutil.copytree(pristine_root, data_root, symlinks=True)
    task = next((data_root / "raw" / "nnUNet_raw_data").iterdir())
    with quiet_itk():
        description = _mutate_task(task, name, _rng(name, seed, variant))
    raw_before, everything_before = digest(task), set(digest(sandbox))

    def run() -> None:
        working_directory = Path.cwd()
        os.chdir(data_root.parent)  # relative writes land in the sandbox, where they are seen
        try:
            with deadline(seconds):
                plan_and_preprocess(data_root, TASK_ID, num_workers=1, show_progress=False)
        finally:
            os.chdir(working_directory)

    with quiet_itk():
        result, detail, error = _classify(run)
    if digest(task) != raw_before:
        result, detail = "failure", "the raw task folder changed"
    preprocessed = str((data_root / "preprocessed").relative_to(sandbox))
    written = sorted(p for p in set(digest(sandbox)) - everything_before if not p.startswith(preprocessed))
    if written:
        result, detail = "failure", f"wrote outside DATA/preprocessed: {written[:3]}"
    return Outcome(description, result, detail, error)


# ------------------------------------------------------------------------------------ prediction mutations

PredictCall = Callable[[Path, list[Path], Path, np.random.Generator], tuple[tuple, dict]]

PREDICT_ARGUMENT_MUTATIONS: dict[str, PredictCall] = {
    "images None": lambda a, i, r, g: ((a, None, r), {}),
    "images an int": lambda a, i, r, g: ((a, 5, r), {}),
    "images a single path": lambda a, i, r, g: ((a, str(i[0]), r), {}),
    "images empty": lambda a, i, r, g: ((a, [], r), {}),
    "images twice": lambda a, i, r, g: ((a, i * 2, r), {}),
    "images [None]": lambda a, i, r, g: ((a, [None], r), {}),
    "images a dict": lambda a, i, r, g: ((a, {"x": 1}, r), {}),
    "image path with NUL": lambda a, i, r, g: ((a, [str(i[0]) + "\x00"], r), {}),
    "image missing": lambda a, i, r, g: ((a, [i[0].with_name("missing.nii.gz")], r), {}),
    "image path too long": lambda a, i, r, g: ((a, [i[0].with_name("x" * 300 + ".nii.gz")], r), {}),
    "roi path too long": lambda a, i, r, g: ((a, i, r.with_name("x" * 300 + ".nii.gz")), {}),
    "image a directory": lambda a, i, r, g: ((a, [i[0].parent], r), {}),
    "roi an int": lambda a, i, r, g: ((a, i, 5), {}),
    "roi missing (model needs it)": lambda a, i, r, g: ((a, i), {}),
    "roi is the image": lambda a, i, r, g: ((a, i, i[0]), {}),
    "artifact None": lambda a, i, r, g: ((None, i, r), {}),
    "artifact a file": lambda a, i, r, g: ((i[0], i, r), {}),
    "artifact missing": lambda a, i, r, g: ((a / "missing", i, r), {}),
    "folds empty": lambda a, i, r, g: ((a, i, r), {"folds": []}),
    "folds an int": lambda a, i, r, g: ((a, i, r), {"folds": 3}),
    "folds 'all' as a string": lambda a, i, r, g: ((a, i, r), {"folds": "all"}),
    "folds evil": lambda a, i, r, g: ((a, i, r), {"folds": [_pick(g, EVIL_VALUES)]}),
    "fold not trained": lambda a, i, r, g: ((a, i, r), {"folds": [4]}),
    "device evil": lambda a, i, r, g: (
        (a, i, r),
        {"device": _pick(g, ["gpu", "cuda:99", "meta", "mps", 5, "", "cpu:x"])},
    ),
    "task evil": lambda a, i, r, g: ((a, i, r), {"task": _pick(g, EVIL_VALUES)}),
    "max_input_voxels evil": lambda a, i, r, g: (
        (a, i, r),
        {"max_input_voxels": _pick(g, [0, -1, "big", None, 1.5, float("nan")])},
    ),
    "max_resampled_voxels evil": lambda a, i, r, g: (
        (a, i, r),
        {"max_resampled_voxels": _pick(g, [0, -1, "big", None, True])},
    ),
}


def predict_mutation_names() -> list[str]:
    """Every prediction mutation: call arguments, and each file mutation on the image or the ROI."""
    files = [f"image: {n}" for n in FILE_MUTATIONS if n not in ROI_ONLY] + [f"roi: {n}" for n in FILE_MUTATIONS]
    return list(PREDICT_ARGUMENT_MUTATIONS) + files


def run_predict_mutation(
    artifact: Path, image: Path, roi: Path, sandbox: Path, name: str, seed: int, seconds: float = 60.0, variant: int = 0
) -> Outcome:
    """Copy one case into `sandbox`, mutate the call or a file, run predict(), check that nothing was written."""
    from universalclassifier.inference.predict import predict

    inputs = sandbox / "inputs"
    inputs.mkdir(parents=True)
    images = [Path(shutil.copy(image, inputs / image.name))]
    roi_copy = Path(shutil.copy(roi, inputs / roi.name))
    rng = _rng(name, seed, variant)
    with quiet_itk():
        if name.startswith("image: "):
            images = [mutate_file(images[0], name[7:], rng)]
            args, kwargs = (artifact, images, roi_copy), {}
        elif name.startswith("roi: "):
            args, kwargs = (artifact, images, mutate_file(roi_copy, name[5:], rng)), {}
        else:
            args, kwargs = PREDICT_ARGUMENT_MUTATIONS[name](artifact, images, roi_copy, rng)
    artifact_before, sandbox_before = digest(artifact, content=False), digest(sandbox)

    def run() -> None:
        with deadline(seconds):
            result = predict(*args, **kwargs)
        json.dumps(result, allow_nan=False)  # the contract: plain, finite JSON values

    with quiet_itk():
        result, detail, error = _classify(run)
    if digest(artifact, content=False) != artifact_before or digest(sandbox) != sandbox_before:
        result, detail = "failure", "predict() wrote into the artifact or the inputs"
    return Outcome(f"{name} {kwargs!r:.60}" if kwargs else name, result, detail, error)


def tally(outcomes: list[Outcome]) -> dict:
    """Counts per result, and the failures themselves."""
    return {
        "mutations_tried": len(outcomes),
        "accepted_as_valid": sum(o.result == "accepted" for o in outcomes),
        "refused_cleanly": sum(o.result == "refused" for o in outcomes),
        "failures": sum(o.result == "failure" for o in outcomes),
        "failure_details": [f"{o.mutation}: {o.detail}" for o in outcomes if o.result == "failure"],
    }
