"""The report model: a title and sections of paragraphs, bullet lists, tables and figures.

Text is plain text with three inline marks that both renderers understand: `code`, **bold** and _emphasis_ (an
underscore pair only at word boundaries, so names such as lesion_size stay as they are). Anything else, user text
included, is shown as written: the HTML renderer escapes it.
"""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True)
class Paragraph:
    """A paragraph of text."""

    text: str


@dataclass(frozen=True)
class Bullets:
    """A bullet list, one text per item."""

    items: tuple[str, ...]


@dataclass(frozen=True)
class Table:
    """A table: a header row and body rows of the same width."""

    header: tuple[str, ...]
    rows: tuple[tuple[str, ...], ...]

    def __post_init__(self) -> None:
        widths = {len(row) for row in self.rows} - {len(self.header)}
        if widths:
            raise ValueError(f"Table rows must have {len(self.header)} cells like the header, not {sorted(widths)}.")


@dataclass(frozen=True)
class Figure:
    """A PNG file, as a path relative to the report's folder, with its caption."""

    path: str
    caption: str


@dataclass(frozen=True)
class Verbatim:
    """Author-written markdown (e.g. a model card's intended use): copied into the markdown as it is and shown as
    preformatted text in the HTML page."""

    text: str


Block = Paragraph | Bullets | Table | Figure | Verbatim


@dataclass
class Section:
    """A section: its heading (None: no heading, e.g. the introduction) and its blocks in order."""

    title: str | None
    blocks: list[Block] = field(default_factory=list)


@dataclass
class Report:
    """A report: its title and sections in order."""

    title: str
    sections: list[Section] = field(default_factory=list)
