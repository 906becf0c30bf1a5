"""Writing a report to disk: the markdown file and the HTML page beside it."""

from __future__ import annotations

from pathlib import Path

from universalclassifier.atomic import write_text_atomic
from universalclassifier.reporting.document import Report
from universalclassifier.reporting.to_html import render_html
from universalclassifier.reporting.to_markdown import render_markdown


def html_file_for(markdown_file: Path) -> Path:
    """The HTML page written beside a markdown report: the same name with the suffix .html."""
    return Path(markdown_file).with_suffix(".html")


def write_report(report: Report, markdown_file: Path) -> Path:
    """Write `markdown_file` and its HTML page (figures relative to the file's folder, embedded); returns the page."""
    markdown_file = Path(markdown_file)
    page = html_file_for(markdown_file)
    write_text_atomic(markdown_file, render_markdown(report))
    write_text_atomic(page, render_html(report, markdown_file.parent))
    return page
