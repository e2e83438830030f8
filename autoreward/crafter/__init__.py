"""Crafter-specific code a card cannot express: the gymnasium env (``env``, imported by the
card to register ``Crafter-v1``) and the analyzer's numbers (``analysis``)."""
