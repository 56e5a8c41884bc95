"""Models that expose ``features(x)`` and a linear ``head``."""
