"""Settings → Servers: the remote OpenAI-compatible servers whose models Corral can use.

The same registry and client as `corral servers` (app.core.remote.ServerRegistry,
app.core.remote_client.RemoteBackend): add one (URL, optional key, optional name; its model
list is asked for first, as `corral servers add` does, unless told not to), test a registered
one (its models, or why not), remove one. The page decides nothing about servers itself.

- Requests run off the GUI thread (app.gui.background); each answer names the server it is
  about, and one that arrives after another test was started is dropped.
- Offline mode (the General page's switch, even before Save, or the saved one) is honoured by
  the client, which refuses before sending anything; the page says so up front too.
- Keys go where the registry puts them (the OS keyring, or an owner-only file when no keyring
  works); the page says which, with the file's path. Changes here are saved at once.
"""

from __future__ import annotations

from typing import Callable

from PySide6.QtCore import Qt, Signal
from PySide6.QtWidgets import (QCheckBox, QFormLayout, QHBoxLayout, QLineEdit, QListWidget,
                               QMessageBox, QPushButton, QTreeWidget, QTreeWidgetItem,
                               QVBoxLayout, QWidget)

from app.core.remote import (RemoteError, RemoteServer, ServerRegistry, default_name,
                             key_storage, normalize_url)
from app.core.safetext import terminal_safe
from app.gui import background
from app.gui.widgets import label

TIMEOUTS = {"connect_timeout": 5, "read_timeout": 30}  # as `corral servers` asks


def _models(server: RemoteServer, key: str | None, offline: bool | None) -> list[str]:
    """The server's model ids (runs on a pool thread; RemoteError says why not)."""
    from app.core.remote_client import RemoteBackend

    backend = RemoteBackend(server, key, offline=offline, **TIMEOUTS)
    try:
        return backend.models()
    finally:
        backend.close()


class ServersPage(QWidget):
    changed = Signal()   # a server was added or removed

    def __init__(self, offline: Callable[[], bool], registry: ServerRegistry | None = None,
                 parent: QWidget | None = None) -> None:
        """`offline()`: whether the General page's offline switch is on now."""
        super().__init__(parent)
        self.setObjectName("settings-servers")
        self.registry = registry or ServerRegistry()
        self._offline = offline
        self._asking = 0   # the number of the request whose answer is awaited
        outer = QVBoxLayout(self)
        outer.setContentsMargins(4, 12, 4, 4)
        outer.setSpacing(10)
        outer.addWidget(label("Servers that speak OpenAI's API (llama.cpp's server, vLLM, Ollama, "
                              "another Corral). Their models are named SERVER/MODEL. Changes "
                              "here are saved at once.", role="muted", wrap=True))
        self.storage = label("", role="muted", wrap=True, selectable=True)
        self.storage.setObjectName("key-storage")
        outer.addWidget(self.storage)
        self.offline_note = label("Offline mode is on: Corral contacts no server. Turn it off "
                                  "on the General page to test one.", role="error", wrap=True)
        self.offline_note.setObjectName("servers-offline")
        self.offline_note.hide()
        outer.addWidget(self.offline_note)

        self.list = QTreeWidget()
        self.list.setObjectName("servers-list")
        self.list.setHeaderLabels(["Name", "Address", "Key"])
        self.list.setRootIsDecorated(False)
        self.list.setMinimumHeight(90)
        self.list.itemSelectionChanged.connect(self._selection_changed)
        outer.addWidget(self.list, 1)
        row = QHBoxLayout()
        self.test_button = QPushButton("Test connection")
        self.test_button.setObjectName("test-server")
        self.test_button.clicked.connect(self.test_selected)
        self.remove_button = QPushButton("Remove")
        self.remove_button.setObjectName("remove-server")
        self.remove_button.setProperty("danger", True)
        self.remove_button.clicked.connect(self.remove_selected)
        row.addWidget(self.test_button)
        row.addWidget(self.remove_button)
        row.addStretch(1)
        outer.addLayout(row)

        self.status = label("", wrap=True, selectable=True)
        self.status.setObjectName("server-status")
        outer.addWidget(self.status)
        self.models = QListWidget()
        self.models.setObjectName("server-models")
        self.models.setMaximumHeight(110)
        self.models.hide()
        outer.addWidget(self.models)

        outer.addWidget(label("Add a server", role="h2"))
        form = QFormLayout()
        form.setHorizontalSpacing(16)
        self.url = QLineEdit()
        self.url.setObjectName("server-url")
        self.url.setPlaceholderText("http://192.168.1.20:8080  (/v1 is added when no path is given)")
        self.url.textChanged.connect(self._url_changed)
        self.key = QLineEdit()
        self.key.setObjectName("server-key")
        self.key.setEchoMode(QLineEdit.EchoMode.Password)
        self.key.setPlaceholderText("optional")
        self.name = QLineEdit()
        self.name.setObjectName("server-name")
        self.check = QCheckBox("Ask it for its models before adding it")
        self.check.setObjectName("server-check")
        self.check.setChecked(True)
        self.add_button = QPushButton("Add")
        self.add_button.setObjectName("add-server")
        self.add_button.setProperty("primary", True)
        self.add_button.clicked.connect(self.add)
        self.url.returnPressed.connect(self.add)
        form.addRow("Address", self.url)
        form.addRow("API key", self.key)
        form.addRow("Name", self.name)
        add_row = QHBoxLayout()
        add_row.addWidget(self.check, 1)
        add_row.addWidget(self.add_button)
        form.addRow("", add_row)
        outer.addLayout(form)
        self.refresh()

    # ------------------------------------------------------------------ the list
    def refresh(self, select: str | None = None) -> None:
        self.storage.setText(f"Server keys are kept {key_storage(self.registry)}.")
        self.list.clear()
        try:
            servers = self.registry.list()
        except (RemoteError, OSError, ValueError) as exc:  # an unreadable servers.json: said
            servers = []
            self._say(f"The server list cannot be read: {exc}", error=True)
        for s in servers:
            where = {"keyring": "OS keyring", "file": "owner-only file"}.get(s.key_store or "",
                                                                           "none")
            item = QTreeWidgetItem([s.name, s.shown_url, where])
            item.setData(0, Qt.ItemDataRole.UserRole, s.name)
            self.list.addTopLevelItem(item)
            if s.name == select:
                self.list.setCurrentItem(item)
        for column in range(3):
            self.list.resizeColumnToContents(column)
        self._selection_changed()

    def server_names(self) -> list[str]:
        return [self.list.topLevelItem(i).text(0) for i in range(self.list.topLevelItemCount())]

    def selected(self) -> RemoteServer | None:
        item = self.list.currentItem()
        if item is None or not item.isSelected():
            return None
        return self.registry.find(item.data(0, Qt.ItemDataRole.UserRole))

    def _selection_changed(self) -> None:
        chosen = self.list.currentItem() is not None and self.list.currentItem().isSelected()
        self.test_button.setEnabled(chosen)
        self.remove_button.setEnabled(chosen)

    def _url_changed(self, text: str) -> None:
        try:
            self.name.setPlaceholderText(default_name(normalize_url(text)) if text.strip() else "")
        except RemoteError:
            self.name.setPlaceholderText("")

    # ------------------------------------------------------------------ actions
    def show_offline(self, on: bool) -> None:
        """Say up front that offline mode is on (the client refuses anyway)."""
        self.offline_note.setVisible(on)
        tip = "Offline mode is on: nothing is sent" if on else "Ask the server for its models"
        self.test_button.setToolTip(tip)

    def offline(self) -> bool | None:
        """True when the General page's switch is on (even before Save); otherwise None, so
        that the client follows the saved settings (on there still means offline)."""
        return True if self._offline() else None

    def test_selected(self) -> None:
        server = self.selected()
        if server is None:
            return
        try:
            key = self.registry.key(server)
        except RemoteError as exc:
            self._say(str(exc), error=True)
            return
        self._ask(server, key, lambda models: self._show_models(server, models))

    def add(self) -> None:
        """Add the server of the form (asking it for its models first, unless unticked)."""
        try:
            url = normalize_url(self.url.text())
        except RemoteError as exc:
            self._say(str(exc), error=True)
            return
        name = self.name.text().strip() or default_name(url)
        key = self.key.text().strip() or None
        if self.registry.find(name) is not None:
            self._say(f"A server named {name!r} already exists; remove it first or choose "
                      f"another name.", error=True)
            return
        if not self.check.isChecked():
            self._register(url, key, name, None)
            return
        self._ask(RemoteServer(name, url), key,
                  lambda models: self._register(url, key, name, models), adding=True)

    def remove_selected(self) -> None:
        server = self.selected()
        if server is None or not self.confirm(
                "Remove server", f"Remove {server.name} ({server.shown_url}) and forget its key?"):
            return
        try:
            self.registry.remove(server.name)
        except (RemoteError, OSError) as exc:
            self._say(f"Not removed: {exc}", error=True)
            return
        self._say(f"Removed {server.name}.")
        self.models.hide()
        self.refresh()
        self.changed.emit()

    def confirm(self, title: str, text: str) -> bool:
        answer = QMessageBox.question(self, title, text)
        return answer == QMessageBox.StandardButton.Yes

    # ------------------------------------------------------------------ off the GUI thread
    def _ask(self, server: RemoteServer, key: str | None,
             then: Callable[[list[str]], None], adding: bool = False) -> None:
        self._asking += 1
        number, offline = self._asking, self.offline()
        self._set_busy(True)
        self.models.hide()
        self._say(f"Asking {server.name} ({server.shown_url}) for its models…")

        def done(models: list[str]) -> None:
            if number == self._asking:
                self._set_busy(False)
                then(models)

        def failed(exc: BaseException) -> None:
            if number == self._asking:
                self._set_busy(False)
                self._failed(server, exc, adding)

        background.run(lambda: _models(server, key, offline), done=done, failed=failed)

    def _register(self, url: str, key: str | None, name: str, models: list[str] | None) -> None:
        try:
            server = self.registry.add(url, key=key, name=name)
        except (RemoteError, OSError) as exc:
            self._say(f"Not added: {exc}", error=True)
            return
        self.url.clear()
        self.key.clear()
        self.name.clear()
        self.refresh(select=server.name)
        if models is None:
            self._say(f"Added {server.name} ({server.shown_url}) without contacting it.")
        else:
            self._show_models(server, models, added=True)
        self.changed.emit()

    def _show_models(self, server: RemoteServer, models: list[str], added: bool = False) -> None:
        count = f"{len(models)} model{'s' * (len(models) != 1)}"
        self._say(f"{'Added' if added else 'Connected to'} {server.name}: {count}.")
        self.models.clear()
        self.models.addItems([f"{server.name}/{terminal_safe(m)}" for m in models])
        self.models.setVisible(bool(models))

    def _failed(self, server: RemoteServer, exc: BaseException, adding: bool) -> None:
        from app.core.remote_client import OfflineError

        if isinstance(exc, OfflineError):
            self._say(f"Offline mode is on, so Corral did not contact {server.name}. Turn it off "
                      f"on the General page (and Save) to test it, or untick \"Ask it for its "
                      f"models\" to add it without contacting it.", error=True)
            return
        why = str(exc) if isinstance(exc, RemoteError) else f"{type(exc).__name__}: {exc}"
        then = (" Nothing was added; check the address and key, or untick \"Ask it for its "
                "models\" to add it anyway." if adding else "")
        self._say(f"Connection test failed: {why}.{then}", error=True)

    def _set_busy(self, busy: bool) -> None:
        self.add_button.setEnabled(not busy)
        if busy:
            self.test_button.setEnabled(False)
        else:
            self._selection_changed()

    def _say(self, text: str, error: bool = False) -> None:
        self.status.setProperty("role", "error" if error else None)
        self.status.style().unpolish(self.status)
        self.status.style().polish(self.status)
        self.status.setText(terminal_safe(text))
        self.status.setVisible(bool(text))

    def message(self) -> str:
        return self.status.text()
