"""``samlens report DIR``: tables (mean ± SE over seeds) and figures for a run or a sweep."""

from __future__ import annotations

import argparse

COMMAND = "report"
HELP = "Write report.md, report.html, summary.csv and figures for a run or sweep directory."


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("dir", help="a run directory or a sweep directory of runs")
    parser.add_argument("--out", help="where to write the report (default: DIR)")


def run(args: argparse.Namespace) -> int:
    # Imported here so that `samlens --help` does not pay for matplotlib and pandas.
    from samlens.report import write_report

    path = write_report(args.dir, args.out)
    print(f"wrote {path} (and report.html, summary.csv, figures/) in {path.parent}")
    return 0
