"""Start-up time of the ``samlens`` command (target: ``samlens --help`` < 1.5 s).

Each row is a fresh process, timed wall-clock, median of ``--repeats`` runs; the rows are
interleaved so that a busy machine slows them alike. "every command imported" builds the full
parser, as the entry point did before it imported only the command being run.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

TARGET_S = 1.5


def commands() -> dict[str, list[str]]:
    exe = shutil.which("samlens") or str(Path(sys.executable).with_name("samlens"))
    py = sys.executable
    return {
        "`samlens --help`": [exe, "--help"],
        '`python -c "import samlens"`': [py, "-c", "import samlens"],
        "`samlens --help`, every command imported": [
            py,
            "-c",
            "from samlens.cli.main import build_parser; build_parser().parse_args(['--help'])",
        ],
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    env = dict(os.environ, OMP_NUM_THREADS="1")
    rows = commands()
    times: dict[str, list[float]] = {name: [] for name in rows}
    for _ in range(args.repeats):
        for name, cmd in rows.items():
            start = time.perf_counter()
            subprocess.run(cmd, env=env, check=True, stdout=subprocess.DEVNULL)
            times[name].append(time.perf_counter() - start)
    medians = {name: statistics.median(t) for name, t in times.items()}
    eager = medians["`samlens --help`, every command imported"]
    print(f"| command | median wall s ({args.repeats} runs) | vs every command imported |")
    print("|---|---:|---:|")
    for name, m in medians.items():
        print(f"| {name} | {m:.3f} | {m / eager:.3f} |")
    ok = medians["`samlens --help`"] < TARGET_S
    print(f"\n`samlens --help` target < {TARGET_S} s: {'met' if ok else 'NOT met'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
