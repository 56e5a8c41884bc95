"""Loaders for the paper's datasets, reading their standard files from a user-given ``root``."""

from samlens.data.real import celeba, cifar_mnist, colored_mnist, domainbed, waterbirds  # noqa: F401
