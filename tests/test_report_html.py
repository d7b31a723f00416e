"""HTML helpers: escaping, data URIs, deterministic PNGs, self-contained pages."""

from __future__ import annotations

import base64

import pytest
from matplotlib.figure import Figure

from rmteach.core.html import fig_to_png, html_page, html_table, png_data_uri


def _figure() -> Figure:
    fig = Figure(figsize=(3, 2))
    ax = fig.subplots()
    ax.plot([1, 2, 3], [1, 4, 9], label="x^2")
    ax.set_yscale("log")
    ax.legend()
    return fig


def test_png_data_uri_round_trips():
    data = bytes(range(256)) * 3
    uri = png_data_uri(data)
    prefix = "data:image/png;base64,"
    assert uri.startswith(prefix)
    assert base64.b64decode(uri[len(prefix) :], validate=True) == data


def test_fig_to_png_is_a_png_and_deterministic():
    a, b = fig_to_png(_figure()), fig_to_png(_figure())
    assert a[:8] == b"\x89PNG\r\n\x1a\n"
    assert a == b
    assert b"matplotlib" not in a  # no version stamp in the metadata


def test_html_table_escapes_header_and_cells():
    table = html_table(["name<", "value & more"], [["<script>alert('x')</script>", 0.123456789], ["a\"b", None]])
    assert "<script>" not in table
    assert "&lt;script&gt;alert(&#x27;x&#x27;)&lt;/script&gt;" in table
    assert "<th>name&lt;</th>" in table and "<th>value &amp; more</th>" in table
    assert "<td>0.1235</td>" in table and "a&quot;b" in table and "&ndash;" in table
    assert table.count("<tr>") == 3


def test_html_table_rejects_ragged_rows():
    with pytest.raises(ValueError, match="row 0 has 1 cells"):
        html_table(["a", "b"], [[1]])


def test_html_page_is_self_contained_and_escapes_the_title():
    page = html_page("A <b> & c", '<img src="' + png_data_uri(b"x") + '">')
    assert page.startswith("<!DOCTYPE html>") and page.rstrip().endswith("</html>")
    assert "<title>A &lt;b&gt; &amp; c</title>" in page
    assert "<style>" in page
    for external in ("http://", "https://", "<link", "<script", "@import"):
        assert external not in page
