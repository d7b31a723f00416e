"""The embedded synthetic world: tiny real Hugging Face models that run anywhere offline."""
