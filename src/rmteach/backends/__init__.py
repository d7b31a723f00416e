"""Model backends: policy samplers (`sampler`) and reward models (`rewards`, one file per backend)."""
