"""The charts a process has drawn, each once: SVG for the PDF and the archive page, PNG only
where an email client needs a bitmap.

The report model carries each chart as data (reports/report/model.py `Chart`). A chart is
identified by what it shows, so two recipients or two formats asking for the same chart with the
same numbers share one drawing. The PNG is that same SVG drawing rasterised by resvg: the email's
chart is the PDF's, pixel for point, and costs tens of milliseconds with nothing to import.
"""

from __future__ import annotations

from collections import OrderedDict

from reports.render.svg import in_pixels
from reports.report.model import Chart

# 3.6 in at 200 dpi: the email shows it 556 px wide, sharp on a high-density screen.
PNG_WIDTH = 720


class Charts:
    """Draws the charts that reports carry as data, each distinct chart once, and keeps them.

    Reports for many recipients and formats share charts; the cache is keyed by the chart's id
    (its content), bounded so a long-lived process does not keep every chart it ever drew.
    """

    def __init__(self, keep: int = 512) -> None:
        self._png: OrderedDict[str, bytes] = OrderedDict()
        self._svg: OrderedDict[str, str] = OrderedDict()
        self._keep = keep
        self.drawn = 0

    def svg(self, chart: Chart) -> str:
        """The chart as SVG, for the PDF and the archive page (see render/svg.py)."""
        key = "svg:" + chart.id
        if key not in self._svg:
            from reports.render.svg import DRAWINGS as VECTORS

            self._svg[key] = VECTORS[chart.kind](**chart.spec)
            self.drawn += 1
            if len(self._svg) > self._keep:
                self._svg.popitem(last=False)
        self._svg.move_to_end(key)
        return self._svg[key]

    def png(self, chart: Chart) -> bytes:
        """The chart as PNG, for an email body: its SVG on white (a mail client's dark mode
        would lose dark text on a transparent image)."""
        if chart.id in self._png:
            self._png.move_to_end(chart.id)
            return self._png[chart.id]
        import resvg_py

        svg = in_pixels(self.svg(chart))
        png = bytes(resvg_py.svg_to_bytes(svg_string=svg, width=PNG_WIDTH, background="#ffffff"))
        self.drawn += 1
        self._png[chart.id] = png
        if len(self._png) > self._keep:
            self._png.popitem(last=False)
        return self._png[chart.id]
