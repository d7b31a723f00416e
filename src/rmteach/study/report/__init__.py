"""The study report: `page` (report.html, summary.md) and `plots` (matplotlib figures)."""
