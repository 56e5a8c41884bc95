"""Datasets with redundant and spurious features."""
