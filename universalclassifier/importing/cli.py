"""`uc_import`: write another tool's dataset as a raw task folder; user mistakes end with a one-line error."""

from __future__ import annotations

import argparse
import logging
import math
import sys
from collections.abc import Sequence
from pathlib import Path

from universalclassifier.console import TASK_FLAGS, add_common_options, run_command
from universalclassifier.errors import UserInputError

logger = logging.getLogger("universalclassifier")

KINDS = ("innereye", "deepreg-h5", "folder", "medmnist")
USAGE = (
    "uc_import DATA --from {innereye,deepreg-h5,folder,medmnist} SOURCE [SOURCE ...] -t ID [--name NAME] [options]"
)
# Options that only one or two kinds read; giving one to another kind is refused rather than ignored.
_KIND_OPTIONS = {
    "innereye": (
        "subject_column",
        "channel_column",
        "image_column",
        "label_column",
        "image_channels",
        "label_channels",
        "feature_channels",
        "multi_label",
        "regression",
        "numerical_columns",
        "categorical_columns",
        "h5_dataset",
    ),
    "labels_csv": ("labels", "regression_columns", "nominal_columns", "ordinal_columns"),
    "folder": ("rois",),
    "headerless": ("spacing",),
    "label_name": ("label_name",),
}
_OPTION_KINDS = {
    "innereye": ("innereye",),
    "label_name": ("innereye", "medmnist"),
    "labels_csv": ("deepreg-h5", "folder"),
    "folder": ("folder",),
    "headerless": ("innereye", "deepreg-h5"),
}
_SOURCES = {
    "innereye": (1, 1, "DATASET_CSV"),
    "deepreg-h5": (1, 2, "IMAGES_H5 [LABELS_H5]"),
    "folder": (1, 1, "IMAGES_DIR"),
    "medmnist": (1, 1, "FILE.npz"),
}
DEFAULT_SPACING = (1.0, 1.0, 1.0)


def _task_id(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        value = -1
    if not 0 <= value <= 999:
        raise argparse.ArgumentTypeError(f"must be a task id from 0 to 999, got {text!r}")
    return value


def _positive_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        value = math.nan
    if not (math.isfinite(value) and value > 0):
        raise argparse.ArgumentTypeError(f"must be a number > 0, got {text!r}")
    return value


def import_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="uc_import",
        usage=USAGE,
        description="Write a dataset of another tool as a raw task folder DATA/raw/nnUNet_raw_data/TaskXXX_NAME "
        "(images as .nii.gz, dataset.json, import_report.json) that the other commands then use. The source is only "
        "read; an existing task folder or task id is refused; nothing is left behind when the import fails. Cases "
        "that cannot be imported are skipped and listed, with the reason, in import_report.json.",
        epilog="Kinds and their SOURCEs: 'innereye DATASET_CSV' (InnerEye classification dataset.csv, image paths "
        "relative to its folder); 'deepreg-h5 IMAGES_H5 [LABELS_H5] --labels CSV' (one case per HDF5 key, 4D arrays "
        "are channels last, LABELS_H5 gives ROIs); 'folder IMAGES_DIR --labels CSV [--rois ROI_DIR]' (CASE.<ext> or "
        "CASE_XXXX.<ext> images, ROI_DIR/CASE.<ext> ROIs); 'medmnist FILE.npz' (a MedMNIST v2 3D set: train and val "
        "become the training cases train_XXXX, val_XXXX, test the test cases in imagesTs with their values in "
        "dataset.json 'test'; the official train/val split is written as splits_official.json, copy it to "
        "DATA/preprocessed/TaskXXX_NAME/splits_final.json to train it as fold 0). A labels CSV has a case_id column, "
        "an optional patient_id column and one column of numbers per head: more than 10 distinct values make a "
        "regression head, else a nominal head. Integer codes that do not start at 0 (scores 1-5) become the values "
        "0..K-1 named by their codes ('1'..'5'), recorded in import_report.json; empty cells are unknown values.",
    )
    parser.add_argument(
        "data_root", metavar="DATA", help="data root; the task is written below DATA/raw/nnUNet_raw_data"
    )
    parser.add_argument("--from", dest="kind", required=True, choices=KINDS, help="the kind of source")
    parser.add_argument("sources", nargs="+", metavar="SOURCE", help="the source file(s) or folder of that kind")
    parser.add_argument(*TASK_FLAGS, required=True, type=_task_id, metavar="ID", help="id of the new task (0-999)")
    parser.add_argument(
        "--name", default=None, help="task name (default: the source's file or folder name, made file-name safe)"
    )
    parser.add_argument(
        "--modalities",
        nargs="+",
        default=None,
        metavar="NAME",
        help="one name per image channel (innereye default: the image channel names; medmnist: image, since its "
        "0-255 intensities are not Hounsfield units; otherwise CT for one channel, MR0 MR1 ... for several). CT (any "
        "case) is normalized with dataset-wide statistics, any other name per image",
    )
    parser.add_argument(
        "--spacing",
        nargs=3,
        type=_positive_float,
        default=None,
        metavar=("Z", "Y", "X"),
        help="voxel spacing in mm of headerless arrays (.npy, HDF5), axes taken as (z, y, x) (default 1 1 1)",
    )
    innereye = parser.add_argument_group("--from innereye")
    innereye.add_argument(
        "--image_channels",
        nargs="+",
        default=None,
        metavar="CHANNEL",
        help="the channels whose rows hold the images, in modality order (required)",
    )
    innereye.add_argument(
        "--label_channels",
        nargs="+",
        default=None,
        metavar="CHANNEL",
        help="the channel(s) whose row holds the label (default: the first image channel)",
    )
    innereye.add_argument(
        "--feature_channels",
        nargs="+",
        default=None,
        metavar="CHANNEL",
        help="the channel(s) whose row holds the feature columns (default: the label channels)",
    )
    innereye.add_argument(
        "--subject_column", default=None, metavar="COLUMN", help="subject id column (default subject)"
    )
    innereye.add_argument("--channel_column", default=None, metavar="COLUMN", help="channel column (default channel)")
    innereye.add_argument("--image_column", default=None, metavar="COLUMN", help="image path column (default filePath)")
    innereye.add_argument("--label_column", default=None, metavar="COLUMN", help="label column (default label)")
    innereye.add_argument(
        "--multi_label",
        action="store_true",
        help="labels are class lists such as 0|2|3 (also assumed when any label holds '|')",
    )
    innereye.add_argument("--regression", action="store_true", help="labels are numbers: one regression head")
    innereye.add_argument(
        "--numerical_columns",
        nargs="+",
        default=None,
        metavar="COLUMN",
        help="numeric feature columns, written as each case's covariates",
    )
    innereye.add_argument(
        "--categorical_columns",
        nargs="+",
        default=None,
        metavar="COLUMN",
        help="categorical feature columns, written as each case's covariates",
    )
    innereye.add_argument(
        "--h5_dataset",
        default=None,
        metavar="NAME",
        help="the dataset to read from .h5 images (default: the first 3D dataset in the file)",
    )
    named = parser.add_argument_group("--from innereye and --from medmnist")
    named.add_argument(
        "--label_name",
        default=None,
        metavar="NAME",
        help="head name (default target, since a dataset.json entry's 'label' is its ROI); with InnerEye class lists "
        "one head NAME_<class> per class",
    )
    labels = parser.add_argument_group("--from deepreg-h5 and --from folder")
    labels.add_argument(
        "--labels", default=None, metavar="CSV", help="labels CSV: case_id, patient_id, heads (required)"
    )
    labels.add_argument(
        "--regression_columns", nargs="+", default=None, metavar="COLUMN", help="make these columns regression heads"
    )
    labels.add_argument(
        "--nominal_columns",
        nargs="+",
        default=None,
        metavar="COLUMN",
        help="make these columns nominal heads (values 0..K-1)",
    )
    labels.add_argument(
        "--ordinal_columns",
        nargs="+",
        default=None,
        metavar="COLUMN",
        help="make these columns ordinal heads (grades 0..K-1)",
    )
    labels.add_argument(
        "--rois",
        default=None,
        metavar="ROI_DIR",
        help="--from folder: folder with the ROI segmentations ROI_DIR/CASE.<ext>",
    )
    add_common_options(parser)
    return parser


def _check_options(args: argparse.Namespace) -> None:
    for group, options in _KIND_OPTIONS.items():
        if args.kind in _OPTION_KINDS[group]:
            continue
        given = [f"--{name}" for name in options if getattr(args, name) not in (None, False)]
        if given:
            kinds = " and ".join(f"--from {k}" for k in _OPTION_KINDS[group])
            verb = "applies" if len(given) == 1 else "apply"
            raise UserInputError(f"{', '.join(given)} {verb} only to {kinds}, not to --from {args.kind}.")
    low, high, names = _SOURCES[args.kind]
    if not low <= len(args.sources) <= high:
        raise UserInputError(f"--from {args.kind} takes {names}, got {len(args.sources)} path(s): {args.sources}.")
    if args.kind == "innereye" and not args.image_channels:
        raise UserInputError("--from innereye needs --image_channels: the channels whose rows hold the images.")
    if args.kind in _OPTION_KINDS["labels_csv"] and args.labels is None:
        raise UserInputError(f"--from {args.kind} needs --labels CSV: the case_id column and one column per head.")


def _default_name(args: argparse.Namespace) -> str:
    from universalclassifier.importing.task_writer import safe_name
    from universalclassifier.importing.volumes import source_stem

    source = Path(args.sources[0]).expanduser().resolve()
    if args.kind == "innereye":
        text = source.parent.name
    elif args.kind == "medmnist":
        text = source.stem if source.suffix.lower() == ".npz" else source.name
    else:
        text = source.name if source.is_dir() else source_stem(source)
    return safe_name(text, "Imported")


def _read_source(args: argparse.Namespace):
    spacing = tuple(args.spacing or DEFAULT_SPACING)
    csv_types = {
        "regression_columns": args.regression_columns or (),
        "nominal_columns": args.nominal_columns or (),
        "ordinal_columns": args.ordinal_columns or (),
    }
    if args.kind == "innereye":
        from universalclassifier.importing.innereye import DEFAULT_LABEL_NAME, InnerEyeColumns, read_innereye

        defaults = InnerEyeColumns()
        columns = InnerEyeColumns(
            subject=args.subject_column or defaults.subject,
            channel=args.channel_column or defaults.channel,
            image=args.image_column or defaults.image,
            label=args.label_column or defaults.label,
        )
        return read_innereye(
            Path(args.sources[0]),
            args.image_channels,
            columns=columns,
            label_channels=args.label_channels,
            feature_channels=args.feature_channels,
            label_name=args.label_name or DEFAULT_LABEL_NAME,
            multi_label=args.multi_label,
            regression=args.regression,
            numerical_columns=args.numerical_columns or (),
            categorical_columns=args.categorical_columns or (),
            spacing=spacing,
            h5_dataset=args.h5_dataset,
        )
    if args.kind == "medmnist":
        from universalclassifier.importing.medmnist import DEFAULT_LABEL_NAME as MEDMNIST_LABEL_NAME
        from universalclassifier.importing.medmnist import read_medmnist

        return read_medmnist(Path(args.sources[0]), label_name=args.label_name or MEDMNIST_LABEL_NAME)
    if args.kind == "deepreg-h5":
        from universalclassifier.importing.deepreg import read_deepreg

        labels_h5 = Path(args.sources[1]) if len(args.sources) > 1 else None
        return read_deepreg(Path(args.sources[0]), labels_h5, Path(args.labels), spacing=spacing, **csv_types)
    from universalclassifier.importing.folder import read_folder

    rois = None if args.rois is None else Path(args.rois)
    return read_folder(Path(args.sources[0]), Path(args.labels), rois, **csv_types)


def _source_folders(args: argparse.Namespace) -> list[Path]:
    """The folders that are the source itself, which the new task must not be written into."""
    first = Path(args.sources[0]).expanduser().resolve()
    if args.kind == "innereye":
        return [first.parent]
    if args.kind == "folder":
        return [first] + ([Path(args.rois).expanduser().resolve()] if args.rois else [])
    return []


def _import(args: argparse.Namespace) -> None:
    from universalclassifier.importing.task_writer import default_modality_names, task_folder, write_task

    _check_options(args)
    target = task_folder(args.data_root, args.task, args.name if args.name is not None else _default_name(args))
    for folder in _source_folders(args):
        if target.is_relative_to(folder):
            raise UserInputError(
                f"The new task {target} would lie inside the source folder {folder}, and the source is never changed; "
                "pass a data root outside it."
            )
    source = _read_source(args)
    modalities = args.modalities or source.default_modalities or default_modality_names(source.num_channels)
    if args.modalities is None:
        logger.info(
            "Modality names not given: using %s (CT is normalized with dataset-wide statistics, any other name per "
            "image); pass --modalities to name them.",
            list(modalities),
        )
    write_task(target, source, modalities, show_progress=not args.quiet)


def import_main(argv: Sequence[str] | None = None) -> int:
    """`uc_import DATA --from KIND SOURCE... -t ID [--name NAME] [options]`."""
    args = import_parser().parse_args(argv)
    return run_command(args, _import)


if __name__ == "__main__":
    sys.exit(import_main())
