"""`rmteach study`: the paper's experiments across RMs and policies.

`config` (validation), `grid` (the runs as data), `run` (the command), `outcomes`, `points`, `analysis`, `claims`
(pure), `report/` (HTML, plots, summary).
"""
