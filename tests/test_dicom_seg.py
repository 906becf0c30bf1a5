"""ROIs given as DICOM Segmentation (DICOM-SEG) files, written here with highdicom from generated DICOM series."""

from __future__ import annotations

import json
import math
import shutil
import sys
from pathlib import Path

import highdicom as hd
import numpy as np
import pydicom
import pytest
import SimpleITK as sitk
from pydicom.sr.codedict import codes

from helpers import edit_json, series_from_file, validate, validation_error, write_series
from universalclassifier.dataset.dicom_seg import is_dicom_seg, read_dicom_seg, read_roi
from universalclassifier.dataset.image_io import read_geometry, read_image
from universalclassifier.errors import UserInputError
from universalclassifier.inference.predict_folder import find_roi
from universalclassifier.paths import TaskPaths
from universalclassifier.planning.plan_and_preprocess import plan_and_preprocess
from universalclassifier.plans import Plans
from universalclassifier.preprocessing.preprocessor import load_case, preprocess_case
from universalclassifier.synthetic import generate_task

TASK_ID = 41
UID_ROOT = "1.2.826.0.1.3680043.2.1125.8"  # a UID prefix for generated test data, apart from test_dicom's
SIZE = (8, 16, 16)  # z, y, x
SPACING = (2.0, 0.7, 0.7)
ORIGIN = (-12.5, 30.25, 101.0)
IDENTITY = (1.0, 0.0, 0.0, 0.0, 1.0, 0.0, 0.0, 0.0, 1.0)
C, S = math.cos(0.3), math.sin(0.3)
OBLIQUE = (C, -S, 0.0, S, C, 0.0, 0.0, 0.0, 1.0)
FLIPPED = (1.0, 0.0, 0.0, 0.0, -1.0, 0.0, 0.0, 0.0, -1.0)
BINARY, FRACTIONAL, LABELMAP = (hd.seg.SegmentationTypeValues[t] for t in ("BINARY", "FRACTIONAL", "LABELMAP"))


def ct_image(
    size: tuple[int, ...] = SIZE,
    spacing: tuple[float, ...] = SPACING,
    origin: tuple[float, ...] = ORIGIN,
    direction: tuple[float, ...] = IDENTITY,
) -> sitk.Image:
    """An int16 CT-like volume with the given grid ((z, y, x) size and spacing, ITK origin and direction)."""
    array = np.random.default_rng(3).integers(-1024, 3000, size).astype(np.int16)
    image = sitk.GetImageFromArray(array)
    image.SetSpacing(tuple(reversed(spacing)))
    image.SetOrigin(origin)
    image.SetDirection(direction)
    return image


def source_images(folder: Path) -> list[pydicom.Dataset]:
    """The slices of a series written by `write_series`, in slice order, with the Frame of Reference UID that a SEG
    needs (the test series lack it; it is set in memory only)."""
    slices = sorted((pydicom.dcmread(p) for p in folder.glob("*.dcm")), key=lambda ds: int(ds.InstanceNumber))
    for ds in slices:
        ds.FrameOfReferenceUID = f"{ds.StudyInstanceUID}.9"
    return slices


def write_seg(
    sources: list[pydicom.Dataset],
    pixels: np.ndarray,
    path: Path,
    segmentation_type: hd.seg.SegmentationTypeValues = BINARY,
    segments: int | None = None,
) -> Path:
    """A SEG of `sources` (frame i on sources[i]): `pixels` (z, y, x, segment) for BINARY (bool) and FRACTIONAL
    (floats in [0, 1]), (z, y, x) segment numbers 1..`segments` for LABELMAP. highdicom omits empty frames."""
    count = segments if segments is not None else pixels.shape[-1]
    descriptions = [
        hd.seg.SegmentDescription(
            segment_number=number,
            segment_label=f"segment {number}",
            segmented_property_category=codes.SCT.Tissue,
            segmented_property_type=codes.SCT.Tissue,
            algorithm_type=hd.seg.SegmentAlgorithmTypeValues.MANUAL,
        )
        for number in range(1, count + 1)
    ]
    seg = hd.seg.Segmentation(
        source_images=sources,
        pixel_array=pixels,
        segmentation_type=segmentation_type,
        segment_descriptions=descriptions,
        series_instance_uid=hd.UID(),
        series_number=100,
        sop_instance_uid=hd.UID(),
        instance_number=1,
        manufacturer="test",
        manufacturer_model_name="test",
        software_versions="1",
        device_serial_number="1",
    )
    seg.save_as(path)
    return path


def two_segments() -> tuple[np.ndarray, np.ndarray]:
    """Two non-overlapping boxes, empty on slices 0, 1 and 7, as (z, y, x, segment) masks and as the label map."""
    masks = np.zeros((*SIZE, 2), dtype=bool)
    masks[2:5, 3:9, 4:10, 0] = True
    masks[4:7, 10:14, 2:6, 1] = True
    return masks, masks[..., 0] * np.int16(1) + masks[..., 1] * np.int16(2)


# ------------------------------------------------------------------------------------------ reading a SEG


@pytest.mark.parametrize("direction", [IDENTITY, OBLIQUE, FLIPPED], ids=["axial", "oblique", "flipped"])
def test_seg_reads_back_as_the_label_map(tmp_path, direction):
    series = write_series(ct_image(direction=direction), tmp_path / "series", f"{UID_ROOT}.1")
    masks, expected = two_segments()
    seg = write_seg(source_images(series), masks, tmp_path / "seg.dcm")
    assert pydicom.dcmread(seg).NumberOfFrames == 3 + 3  # empty frames omitted: slices 2-4 and 4-6
    reference = read_geometry(series)

    labels = read_dicom_seg(seg, reference)
    values, geometry = read_roi(seg, reference, dtype=np.float64)

    assert labels.dtype == np.int16
    np.testing.assert_array_equal(labels, expected)
    assert values.dtype == np.float64 and geometry == reference
    np.testing.assert_array_equal(values, expected)


def test_seg_of_some_slices_maps_to_their_indices(tmp_path):
    series = write_series(ct_image(), tmp_path / "series", f"{UID_ROOT}.2")
    masks = np.zeros((*SIZE, 1), dtype=bool)
    masks[5, 2:4, 6:9, 0] = True
    masks[7, 0, 0, 0] = True
    seg = write_seg(source_images(series), masks, tmp_path / "seg.dcm")
    assert pydicom.dcmread(seg).NumberOfFrames == 2

    labels = read_dicom_seg(seg, read_geometry(series))

    assert sorted(set(np.nonzero(labels)[0].tolist())) == [5, 7]
    np.testing.assert_array_equal(labels, masks[..., 0].astype(np.int16))


def test_seg_of_a_series_in_shuffled_file_order(tmp_path):
    image = ct_image(direction=FLIPPED)
    series = write_series(image, tmp_path / "series", f"{UID_ROOT}.3")
    order = [5, 2, 7, 0, 3, 6, 1, 4]  # file k holds slice order[k]
    for path in series.glob("*.dcm"):
        path.rename(path.with_name(f"tmp_{path.name}"))
    for k, index in enumerate(order):
        (series / f"tmp_IM{index:04d}.dcm").rename(series / f"IM{k:04d}.dcm")
    masks, expected = two_segments()
    in_slice_order = source_images(series)
    shuffled = [in_slice_order[index] for index in order]
    seg = write_seg(shuffled, masks[order], tmp_path / "seg.dcm")  # frames in file order, not slice order

    values, geometry = read_image(series)
    np.testing.assert_array_equal(values, sitk.GetArrayFromImage(image))  # the series itself reads in slice order
    np.testing.assert_array_equal(read_dicom_seg(seg, geometry), expected)


def test_overlapping_segments_take_the_highest_number(tmp_path):
    series = write_series(ct_image(), tmp_path / "series", f"{UID_ROOT}.4")
    masks = np.zeros((*SIZE, 3), dtype=bool)
    masks[1:7, 2:14, 2:14, 0] = True  # an organ ...
    masks[3:5, 5:9, 5:9, 2] = True  # ... holding segment 3 ...
    masks[4:6, 6:12, 6:12, 1] = True  # ... and segment 2, which overlaps segment 3 on slice 4
    seg = write_seg(source_images(series), masks, tmp_path / "seg.dcm")
    expected = np.zeros(SIZE, dtype=np.int16)
    for number in (1, 2, 3):
        expected[masks[..., number - 1]] = number

    labels = read_dicom_seg(seg, read_geometry(series))

    np.testing.assert_array_equal(labels, expected)
    assert labels[4, 7, 7] == 3 and labels[4, 10, 10] == 2 and labels[5, 7, 7] == 2


def test_fractional_seg_counts_voxels_from_one_half(tmp_path):
    series = write_series(ct_image(), tmp_path / "series", f"{UID_ROOT}.5")
    fractions = np.zeros((*SIZE, 2), dtype=np.float32)
    fractions[2, 3, 3:8, 0] = [0.2, 0.49, 0.5, 0.8, 1.0]
    fractions[3, 4, 4:7, 1] = [0.3, 0.6, 1.0]
    seg = write_seg(source_images(series), fractions, tmp_path / "seg.dcm", FRACTIONAL)
    expected = np.zeros(SIZE, dtype=np.int16)
    expected[2, 3, 5:8] = 1
    expected[3, 4, 5:7] = 2

    np.testing.assert_array_equal(read_dicom_seg(seg, read_geometry(series)), expected)


def test_labelmap_seg_stores_the_labels(tmp_path):
    series = write_series(ct_image(direction=OBLIQUE), tmp_path / "series", f"{UID_ROOT}.6")
    _, expected = two_segments()
    seg = write_seg(source_images(series), expected.astype(np.uint8), tmp_path / "seg.dcm", LABELMAP, segments=2)
    assert pydicom.dcmread(seg).SOPClassUID == "1.2.840.10008.5.1.4.1.1.66.7"

    np.testing.assert_array_equal(read_dicom_seg(seg, read_geometry(series)), expected)


OFF_GRID = {
    "half_slice": ({"origin": (ORIGIN[0], ORIGIN[1], ORIGIN[2] + 1.0)}, r"lies at voxel index \[0\.0, 0\.0, 2\.5\]"),
    "in_plane": ({"origin": (ORIGIN[0] + 1.4, ORIGIN[1], ORIGIN[2])}, r"lies at voxel index \[2\.0, 0\.0, 2\.0\]"),
    "beyond": ({"origin": (ORIGIN[0], ORIGIN[1], ORIGIN[2] + 16.0)}, r"expected \[0, 0, a slice 0\.\.7\]"),
    "spacing": ({"spacing": (2.0, 0.8, 0.7)}, r"pixel spacing \[0\.8, 0\.7\] \(rows, columns\)"),
    "orientation": (
        {"direction": FLIPPED},
        r"has orientation \[1\.0, 0\.0, 0\.0, 0\.0, -1\.0, 0\.0\] .* have \[1\.0, 0\.0, 0\.0, 0\.0, 1\.0, 0\.0\]",
    ),
    "size": ({"size": (8, 12, 16)}, r"frames of 12 x 16 pixels .* are 16 x 16"),
}


@pytest.mark.parametrize("case", list(OFF_GRID), ids=list(OFF_GRID))
def test_seg_off_the_image_grid_is_refused(tmp_path, case):
    """A SEG made from another series than the image's (here shifted, resampled or turned) is refused, naming the
    file, the image and what does not fit."""
    series = write_series(ct_image(), tmp_path / "series", f"{UID_ROOT}.7")
    other_grid, expected = OFF_GRID[case]
    other = write_series(ct_image(**other_grid), tmp_path / "other", f"{UID_ROOT}.8")
    masks = np.zeros((*other_grid.get("size", SIZE), 1), dtype=bool)
    masks[2, 3:6, 3:6, 0] = True
    seg = write_seg(source_images(other), masks, tmp_path / "seg.dcm")

    with pytest.raises(UserInputError, match=expected) as info:
        read_roi(seg, read_geometry(series), reference_name="case_0000_0000")
    message = str(info.value)
    assert str(seg) in message and "case_0000_0000" in message and "from this image's own series" in message, message


def test_damaged_seg_is_refused(tmp_path):
    series = write_series(ct_image(), tmp_path / "series", f"{UID_ROOT}.11")
    seg = write_seg(source_images(series), two_segments()[0], tmp_path / "seg.dcm")
    reference = read_geometry(series)
    no_spacing, no_position = pydicom.dcmread(seg), pydicom.dcmread(seg)
    del no_spacing.SharedFunctionalGroupsSequence[0].PixelMeasuresSequence
    del no_position.PerFrameFunctionalGroupsSequence[1].PlanePositionSequence
    truncated = tmp_path / "truncated.dcm"
    truncated.write_bytes(seg.read_bytes()[:-200])  # the header is whole, the pixel data cut
    damaged = {
        "no_spacing.dcm": r"frame 1 has no PixelSpacing \(PixelMeasuresSequence\)",
        "no_position.dcm": r"Cannot read DICOM-SEG .*: missing DICOM attribute \(0020,9113\)",
        "truncated.dcm": r"Cannot read DICOM-SEG .*: the pixels of frame \d",
    }
    no_spacing.save_as(tmp_path / "no_spacing.dcm")
    no_position.save_as(tmp_path / "no_position.dcm")

    for name, expected in damaged.items():
        assert is_dicom_seg(tmp_path / name)
        with pytest.raises(UserInputError, match=expected) as info:
            read_roi(tmp_path / name, reference)
        assert str(tmp_path / name) in str(info.value)


def test_seg_detection(tmp_path, monkeypatch):
    series = write_series(ct_image(), tmp_path / "series", f"{UID_ROOT}.9")
    seg = write_seg(source_images(series), two_segments()[0], tmp_path / "seg.dcm")
    nifti = tmp_path / "roi.nii.gz"
    sitk.WriteImage(ct_image(), str(nifti))
    text = tmp_path / "notes.dcm"
    text.write_text("not DICOM")
    damaged = tmp_path / "damaged.dcm"
    damaged.write_bytes(seg.read_bytes()[:140])  # the preamble and magic, then a cut header
    others = [series / "IM0000.dcm", nifti, series, text, damaged, tmp_path / "missing.dcm"]

    assert is_dicom_seg(seg)
    assert not any(is_dicom_seg(path) for path in others)
    monkeypatch.setitem(sys.modules, "pydicom", None)  # without pydicom the header is read with SimpleITK
    assert is_dicom_seg(seg)
    assert not any(is_dicom_seg(path) for path in others)


def test_missing_highdicom_is_a_clear_error(tmp_path, monkeypatch):
    series = write_series(ct_image(), tmp_path / "series", f"{UID_ROOT}.10")
    seg = write_seg(source_images(series), two_segments()[0], tmp_path / "seg.dcm")
    monkeypatch.setitem(sys.modules, "highdicom", None)  # `import highdicom` now raises ImportError

    with pytest.raises(UserInputError, match=r'pip install "universalclassifier\[dicomseg\]"') as info:
        read_roi(seg, read_geometry(series))
    assert str(seg) in str(info.value) and "DICOM-SEG" in str(info.value)
    with pytest.raises(UserInputError, match=r"universalclassifier\[dicomseg\]"):
        load_case("case", [series], seg)


# ---------------------------------------------------------------------------- a task with DICOM-SEG ROIs


@pytest.fixture(scope="module")
def tasks(tmp_path_factory) -> tuple[Path, Path]:
    """Two data roots holding one synthetic task with ROI labels 1 (organ) and 2 (lesion) and DICOM series images,
    both planned and preprocessed: ROIs as .nii.gz label maps in the first, as DICOM-SEG files in the second (one
    segment per label; the organ segment holds the lesion too, which the higher lesion number overrides)."""
    nifti_root = tmp_path_factory.mktemp("seg_nifti")
    generate_task(nifti_root, TASK_ID, "Seg", num_cases=6, base_size=(8, 16, 16), num_test=1, seed=2, label_types=True)
    raw = TaskPaths.find(nifti_root, TASK_ID).raw
    for split in ("Tr", "Ts"):
        for image in sorted((raw / f"images{split}").glob("*.nii.gz")):
            stem = image.name.removesuffix(".nii.gz")
            series_from_file(image, image.with_name(stem), f"{UID_ROOT}.20.{int(stem[5:9])}")
            image.unlink()
    seg_root = tmp_path_factory.mktemp("seg_seg")
    shutil.copytree(nifti_root / "raw", seg_root / "raw")
    seg_raw = TaskPaths.find(seg_root, TASK_ID).raw
    for split in ("Tr", "Ts"):
        for roi in sorted((seg_raw / f"labels{split}").glob("*.nii.gz")):
            case_id = roi.name.removesuffix(".nii.gz")
            labels = sitk.GetArrayFromImage(sitk.ReadImage(str(roi)))
            masks = np.stack([labels >= 1, labels == 2], axis=-1)
            series = seg_raw / f"images{split}" / f"{case_id}_0000"
            write_seg(source_images(series), masks, roi.with_name(f"{case_id}.dcm"))
            roi.unlink()

    def to_seg(dataset: dict) -> None:
        for item in dataset["training"]:
            item["label"] = item["label"].replace(".nii.gz", ".dcm")

    edit_json(seg_raw, to_seg)
    plans = [plan_and_preprocess(root, TASK_ID, num_workers=1, show_progress=False) for root in (nifti_root, seg_root)]
    assert plans[0] == plans[1]
    return nifti_root, seg_root


def test_task_with_seg_rois_preprocesses_like_nifti_rois(tasks):
    nifti, seg = (TaskPaths.find(root, TASK_ID) for root in tasks)
    case = {c.case_id: c for c in validate(seg.raw).cases}["case_0003"]
    assert case.roi == seg.raw / "labelsTr" / "case_0003.dcm"
    roi_values: set[float] = set()
    for case_id in [f"case_{i:04d}" for i in range(6)]:
        expected = np.load(nifti.stage_folder / f"{case_id}.npy")
        actual = np.load(seg.stage_folder / f"{case_id}.npy")
        np.testing.assert_array_equal(actual, expected, err_msg=case_id)
        roi_values |= set(np.unique(actual[-1]).tolist())
        properties = json.loads((seg.stage_folder / f"{case_id}.json").read_text())
        assert properties == json.loads((nifti.stage_folder / f"{case_id}.json").read_text()), case_id
    assert {0.0, 1.0, 2.0} <= roi_values  # background, organ, lesion


def test_prediction_preprocessing_reads_a_seg_roi(tasks, tmp_path):
    """`predict()` and `uc_predict` preprocess a case with `preprocess_case`, which reads the ROI with `load_case`."""
    nifti, seg = (TaskPaths.find(root, TASK_ID) for root in tasks)
    image = [seg.raw / "imagesTs" / "case_0006_0000"]
    seg_roi, nifti_roi = seg.raw / "labelsTs" / "case_0006.dcm", nifti.raw / "labelsTs" / "case_0006.nii.gz"

    data, roi, geometry = load_case("case_0006", image, seg_roi, num_roi_classes=3)
    expected = load_case("case_0006", image, nifti_roi, num_roi_classes=3)
    np.testing.assert_array_equal(data, expected[0])
    np.testing.assert_array_equal(roi, expected[1])
    assert roi.dtype == np.int16 and set(np.unique(roi).tolist()) == {0, 1, 2} and geometry == expected[2]

    plans = Plans.load(seg.plans_file)
    array, properties = preprocess_case("case_0006", image, seg_roi, plans)
    expected_array, expected_properties = preprocess_case("case_0006", image, nifti_roi, plans)
    np.testing.assert_array_equal(array, expected_array)
    assert properties == expected_properties

    rois = tmp_path / "rois"
    rois.mkdir()
    shutil.copy(seg_roi, rois / "case_0006.dcm")
    assert find_roi(rois, "case_0006") == rois / "case_0006.dcm"  # uc_predict's ROI folder: SEG/CASE.dcm


def test_validation_reports_bad_seg_rois(tasks, tmp_path):
    root = tmp_path / "data"
    shutil.copytree(tasks[1] / "raw", root / "raw")
    raw = TaskPaths.find(root, TASK_ID).raw
    labels = raw / "labelsTr"
    # case_0001: a SEG made from case_0002's series, on another grid
    shutil.copy(labels / "case_0002.dcm", labels / "case_0001.dcm")
    # case_0004: a third segment, not in dataset.json 'labels'
    masks = np.zeros((*read_geometry(raw / "imagesTr" / "case_0004_0000").size, 3), dtype=bool)
    masks[2:4, 3:6, 3:6, 2] = True
    write_seg(source_images(raw / "imagesTr" / "case_0004_0000"), masks, labels / "case_0004.dcm")

    problems = validation_error(raw).problems
    assert len(problems) == 2, problems
    assert "case case_0001" in problems[0] and str(labels / "case_0001.dcm") in problems[0], problems[0]
    assert "case_0001_0000" in problems[0] and "from this image's own series" in problems[0], problems[0]
    assert "case case_0004" in problems[1] and "case_0004.dcm holds values [3]" in problems[1], problems[1]

