"""The one place the lab's settings are read."""

from config.settings import Settings, SettingsError

__all__ = ["Settings", "SettingsError"]
