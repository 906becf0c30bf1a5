"""The reports as markdown and as one self-contained HTML page: the same tables in both, every plot embedded, no
reference to another file or server, user text escaped."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from helpers import assert_self_contained, html_tables, markdown_tables
from universalclassifier.evaluation.summarize import summarize_cross_validation
from universalclassifier.plans import ClassificationLabel, Plans
from universalclassifier.reporting.document import Bullets, Figure, Paragraph, Report, Section, Table, Verbatim
from universalclassifier.reporting.to_html import PNG_MAGIC, render_html
from universalclassifier.reporting.to_markdown import render_markdown

HOSTILE = '<b>x</b> & "y"'
HOSTILE_ESCAPED = "&lt;b&gt;x&lt;/b&gt; &amp; &quot;y&quot;"


def _png(path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(PNG_MAGIC + b"not a real image, the renderer only embeds it")


def test_renderers_share_tables_embed_figures_and_escape_user_text(tmp_path: Path) -> None:
    _png(tmp_path / "plots" / "roc.png")
    report = Report(f"Report of {HOSTILE}", [
        Section(None, [Paragraph(f"Folder `a<b>` of **{HOSTILE}**; lesion_size and _emphasis_.")]),
        Section(HOSTILE, [
            Table(("Head", "AUC"), ((HOSTILE, "0.900"), ("a | b", "n/a"))),
            Bullets((f"case {HOSTILE}",)),
            Figure("plots/roc.png", f"ROC curve of {HOSTILE}"),
            Figure("plots/missing.png", "Not there"),
            Verbatim("# Author's text\n<script>alert(1)</script>"),
        ]),
    ])
    markdown, page = render_markdown(report), render_html(report, tmp_path)

    assert markdown_tables(markdown) == html_tables(page) == [[["Head", "AUC"], [HOSTILE, "0.900"], ["a | b", "n/a"]]]
    assert f"## {HOSTILE}" in markdown and "![ROC curve of" in markdown and "(plots/missing.png)" in markdown
    assert_self_contained(page, 1)
    assert HOSTILE not in page and "<script>" not in page
    assert f"<h2>{HOSTILE_ESCAPED}</h2>" in page and f"<strong>{HOSTILE_ESCAPED}</strong>" in page
    assert "<code>a&lt;b&gt;</code>" in page and "lesion_size" in page and "<em>emphasis</em>" in page
    assert "Figure not available: Not there" in page
    assert "<pre># Author&#x27;s text\n&lt;script&gt;" in page


def _plans() -> Plans:
    return Plans(
        task_name="Task001_X",
        modalities=["MR"],
        normalization_schemes=["zscore"],
        use_mask_for_norm=[False],
        intensity_properties={},
        transpose_forward=[0, 1, 2],
        transpose_backward=[0, 1, 2],
        target_spacing=[1.0, 1.0, 1.0],
        image_size=[16, 16, 16],
        batch_size=2,
        do_dummy_2D_data_aug=False,
        num_roi_classes=2,
        uses_roi=False,
        classification_labels=[
            ClassificationLabel(name=HOSTILE, type="nominal", values=("a & b", "<c>")),
            ClassificationLabel(name="grade", type="ordinal", values=("low", "mid", "high")),
        ],
        num_training_cases=12,
    )


def test_the_cv_report_page_embeds_every_plot_and_matches_the_markdown(tmp_path: Path) -> None:
    _plans().save(tmp_path / "plans.json")
    rng = np.random.default_rng(0)
    for fold in range(2):
        cases = {}
        for n in range(6 * fold, 6 * fold + 6):
            p1 = float(np.clip(0.3 + 0.4 * (n % 2) + rng.normal(0, 0.2), 0.01, 0.99))
            grade = rng.dirichlet([1, 1, 1]) + np.eye(3)[n % 3]
            cases[f"case_{n:02d}"] = {
                HOSTILE: {"target": n % 2, "probabilities": [1 - p1, p1]},
                "grade": {"target": n % 3, "probabilities": (grade / grade.sum()).tolist()},
            }
        (tmp_path / f"fold_{fold}" / "validation").mkdir(parents=True)
        (tmp_path / f"fold_{fold}" / "validation" / "predictions.json").write_text(json.dumps(cases))

    summarize_cross_validation(tmp_path, num_resamples=20)
    markdown = (tmp_path / "cv_report.md").read_text(encoding="utf-8")
    page = (tmp_path / "cv_report.html").read_text(encoding="utf-8")

    plots = sorted((tmp_path / "cv_plots").glob("*.png"))
    assert len(plots) >= 6 and markdown.count("![") == len(plots)
    assert_self_contained(page, len(plots))
    assert HOSTILE not in page and f"<h2>{HOSTILE_ESCAPED}</h2>" in page
    tables = markdown_tables(markdown)
    assert tables == html_tables(page)
    assert [HOSTILE, "12"] == tables[0][1][:2]  # the metric table's first row: the head and its cases
    assert tables[1][0] == ["true \\ predicted", "a & b", "<c>"]  # the first head's confusion matrix
