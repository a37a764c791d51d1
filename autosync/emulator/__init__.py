"""Local emulator of the Google Calendar v3 and Microsoft Graph calendar APIs autosync uses."""

from autosync.emulator.server import Emulator, serve

__all__ = ["Emulator", "serve"]
