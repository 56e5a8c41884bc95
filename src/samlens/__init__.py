"""samlens: Sharpness-Aware Minimization as a feature-learning tool.

The package is laid out as the pipeline it implements:
``data`` → ``models`` → ``optim`` → ``train`` → ``probe`` → ``report``, with ``cli`` on top.
"""

__version__ = "0.1.0"
