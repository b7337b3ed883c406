"""Self-contained HTML report of a batch inspection (``out/report.html``).

:class:`BatchReportBuilder` accumulates, batch by batch, what the report shows and keeps its
size bounded whatever the input size: counts per pattern and per lot, at most
``max_thumbs`` thumbnails per pattern (highest confidence first), at most ``max_review``
review wafers (lowest confidence first), and, when the input has labels, the label/prediction
pairs for the confusion matrix. :meth:`BatchReportBuilder.write` renders one HTML file with
inline SVG charts and base64 PNG thumbnails: no scripts, no network.
"""

from wafertk.report.batch import BatchReportBuilder, render_thumbnail_png

__all__ = ["BatchReportBuilder", "render_thumbnail_png"]
