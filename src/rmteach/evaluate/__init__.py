"""`rmteach evaluate`: `config` (EvaluateConfig), `run` (sample, score, the command), `report` (the report card)."""
