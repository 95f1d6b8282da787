"""Settings, a dialog in pages: General (general.py) and Servers (servers.py)."""

from app.gui.settings_dialog.dialog import SettingsDialog

__all__ = ["SettingsDialog"]
