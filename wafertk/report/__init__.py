"""Self-contained HTML report of a batch inspection (``out/report.html``).

:class:`BatchReportBuilder` accumulates, batch by batch, what the report shows, in memory
bounded by the batch whatever the input size: streamed counts per pattern, per lot (a bounded
set of lot records) and a confusion-count matrix; stacked fail maps of a bounded number of
lots; galleries sampled across the confidence range; the lowest-confidence review wafers.
:meth:`BatchReportBuilder.write` renders one HTML file with inline SVG charts and base64 PNG
images: no scripts, no network. See ``docs/report.md``.
"""

from wafertk.report.batch import (
    BatchReportBuilder,
    contrast_ratio,
    render_stack_png,
    render_thumbnail_png,
)

__all__ = ["BatchReportBuilder", "contrast_ratio", "render_stack_png", "render_thumbnail_png"]
