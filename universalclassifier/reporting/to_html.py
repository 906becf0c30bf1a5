"""The HTML rendering of a report: one self-contained page (inline CSS, figures as base64 PNG data URIs, no script
and no reference to any other file or server)."""

from __future__ import annotations

import base64
import html
import logging
import re
from pathlib import Path

from universalclassifier.reporting.document import Block, Bullets, Figure, Paragraph, Report, Table, Verbatim

logger = logging.getLogger(__name__)

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
_STYLE = """
body { font-family: system-ui, -apple-system, "Segoe UI", sans-serif; color: #1a1a1a; margin: 0; }
main { max-width: 60rem; margin: 0 auto; padding: 1.5rem; line-height: 1.45; }
h1 { font-size: 1.6rem; border-bottom: 2px solid #d0d7de; padding-bottom: .3rem; }
h2 { font-size: 1.25rem; margin-top: 2rem; border-bottom: 1px solid #d0d7de; padding-bottom: .2rem; }
table { border-collapse: collapse; margin: 1rem 0; font-variant-numeric: tabular-nums; }
th, td { border: 1px solid #d0d7de; padding: .3rem .6rem; text-align: left; }
th { background: #f6f8fa; }
tr:nth-child(even) td { background: #fbfcfd; }
code, pre { font-family: ui-monospace, Menlo, Consolas, monospace; background: #f6f8fa; border-radius: 4px; }
code { padding: 0 .25rem; }
pre { padding: .8rem; white-space: pre-wrap; }
figure { display: inline-block; margin: .5rem 1rem .5rem 0; vertical-align: top; }
figure img { max-width: 100%; border: 1px solid #d0d7de; }
figcaption { font-size: .85rem; color: #57606a; }
.missing { color: #9a6700; }
"""
_CODE = re.compile(r"`([^`]+)`")
_BOLD = re.compile(r"\*\*(.+?)\*\*")
_EMPHASIS = re.compile(r"(?<![\w])_(\S(?:.*?\S)?)_(?![\w])")


def _marks(text: str) -> str:
    """Escaped text outside code spans with **bold** and _emphasis_ turned into tags."""
    escaped = html.escape(text, quote=True)
    return _EMPHASIS.sub(r"<em>\1</em>", _BOLD.sub(r"<strong>\1</strong>", escaped))


def _inline(text: str) -> str:
    """`text` as HTML: everything escaped, `code`, **bold** and _emphasis_ marked up."""
    pieces = _CODE.split(text)  # odd pieces are the contents of code spans
    return "".join(
        f"<code>{html.escape(piece, quote=True)}</code>" if index % 2 else _marks(piece)
        for index, piece in enumerate(pieces)
    )


def _figure(figure: Figure, folder: Path) -> str:
    """The figure as an <img> with the PNG inlined, or a note where the file is missing or not a PNG."""
    path = folder / figure.path
    content = path.read_bytes() if path.is_file() else b""
    if not content.startswith(PNG_MAGIC):
        logger.warning("The figure %s is missing or not a PNG; the HTML report notes its absence.", path)
        where = f"<code>{html.escape(figure.path, quote=True)}</code>"
        return f'<p class="missing">Figure not available: {_inline(figure.caption)} ({where})</p>'
    data = base64.b64encode(content).decode("ascii")
    caption = _inline(figure.caption)
    alt = html.escape(figure.caption, quote=True)
    return f'<figure><img src="data:image/png;base64,{data}" alt="{alt}"><figcaption>{caption}</figcaption></figure>'


def _block(block: Block, folder: Path) -> str:
    if isinstance(block, Paragraph):
        return f"<p>{_inline(block.text)}</p>"
    if isinstance(block, Verbatim):
        return f"<pre>{html.escape(block.text.strip(), quote=True)}</pre>"
    if isinstance(block, Bullets):
        return "<ul>" + "".join(f"<li>{_inline(item)}</li>" for item in block.items) + "</ul>"
    if isinstance(block, Table):
        head = "".join(f"<th>{_inline(cell)}</th>" for cell in block.header)
        body = "".join("<tr>" + "".join(f"<td>{_inline(cell)}</td>" for cell in row) + "</tr>" for row in block.rows)
        return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"
    if isinstance(block, Figure):
        return _figure(block, folder)
    raise TypeError(f"Not a report block: {block!r}")


def render_html(report: Report, folder: Path) -> str:
    """The report as one HTML page; figure paths are read relative to `folder` and embedded."""
    parts = [f"<h1>{_inline(report.title)}</h1>"]
    for section in report.sections:
        if section.title is not None:
            parts.append(f"<h2>{_inline(section.title)}</h2>")
        parts += [_block(block, Path(folder)) for block in section.blocks]
    body = "\n".join(parts)
    return (
        '<!DOCTYPE html>\n<html lang="en">\n<head>\n<meta charset="utf-8">\n'
        '<meta name="viewport" content="width=device-width, initial-scale=1">\n'
        f"<title>{html.escape(report.title)}</title>\n<style>{_STYLE}</style>\n</head>\n"
        f"<body>\n<main>\n{body}\n</main>\n</body>\n</html>\n"
    )
