"""Feature-quality evaluation: balanced probes, DFR, transfer probes, metrics."""
