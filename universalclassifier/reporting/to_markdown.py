"""The markdown rendering of a report."""

from __future__ import annotations

from universalclassifier.reporting.document import Block, Bullets, Figure, Paragraph, Report, Table, Verbatim


def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def _row(cells: tuple[str, ...]) -> str:
    return "| " + " | ".join(_cell(cell) for cell in cells) + " |"


def _block(block: Block) -> str:
    if isinstance(block, Paragraph):
        return block.text
    if isinstance(block, Verbatim):
        return block.text.strip()
    if isinstance(block, Bullets):
        return "\n".join(f"- {item}" for item in block.items)
    if isinstance(block, Table):
        rule = "|---" * len(block.header) + "|"
        return "\n".join([_row(block.header), rule, *(_row(row) for row in block.rows)])
    if isinstance(block, Figure):
        return f"![{block.caption}]({block.path})"
    raise TypeError(f"Not a report block: {block!r}")


def render_markdown(report: Report) -> str:
    """The report as markdown: `#` title, `##` sections, blocks separated by blank lines."""
    parts = [f"# {report.title}"]
    for section in report.sections:
        if section.title is not None:
            parts.append(f"## {section.title}")
        parts += [_block(block) for block in section.blocks]
    return "\n\n".join(parts) + "\n"
