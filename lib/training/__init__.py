"""LoRA training: training sets (datasets, uploads, images, readiness), AI Toolkit configs
(config), and the run view of a training job (runs)."""
