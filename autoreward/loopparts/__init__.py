"""The pieces of a run that :class:`autoreward.loop.Loop` puts in order, one job each.

- ``config``: :class:`RunConfig`, one run's settings (run.json)
- ``ledger``: :class:`Ledger`, the run's ``state.json`` and budgets, and the LLM call that counts
- ``fitness``: :class:`FitnessAgreement`, the task fitness settled before any reward is designed
- ``sampling``: :class:`Sampling`, an iteration's rounds of samples (first, refill, diversity)
- ``vetting``: :class:`Vetting`, a draft through the critic's checks and the review, with repairs
- ``dedupe``: :class:`Dedupe`, copies (same program or same behaviour) left untrained
- ``training``: :class:`Training`, the accepted candidates' jobs (pool or successive halving)
- ``selection``: :class:`Selection`, the best candidate, the summaries and ``result.json``
- ``reward_library``: :class:`RunLibrary`, library examples for the designer, the best admitted

Nothing here imports :mod:`autoreward.loop`; each piece is handed the others it needs.
"""
