"""One conversation, one model, three faces: `corral chat` and `corral serve` (the shipped
commands, each run as `python -m app` on the test's CORRAL_HOME; serve asked over HTTP) and the
window (its chat screen and engine worker) send the model the same prompt, byte for byte,
because all three go through the core's turn pipeline. `corral prompt` shows that same text
without loading the model. What serve sent is read where it reaches the engine
(app.testing.prompt_tap: the prompt handed to the llama.cpp runner, recorded in the serve
process)."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import httpx2
import pytest

from app.core.chats import ChatStore
from app.core.library import Library
from app.core.server import ServeConfig, Server
from app.core.settings import load_settings
from app.core.turns import make_default_template
from app.testing.models import CHATML_TEMPLATE
from app.testing.prompt_tap import PromptTap
from app.testing.servers import corral_serve

WAIT = 60_000
SYSTEM = "Be brief."
HISTORY = [{"role": "user", "content": "What is a llama?"},
           {"role": "assistant", "content": "A camelid of the Andes."}]
QUESTION = "And an alpaca?"


def corral(home, *args: str) -> subprocess.CompletedProcess:
    env = dict(os.environ, CORRAL_HOME=str(home))
    return subprocess.run([sys.executable, "-m", "app", *args], capture_output=True, text=True,
                          env=env, timeout=180)


def through_the_cli(home, tmp_path, model_id: str) -> tuple[str, str]:
    """(what `corral chat` sent, what `corral prompt` shows) for the conversation."""
    messages = tmp_path / "conversation.json"
    messages.write_text(json.dumps([{"role": "system", "content": SYSTEM}, *HISTORY]),
                        encoding="utf-8")
    sent = tmp_path / "sent.txt"
    r = corral(home, "chat", model_id, "--messages", str(messages), "-p", QUESTION,
               "--save-prompt", str(sent), "--max-tokens", "1", "--temp", "0",
               "--threads", "2")
    assert r.returncode == 0, r.stderr
    whole = tmp_path / "whole.json"
    whole.write_text(json.dumps([{"role": "system", "content": SYSTEM}, *HISTORY,
                                 {"role": "user", "content": QUESTION}]), encoding="utf-8")
    shown = corral(home, "prompt", str(Library().get(model_id).path), "--messages", str(whole))
    assert shown.returncode == 0, shown.stderr
    return sent.read_text(encoding="utf-8"), shown.stdout


def through_the_server(home, tmp_path, monkeypatch, model_id: str) -> str:
    """What `corral serve --port 0 --threads 2` (the command, on `home`) sent the model for the
    conversation asked of it over HTTP: the one prompt it handed its engine."""
    tap = PromptTap(tmp_path / "serve-tap")
    with monkeypatch.context() as env:  # the serve process inherits this PYTHONPATH
        env.setenv("PYTHONPATH", tap.python_path(os.environ.get("PYTHONPATH")))
        with corral_serve(home) as url:
            r = httpx2.post(url + "/chat/completions", timeout=120, json={
                "model": model_id, "max_tokens": 1, "temperature": 0,
                "messages": [{"role": "system", "content": SYSTEM}, *HISTORY,
                             {"role": "user", "content": QUESTION}]})
    assert r.status_code == 200, r.text
    assert r.json()["model"] == model_id
    sent = tap.prompts()
    assert len(sent) == 1, sent  # one generation: the request's
    return sent[0]


def through_the_window(qtbot, model_id: str) -> str:
    from app.gui.chat import ChatScreen
    from app.gui.workers import EngineWorker

    store = ChatStore()
    conv = store.create_conversation(title="llamas", model_id=model_id, system_prompt=SYSTEM,
                                     params={"threads": 2, "max_tokens": 1, "temperature": 0.0})
    for m in HISTORY:
        store.add_message(conv.id, m["role"], m["content"])
    worker = EngineWorker()
    screen = ChatScreen(store, worker, Library(), load_settings())
    qtbot.addWidget(screen)
    try:
        assert screen.current_conversation_id() == conv.id
        with qtbot.waitSignal(worker.promptReady, timeout=WAIT) as sent:
            screen.send(QUESTION)
        qtbot.waitUntil(lambda: not screen.is_busy(), timeout=WAIT)
        return sent.args[1].text
    finally:
        screen.shutdown()
        assert worker.dispose()
        store.close()


@pytest.mark.timeout(400)
@pytest.mark.parametrize("name, options, default, expected_start", [
    ("vicuna-7b-v1.5", {}, None, "Be brief. USER: What is a llama? ASSISTANT: A camelid"),
    ("vicuna-7b-v1.5", {}, "chatml", "<|im_start|>system\nBe brief.<|im_end|>"),
    ("own-template", {"chat_template": CHATML_TEMPLATE}, None,
     "<|im_start|>system\nBe brief.<|im_end|>\n<|im_start|>user\nWhat is a llama?"),
])
def test_one_conversation_gives_one_prompt_in_every_face(qtbot, home, tmp_path, monkeypatch,
                                                        make_model, name, options, default,
                                                        expected_start):
    model_id = Library().import_file(make_model("tiny", name=name, **options)).id
    if default:  # the model's own default template, chosen once: every face follows it
        make_default_template(Library(), model_id, default)
    cli_sent, cli_shown = through_the_cli(home, tmp_path, model_id)
    served = through_the_server(home, tmp_path, monkeypatch, model_id)
    window = through_the_window(qtbot, model_id)
    assert cli_sent.startswith(expected_start), cli_sent
    assert QUESTION in cli_sent and HISTORY[1]["content"] in cli_sent
    assert served == cli_sent
    assert window == cli_sent
    assert cli_shown == cli_sent


def test_the_window_worker_streams_a_turn_from_a_registered_server(qtbot, home, make_model):
    """The worker picks the turn's backend: a SERVER/MODEL runs on that server's client."""
    from app.core.remote import ServerRegistry
    from app.core.turns import TurnOptions, TurnRequest, resolve_model
    from app.gui.workers import EngineWorker

    model_id = Library().import_file(make_model("tiny", name="remote-tiny")).id
    with Server(ServeConfig(port=0, threads=2), library=Library()) as server:
        ServerRegistry().add(server.url, name="box")
        ref = resolve_model(f"box/{model_id}")
        store = ChatStore()
        conv = store.create_conversation(title="remote")
        store.add_message(conv.id, "user", "hello")
        writer = store.begin_reply(conv.id)
        worker = EngineWorker()
        pieces: list[str] = []
        worker.tokens.connect(lambda _rid, text: pieces.append(text))
        try:
            request = TurnRequest(ref, messages=({"role": "user", "content": "hello"},),
                                  options=TurnOptions(overrides={"max_tokens": 6,
                                                                 "temperature": 0.0}))
            with qtbot.waitSignal(worker.finished, timeout=WAIT) as done:
                worker.generate(request, writer)
            result = done.args[1]
            assert (result.state, result.stopped_by) == ("complete", "token_limit")
            assert result.stats.generated_tokens == 6 and "".join(pieces) == result.text
            saved = store.message(writer.message_id)
            assert saved.content == result.text and saved.stats["stopped_by"] == "token_limit"
            assert server.worker.wait_idle(30)
            assert server.worker.finished[-1].prepared.messages[-1]["content"] == "hello"
        finally:
            assert worker.dispose()
            store.close()
