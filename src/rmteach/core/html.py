"""Self-contained HTML pieces: PNG data URIs, escaped tables, a complete page with inline CSS.

Nothing here loads anything from outside the page: images are embedded as base64 data URIs, the CSS is
inline, so a report is one file that opens offline. Figures are rendered with matplotlib's Agg canvas
directly (no pyplot, no global backend state).
"""

from __future__ import annotations

import base64
import html
import io
import math
from typing import Any

_CSS = """
body { font-family: -apple-system, "Segoe UI", Helvetica, Arial, sans-serif; max-width: 60rem;
       margin: 2rem auto; padding: 0 1rem; color: #222; line-height: 1.45; }
h1, h2, h3 { line-height: 1.2; }
table { border-collapse: collapse; margin: 0.8rem 0; font-size: 0.92rem; }
th, td { border: 1px solid #ccc; padding: 0.25rem 0.6rem; text-align: right; }
th { background: #f3f3f3; }
td:first-child, th:first-child { text-align: left; }
img { max-width: 100%; height: auto; }
.note { color: #555; font-size: 0.9rem; }
""".strip()


def png_data_uri(png_bytes: bytes) -> str:
    """Encode PNG bytes as a `data:image/png;base64,...` URI for an `<img src>`.

    Arguments:
        png_bytes: the raw bytes of a PNG file.

    Returns:
        The data URI as a string.

    >>> png_data_uri(b"abc")
    'data:image/png;base64,YWJj'
    """
    return "data:image/png;base64," + base64.b64encode(png_bytes).decode("ascii")


def fig_to_png(fig: Any, dpi: int = 100) -> bytes:
    """Render a matplotlib `Figure` to PNG bytes with the Agg canvas; the same figure gives the same bytes.

    Arguments:
        fig: a `matplotlib.figure.Figure` (create it with `Figure()`, not pyplot).
        dpi: resolution in dots per inch.

    Returns:
        The PNG file as bytes, without the matplotlib version stamp in its metadata.
    """
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    FigureCanvasAgg(fig)  # attaches itself to `fig`; no pyplot, no global backend switch
    buf = io.BytesIO()
    # The "Software" key would write the matplotlib version; None drops it so bytes depend only on the figure.
    fig.savefig(buf, format="png", dpi=dpi, metadata={"Software": None})
    return buf.getvalue()


def _cell(value: Any) -> str:
    """Format one table cell: floats to 4 significant digits, None and non-finite floats as a dash."""
    if value is None:
        return "&ndash;"
    if isinstance(value, float):
        if not math.isfinite(value):
            return "&ndash;"
        return html.escape(f"{value:.4g}")
    return html.escape(str(value))


def html_table(header: list[str], rows: list[list]) -> str:
    """An HTML `<table>` with every header and cell escaped.

    Arguments:
        header: column titles.
        rows: one list of cell values per row (floats shown with 4 significant digits, None as a dash).

    Returns:
        The table as an HTML fragment.

    >>> html_table(["a<b"], [[1.5]])
    '<table>\\n<thead><tr><th>a&lt;b</th></tr></thead>\\n<tbody>\\n<tr><td>1.5</td></tr>\\n</tbody>\\n</table>'
    """
    for i, row in enumerate(rows):
        if len(row) != len(header):
            raise ValueError(f"row {i} has {len(row)} cells, the header has {len(header)}")
    head = "<tr>" + "".join(f"<th>{html.escape(str(h))}</th>" for h in header) + "</tr>"
    body = "\n".join("<tr>" + "".join(f"<td>{_cell(v)}</td>" for v in row) + "</tr>" for row in rows)
    return f"<table>\n<thead>{head}</thead>\n<tbody>\n{body}\n</tbody>\n</table>"


def html_page(title: str, body: str) -> str:
    """A complete, self-contained HTML page (inline CSS, no external resources).

    Arguments:
        title: the page title (escaped), also shown as the `<h1>`.
        body: an HTML fragment placed after the title, inserted as is.

    Returns:
        The page as a string.
    """
    t = html.escape(title)
    return (
        "<!DOCTYPE html>\n"
        '<html lang="en">\n<head>\n<meta charset="utf-8">\n'
        f"<title>{t}</title>\n<style>\n{_CSS}\n</style>\n</head>\n"
        f"<body>\n<h1>{t}</h1>\n{body}\n</body>\n</html>\n"
    )
