"""One exception tree for everything a user can get wrong.

Library code raises these with a message that names what was wrong and how to fix it;
only ``cli.py`` turns them into one-line messages and exit codes (gymnasium's
``error.py`` pattern). Anything else escaping is a bug in autoreward, not a user mistake.
"""

from __future__ import annotations


class AutorewardError(Exception):
    """Base class: a user-facing problem with a one-line explanation and a fix."""

    exit_code: int = 2

    def __init__(self, message: str, hint: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint

    def one_line(self) -> str:
        """The message and the fix on one line, as the CLI prints it."""
        return f"{self.message} ({self.hint})" if self.hint else self.message


class UnknownEnvError(AutorewardError):
    """No env card matches the requested environment id."""


class UnknownTaskError(AutorewardError):
    """The env card has no preset with that name."""


class CardError(AutorewardError):
    """An env card is malformed (bad YAML, missing keys, a field that fails to extract)."""


class RewardProgramError(AutorewardError):
    """A reward program cannot be read, parsed or accepted by the static policy."""


class SandboxError(AutorewardError):
    """A sandboxed child failed: crashed, exceeded a limit, or returned nothing."""


class RunDirError(AutorewardError):
    """A run directory is missing, incomplete or not a run directory."""


class LLMError(AutorewardError):
    """An LLM backend failed: missing key, unknown model, unreachable server."""


class ConfigError(AutorewardError):
    """A command-line or configuration value is invalid."""
