"""A small SVG line chart of the counts per state over the sampled minutes (no script, no
library: the page's markup, drawn on the server)."""

from __future__ import annotations

from markupsafe import Markup, escape

from pulpo_core.adapter import JOB_STATES
from pulpo_dashboard.sampler import Sample

WIDTH, HEIGHT = 640, 200
#: Room for the axis labels: left, right, top, bottom.
LEFT, RIGHT, TOP, BOTTOM = 48, 96, 12, 24
COLOURS = {"ready": "#1b7f3b", "delayed": "#b58900", "reserved": "#2a6fdb", "buried": "#c0392b"}


def chart(samples: list[Sample], window: float) -> Markup:
    """The SVG of each state's count across the last ``window`` seconds of ``samples``."""
    plot_w, plot_h = WIDTH - LEFT - RIGHT, HEIGHT - TOP - BOTTOM
    top = max([1, *(max(s.counts.values(), default=0) for s in samples)])
    end = samples[-1].at if samples else 0.0
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" class="chart" width="{WIDTH}" '
        f'height="{HEIGHT}" viewBox="0 0 {WIDTH} {HEIGHT}" role="img" '
        f'aria-label="jobs per state over the last {int(window // 60)} minutes">',
        f'<rect x="{LEFT}" y="{TOP}" width="{plot_w}" height="{plot_h}" class="plot"/>',
        _text(LEFT - 6, TOP + 10, str(top), "end"),
        _text(LEFT - 6, TOP + plot_h, "0", "end"),
        _text(LEFT, HEIGHT - 6, f"-{int(window // 60)} min", "start"),
        _text(LEFT + plot_w, HEIGHT - 6, "now", "end"),
    ]
    for row, state in enumerate(JOB_STATES):
        colour = COLOURS[state]
        points = " ".join(
            f"{LEFT + plot_w * (1 - (end - s.at) / window):.1f},"
            f"{TOP + plot_h * (1 - s.counts.get(state, 0) / top):.1f}"
            for s in samples
            if end - s.at <= window
        )
        if points:
            parts.append(f'<polyline fill="none" stroke="{colour}" stroke-width="2" '
                         f'points="{points}"><title>{escape(state)}</title></polyline>')
        y = TOP + 14 + row * 18
        parts.append(f'<line x1="{WIDTH - RIGHT + 10}" y1="{y - 4}" x2="{WIDTH - RIGHT + 26}" '
                     f'y2="{y - 4}" stroke="{colour}" stroke-width="3"/>')
        parts.append(_text(WIDTH - RIGHT + 30, y, state, "start"))
    parts.append("</svg>")
    return Markup("".join(parts))


def _text(x: float, y: float, text: str, anchor: str) -> str:
    return f'<text x="{x}" y="{y}" text-anchor="{anchor}">{escape(text)}</text>'
