"""autoreward: turn a sentence into a working, checked, trained reward function."""

__version__ = "0.1.0"
