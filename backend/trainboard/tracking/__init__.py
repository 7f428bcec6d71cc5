"""Tracking your own training script: a run whose `log` never blocks or raises (run.py), its
background sender and on-disk spool, and the wandb- and TensorBoard-shaped front doors."""
