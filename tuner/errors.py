"""The errors a user sees as one line. The CLI prints them as `error: ...` and exits.

Every module's validation error derives from UserError, so the CLI catches exactly the
mistakes a user can fix (exit code 2), and a bug in tuner still shows its traceback.
"""

from __future__ import annotations


class UserError(ValueError):
    """Bad input; the message is one line naming the field and the fix."""

    exit_code = 2


class StorageLost(UserError):
    """The storage went away mid-study (a database stopped, a disk vanished).

    Not a mistake in the input, hence exit code 1, but still one line: what is already
    stored is safe, and running the same command again resumes.
    """

    exit_code = 1


class ConfigError(UserError):
    """A config value is invalid; the message names the field and the bad value."""
