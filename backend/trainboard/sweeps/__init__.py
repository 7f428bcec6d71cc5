"""Hyperparameter sweeps: a sweep is a set of ordinary runs, queued and run by the workers,
steered by an Optuna study in the same database.

space (the request and a trial's spec) → study (Optuna: samplers, pruner, importances) →
driver (tell ended trials, ask and queue new ones) → reporter (a trial's epochs to the study,
from the worker that records them; prunes) → the API (`api/sweeps.py`) and `trainboard sweep`.
"""
