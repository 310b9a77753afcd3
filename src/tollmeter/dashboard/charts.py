"""Charts as inline SVG, rendered on the server by pygal: no script, no CDN, nothing fetched by
the browser. pygal's own tooltip script (loaded from a CDN) is turned off and the inline
configuration script it writes is removed, so a page's Content-Security-Policy can forbid
scripts altogether. Amounts become floats here for drawing only; the numbers people read are
in the tables beside each chart, exact."""

from __future__ import annotations

import re
from decimal import Decimal
from typing import Mapping, Sequence

import pygal
from pygal.style import Style

_SCRIPT = re.compile(r"<script\b.*?</script>", re.DOTALL)
_FONT = "system-ui, -apple-system, 'Segoe UI', Roboto, 'DejaVu Sans', sans-serif"
STYLE = Style(
    background="transparent", plot_background="transparent", foreground="#1f2933",
    foreground_strong="#1f2933", foreground_subtle="#7b8794", opacity=".85", opacity_hover="1",
    colors=("#2f6fde", "#16a34a", "#dc2626", "#d97706", "#7c3aed", "#0891b2", "#db2777", "#65a30d",
            "#475569", "#ea580c"),
    font_family=_FONT, label_font_family=_FONT, major_label_font_family=_FONT, legend_font_family=_FONT,
    value_font_family=_FONT, title_font_family=_FONT, tooltip_font_family=_FONT,
    label_font_size=11, major_label_font_size=11, legend_font_size=12, no_data_font_size=20,
    guide_stroke_color="#e4e7eb", major_guide_stroke_color="#cbd2d9",
)
_COMMON = dict(style=STYLE, js=[], disable_xml_declaration=True, width=900, height=320, margin=8, margin_bottom=24,
               legend_at_bottom=True, legend_at_bottom_columns=4, show_y_guides=True, truncate_label=14,
               truncate_legend=24, no_data_text="No data in this range", value_formatter=lambda v: _usd(v))
#: Most x labels a chart shows (the others are drawn, unlabelled).
_MOST_LABELS = 10


def line(labels: Sequence[str], series: Mapping[str, Sequence[Decimal | None]],
         colors: Sequence[str] | None = None) -> str:
    """One line per series over `labels` (time buckets), in `colors` if given."""
    style = STYLE if colors is None else _colored(colors)
    chart = pygal.Line(**{**_COMMON, "style": style}, x_label_rotation=0, show_dots=len(labels) <= 62, dots_size=2.5,
                       show_minor_x_labels=False, x_labels_major=_major(labels), interpolate=None)
    chart.x_labels = list(labels)
    for name, values in series.items():
        chart.add(name, [_float(v) for v in values])
    return _svg(chart)


def stacked_bars(labels: Sequence[str], series: Mapping[str, Sequence[Decimal | None]], width: int = 900) -> str:
    """A bar per label, stacked by series (cost by model, by agent); `width` in the page's pixels
    (a chart in half a row is drawn at half width, so that its text keeps its size)."""
    chart = pygal.StackedBar(**{**_COMMON, "width": width, "legend_at_bottom_columns": 3}, show_minor_x_labels=False,
                             x_labels_major=_major(labels, 6 if width < 700 else _MOST_LABELS))
    chart.x_labels = list(labels)
    for name, values in series.items():
        chart.add(name, [_float(v) for v in values])
    return _svg(chart)


def bars(items: Sequence[tuple[str, Decimal]], title: str, width: int = 900) -> str:
    """Horizontal bars, one per (label, amount), largest first as given."""
    chart = pygal.HorizontalBar(**{**_COMMON, "width": width, "height": max(140, 26 * len(items) + 50)},
                                show_legend=False, print_values=False)
    chart.x_labels = [label for label, _ in reversed(items)]
    chart.add(title, [_float(amount) for _, amount in reversed(items)])
    return _svg(chart)


def _colored(colors: Sequence[str]) -> Style:
    style = Style(**{k: getattr(STYLE, k) for k in dir(STYLE) if not k.startswith("_") and not callable(getattr(STYLE, k))})
    style.colors = tuple(colors)
    return style


def _svg(chart: pygal.graph.graph.Graph) -> str:
    return _SCRIPT.sub("", chart.render(is_unicode=True))


def _major(labels: Sequence[str], most: int = _MOST_LABELS) -> list[str] | None:
    if len(labels) <= most:
        return None
    step = -(-len(labels) // most)
    return list(labels[::step])


def _float(value: Decimal | None) -> float | None:
    return None if value is None else float(value)


def _usd(value: float | None) -> str:
    if value is None:
        return ""
    return f"${value:,.2f}" if abs(value) >= 1 or value == 0 else f"${value:.6f}".rstrip("0")
