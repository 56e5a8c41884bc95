"""Configs, run directories and the training loop."""
