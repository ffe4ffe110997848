"""Hyperparameter optimization on Optuna, trials run as workflows on the cluster."""
