"""Mutated artifacts, for tests/test_fuzz_artifacts.py and benchmarks/bench_fuzz_artifacts.py.

From a valid trained_models folder (tests/untrained_artifact.py), each mutation breaks one part of a copy: a field or
the bytes of plans.json (after a field edit, the plans hash recorded in every fold's checkpoint metadata is fixed
to the edited plans, so that the edit gets past the hash check), of the checkpoint metadata (.model.json) or of
calibration.json, or the weights file (truncation, bit flips, huge sparse files, wrong shapes, NaN, compression, a
decompression bomb), or replaces a file by a symlink to /dev/zero, a FIFO or a folder. predict() then runs on the
copy in a child process with an address-space limit and a deadline, so that an allocation bomb or a hang shows as
a failure instead of taking the machine down.

Every run must end "predicted" (finite, JSON-ready values) or "refused" (a UserInputError); anything else (another
exception, a crash, running out of memory, a timeout, a file written into the artifact) is a failure.
"""

from __future__ import annotations

import copy
import hashlib
import io
import json
import logging
import math
import multiprocessing
import os
import resource
import shutil
import struct
import zipfile
import zlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from multiprocessing.connection import Connection
from pathlib import Path

import numpy as np
import torch

from fuzz_mutations import EVIL_VALUES, Outcome, _nodes, digest
from universalclassifier.paths import ArtifactLayout

MEMORY_LIMIT_BYTES = 4 * 2**30
CALIBRATION = "calibration.json"
BOMB_NAME = "weights: decompression bomb"
_BOMB_BYTES = 5 * 2**29  # 2.5 GiB of zeros behind a few MB of deflate data
_BOMB_MARK = 123_457  # the element count of the tensor the bomb's pickle points at, patched to the bomb's


@dataclass(frozen=True)
class Artifact:
    """A copy of an artifact and the files the mutations touch."""

    trained_models: Path
    trainer_folder: Path

    @property
    def plans_file(self) -> Path:
        return self.trainer_folder / ArtifactLayout.PLANS

    @property
    def checkpoint(self) -> Path:
        return next(self.trainer_folder.glob(f"*/{ArtifactLayout.FINAL}"))

    @property
    def metadata_file(self) -> Path:
        return self.checkpoint.with_name(self.checkpoint.name + ".json")

    @property
    def calibration_file(self) -> Path:
        return self.trainer_folder / CALIBRATION

    def metadata_files(self) -> list[Path]:
        return sorted(self.trainer_folder.glob(f"*/{ArtifactLayout.FINAL}.json"))


def _pick(rng: np.random.Generator, items: Sequence):
    return copy.deepcopy(items[int(rng.integers(len(items)))])


def _read(path: Path) -> dict:
    return json.loads(path.read_text())


def _write(path: Path, content: object) -> None:
    path.write_text(json.dumps(content))  # NaN and Infinity become the non-standard literals Python reads back


def canonical_hash(plans: dict) -> str:
    """The hash Plans.content_hash gives plans whose to_dict() is `plans` (every plans.json this package writes)."""
    return hashlib.sha256(json.dumps(plans, sort_keys=True, separators=(",", ":")).encode("utf-8")).hexdigest()


def make_pristine(trained_models: Path, target: Path) -> Artifact:
    """A copy of `trained_models` with a calibration.json that holds for it (temperature 1.5 on its first head)."""
    shutil.copytree(trained_models, target / "trained_models")
    artifact = Artifact(target / "trained_models", next((target / "trained_models").glob("**/plans.json")).parent)
    plans = _read(artifact.plans_file)
    folds = {path.parent.name: _read(path)["checkpoint_id"] for path in artifact.metadata_files()}
    first = plans["classification_labels"][0]["name"]
    _write(
        artifact.calibration_file,
        {
            "method": "temperature",
            "format_version": 2,
            "plans_hash": canonical_hash(plans),
            "folds": folds,
            "heads": {first: {"temperature": 1.5, "num_cases": 20}},
        },
    )
    return artifact


# ----------------------------------------------------------------------------------------------- files of any kind


def _symlink_to_dev_zero(path: Path) -> None:
    path.unlink()
    path.symlink_to("/dev/zero")


def _fifo(path: Path) -> None:
    path.unlink()
    os.mkfifo(path)


def _folder(path: Path) -> None:
    path.unlink()
    path.mkdir()


def _sparse(path: Path, size: int) -> None:
    """`path` becomes a file of `size` bytes that takes no disk space (all zeros)."""
    path.unlink()
    with path.open("wb") as stream:
        stream.truncate(size)


def _truncated(path: Path, rng: np.random.Generator) -> None:
    data = path.read_bytes()
    path.write_bytes(data[: int(rng.integers(0, max(1, len(data))))])


def _bit_flips(path: Path, rng: np.random.Generator) -> None:
    data = bytearray(path.read_bytes())
    for position in rng.integers(0, len(data), size=int(rng.integers(1, 20))):
        data[position] ^= 1 << int(rng.integers(8))
    path.write_bytes(bytes(data))


FileMutation = Callable[[Path, np.random.Generator], None]

FILE_MUTATIONS: dict[str, FileMutation] = {
    "empty": lambda p, r: p.write_bytes(b""),
    "truncated": _truncated,
    "bit flips": _bit_flips,
    "garbage": lambda p, r: p.write_bytes(r.bytes(int(r.integers(1, 5000)))),
    "deeply nested": lambda p, r: p.write_text("[" * 200_000 + "]" * 200_000),
    "a JSON list": lambda p, r: p.write_text("[1, 2, 3]"),
    "an integer of 5000 digits": lambda p, r: p.write_text('{"format_version": ' + "7" * 5000 + "}"),
    "not UTF-8": lambda p, r: p.write_bytes(b'{"a": "\xff\xfe"}'),
    "symlink to /dev/zero": lambda p, r: _symlink_to_dev_zero(p),
    "FIFO": lambda p, r: _fifo(p),
    "a folder": lambda p, r: _folder(p),
    "huge sparse file": lambda p, r: _sparse(p, 8 * 2**30),
    "missing": lambda p, r: p.unlink(),
}

# ------------------------------------------------------------------------------------------------ plans fields

EVIL_NUMBERS: list = [0, -1, 1.5, math.nan, math.inf, -math.inf, 10**30, 1e300, "3", None, True, [], {}]


def _replace_random_node(content: dict, rng: np.random.Generator) -> str:
    path = _pick(rng, [p for p in _nodes(content) if p])
    parent = content
    for key in path[:-1]:
        parent = parent[key]
    if rng.random() < 0.25:
        del parent[path[-1]]
        return f"delete {list(path)}"
    parent[path[-1]] = _pick(rng, EVIL_VALUES + EVIL_NUMBERS)
    return f"set {list(path)} = {parent[path[-1]]!r:.40}"


def _set(content: dict, key: str, value: object) -> str:
    content[key] = value
    return f"{key} = {value!r:.60}"


def _modalities(plans: dict, count: int) -> str:
    extra = count - 1
    plans.update(
        modalities=plans["modalities"][:1] + [f"m{i}" for i in range(extra)] if count else [],
        normalization_schemes=plans["normalization_schemes"][:1] + ["noNorm"] * extra if count else [],
        use_mask_for_norm=[False] * count,
        num_modalities=count,
    )
    return f"{count} modalities"


def _heads(plans: dict, count: int) -> str:
    first = plans["classification_labels"][0]
    plans["classification_labels"] = [{**first, "name": f"head {i}"} for i in range(count)]
    return f"{count} heads"


def _head_values(plans: dict, count: int) -> str:
    plans["classification_labels"][0]["values"] = {str(i): f"v{i}" for i in range(count)}
    return f"a head with {count:,} values"


def _regression_head(plans: dict, rng: np.random.Generator) -> str:
    head = plans["classification_labels"][0]
    mean, sd = _pick(rng, [0.0, math.nan, math.inf, 1e308]), _pick(rng, [1.0, 0.0, -1.0, math.nan, math.inf, 1e300])
    head.update(type="regression", ordinal=False, values={}, target_mean=mean, target_sd=sd)
    return f"regression head, mean {mean}, sd {sd}"


def _intensity(plans: dict, rng: np.random.Generator) -> str:
    stats = plans["intensity_properties"]["0"]
    key = _pick(rng, ["mean", "sd", "percentile_00_5", "percentile_99_5"])
    if rng.random() < 0.2:
        del stats[key]
        return f"intensity statistics without {key}"
    stats[key] = _pick(rng, [math.nan, math.inf, -math.inf, -5.0, 1e300, 1e-300, "x", None])
    return f"intensity {key} = {stats[key]!r}"


def _covariates(plans: dict, rng: np.random.Generator) -> str:
    numeric = {"name": "age", "type": "numeric", "mean": 60.0, "sd": 10.0, "fill": 61.0}
    choice = int(rng.integers(4))
    if choice == 0:
        plans["covariates"] = [{**numeric, "name": f"c{i}"} for i in range(100_000)]
        return "100000 covariates"
    if choice == 1:
        plans["covariates"] = [{**numeric, _pick(rng, ["mean", "sd", "fill"]): _pick(rng, EVIL_NUMBERS)}]
        return f"covariate {plans['covariates'][0]}"
    if choice == 2:
        categories = [f"c{i}" for i in range(1_000_000)]
        plans["covariates"] = [{"name": "site", "type": "categorical", "values": categories, "mean": 0.0, "sd": 1.0,
                                "fill": "c0"}]
        return "a covariate with 1000000 categories"
    plans["covariates"] = [numeric, numeric]
    return "two covariates of one name"


PlansMutation = Callable[[dict, np.random.Generator], str]

PLANS_MUTATIONS: dict[str, PlansMutation] = {
    "image_size huge": lambda p, r: _set(p, "image_size", [4000, 4000, 4000]),
    "image_size evil": lambda p, r: _set(p, "image_size", _pick(r, [[0, 6, 6], [-4, 6, 6], [4.5, 6, 6], "big", [4, 6],
                                                                    [10**30, 1, 1], [4, 6, 6, 6]])),
    "target_spacing evil": lambda p, r: _set(p, "target_spacing", _pick(r, [
        [-1.0, 1.0, 1.0], [0.0, 1.0, 1.0], [math.inf, 1.0, 1.0], [math.nan, 1.0, 1.0], [1e-30] * 3, [1e300] * 3, "x",
        [1.0, 1.0]])),
    "100000 modalities": lambda p, r: _modalities(p, 100_000),
    "no modality": lambda p, r: _modalities(p, 0),
    "normalization scheme evil": lambda p, r: _set(p, "normalization_schemes", [_pick(r, ["foo", "nonCT", None, 3])]),
    "use_mask_for_norm evil": lambda p, r: _set(p, "use_mask_for_norm", [_pick(r, ["yes", 1, None])]),
    "intensity statistics evil": _intensity,
    "intensity_properties evil": lambda p, r: _set(p, "intensity_properties", _pick(r, [{}, [], None, {"0": {}},
                                                                                      {"7": {"mean": 0}}])),
    "transpose_forward evil": lambda p, r: _set(p, "transpose_forward", _pick(r, [[0, 0, 1], [3, 1, 2], [2, 1], "012",
                                                                                 [0, 1, 2.0]])),
    "transpose_backward evil": lambda p, r: _set(p, "transpose_backward", [2, 0, 1]),
    "batch_size evil": lambda p, r: _set(p, "batch_size", _pick(r, [0, -1, 10**9, "2", 2.5, True])),
    "do_dummy_2D_data_aug evil": lambda p, r: _set(p, "do_dummy_2D_data_aug", _pick(r, ["no", 1, None])),
    "num_roi_classes huge": lambda p, r: _set(p, "num_roi_classes", 10**7),
    "num_roi_classes evil": lambda p, r: _set(p, "num_roi_classes", _pick(r, [0, -1, 1.5, math.nan, "2", True, 257])),
    "uses_roi evil": lambda p, r: _set(p, "uses_roi", _pick(r, ["no", 0, 1, None, "false"])),
    "200000 heads": lambda p, r: _heads(p, 200_000),
    "no head": lambda p, r: _heads(p, 0),
    "a head with 2000000 values": lambda p, r: _head_values(p, 2_000_000),
    "a head with 0 or 1 value": lambda p, r: _head_values(p, int(r.integers(2))),
    "two heads of one name": lambda p, r: _set(p["classification_labels"][1], "name",
                                               p["classification_labels"][0]["name"]),
    "regression head statistics": _regression_head,
    "covariates evil": _covariates,
    "num_training_cases evil": lambda p, r: _set(p, "num_training_cases", _pick(r, [0, -5, 10**30, "6", 6.5])),
    "format_version evil": lambda p, r: _set(p, "format_version", _pick(r, [2, "1", None, 0])),
    "planning fields evil": lambda p, r: _set(p, _pick(r, ["size_rule", "size_percentile", "roi_margin_fraction",
                                                           "roi_margin_mm", "roi_from_body"]), _pick(r, EVIL_NUMBERS)),
    "num_modalities evil": lambda p, r: _set(p, "num_modalities", _pick(r, [0, 2, 10**6, "1"])),
    "random field": _replace_random_node,
}

# ----------------------------------------------------------------------------------------- checkpoint metadata


def _recipe_field(metadata: dict, rng: np.random.Generator) -> str:
    key = _pick(rng, ["dropout", "normalization", "roi_pooling", "fine_roi_features", "roi_descriptors"])
    metadata["recipe"][key] = _pick(rng, [math.nan, 2.0, -1.0, "0.3", None, "foo", "yes", 1, not metadata["recipe"][key]
                                          if isinstance(metadata["recipe"][key], bool) else 0.5])
    return f"recipe {key} = {metadata['recipe'][key]!r}"


METADATA_MUTATIONS: dict[str, PlansMutation] = {
    "no recipe": lambda m, r: (m.pop("recipe"), "no recipe")[1],
    "recipe evil": lambda m, r: _set(m, "recipe", _pick(r, [None, [], "x", {}])),
    "recipe field evil": _recipe_field,
    "checkpoint_format_version evil": lambda m, r: _set(m, "checkpoint_format_version", _pick(r, [99, "3", None, True,
                                                                                                1])),
    "checkpoint_id evil": lambda m, r: _set(m, "checkpoint_id", _pick(r, ["0" * 32, None, 5, []])),
    "plans_hash evil": lambda m, r: _set(m, "plans_hash", _pick(r, ["0" * 64, None, 5, {}])),
    "format 2 without plans hash": lambda m, r: (m.pop("plans_hash"), _set(m, "checkpoint_format_version", 2))[1],
    "random field": _replace_random_node,
}

# --------------------------------------------------------------------------------------------- calibration.json

CALIBRATION_MUTATIONS: dict[str, PlansMutation] = {
    "temperature evil": lambda c, r: _set(next(iter(c["heads"].values())), "temperature", _pick(r, EVIL_NUMBERS)),
    "heads evil": lambda c, r: _set(c, "heads", _pick(r, [None, [], "x", {"no such head": {"temperature": 1.0}},
                                                         {str(i): {"temperature": 1.0} for i in range(100_000)}])),
    "folds evil": lambda c, r: _set(c, "folds", _pick(r, [None, [], {"all": 5}, {"fold_9": "x"}, {}])),
    "format_version evil": lambda c, r: _set(c, "format_version", _pick(r, [None, 1, 99, "2"])),
    "random field": _replace_random_node,
}

# ------------------------------------------------------------------------------------------------------ weights


def _edit_state(checkpoint: Path, edit: Callable[[dict, dict], str]) -> str:
    """Load the checkpoint's tensors, let `edit` change them (and the network state dict), save them again."""
    tensors = torch.load(checkpoint, weights_only=True)
    detail = edit(tensors, tensors["network"])
    torch.save(tensors, checkpoint)
    return detail


def _head_weight(network: dict) -> str:
    return next(k for k in network if k.startswith("heads.") and k.endswith("weight"))


def _scaled(network: dict, factor: float) -> str:
    key = _head_weight(network)
    network[key] = network[key] * factor
    return f"{key} x {factor:g}"


def _set_value(network: dict, rng: np.random.Generator, value: float) -> str:
    key = _pick(rng, [k for k, v in network.items() if v.is_floating_point() and v.numel()])
    network[key].view(-1)[int(rng.integers(network[key].numel()))] = value
    return f"{key} holds {value}"


def _reshaped(network: dict) -> str:
    key = _head_weight(network)
    network[key] = torch.zeros(network[key].shape[0] + 1, network[key].shape[1])
    return f"{key} has one row more"


def _deflated(checkpoint: Path) -> str:
    """Rewrite the checkpoint's zip archive with every member deflate-compressed (torch.save stores them)."""
    source = zipfile.ZipFile(io.BytesIO(checkpoint.read_bytes()))
    with zipfile.ZipFile(checkpoint, "w", zipfile.ZIP_DEFLATED) as target:
        for info in source.infolist():
            target.writestr(info.filename, source.read(info), zipfile.ZIP_DEFLATED)
    return "members deflate-compressed"


def make_bomb(checkpoint: Path, target: Path) -> None:
    """A copy of `checkpoint` whose network gains a tensor of _BOMB_BYTES / 4 zeros that its zip archive stores
    deflate-compressed: a few MB on disk that a reader without checks inflates to 2.5 GiB."""
    tensors = torch.load(checkpoint, weights_only=True)
    tensors["network"]["bomb"] = torch.zeros(_BOMB_MARK)
    buffer = io.BytesIO()
    torch.save(tensors, buffer)
    source = zipfile.ZipFile(buffer)
    mark, huge = struct.pack("<i", _BOMB_MARK), struct.pack("<i", _BOMB_BYTES // 4)
    chunk = bytes(64 * 2**20)
    with zipfile.ZipFile(target, "w", zipfile.ZIP_DEFLATED, compresslevel=9) as archive:
        for info in source.infolist():
            data = source.read(info)
            if info.filename.endswith("data.pkl"):
                archive.writestr(info.filename, data.replace(b"J" + mark, b"J" + huge), zipfile.ZIP_STORED)
            elif info.file_size == 4 * _BOMB_MARK:
                with archive.open(info.filename, "w", force_zip64=True) as stream:
                    for _ in range(_BOMB_BYTES // len(chunk)):
                        stream.write(chunk)
            else:
                archive.writestr(info.filename, data, zipfile.ZIP_STORED)


WEIGHTS_MUTATIONS: dict[str, Callable[[Path, np.random.Generator], str]] = {
    "a head with another shape": lambda p, r: _edit_state(p, lambda t, n: _reshaped(n)),
    "a missing tensor": lambda p, r: _edit_state(p, lambda t, n: f"without {n.pop(_pick(r, list(n)))}"),
    "an extra tensor": lambda p, r: _edit_state(p, lambda t, n: (n.update(extra=torch.zeros(3)), "extra")[1]),
    "NaN weight": lambda p, r: _edit_state(p, lambda t, n: _set_value(n, r, math.nan)),
    "infinite weight": lambda p, r: _edit_state(p, lambda t, n: _set_value(n, r, math.inf)),
    "huge weights": lambda p, r: _edit_state(p, lambda t, n: _scaled(n, _pick(r, [1e30, 1e38]))),
    "float64 weights": lambda p, r: _edit_state(
        p, lambda t, n: (t.update(network={k: v.double() if v.is_floating_point() else v for k, v in n.items()}),
                         "float64")[1]),
    "integer weights": lambda p, r: _edit_state(p, lambda t, n: (n.update({k: v.long() for k, v in n.items()
                                                                           if v.is_floating_point()}), "int64")[1]),
    "network not a state dict": lambda p, r: _edit_state(
        p, lambda t, n: _set(t, "network", _pick(r, [torch.zeros(3), [1, 2], "x", {"a": 1}]))),
    "no network": lambda p, r: _edit_state(p, lambda t, n: (t.pop("network"), "no network")[1]),
    "no checkpoint id": lambda p, r: _edit_state(p, lambda t, n: (t.pop("checkpoint_id"), "no id")[1]),
    "a list instead of a dict": lambda p, r: (torch.save([torch.zeros(3)], p), "a list")[1],
    "deflate-compressed": lambda p, r: _deflated(p),
}

# ----------------------------------------------------------------------------------------------------- the runs


def mutation_names() -> list[str]:
    """Every mutation once (the bomb last: it is the slowest to build)."""
    names = [f"plans: {n}" for n in PLANS_MUTATIONS] + [f"plans file: {n}" for n in FILE_MUTATIONS]
    names += [f"metadata: {n}" for n in METADATA_MUTATIONS] + [f"metadata file: {n}" for n in FILE_MUTATIONS]
    names += [f"calibration: {n}" for n in CALIBRATION_MUTATIONS] + [f"calibration file: {n}" for n in FILE_MUTATIONS]
    names += [f"weights: {n}" for n in WEIGHTS_MUTATIONS] + [f"weights file: {n}" for n in FILE_MUTATIONS]
    return names + [BOMB_NAME]


def _fix_plans_hash(artifact: Artifact, plans: dict) -> None:
    """Record the edited plans' hash in every fold's metadata and the calibration, as a forger would."""
    for path in [*artifact.metadata_files(), artifact.calibration_file]:
        content = _read(path)
        content["plans_hash"] = canonical_hash(plans)
        _write(path, content)


def mutate(artifact: Artifact, name: str, rng: np.random.Generator, bomb: Path | None = None) -> str:
    """Apply the mutation `name` to the artifact copy; returns a description. The bomb needs `make_bomb`'s file."""
    kind, _, mutation = name.partition(": ")
    targets = {
        "plans": artifact.plans_file,
        "metadata": artifact.metadata_file,
        "calibration": artifact.calibration_file,
        "weights": artifact.checkpoint,
    }
    if kind.endswith(" file"):
        FILE_MUTATIONS[mutation](targets[kind.removesuffix(" file")], rng)
        return name
    if name == BOMB_NAME:
        assert bomb is not None, "the bomb is built once by make_bomb"
        shutil.copy(bomb, artifact.checkpoint)
        return name
    if kind == "weights":
        return f"{name} ({WEIGHTS_MUTATIONS[mutation](artifact.checkpoint, rng)})"
    path = targets[kind]
    content = _read(path)
    table = {"plans": PLANS_MUTATIONS, "metadata": METADATA_MUTATIONS, "calibration": CALIBRATION_MUTATIONS}[kind]
    detail = table[mutation](content, rng)
    _write(path, content)
    if kind == "plans":
        _fix_plans_hash(artifact, content)
    return f"{name} ({detail:.80})"


def _predict_in_child(connection: Connection, args: tuple, memory_bytes: int) -> None:
    """Run predict(*args) under an address-space limit; send (result, detail, exception type) back."""
    from universalclassifier.errors import UserInputError
    from universalclassifier.inference.predict import predict

    resource.setrlimit(resource.RLIMIT_AS, (memory_bytes, memory_bytes))
    logging.disable(logging.WARNING)
    try:
        json.dumps(predict(*args), allow_nan=False)  # the contract: plain, finite JSON values
        message = ("predicted", "", "")
    except UserInputError as exc:
        message = ("refused", str(exc).splitlines()[0][:300], type(exc).__name__)
    except MemoryError as exc:
        message = ("failure", f"out of memory: {exc}"[:300], "MemoryError")
    except Exception as exc:  # the fuzzer's purpose: anything else is a bug
        message = ("failure", f"{type(exc).__name__}: {exc}"[:300], type(exc).__name__)
    connection.send(message)


def child_context() -> multiprocessing.context.ForkServerContext:
    """Processes forked from a server that has imported predict() once (and run nothing): cheap and clean children."""
    context = multiprocessing.get_context("forkserver")
    context.set_forkserver_preload(["universalclassifier.inference.predict", "artifact_mutations"])
    return context


def run_predict(
    context: multiprocessing.context.ForkServerContext, args: tuple, seconds: float, memory_bytes: int
) -> tuple[str, str, str]:
    """predict(*args) in a child process: (result, detail, exception type); a hang, a crash or running out of
    memory is a failure."""
    receiver, sender = context.Pipe(duplex=False)
    process = context.Process(target=_predict_in_child, args=(sender, args, memory_bytes))
    process.start()
    sender.close()
    message, answered = None, True
    try:
        answered = receiver.poll(seconds)
        message = receiver.recv() if answered else None
    except EOFError:
        pass  # the child ended without an answer
    finally:
        if process.is_alive():
            process.kill()
        process.join()
        receiver.close()
    if message is not None:
        return message
    if not answered:
        return "failure", f"timeout: no result after {seconds} s", "Timeout"
    return "failure", f"crash: the child ended with exit code {process.exitcode} and no result", "Crash"


def run_mutation(
    context: multiprocessing.context.ForkServerContext,
    pristine: Artifact,
    case: tuple[list[Path], Path],
    sandbox: Path,
    name: str,
    rng: np.random.Generator,
    seconds: float = 120.0,
    memory_bytes: int = MEMORY_LIMIT_BYTES,
    bomb: Path | None = None,
) -> Outcome:
    """Copy the pristine artifact into `sandbox`, apply one mutation, run predict() on the case in a child."""
    shutil.copytree(pristine.trained_models, sandbox / "trained_models", symlinks=True)
    artifact = Artifact(sandbox / "trained_models", sandbox / pristine.trainer_folder.relative_to(
        pristine.trained_models.parent))
    description = mutate(artifact, name, rng, bomb)
    before = digest(artifact.trained_models, content=False)
    images, roi = case
    result, detail, error = run_predict(context, (artifact.trained_models, images, roi), seconds, memory_bytes)
    if digest(artifact.trained_models, content=False) != before:
        result, detail = "failure", "predict() wrote into the artifact"
    return Outcome(description, result, detail, error)


def counts(outcomes: list[Outcome]) -> dict:
    """The benchmark's counts: tried, refused cleanly, predicted normally, failures (with their details)."""
    return {
        "tried": len(outcomes),
        "refused_cleanly": sum(o.result == "refused" for o in outcomes),
        "predicted_normally": sum(o.result == "predicted" for o in outcomes),
        "failures": sum(o.result == "failure" for o in outcomes),
        "refused_by_the_plans_hash_check": sum(
            o.result == "refused" and "trained with other plans" in o.detail for o in outcomes
        ),
        "failure_details": [f"{o.mutation}: {o.detail}" for o in outcomes if o.result == "failure"],
    }


def rng_for(name: str, seed: int, variant: int = 0) -> np.random.Generator:
    return np.random.default_rng([seed, variant, zlib.crc32(name.encode())])
