"""SAM inside other training frameworks.

* :mod:`samlens.integrations.hf` — ``SAMTrainer``, a Hugging Face ``transformers.Trainer`` that
  takes SAM's two passes (extra ``hf``).
* :mod:`samlens.integrations.lightning` — ``sam_manual_step`` for PyTorch Lightning's manual
  optimisation (extra ``lightning``); automatic optimisation needs no helper.

Each module imports its framework, so import the one you use; this package imports neither.
"""
