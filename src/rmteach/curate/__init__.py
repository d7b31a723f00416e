"""`rmteach curate`: `select` (pure: which prompts a rule keeps), `run` (the command), `output` (its files)."""
