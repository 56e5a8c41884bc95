"""Reports: tables and figures from run directories.

``write_report(path)`` turns a run directory, or a sweep directory of runs, into
report.md, report.html, summary.csv and figures/ (PNG + PDF).
"""

from samlens.report.writer import write_report

__all__ = ["write_report"]
