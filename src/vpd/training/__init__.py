"""One accelerate training loop for every task (``Trainer``), with optimiser groups, schedules and checkpoints."""
