"""The embedded synthetic world: tiny real Hugging Face models that run anywhere offline.

- `task`: the language task, its ground-truth reward (`rmteach.toy.task:ground_truth`) and response writers.
- `tiny`: word-level tokenizers and tiny GPT-2 / Llama models saved with `save_pretrained`.
- `fit`: supervised fine-tuning of policies and Bradley-Terry training of reward models.
- `pairs`: preference pairs labeled by the ground truth (off-policy writer, on-policy samples).
- `config`: the world's settings and presets; `parts`: resumable, parallel build steps.
- `build`: `rmteach toy build` (`run_build`), which writes the world, its configs and `manifest.json`.
"""
