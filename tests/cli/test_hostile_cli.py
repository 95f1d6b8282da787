"""Hostile input to the shipped `corral` command (run as `python -m app`, nothing re-registered):
bytes that are not UTF-8, lone surrogates, NaN and huge sampling values, special files, escape
sequences in names, planted modules, passwords in URLs, offline mode. Each ends as one line on
stderr with a non-zero exit, never a traceback, and nothing reaches what it must not reach."""

from __future__ import annotations

import json
import os
import queue
import subprocess
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

pytestmark = pytest.mark.timeout(300)


def corral(home: Path, *args, input: bytes | None = None, cwd=None,
           timeout: float = 120) -> subprocess.CompletedProcess:
    env = dict(os.environ, CORRAL_HOME=str(home),
               PYTHON_KEYRING_BACKEND="keyring.backends.fail.Keyring")
    return subprocess.run([sys.executable, "-m", "app", *args], env=env, input=input, cwd=cwd,
                          capture_output=True, timeout=timeout)


def one_line(r: subprocess.CompletedProcess, code: int, *words: str) -> str:
    """The single `corral: …` line on stderr (the exit code checked, no traceback)."""
    err = r.stderr.decode("utf-8", "replace")
    assert r.returncode == code, (r.returncode, err)
    lines = [ln for ln in err.strip().splitlines() if not ln.startswith("corral: note:")]
    assert len(lines) == 1 and lines[0].startswith("corral: ") and "Traceback" not in err, err
    for word in words:
        assert word in lines[0], lines[0]
    return lines[0]


@pytest.fixture
def home(tmp_path) -> Path:
    return tmp_path / "home"


# --------------------------------------------------------------------------- text

def test_a_non_utf8_byte_in_chat_arguments_is_one_line(tiny_model, home):
    for flag in ("-p", "--system", "--stop"):
        args = ["chat", str(tiny_model), "-p", "hi", flag, b"caf\xe9 \xff"]
        if flag == "-p":
            args = ["chat", str(tiny_model), "-p", b"caf\xe9 \xff"]
        one_line(corral(home, *args), 2, flag, "byte that is not UTF-8 (0xe9) at character 3")


def test_a_prompt_on_stdin_that_is_not_utf8_is_one_line(tiny_model, home):
    r = corral(home, "chat", str(tiny_model), input=b"hello \xff world")
    one_line(r, 1, "stdin", "not UTF-8", "0xff", "offset 6")


def test_a_lone_surrogate_in_a_messages_file_is_one_line(home, tmp_path):
    messages = tmp_path / "m.json"
    messages.write_text('[{"role": "user", "content": "hi \\ud800"}]')
    r = corral(home, "prompt", "--template", "chatml", "--messages", str(messages))
    one_line(r, 1, "m.json", "[0].content", "lone surrogate (\\ud800)")
    assert r.stdout == b""
    r = corral(home, "prompt", "--template", "chatml", "--messages", str(messages),
               "--system", b"\xff")
    one_line(r, 2, "--system", "0xff")


# --------------------------------------------------------------------------- sampling

@pytest.mark.parametrize("flag, value", [
    ("--temp", "nan"), ("--temp", "inf"), ("--top-p", "nan"), ("--min-p", "-inf"),
    ("--repeat-penalty", "nan"), ("--repeat-penalty", "inf"), ("--repeat-last-n", "2147483647"),
    ("--top-k", "-1"), ("--max-tokens", "-5"),
])
def test_unusable_sampling_flags_are_refused_before_loading(tiny_model, home, flag, value):
    t0 = time.perf_counter()
    r = corral(home, "chat", str(tiny_model), "-p", "hi", f"{flag}={value}")
    one_line(r, 2, flag)
    assert r.stdout == b""
    assert time.perf_counter() - t0 < 30  # repeat_last_n 2**31 - 1 took 21 s and 8.4 GB


# --------------------------------------------------------------------------- files

def special_files(tmp_path: Path) -> dict[str, Path]:
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    big = tmp_path / "big"
    with open(big, "wb") as f:
        f.truncate(17 * 1024 * 1024)
    return {"/dev/zero": Path("/dev/zero"), "a FIFO": fifo, "a folder": tmp_path,
            "17 MiB": big}


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="needs FIFOs and /dev/zero")
def test_messages_and_grammar_files_are_read_with_bounds(tiny_model, home, tmp_path):
    for what, path in special_files(tmp_path).items():
        t0 = time.perf_counter()
        r = corral(home, "prompt", "--template", "chatml", "--messages", str(path), timeout=30)
        line = one_line(r, 1, str(path))
        assert any(w in line for w in ("not a file", "too large")), (what, line)
        r = corral(home, "chat", str(tiny_model), "-p", "hi", "--grammar-file", str(path),
                   timeout=30)
        line = one_line(r, 1, "--grammar-file", str(path))
        assert any(w in line for w in ("not a file", "too large")), (what, line)
        assert time.perf_counter() - t0 < 30, what


# --------------------------------------------------------------------------- names

def test_escape_sequences_in_names_never_reach_the_terminal(make_model, home, tmp_path):
    evil = "evil\x1b]0;pwned\x07\x1b[2J"
    broken = make_model("tiny", folder=tmp_path, name=evil, block_count=0)
    r = corral(home, "chat", str(broken), "-p", "hi")
    line = one_line(r, 1, "block_count")
    assert "\x1b" not in line and "\x07" not in line and "\\x1b]0;pwned\\x07" in line

    named = make_model("tiny", folder=tmp_path / "ok", name=evil, chat_template="{{ messages[0]['content'] }}")
    messages = tmp_path / "m.json"
    messages.write_text('[{"role": "user", "content": "hello"}]')
    r = corral(home, "prompt", str(named), "--messages", str(messages))
    assert r.returncode == 0, r.stderr
    assert b"\x1b" not in r.stderr and b"\x07" not in r.stderr
    assert b"evil\\x1b]0;pwned\\x07\\x1b[2J's own chat template" in r.stderr
    assert r.stdout == b"hello"


# --------------------------------------------------------------------------- isolation

CORRAL_SCRIPT = Path(sys.executable).with_name("corral")


@pytest.mark.skipif(not CORRAL_SCRIPT.exists(), reason="the installed `corral` script is absent")
def test_the_runner_does_not_import_modules_from_the_working_folder(tiny_model, home, tmp_path):
    """The installed `corral`, run from a folder holding modules the runner imports (`python -m
    app` would put the folder on its own path, as any `python -m` does)."""
    marker = tmp_path / "imported"
    for name in ("llama_cpp", "queue", "json", "ctypes"):
        (tmp_path / f"{name}.py").write_text(
            f"open({str(marker)!r}, 'a').write('{name}\\n')\nraise ImportError('planted')\n")
    env = dict(os.environ, CORRAL_HOME=str(home))
    r = subprocess.run([str(CORRAL_SCRIPT), "chat", str(tiny_model), "-p", "hello",
                        "--max-tokens", "4", "--temp", "0"], env=env, cwd=tmp_path,
                       capture_output=True, timeout=120)
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() and not marker.exists(), marker.read_text()


def test_the_runner_ignores_pythonpath(tiny_model, home, tmp_path):
    """A PYTHONPATH folder holding a module only the runner imports (llama_cpp): `corral` itself
    never imports it, and the runner, started isolated (python -I), does not look there."""
    planted = tmp_path / "planted"
    planted.mkdir()
    marker = tmp_path / "imported"
    (planted / "llama_cpp.py").write_text(
        f"open({str(marker)!r}, 'a').write('llama_cpp\\n')\nraise ImportError('planted')\n")
    env = dict(os.environ, CORRAL_HOME=str(home),
               PYTHONPATH=os.pathsep.join(filter(None, [str(planted), os.environ.get("PYTHONPATH")])))
    r = subprocess.run([str(CORRAL_SCRIPT), "chat", str(tiny_model), "-p", "hello",
                        "--max-tokens", "4", "--temp", "0"], env=env, capture_output=True,
                       timeout=120)
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() and not marker.exists(), marker.read_text()


# --------------------------------------------------------------------------- servers

class Listener:
    """A stand-in for a remote OpenAI server that counts every connection made to it and every
    request it gets (a client that connects and sends nothing is counted too)."""

    def __init__(self) -> None:
        self.requests: queue.Queue[str] = queue.Queue()
        self.connections = 0
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self):
                outer.requests.put(f"GET {self.path}")
                self._answer({"object": "list", "data": [{"id": "m", "object": "model"}]})

            def do_POST(self):
                outer.requests.put(f"POST {self.path}")
                self._answer({"error": {"message": "no"}}, 400)

            def _answer(self, body, status=200):
                data = json.dumps(body).encode()
                self.send_response(status)
                self.send_header("content-type", "application/json")
                self.send_header("content-length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, *args):
                pass

        class Server(ThreadingHTTPServer):
            def verify_request(self, request, client_address):  # once per accepted connection
                outer.connections += 1
                return True

        self.http = Server(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.http.server_address[1]}"
        threading.Thread(target=self.http.serve_forever, daemon=True).start()

    def seen(self) -> list[str]:
        out = []
        while not self.requests.empty():
            out.append(self.requests.get())
        return out

    def close(self) -> None:
        self.http.shutdown()
        self.http.server_close()


@pytest.fixture
def listener():
    server = Listener()
    yield server
    server.close()


def set_offline(home: Path, monkeypatch, offline: bool = True) -> None:
    from app.core.settings import Settings, save_settings

    monkeypatch.setenv("CORRAL_HOME", str(home))
    save_settings(Settings(offline=offline))


def test_a_password_in_a_server_url_is_never_shown(home, listener):
    url = listener.url.replace("http://", "http://bob:s3cret@")
    r = corral(home, "servers", "add", url, "--name", "box")
    assert r.returncode == 0, r.stderr
    out = r.stdout.decode() + r.stderr.decode()
    assert "s3cret" not in out and "bob:***@127.0.0.1" in out and "1 model" in out
    for args in (["servers", "list", "--models"], ["servers", "rm", "box"]):
        r = corral(home, *args)
        assert r.returncode == 0 and b"s3cret" not in r.stdout + r.stderr and b"bob:***@" in r.stdout
    corral(home, "servers", "add", url.replace(listener.url.rsplit(":", 1)[1], "1"),
           "--name", "gone", "--no-check")
    r = corral(home, "chat", "gone/m", "-p", "hi")
    one_line(r, 1, "cannot reach gone", "bob:***@")
    assert b"s3cret" not in r.stderr


def test_offline_mode_blocks_remote_servers_in_the_cli(home, listener, monkeypatch):
    r = corral(home, "servers", "add", listener.url, "--name", "box")
    assert r.returncode == 0, r.stderr
    assert listener.seen() == ["GET /v1/models"]  # the server works, and is counted
    set_offline(home, monkeypatch)
    one_line(corral(home, "chat", "box/m", "-p", "hi"), 1, "offline mode is on", "box")
    r = corral(home, "servers", "list", "--models")
    assert r.returncode == 1 and b"unavailable: offline mode is on" in r.stdout
    one_line(corral(home, "servers", "add", listener.url, "--name", "box2"), 1,
             "offline mode is on", "--no-check")
    assert (listener.seen(), listener.connections) == ([], 1)  # only the add, before
    set_offline(home, monkeypatch, False)  # and back: the same commands reach it again
    r = corral(home, "chat", "box/m", "-p", "hi")
    assert r.returncode == 1 and b"box: 400 no" in r.stderr
    assert (listener.seen(), listener.connections) == (["POST /v1/chat/completions"], 2)


def test_offline_mode_in_corral_serve(home, listener, monkeypatch, make_model):
    import httpx2

    make_model("tiny", folder=home / "models", name="tiny")
    assert corral(home, "servers", "add", listener.url, "--name", "box",
                  "--no-check").returncode == 0
    set_offline(home, monkeypatch)
    env = dict(os.environ, CORRAL_HOME=str(home), PYTHONUNBUFFERED="1")
    proc = subprocess.Popen([sys.executable, "-m", "app", "serve", "--port", "0"], env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        line = proc.stdout.readline()
        url = line.split(" at ")[1].split()[0]
        assert httpx2.get(url + "/models").json()["data"][0]["id"] == "tiny.F32"
        r = httpx2.post(url + "/chat/completions", timeout=60,
                        json={"model": "box/m", "messages": [{"role": "user", "content": "x"}]})
        assert r.status_code == 404
        assert "remote server box" in r.json()["error"]["message"]
        assert "offline mode is on" in r.json()["error"]["message"]
    finally:
        proc.terminate()
        _, err = proc.communicate(timeout=60)
    assert "offline mode is on" in err and "Traceback" not in err
    assert (listener.seen(), listener.connections) == ([], 0)


def test_the_api_key_can_stay_out_of_the_process_list(home, tmp_path, make_model):
    import httpx2

    key_file = tmp_path / "key"
    key_file.write_text("k3y-from-file\n")
    env = dict(os.environ, CORRAL_HOME=str(home), PYTHONUNBUFFERED="1")
    proc = subprocess.Popen([sys.executable, "-m", "app", "serve", "--port", "0",
                             "--api-key-file", str(key_file)], env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        url = proc.stdout.readline().split(" at ")[1].split()[0]
        if os.path.exists(f"/proc/{proc.pid}/cmdline"):
            assert b"k3y-from-file" not in Path(f"/proc/{proc.pid}/cmdline").read_bytes()
        assert httpx2.get(url + "/models").status_code == 401
        assert httpx2.get(url + "/models",
                          headers={"authorization": "Bearer k3y-from-file"}).status_code == 200
    finally:
        proc.terminate()
        _, err = proc.communicate(timeout=60)
    assert "k3y-from-file" not in err
    r = corral(home, "serve", "--port", "0", "--api-key", "visible", "--model", "nope")
    assert b"process list" in r.stderr and b"visible" not in r.stderr


def test_limits_are_said_in_the_app_s_decimal_units(tiny_model, home, tmp_path):
    """Every size shown goes through format_bytes: decimal, labelled (16 MiB is '16.8 MB')."""
    big = special_files(tmp_path)["17 MiB"]
    r = corral(home, "chat", str(tiny_model), input=b"x" * (16 * 1024 * 1024 + 1), timeout=60)
    assert one_line(r, 1) == "corral: stdin: the prompt is larger than 16.8 MB"
    r = corral(home, "prompt", "--template", "chatml", "--messages", str(big), timeout=30)
    assert one_line(r, 1, str(big)).endswith("is too large (17.8 MB; the limit is 16.8 MB)")
    r = corral(home, "chat", str(tiny_model), "-p", "hi", "--grammar-file", str(big), timeout=30)
    assert one_line(r, 1, str(big)).endswith("is too large (17.8 MB; the limit is 1.05 MB)")
    r = corral(home, "serve", "--help")
    assert " ".join(r.stdout.decode().split()).count("(default: 4194304, that is 4.19 MB)") == 1
