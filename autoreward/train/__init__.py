"""Training with a reward program: ``run`` is the parent side (a plain-data spec handed to the
sandbox), ``job`` the child side read top to bottom, ``algos`` the one algorithm table, and
``wrappers``, ``callbacks`` and ``evaluate`` the pieces the job composes."""
