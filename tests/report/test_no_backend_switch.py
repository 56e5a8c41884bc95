"""Importing samlens's plotting modules and writing figures leaves matplotlib's backend alone (a
notebook's inline backend keeps working)."""

from __future__ import annotations

import subprocess
import sys

SCRIPT = """
import matplotlib
matplotlib.use("svg")
import samlens.report, samlens.report.figures, samlens.report.mechanism_plots, samlens.data.inspect
from samlens.report.mechanism_plots import plot_toy
import tempfile
from samlens.train.toy import ToyConfig, run_study
records = run_study(ToyConfig(steps=20, eval_every=10, n_probe=100, optimizers=("sgd", "lsam"), seeds=(0,)))
plot_toy(records, tempfile.mkdtemp())
import matplotlib.pyplot as plt
assert matplotlib.get_backend() == "svg", matplotlib.get_backend()
assert plt.get_fignums() == [], plt.get_fignums()  # no figure left open in pyplot's registry
print("ok")
"""


def test_plotting_sets_no_backend_and_leaves_no_open_figure():
    proc = subprocess.run([sys.executable, "-c", SCRIPT], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0 and proc.stdout.strip() == "ok", proc.stderr[-2000:]
