"""Settings (Ctrl+,): pages in tabs — General (saved with Save, atomically, by
`app.core.settings.save_settings`; the theme previews at once and is put back on Cancel) and
Servers (remote servers, saved at once through the same registry as `corral servers`)."""

from __future__ import annotations

from PySide6.QtCore import Signal
from PySide6.QtGui import QIcon
from PySide6.QtWidgets import QDialog, QDialogButtonBox, QTabWidget, QVBoxLayout, QWidget

from app.core import hardware
from app.core.remote import ServerRegistry
from app.core.settings import Settings, SettingsError, save_settings
from app.gui import theme
from app.gui.overlay import float_banners
from app.gui.settings_dialog.general import GeneralPage
from app.gui.settings_dialog.servers import ServersPage
from app.gui.widgets import Banner, label


class SettingsDialog(QDialog):
    saved = Signal(object)   # Settings

    def __init__(self, settings: Settings, parent: QWidget | None = None, *,
                 gpu: hardware.GpuSupport | None = None,
                 registry: ServerRegistry | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("SettingsDialog")
        self.setWindowTitle("Settings")
        self.setMinimumWidth(600)
        self.original = settings
        self._theme_before = settings.theme
        outer = QVBoxLayout(self)
        outer.setContentsMargins(22, 18, 22, 16)
        outer.setSpacing(12)
        outer.addWidget(label("Settings", role="title"))
        self.banner = Banner()   # floats over the title (below): showing it moves nothing
        self.general = GeneralPage(settings, gpu)
        self.servers = ServersPage(lambda: self.general.offline.isChecked(), registry)
        self.tabs = QTabWidget()
        self.tabs.setObjectName("settings-tabs")
        self.tabs.setDocumentMode(True)
        self.tabs.addTab(self.general, "General")
        self.tabs.addTab(self.servers, "Servers")
        outer.addWidget(self.tabs, 1)
        # Over the title, the one thing here a waiting "Not saved" may hide: the pages' foot holds
        # fields and the Servers page's Add button.
        self.banners = float_banners(self, self, self.banner, edge="top")
        self.general.offline.toggled.connect(self._offline_changed)
        self._offline_changed()

        # The General page's fields, as attributes of the dialog (what callers and tests use).
        for name in ("models_dir", "backend", "gpu_layers", "threads", "context", "theme",
                     "token", "offline"):
            setattr(self, name, getattr(self.general, name))

        buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Save
                                   | QDialogButtonBox.StandardButton.Cancel)
        buttons.button(QDialogButtonBox.StandardButton.Save).setProperty("primary", True)
        for b in buttons.buttons():
            b.setIcon(QIcon())
        buttons.accepted.connect(self.accept)
        buttons.rejected.connect(self.reject)
        outer.addWidget(buttons)

    def show_page(self, name: str) -> QWidget:
        page = {"general": self.general, "servers": self.servers}[name]
        self.tabs.setCurrentWidget(page)
        return page

    def _offline_changed(self, *_: object) -> None:
        self.servers.show_offline(self.general.offline.isChecked() or self.original.offline)

    def values(self) -> Settings:
        return self.general.values(self.original)

    def accept(self) -> None:
        settings = self.values()
        try:
            save_settings(settings)
        except (SettingsError, OSError) as exc:
            self.banner.show_message(f"Not saved: {exc}", "error")
            return
        self.original = settings
        self._theme_before = settings.theme
        self.saved.emit(settings)
        super().accept()

    def reject(self) -> None:
        theme.ensure(self._theme_before)
        super().reject()
