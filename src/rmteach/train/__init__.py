"""`rmteach train`: policy gradient on TRL with the ground truth tracked live.

`config` (TrainConfig), `run` (the command), `trainer` (TRL wiring), `rewards` (a scored RM as a TRL reward
function), `evaluator` (held-out evaluation), `normalization`, `callback` (metrics.jsonl), `run_dir` (marker,
checkpoints, resume), `plan` (the dry run).
"""
