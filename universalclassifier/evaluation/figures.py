"""Small helpers shared by the report figures."""

from __future__ import annotations

import textwrap

# Characters of a 12-point title that fit in one inch of figure width (DejaVu Sans averages about 7 points per
# character; a little room is left for the margins).
_TITLE_CHARACTERS_PER_INCH = 8.5


def fit_title(title: str, figure_width_inches: float) -> str:
    """`title` wrapped onto as many lines as it needs to fit the width of its figure (a long task name, head name
    and suffix such as "(temperature-scaled)" would otherwise be cut off at the figure's edges)."""
    width = max(10, int(figure_width_inches * _TITLE_CHARACTERS_PER_INCH))
    return "\n".join(textwrap.fill(line, width) for line in title.split("\n"))
