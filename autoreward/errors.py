"""One exception tree for everything a user can get wrong.

Library code raises these with a message that names what was wrong and how to fix it;
only ``cli.py`` turns them into one-line messages and exit codes (gymnasium's
``error.py`` pattern). Anything else escaping is a bug in autoreward, not a user mistake.
"""

from __future__ import annotations

from enum import IntEnum


class ExitCode(IntEnum):
    """The exit codes of the ``autoreward`` command, defined once (README: "Exit codes").

    Scripts can tell "your input is wrong" (2) from "the LLM could not be reached" (3) from
    "it ran, and the result is a rejection or a failure" (1). Click's own usage errors exit 2
    too, so every mistake on the command line reads the same."""

    OK = 0
    FAILED = 1  #: ran to the end, but the reward was rejected, training failed or nothing trained
    USAGE = 2  #: bad input: an option, a file, an env id, a preset, a model string, a missing key
    UNREACHABLE = 3  #: the LLM server could not be reached or kept failing after retries
    INTERRUPTED = 130  #: Ctrl-C (128 + SIGINT, the shell's convention); finished steps are saved


class AutorewardError(Exception):
    """Base class: a user-facing problem with a one-line explanation and a fix."""

    exit_code: int = ExitCode.USAGE

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
    """An LLM backend cannot be used as asked: missing key, unknown model, missing install."""


class LLMUnreachableError(LLMError):
    """The LLM server cannot be reached, or kept failing (429, 5xx, timeouts) after retries:
    nothing the user typed is wrong, so it exits 3, not 2."""

    exit_code = ExitCode.UNREACHABLE


class ConfigError(AutorewardError):
    """A command-line or configuration value is invalid."""


class Interrupted(AutorewardError):
    """Ctrl-C (or SIGTERM) stopped a command: the one line says what is saved and how to go on."""

    exit_code = ExitCode.INTERRUPTED


class DiskFullError(RunDirError):
    """A file of the run could not be written (no space, quota, file-size limit): nothing
    already written is lost, since every write is atomic."""

    exit_code = ExitCode.FAILED
