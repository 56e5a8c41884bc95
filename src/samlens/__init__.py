"""samlens: Sharpness-Aware Minimization as a feature-learning tool.

The package is laid out as the pipeline it implements, each layer importing only those below it
(``tests/test_architecture.py``): ``data``, ``models`` → ``optim`` → ``probe`` (a run probes while
it trains) → ``train`` beside ``report`` → ``reproduce`` → ``cli``; ``rundir``, ``validate`` and
``errors`` are the ground floor every layer stands on.
"""

__version__ = "0.1.0"
