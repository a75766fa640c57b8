"""The one error type a user can cause. The CLI prints it as one line and exits with 2.

Every module's validation error derives from UserError, so the CLI catches exactly the
mistakes a user can fix, and a bug in tuner still shows its traceback.
"""

from __future__ import annotations


class UserError(ValueError):
    """Bad input; the message is one line naming the field and the fix."""
