"""Paper reproductions: one named grid per experiment (``configs/paper``), run and reported.

``reproduce(name, data_dir=None, out=None, quick=False)`` runs the grid through the sweep
module and writes the report through ``samlens.report``; ``REPRODUCTIONS`` lists the names.
"""

from samlens.reproduce.catalog import REPRODUCTIONS, Reproduction, get_reproduction
from samlens.reproduce.run import plan, reproduce

__all__ = ["REPRODUCTIONS", "Reproduction", "get_reproduction", "plan", "reproduce"]
