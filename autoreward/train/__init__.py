"""Training with a reward program: SB3 in the sandboxed worker (see ``trainer.py``)."""
