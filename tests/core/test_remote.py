"""Remote engines: the server registry and its keys, and chatting through Corral's remote path
with servers Corral did not write (llama-cpp-python's own OpenAI server) and with another Corral."""

from __future__ import annotations

import json
import os
import re
import socket
import stat
import subprocess
import sys
import threading

import pytest
from keyring.backends import fail

from app.core.engine import SamplingParams
from app.core.library import Library
from app.core.remote import RemoteError, ServerRegistry, normalize_url, resolve
from app.core.remote_client import RemoteBackend, list_remote_models, open_remote
from app.core.server import ServeConfig, Server
from app.testing.keyrings import MemoryKeyring, keyring_as
from app.testing.servers import free_port, llama_cpp_server

pytestmark = pytest.mark.timeout(300)


@pytest.fixture
def no_keyring():
    with keyring_as(fail.Keyring()):
        yield


@pytest.fixture
def memory_keyring():
    with keyring_as(MemoryKeyring()) as ring:
        yield ring


def test_urls_and_names():
    assert normalize_url("gpu-box:8080") == "http://gpu-box:8080/v1"
    assert normalize_url("https://api.example.com/") == "https://api.example.com/v1"
    assert normalize_url("http://h/openai/v1/") == "http://h/openai/v1"
    with pytest.raises(RemoteError):
        normalize_url("ftp://h")


def test_registry_without_a_keyring_keeps_keys_in_an_owner_only_file(tmp_path, no_keyring):
    reg = ServerRegistry(tmp_path)
    s = reg.add("http://10.0.0.5:8080", key="sk-123")
    assert (s.name, s.url, s.key_store) == ("10.0.0.5-8080", "http://10.0.0.5:8080/v1", "file")
    assert "sk-123" not in reg.path.read_text()
    assert stat.S_IMODE(os.stat(reg.keys_path).st_mode) == 0o600
    assert reg.key(reg.get("10.0.0.5-8080")) == "sk-123"
    reg.add("http://other:1234", name="big")
    assert [x.name for x in reg.list()] == ["10.0.0.5-8080", "big"]
    assert reg.get("big").key_store is None and reg.key(reg.get("big")) is None
    with pytest.raises(RemoteError, match="already exists"):
        reg.add("http://x", name="BIG")
    with pytest.raises(RemoteError, match="no '/'"):
        reg.add("http://x", name="a/b")
    reg.remove("10.0.0.5-8080")
    assert json.loads(reg.keys_path.read_text()) == {}
    assert resolve("big/llama-70b", reg).model == "llama-70b"
    assert resolve("big/org/model:q4", reg).model == "org/model:q4"
    assert resolve("nobody/model", reg) is None and resolve("tiny", reg) is None


def test_registry_uses_the_os_keyring_when_there_is_one(tmp_path, memory_keyring):
    reg = ServerRegistry(tmp_path)
    s = reg.add("http://h:1", key="sk-9", name="h")
    assert s.key_store == "keyring" and not reg.keys_path.exists()
    assert memory_keyring.data == {("corral", "server:h"): "sk-9"}
    assert reg.key(s) == "sk-9"
    reg.remove("h")
    assert memory_keyring.data == {}


# --------------------------------------------------------------------------- llama.cpp's server

@pytest.fixture(scope="module")
def llama_server(tiny_model):
    """`python -m llama_cpp.server` (llama-cpp-python's server extra) on loopback."""
    with llama_cpp_server(tiny_model) as url:
        yield url


@pytest.fixture
def registry(tmp_path, no_keyring):
    return ServerRegistry(tmp_path)


GREEDY = SamplingParams(max_tokens=24, temperature=0, repeat_penalty=1.0)
HELLO = [{"role": "user", "content": "hello"}]


def test_chat_with_llama_cpp_server_through_the_remote_path(llama_server, registry):
    registry.add(llama_server, name="llama")
    models, errors = list_remote_models(registry)
    assert [m.id for m in models] == ["llama/tiny"] and errors == {}
    backend, model = open_remote("llama/tiny", registry)
    try:
        stream = backend.chat(model, HELLO, GREEDY)
        pieces = list(stream)
        assert len(pieces) > 1 and stream.text == "".join(pieces)
        assert stream.stats.generated_tokens == 24 and stream.stats.stop_reason == "length"
        assert stream.stats.ttft_s is not None

        again = backend.chat(model, HELLO, GREEDY)
        assert "".join(again) == stream.text  # greedy: the same reply

        full = stream.text
        stop = full[len(full) // 2: len(full) // 2 + 3]
        cut = full.find(stop)
        assert cut > 0
        stopped = backend.chat(model, HELLO, SamplingParams(
            max_tokens=24, temperature=0, repeat_penalty=1.0, stop=(stop,)))
        assert "".join(stopped) == full[:cut]
        assert stopped.stats.stop_reason == "stop"
    finally:
        backend.close()


def test_stopping_a_remote_stream(llama_server, registry):
    registry.add(llama_server, name="llama")
    backend, model = open_remote("llama/tiny", registry)
    try:
        stream = backend.complete(model, "hello", SamplingParams(max_tokens=400, temperature=0))
        for i, _ in enumerate(stream):
            if i == 2:
                backend.stop()
        assert stream.stats.stop_reason == "cancelled" and stream.stats.generated_tokens == 3
        left = backend.complete(model, "hello", SamplingParams(max_tokens=400, temperature=0))
        for _ in left:
            break  # leaving the loop is a stop too (the iterator is closed at once)
        assert left.stats.stop_reason == "cancelled"
        after = backend.complete(model, "hello", SamplingParams(max_tokens=4, temperature=0))
        assert len(list(after)) == 4 and after.stats.stop_reason == "length"
    finally:
        backend.close()


def test_unreachable_and_unknown_models_are_remote_errors(llama_server, registry):
    registry.add(f"http://127.0.0.1:{free_port()}", name="gone")
    registry.add(llama_server, name="llama")
    models, errors = list_remote_models(registry)
    assert [m.id for m in models] == ["llama/tiny"] and "gone" in errors
    backend, _ = open_remote("gone/x", registry)
    with pytest.raises(RemoteError, match="gone"):
        list(backend.chat("x", HELLO, GREEDY))
    backend.close()


# --------------------------------------------------------------------------- another Corral

def test_another_corral_with_a_key(make_model, tmp_path, registry, monkeypatch):
    monkeypatch.setenv("CORRAL_HOME", str(tmp_path / "home"))
    make_model("tiny", folder=tmp_path / "models", name="tiny")
    with Server(ServeConfig(port=0, threads=2, api_key="k"),
                library=Library(models_dir=tmp_path / "models", data_dir=tmp_path / "data",
                                cache_dir=tmp_path / "cache")) as srv:
        registry.add(srv.url, name="box", key="k")
        registry.add(srv.url, name="nokey")
        backend, model = open_remote("box/tiny.F32", registry)
        try:
            stream = backend.chat(model, HELLO, GREEDY)
            assert len(list(stream)) > 1
            assert stream.stats.prompt_tokens > 0  # Corral sends usage while streaming
            assert stream.stats.generated_tokens == 24
        finally:
            backend.close()
        nokey = RemoteBackend.for_server(registry.get("nokey"), registry)
        with pytest.raises(RemoteError, match="401"):
            nokey.models()
        nokey.close()


# --------------------------------------------------------------------------- the command

def corral(tmp_path, *args, input=None):
    """The shipped command, as `python -m app` (nothing re-registered here)."""
    env = dict(os.environ, CORRAL_HOME=str(tmp_path / "home"),
               PYTHON_KEYRING_BACKEND="keyring.backends.fail.Keyring")
    return subprocess.run([sys.executable, "-m", "app", *args], env=env, text=True,
                          capture_output=True, input=input, timeout=120)


def test_servers_command(llama_server, tmp_path):
    r = corral(tmp_path, "servers", "add", llama_server, "--name", "llama", "--key", "-",
               input="sk-abc\n")
    assert r.returncode == 0, r.stderr
    assert "Added llama: " + llama_server + "/v1, 1 model" in r.stdout
    assert "owner-only" in r.stdout
    r = corral(tmp_path, "servers", "list", "--models")
    assert r.returncode == 0 and "llama/tiny" in r.stdout and "sk-abc" not in r.stdout
    r = corral(tmp_path, "servers", "add", f"http://127.0.0.1:{free_port()}", "--name", "x")
    assert r.returncode == 1 and "cannot reach" in r.stderr and "--no-check" in r.stderr
    assert len(r.stderr.strip().splitlines()) == 1
    r = corral(tmp_path, "servers", "rm", "llama")
    assert r.returncode == 0 and "Removed llama" in r.stdout
    r = corral(tmp_path, "servers", "rm", "llama")
    assert r.returncode == 1 and "no server named" in r.stderr


def test_corral_chat_takes_a_remote_model_id_like_a_local_one(llama_server, tmp_path):
    """Issue 8, item 4: `corral chat SERVER/MODEL` streams from the registered server."""
    r = corral(tmp_path, "servers", "add", llama_server, "--name", "llama")
    assert r.returncode == 0, r.stderr
    args = ("chat", "llama/tiny", "-p", "hello", "--max-tokens", "12", "--temp", "0",
            "--repeat-penalty", "1.0")
    first, second = corral(tmp_path, *args), corral(tmp_path, *args)
    assert first.returncode == 0, first.stderr
    assert first.stdout.strip() and first.stdout == second.stdout  # greedy: the same reply
    assert "12 tokens" in first.stderr and "remote llama/tiny" in first.stderr
    # No server by that name: it is a local path, and there is no such file.
    r = corral(tmp_path, "chat", "nosuchserver/tiny", "-p", "hi")
    assert r.returncode == 1 and len(r.stderr.strip().splitlines()) == 1
    assert "nosuchserver/tiny" in r.stderr and "does not exist" in r.stderr


# --------------------------------------------------------------------------- hostile servers

class Scripted:
    """A server that answers each path with the bytes it is given (and counts requests)."""

    def __init__(self, answers: dict[str, bytes]):
        from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

        self.hits: list[str] = []
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def _answer(self):
                outer.hits.append(self.path)
                length = int(self.headers.get("content-length") or 0)
                self.rfile.read(length)
                data = answers[self.path]
                self.send_response(200)
                self.send_header("content-length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            do_GET = do_POST = _answer

            def log_message(self, *args):
                pass

        self.http = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.http.server_address[1]}"
        threading.Thread(target=self.http.serve_forever, daemon=True).start()

    def close(self):
        self.http.shutdown()
        self.http.server_close()


@pytest.mark.parametrize("models, event, said", [
    (b"[" * 100_000 + b"]" * 100_000, b"data: []", "not a JSON object"),
    (b'{"data": "xyz"}', b'data: {"choices": "x"}', "choices that are not a list"),
    (b'{"data": [{"id": 5}]}', b'data: {"choices": [{"text": 5}]}', "text is not text"),
    (b" " * (9 * 1024 * 1024), b"data: " + b"[" * 100_000, "not JSON"),
    # an event line with no end in sight: refused at 1 MiB rather than buffered whole
    (b'{"data": "xyz"}', b"data: " + b"x" * (64 * 1024 * 1024), "an event line longer than 1.05 MB"),
])
def test_a_hostile_server_s_answers_are_remote_errors(registry, models, event, said):
    server = Scripted({"/v1/models": models, "/v1/completions": event + b"\n\n"})
    try:
        registry.add(server.url, name="odd", key="sk-1")
        backend = RemoteBackend.for_server(registry.get("odd"), registry, offline=False)
        with pytest.raises(RemoteError, match="odd: "):
            backend.models()
        with pytest.raises(RemoteError, match=said):
            list(backend.complete("m", "hi"))
        backend.close()
    finally:
        server.close()


def test_offline_mode_sends_nothing(registry, tmp_path, monkeypatch):
    from app.core.remote_client import OfflineError
    from app.core.settings import Settings, save_settings

    server = Scripted({"/v1/models": b'{"data": [{"id": "m"}]}'})
    try:
        registry.add(server.url, name="box")
        monkeypatch.setenv("CORRAL_HOME", str(tmp_path / "home"))
        save_settings(Settings(offline=True))
        backend = RemoteBackend.for_server(registry.get("box"), registry)
        with pytest.raises(OfflineError, match="offline mode is on.*box"):
            backend.models()
        with pytest.raises(OfflineError):
            list(backend.chat("m", HELLO, GREEDY))
        models, errors = list_remote_models(registry)
        assert models == [] and "offline mode is on" in errors["box"]
        assert server.hits == []
        assert RemoteBackend.for_server(registry.get("box"), registry, offline=False).models() == ["m"]
        assert server.hits == ["/v1/models"]
    finally:
        server.close()


class DropsMidReply:
    """A real listener that answers a completion with 200 and two pieces, then either closes
    the connection in the middle of its chunked body (`quiet` False) or says nothing more
    until the test ends (`quiet` True)."""

    PIECES = ("Once", " upon")

    def __init__(self, quiet: bool = False):
        self.quiet, self.done = quiet, threading.Event()
        self.sock = socket.create_server(("127.0.0.1", 0))
        self.url = f"http://127.0.0.1:{self.sock.getsockname()[1]}"
        threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self):
        conn, _ = self.sock.accept()
        with conn:
            # The whole request is read first: closing on unread bytes would send a reset,
            # not the orderly close of a server that stops mid-body.
            data = b""
            while b"\r\n\r\n" not in data:
                data += conn.recv(65536)
            head, body = data.split(b"\r\n\r\n", 1)
            length = int(re.search(rb"(?i)content-length: *(\d+)", head)[1])
            while len(body) < length:
                body += conn.recv(65536)
            conn.sendall(b"HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\n"
                         b"transfer-encoding: chunked\r\n\r\n")
            for piece in self.PIECES:
                event = b"data: " + json.dumps({"choices": [{"text": piece}]}).encode() + b"\n\n"
                conn.sendall(b"%x\r\n%s\r\n" % (len(event), event))
            if self.quiet:
                self.done.wait(60)

    def close(self):
        self.done.set()
        self.sock.close()


@pytest.mark.parametrize("quiet", [False, True])
def test_a_server_that_drops_mid_reply_is_said_so_and_the_partial_reply_is_kept(registry, quiet):
    server = DropsMidReply(quiet)
    try:
        registry.add(server.url, name="box")
        backend = RemoteBackend(registry.get("box"), offline=False, read_timeout=1)
        stream = backend.complete("m", "tell me a story")
        pieces: list[str] = []
        with pytest.raises(RemoteError) as raised:
            for piece in stream:
                pieces.append(piece)
        backend.close()
    finally:
        server.close()
    where = f"box ({server.url}/v1)"
    if quiet:
        assert str(raised.value) == f"{where} stopped answering mid-reply: nothing came for 1 s"
    else:
        assert str(raised.value).startswith(
            f"the connection to {where} dropped mid-reply: peer closed connection"), raised.value
    assert pieces == list(DropsMidReply.PIECES) and stream.text == "Once upon"
    assert stream.stats.stop_reason == "error" and stream.stats.generated_tokens == 2
