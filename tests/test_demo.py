"""The demo pipeline end to end at a tiny size."""

from __future__ import annotations

import json
from pathlib import Path

from universalclassifier.demo import DemoSettings, format_results, main, run_demo


def tiny_settings(**changes) -> DemoSettings:
    """The demo at a tiny size and a budget of one batch, with `changes`."""
    tiny = dict(num_cases=10, num_test=2, base_size=(8, 24, 24), epochs=1, batches_per_epoch=1, val_batches_per_epoch=1)
    return DemoSettings(**{**tiny, **changes}, num_workers=0)


def test_demo_runs_end_to_end_at_a_tiny_size(tmp_path):
    settings = tiny_settings()
    result = run_demo(tmp_path / "demo", settings, show_progress=False)
    folder = result["trainer_folder"]
    assert sorted(p.name for p in folder.glob("fold_*")) == [f"fold_{i}" for i in range(5)]
    summary = json.loads((folder / "cv_summary.json").read_text())
    assert summary["num_cases"] == 10 and set(summary["heads"]) == {"lesion_contrast", "lesion_size"}
    # ROC, confusion and reliability per head; no temperature-scaled diagram: 10 pooled cases are fewer than the
    # MIN_CALIBRATION_CASES a temperature needs, so calibration.json keeps T = 1 and says why
    plots = sorted(p.name for p in (folder / "cv_plots").glob("*.png"))
    assert (folder / "cv_report.md").is_file() and len(plots) == 6 and not any("calibrated" in p for p in plots)
    calibration = json.loads((folder / "calibration.json").read_text())
    assert calibration["heads"]["lesion_contrast"]["temperature"] == 1.0
    assert sorted(result["predictions"]) == ["case_0010", "case_0011"]
    assert (result["predictions_folder"] / "summary.csv").is_file()
    assert result["evaluation"]["num_cases"] == 2 and (result["evaluation_folder"] / "evaluation_report.md").is_file()
    assert set(result["saliency"]) == {"lesion_contrast", "lesion_size"}
    assert all(Path(png).name.startswith("case_0010_") and Path(png).is_file() for png in result["saliency"].values())
    text = format_results(result)
    assert "Cross-validation (10 cases" in text and "case_0010" in text and "cv_report.md" in text
    assert "External evaluation of the 2 test cases" in text and "lesion_contrast_gradcam.png" in text


def test_label_types_demo_predicts_test_cases_with_unknown_covariates(tmp_path):
    settings = tiny_settings(num_cases=20, label_types=True)
    result = run_demo(tmp_path / "demo", settings, show_progress=False)
    assert result["truth"]["case_0020"]["covariates"]["age"] is None  # the case this test is about
    unknown_age = result["predictions"]["case_0020"]
    assert isinstance(unknown_age["lesion_volume"], float) and 0.0 <= unknown_age["high_risk"] <= 1.0
    assert sorted(result["predictions"]) == ["case_0020", "case_0021"] and result["evaluation"]["num_cases"] == 2
    text = format_results(result)
    assert "lesion_volume (ml)" in text and "case_0020" in text


def test_demo_refuses_to_overwrite_a_foreign_folder(tmp_path, capsys):
    (tmp_path / "mine.txt").write_text("user data")
    assert main(["--output", str(tmp_path), "--cases", "10", "--epochs", "1", "--batches", "1", "--quiet"]) == 2
    assert "not a demo folder" in capsys.readouterr().err
    assert (tmp_path / "mine.txt").read_text() == "user data"
