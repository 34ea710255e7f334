"""Training: optimiser, curriculum, the compiled loop, logging, checkpoints."""
