"""Settings → Servers (issue 16 §2, issue 17 §5) against real listeners started by the test:
`corral serve` (the shipped command) and llama-cpp-python's own `python -m llama_cpp.server`,
on 127.0.0.1 with a generated model. Add → test lists the model → remove; a server that is
down, and one that refuses the key, each give a clear message; offline mode sends nothing;
the page says where keys are kept when no OS keyring works. pytest-qt, offscreen."""

from __future__ import annotations

import json
import os
import socket
import stat
import threading

import pytest
from keyring.backends import fail
from PySide6.QtWidgets import QLabel

from app.core.remote import ServerRegistry
from app.testing.keyrings import keyring_as
from app.testing.servers import corral_serve, free_port, llama_cpp_server

pytestmark = pytest.mark.timeout(300)


@pytest.fixture
def no_keyring():
    with keyring_as(fail.Keyring()):
        yield


@pytest.fixture(scope="module")
def llama_url(tiny_model):
    with llama_cpp_server(tiny_model, alias="tiny", api_key="right-key") as url:
        yield url


@pytest.fixture
def corral_url(home, make_model):
    make_model("tiny", folder=home / "models", name="tiny")
    with corral_serve(home, api_key="serve-key") as url:
        yield url


@pytest.fixture
def servers(open_window, qtbot, no_keyring):
    """The Servers page of the Settings dialog of a fresh window."""
    window = open_window()
    window.open_settings()
    dialog = window.settings_dialog
    page = dialog.show_page("servers")
    page.confirm = lambda title, text: True  # the question box, answered yes
    yield page
    dialog.reject()


def add(page, qtbot, url, *, key="", name="") -> None:
    page.url.setText(url)
    page.key.setText(key)
    page.name.setText(name)
    page.add_button.click()
    qtbot.waitUntil(lambda: page.add_button.isEnabled(), timeout=60_000)


def press_test(page, qtbot, name) -> list[str]:
    """Select `name`, press Test connection, wait for the answer: the models listed."""
    row = page.server_names().index(name)
    page.list.setCurrentItem(page.list.topLevelItem(row))
    page.test_button.click()
    assert not page.test_button.isEnabled()  # busy: the request runs off the GUI thread
    qtbot.waitUntil(lambda: page.test_button.isEnabled(), timeout=60_000)
    return [page.models.item(i).text() for i in range(page.models.count())] \
        if page.models.isVisibleTo(page) else []


def test_add_test_and_remove_a_corral_serve(servers, qtbot, corral_url):
    page = servers
    add(page, qtbot, corral_url, key="serve-key", name="box")
    assert page.server_names() == ["box"]
    assert page.message() == "Added box: 1 model."
    assert [page.models.item(i).text() for i in range(page.models.count())] == ["box/tiny.F32"]
    assert page.list.topLevelItem(0).text(2) == "owner-only file"
    # The same registry the CLI uses: its files, the key apart and owner-only.
    registry = ServerRegistry()
    assert [s.name for s in registry.list()] == ["box"]
    assert registry.key(registry.get("box")) == "serve-key"
    assert "serve-key" not in registry.path.read_text()
    assert stat.S_IMODE(os.stat(registry.keys_path).st_mode) == 0o600
    assert stat.S_IMODE(os.stat(registry.path).st_mode) == 0o600

    assert press_test(page, qtbot, "box") == ["box/tiny.F32"]
    assert page.message() == "Connected to box: 1 model."
    page.remove_button.click()
    assert page.server_names() == [] and page.message() == "Removed box."
    assert registry.list() == [] and json.loads(registry.keys_path.read_text()) == {}


def test_llama_cpp_server_with_its_key_and_a_wrong_one(servers, qtbot, llama_url):
    page = servers
    add(page, qtbot, llama_url, key="wrong-key", name="llama")
    assert page.server_names() == []  # refused: nothing added
    assert page.message().startswith("Connection test failed: llama: 401")
    assert "Nothing was added" in page.message()
    assert page.status.property("role") == "error"

    add(page, qtbot, llama_url, key="right-key", name="llama")
    assert page.server_names() == ["llama"] and page.message() == "Added llama: 1 model."
    assert press_test(page, qtbot, "llama") == ["llama/tiny"]
    page.remove_button.click()
    assert page.server_names() == []


def test_a_server_that_is_down_is_said_clearly(servers, qtbot):
    page = servers
    down = f"http://127.0.0.1:{free_port()}"
    add(page, qtbot, down, name="gone")
    message = page.message()
    assert message.startswith(f"Connection test failed: cannot reach gone ({down}/v1): ")
    assert message.endswith(". Nothing was added; check the address and key, or untick \"Ask "
                            "it for its models\" to add it anyway.")
    assert page.server_names() == []
    # Added without asking it (the CLI's --no-check), then tested: the same clear message.
    page.check.setChecked(False)
    add(page, qtbot, down, name="gone")
    assert page.server_names() == ["gone"]
    assert page.message() == f"Added gone ({down}/v1) without contacting it."
    assert press_test(page, qtbot, "gone") == []
    assert page.message() == message.split(" Nothing was added")[0]
    # A malformed address is refused before anything is sent.
    add(page, qtbot, "ftp://nowhere", name="x")
    assert "is not an http:// or https:// server address" in page.message()


class Listener:
    """A TCP listener that records every connection (an HTTP request would be one)."""

    def __init__(self) -> None:
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(8)
        self.url = f"http://127.0.0.1:{self.sock.getsockname()[1]}"
        self.connections = 0
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            self.connections += 1
            conn.close()


def test_offline_mode_sends_nothing_and_says_so(servers, qtbot):
    page = servers
    listener = Listener()
    try:
        dialog = page.window()
        dialog.offline.setChecked(True)  # on the General page, not saved yet
        assert page.offline_note.isVisibleTo(page)
        assert "Offline mode is on" in page.test_button.toolTip()
        add(page, qtbot, listener.url, name="box")
        assert page.message().startswith("Offline mode is on, so Corral did not contact box.")
        assert page.server_names() == []
        page.check.setChecked(False)
        add(page, qtbot, listener.url, name="box")
        assert press_test(page, qtbot, "box") == []
        assert page.message().startswith("Offline mode is on, so Corral did not contact box.")
        assert listener.connections == 0
    finally:
        listener.sock.close()


def test_where_keys_are_kept_is_said(servers):
    text = servers.findChild(QLabel, "key-storage").text()
    path = ServerRegistry().keys_path
    assert text == f"Server keys are kept in {path}, readable by you alone (no OS keyring is available)."
    general = servers.window().general
    assert general.token_note.text().endswith("readable by you alone.")
