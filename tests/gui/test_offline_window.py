"""Offline mode in the window: a reply from a registered server (SERVER/MODEL) contacts nothing,
is saved as failed and says why. (The CLI and `corral serve` faces: test_hostile_cli.py; the
Servers page of Settings: test_gui_servers.py.)"""

from __future__ import annotations

import pytest

from app.core.chats import ChatStore
from app.core.remote import ServerRegistry
from app.core.settings import Settings, save_settings

WAIT = 60_000


@pytest.mark.parametrize("offline", [True, False])
def test_a_window_reply_from_a_registered_server_in_offline_mode(qtbot, home, loopback_listener,
                                                                 offline):
    from app.core.turns import TurnOptions, TurnRequest, resolve_model
    from app.gui.workers import EngineWorker

    port, accepted = loopback_listener
    url = f"http://127.0.0.1:{port}"
    ServerRegistry().add(url, name="box")  # registering asks nothing of the server
    save_settings(Settings(offline=offline))
    store = ChatStore()
    conv = store.create_conversation(title="remote")
    store.add_message(conv.id, "user", "hello")
    writer = store.begin_reply(conv.id)
    worker = EngineWorker()
    failures: list[str] = []
    worker.failed.connect(lambda _rid, message: failures.append(message))
    try:
        request = TurnRequest(resolve_model("box/m"),
                              messages=({"role": "user", "content": "hello"},),
                              options=TurnOptions(overrides={"max_tokens": 4}))
        with qtbot.waitSignal(worker.failed, timeout=WAIT):
            worker.generate(request, writer)
        saved = store.message(writer.message_id)
        assert saved.state == "error" and saved.content == ""
        [message] = failures
        if offline:  # said, and nothing sent: not even a connection
            assert "offline mode is on" in message and "box" in message, message
            assert accepted.empty()
        else:  # the control: the same turn does reach the server (which hangs up at once)
            assert "offline" not in message
            assert accepted.get(timeout=10)[0] == "127.0.0.1"
    finally:
        assert worker.dispose()
        store.close()
