"""The errors a user can cause, as one family: the CLI prints them as one line and exits 2.

Each module raises its own kind (SettingsError, PlanError, SpecError, BrokerUnreachable...); all
derive from UserError, so the front door catches one class and imports none of their modules.
The message is one line and holds no secret (settings redact at the source).
"""


class UserError(Exception):
    """Bad input or an unreachable dependency: a one-line message, never a traceback."""
