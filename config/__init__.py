"""The one place the lab's settings are read."""

from config.settings import Settings, SettingsError, redact

__all__ = ["Settings", "SettingsError", "redact"]
