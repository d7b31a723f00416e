"""`rmteach rm`: the paper's reward-model pipeline for real models: on-policy pairs, mixes, Bradley-Terry RMs."""
