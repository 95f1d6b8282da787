"""`corral serve`: the OpenAI-compatible API, driven by the official `openai` client on
generated models, and its safety rules (key, body size, context, queue, disconnects, hosts)."""

from __future__ import annotations

import itertools
import json
import os
import queue
import re
import signal
import socket
import subprocess
import sys
import threading

import httpx2
import openai
import pytest

from app.core.library import Library
from app.core.server import ServeConfig, Server

pytestmark = pytest.mark.timeout(300)


@pytest.fixture(scope="module")
def home(tmp_path_factory, make_model):
    """A Corral home whose library holds: tiny, short (64-token context) and small (slow enough
    to be stopped mid-stream)."""
    root = tmp_path_factory.mktemp("serve-home")
    models = root / "models"
    make_model("tiny", folder=models, name="tiny")
    make_model("tiny", folder=models, name="short", context_length=64)
    make_model("small", folder=models, name="small")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("CORRAL_HOME", str(root))
        yield root


def start(home, **config) -> Server:
    library = Library(models_dir=home / "models")
    return Server(ServeConfig(port=0, threads=2, **config), library=library).start()


@pytest.fixture(scope="module")
def server(home):
    srv = start(home, max_queue=1)
    yield srv
    srv.stop()


@pytest.fixture(scope="module")
def guarded(home):
    srv = start(home, api_key="s3cret", cors=("http://app.example",), max_body=2000)
    yield srv
    srv.stop()


@pytest.fixture
def client(server):
    return openai.OpenAI(base_url=server.url, api_key="unused", max_retries=0, timeout=120)


def greedy(**kw):
    return dict(temperature=0, **kw)


def chat_text(client, stream=False, **kw):
    kw.setdefault("messages", [{"role": "user", "content": "hello"}])
    if not stream:
        r = client.chat.completions.create(model="tiny.F32", **kw)
        return r.choices[0].message.content, r
    chunks = list(client.chat.completions.create(model="tiny.F32", stream=True, **kw))
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    return text, chunks


# --------------------------------------------------------------------------- the API

def test_models_are_the_library(client):
    ids = {m.id for m in client.models.list()}
    assert ids == {"tiny.F32", "short.F32", "small.Q4_0"}
    assert client.models.retrieve("tiny.F32").owned_by == "corral"


def test_chat_with_usage_max_tokens_and_greedy_determinism(client):
    a, ra = chat_text(client, max_tokens=12, **greedy())
    b, rb = chat_text(client, max_tokens=12, **greedy())
    assert a and a == b
    assert ra.object == "chat.completion" and ra.choices[0].message.role == "assistant"
    assert ra.choices[0].finish_reason == "length"
    assert ra.usage.completion_tokens == 12 and ra.usage.prompt_tokens > 0
    assert ra.usage.total_tokens == ra.usage.prompt_tokens + 12


def test_streaming_chat_gives_the_same_text_and_usage(client):
    whole, _ = chat_text(client, max_tokens=16, **greedy())
    streamed, chunks = chat_text(client, stream=True, max_tokens=16,
                                 stream_options={"include_usage": True}, **greedy())
    assert streamed == whole
    assert chunks[0].choices[0].delta.role == "assistant"
    finals = [c.choices[0].finish_reason for c in chunks
              if c.choices and c.choices[0].finish_reason]
    assert finals == ["length"]
    assert chunks[-1].choices == [] and chunks[-1].usage.completion_tokens == 16
    timings = chunks[-2].model_extra["timings"]  # llama.cpp's server's extra, on the last choice
    assert timings["predicted_n"] == 16 and timings["predicted_per_second"] > 0


def test_completions_stream_and_not(client):
    r = client.completions.create(model="tiny.F32", prompt="hello world", max_tokens=10,
                                  **greedy())
    assert r.object == "text_completion" and r.usage.completion_tokens == 10
    pieces = list(client.completions.create(model="tiny.F32", prompt="hello world",
                                            max_tokens=10, stream=True, **greedy()))
    assert "".join(p.choices[0].text for p in pieces) == r.choices[0].text
    assert pieces[-1].choices[0].finish_reason == "length"


@pytest.mark.parametrize("stream", [False, True])
def test_stop_ends_the_reply_before_the_stop_string(client, stream):
    full = client.completions.create(model="tiny.F32", prompt="hello", max_tokens=24,
                                     **greedy()).choices[0].text
    stop = full[len(full) // 2: len(full) // 2 + 3]
    cut = full.find(stop)
    assert cut > 0
    if stream:
        events = list(client.completions.create(model="tiny.F32", prompt="hello", max_tokens=24,
                                                stop=[stop], stream=True, **greedy()))
        text = "".join(e.choices[0].text for e in events)
        reason = events[-1].choices[0].finish_reason
    else:
        r = client.completions.create(model="tiny.F32", prompt="hello", max_tokens=24, stop=stop,
                                      **greedy())
        text, reason = r.choices[0].text, r.choices[0].finish_reason
    assert text == full[:cut] and reason == "stop"


def test_seed_makes_sampling_repeatable(client):
    kw = dict(max_tokens=24, temperature=1.0, top_p=1.0, extra_body={"top_k": 0, "min_p": 0})
    a, _ = chat_text(client, seed=7, **kw)
    b, _ = chat_text(client, seed=7, **kw)
    c, _ = chat_text(client, seed=8, **kw)
    assert a == b and a != c


def test_template_extra_field(client):
    _, raw = chat_text(client, max_tokens=1, **greedy())
    _, chatml = chat_text(client, max_tokens=1, extra_body={"template": "chatml"}, **greedy())
    assert chatml.usage.prompt_tokens > raw.usage.prompt_tokens  # <|im_start|>user … framing
    with pytest.raises(openai.BadRequestError) as err:
        chat_text(client, max_tokens=1, extra_body={"template": "no-such-template"})
    assert err.value.body["code"] == "invalid_prompt" and "no-such-template" in err.value.message


def error_of(response) -> dict:
    body = response.json()
    assert set(body) == {"error"} and {"message", "type", "code"} <= set(body["error"])
    return body["error"]


# A model's own template that knows tool roles (not one Corral recognises as its own).
TOOL_TEMPLATE = (
    "{% for m in messages %}{% if m['role'] == 'tool' %}[result: {{ m['content'] }}]"
    "{% elif m['role'] == 'assistant_tool_call' %}[call: {{ m['content'] }}]"
    "{% else %}<{{ m['role'] }}>{{ m['content'] }}{% endif %}{% endfor %}"
    "{% if add_generation_prompt %}<assistant>{% endif %}")
TOOL_TURN = [{"role": "user", "content": "weather in Oslo?"},
             {"role": "assistant_tool_call", "content": "get_weather(city='Oslo')"},
             {"role": "tool", "content": "4 C, rain"}]


def test_tool_roles_reach_a_model_s_own_template_and_others_say_which_role(tmp_path,
                                                                           make_model):
    folder = tmp_path / "models"
    make_model("tiny", folder=folder, name="toolish", chat_template=TOOL_TEMPLATE)
    make_model("tiny", folder=folder, name="plain")
    with Server(ServeConfig(port=0, threads=2), library=Library(models_dir=folder)) as srv:
        client = openai.OpenAI(base_url=srv.url, api_key="unused", max_retries=0, timeout=120)
        reply = client.chat.completions.create(model="toolish.F32", messages=TOOL_TURN,
                                               max_tokens=2, temperature=0)
        assert reply.usage.completion_tokens == 2
        sent = srv.worker.finished[-1].prepared
        assert sent.template_id == "gguf" and sent.text == (
            "<user>weather in Oslo?[call: get_weather(city='Oslo')][result: 4 C, rain]<assistant>")
        for stream in (False, True):
            with pytest.raises(openai.BadRequestError) as err:
                client.chat.completions.create(model="plain.F32", messages=TOOL_TURN,
                                               max_tokens=2, stream=stream)
            body = err.value.body
            assert (body["code"], body["param"]) == ("invalid_prompt", "messages"), body
            assert "message 2 has role 'assistant_tool_call'" in body["message"], body
        for role, said in ((7, "must be a role's name"), ("", "must be a role's name")):
            r = httpx2.post(srv.url + "/chat/completions", json={
                "model": "toolish.F32", "messages": [{"role": role, "content": "x"}]})
            assert r.status_code == 400 and said in error_of(r)["message"], r.text
        r = httpx2.post(srv.url + "/chat/completions", json={"model": "toolish.F32", "messages": [
            {"role": "assistant", "content": None, "tool_calls": [{"id": "1"}]}]})
        assert r.status_code == 400 and error_of(r)["code"] == "unsupported_parameter", r.text


def test_requests_that_cannot_be_served_get_openai_shaped_errors(server, client):
    with pytest.raises(openai.NotFoundError) as err:
        client.chat.completions.create(model="gpt-4o", messages=[{"role": "user", "content": "x"}])
    assert err.value.body["code"] == "model_not_found" and "tiny.F32" in err.value.message
    with pytest.raises(openai.BadRequestError) as err:
        client.chat.completions.create(model="tiny.F32", n=2,
                                       messages=[{"role": "user", "content": "x"}])
    assert err.value.body["param"] == "n"
    base = server.url
    r = httpx2.post(base + "/chat/completions", content=b"{not json",
                    headers={"content-type": "application/json"})
    assert r.status_code == 400 and error_of(r)["code"] == "invalid_json"
    r = httpx2.post(base + "/completions", content=b'{"prompt": "x"}',
                    headers={"content-type": "text/plain"})
    assert r.status_code == 415 and error_of(r)["type"] == "invalid_request_error"
    r = httpx2.get(base + "/nothing-here")
    assert r.status_code == 404 and error_of(r)["code"] == "not_found"


def test_a_prompt_that_cannot_fit_the_context_is_400_with_the_numbers(client):
    with pytest.raises(openai.BadRequestError) as err:
        client.completions.create(model="short.F32", prompt="hello " * 600, max_tokens=4)
    body = err.value.body
    assert body["code"] == "context_length_exceeded" and body["param"] == "prompt"
    # Far longer than the context: refused from its size, without tokenizing it ("at least").
    found = re.search(r"maximum context length is (\d+) tokens.*\((?:at least )?(\d+) in the "
                      r"prompt, 4 for the completion\)", body["message"])
    assert found, body["message"]
    n_ctx, n_prompt = int(found[1]), int(found[2])
    assert 64 <= n_ctx < n_prompt  # llama.cpp rounds a 64-token context up (to 256)
    with pytest.raises(openai.BadRequestError) as err:  # a short prompt, but too long a reply
        client.chat.completions.create(model="short.F32", max_tokens=n_ctx,
                                       messages=[{"role": "user", "content": "hello"}])
    assert f"{n_ctx} for the completion" in err.value.body["message"]
    ok = client.chat.completions.create(model="short.F32", max_tokens=8,
                                        messages=[{"role": "user", "content": "hello"}])
    assert ok.usage.completion_tokens == 8


# --------------------------------------------------------------------------- safety

def test_api_key_is_required_when_set(guarded):
    r = httpx2.get(guarded.url + "/models")
    assert r.status_code == 401 and r.headers["www-authenticate"] == "Bearer"
    assert error_of(r)["code"] == "invalid_api_key"
    r = httpx2.post(guarded.url + "/chat/completions", json={"model": "tiny.F32"},
                    headers={"authorization": "Bearer wrong"})
    assert r.status_code == 401
    with pytest.raises(openai.AuthenticationError):
        openai.OpenAI(base_url=guarded.url, api_key="wrong", max_retries=0).models.list()
    good = openai.OpenAI(base_url=guarded.url, api_key="s3cret", max_retries=0)
    assert "tiny.F32" in {m.id for m in good.models.list()}


def test_oversized_bodies_get_413(guarded):
    key = {"authorization": "Bearer s3cret"}
    big = json.dumps({"model": "tiny.F32", "prompt": "x" * 3000}).encode()
    r = httpx2.post(guarded.url + "/completions", content=big,
                    headers={**key, "content-type": "application/json"})
    assert r.status_code == 413 and error_of(r)["code"] == "request_too_large"
    assert error_of(r)["message"] == "the request body is larger than the limit of 2 kB"

    def chunked():  # no Content-Length: the limit is counted while reading
        for i in range(0, len(big), 500):
            yield big[i:i + 500]

    r = httpx2.post(guarded.url + "/completions", content=chunked(),
                    headers={**key, "content-type": "application/json"})
    assert r.status_code == 413
    assert error_of(r)["message"] == "the request body is larger than the limit of 2 kB"


def test_max_body_default_is_the_server_s():
    from app.cli.serve_cmd import DEFAULT_MAX_BODY
    assert DEFAULT_MAX_BODY == ServeConfig.max_body


def test_cors_only_when_asked(server, guarded):
    preflight = {"origin": "http://app.example", "access-control-request-method": "POST",
                 "access-control-request-headers": "authorization, content-type"}
    r = httpx2.options(guarded.url + "/chat/completions", headers=preflight)
    assert r.status_code == 200
    assert r.headers["access-control-allow-origin"] == "http://app.example"
    r = httpx2.options(guarded.url + "/chat/completions",
                       headers={**preflight, "origin": "http://evil.example"})
    assert "access-control-allow-origin" not in r.headers
    r = httpx2.options(server.url + "/chat/completions", headers=preflight)
    assert "access-control-allow-origin" not in r.headers
    r = httpx2.get(server.url + "/models", headers={"origin": "http://app.example"})
    assert r.status_code == 200 and "access-control-allow-origin" not in r.headers


def test_loopback_server_refuses_other_host_names(server):
    r = httpx2.get(server.url + "/models", headers={"host": "evil.example"})
    assert r.status_code == 400 and error_of(r)["code"] == "invalid_host"
    assert httpx2.get(f"http://localhost:{server.port}/v1/models").status_code == 200


def slow_stream(server, max_tokens=3000):
    """A streamed request on the small model, started and running when this returns."""
    http = httpx2.Client(timeout=120)
    response = http.send(http.build_request(
        "POST", server.url + "/completions",
        json={"model": "small.Q4_0", "prompt": "hello", "max_tokens": max_tokens,
              "stream": True, "temperature": 0}), stream=True)
    assert response.status_code == 200
    return http, response, response.iter_lines()


def test_queue_full_gets_429_and_the_queue_drains(server):
    worker = server.worker
    http, response, lines = slow_stream(server)
    next(line for line in lines if line.startswith("data:"))
    running = worker.current
    results: queue.Queue = queue.Queue()
    body = {"model": "tiny.F32", "prompt": "hello", "max_tokens": 2}
    waiter = threading.Thread(target=lambda: results.put(
        httpx2.post(server.url + "/completions", json=body, timeout=120)))
    waiter.start()
    assert worker.wait_until(lambda: worker.waiting == 1, 30)
    with pytest.raises(openai.RateLimitError) as err:
        openai.OpenAI(base_url=server.url, api_key="x", max_retries=0).completions.create(**body)
    assert err.value.body["code"] == "queue_full"
    assert err.value.response.headers["retry-after"] == "1"
    response.close()  # the running stream's client leaves: the waiting request goes next
    http.close()
    assert results.get(timeout=60).status_code == 200
    waiter.join()
    assert running.stats.stop_reason == "cancelled"


def test_disconnect_mid_stream_frees_the_engine_within_a_token(server):
    worker = server.worker
    http, response, lines = slow_stream(server)
    received = 0
    for line in lines:
        received += line.startswith("data:")
        if received == 4:
            break
    job = worker.current
    response.close()
    http.close()
    assert worker.wait_until(lambda: job.finished, 30)
    stats = job.stats
    assert stats.stop_reason == "cancelled"
    assert job.pieces_at_cancel is not None
    # Counted in tokens, not seconds (a busy machine stretches the time, never the count): the
    # server passed on at most the piece being handed over when the client left, and the
    # runner stopped before the next token (at most the one being computed then).
    assert job.pieces <= job.pieces_at_cancel + 1, (job.pieces, job.pieces_at_cancel)
    assert stats.generated_tokens <= job.pieces_at_cancel + 2, (stats, job.pieces_at_cancel)
    r = httpx2.post(server.url + "/completions", timeout=60,
                    json={"model": "small.Q4_0", "prompt": "hello", "max_tokens": 2})
    assert r.status_code == 200, r.text
    assert r.json()["usage"]["completion_tokens"] == 2
    # The answer is sent before the worker files the job away: wait for that, then both are
    # there, in order.
    assert worker.wait_idle(30)
    assert [j.stats.stop_reason for j in list(worker.finished)[-2:]] == ["cancelled", "length"]
    assert list(worker.finished)[-2] is job


def test_client_leaving_while_queued_is_dropped(server):
    worker = server.worker
    http, response, lines = slow_stream(server)
    next(line for line in lines if line.startswith("data:"))
    body = json.dumps({"model": "tiny.F32", "prompt": "x", "max_tokens": 2}).encode()
    sock = socket.create_connection(("127.0.0.1", server.port))
    sock.sendall(b"POST /v1/completions HTTP/1.1\r\nHost: 127.0.0.1\r\n"
                 b"Content-Type: application/json\r\nContent-Length: %d\r\n\r\n%s"
                 % (len(body), body))
    assert worker.wait_until(lambda: worker.waiting == 1, 30)
    sock.close()  # the waiting client leaves: its place in the queue is freed
    assert worker.wait_until(lambda: worker.waiting == 0, 30)
    assert worker.current is not None and not worker.current.cancelled  # the stream runs on
    response.close()
    http.close()
    assert worker.wait_idle(30)


# --------------------------------------------------------------------------- the command

def corral_process(home, *args, **kw) -> subprocess.Popen:
    """The shipped command, as `python -m app` (nothing re-registered here)."""
    env = dict(os.environ, CORRAL_HOME=str(home), PYTHONUNBUFFERED="1")
    return subprocess.Popen([sys.executable, "-m", "app", *args], env=env, text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, **kw)


def test_corral_serve_command(home):
    proc = corral_process(home, "serve", "--port", "0", "--model", "tiny.F32",
                          "--api-key", "k3y", "--threads", "2")
    lines: queue.Queue = queue.Queue()
    # "" at the end of stdout: a serve that exits at once fails the test at once, with its stderr.
    threading.Thread(target=lambda: [lines.put(x) for x in itertools.chain(proc.stdout, [""])],
                     daemon=True).start()
    try:
        try:
            line = lines.get(timeout=120)
        except queue.Empty:
            line = ""
        if not line:
            proc.kill()
            raise AssertionError(f"no start line; exit {proc.wait()}: {proc.stderr.read()}")
        assert line.startswith("Serving the OpenAI API at http://127.0.0.1:"), line
        url = line.split(" at ")[1].split()[0]
        assert httpx2.get(url + "/models").status_code == 401
        c = openai.OpenAI(base_url=url, api_key="k3y", max_retries=0)
        assert [m.id for m in c.models.list()] == ["short.F32", "small.Q4_0", "tiny.F32"]
        r = httpx2.post(url + "/chat/completions", headers={"authorization": "Bearer k3y"},
                        json={"messages": [{"role": "user", "content": "hi"}], "max_tokens": 3})
        assert r.status_code == 200 and r.json()["model"] == "tiny.F32"  # the --model default
    finally:
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=60)
    assert proc.returncode in (0, 130), err
    assert "tiny.F32 loaded" in err and "Traceback" not in err


def test_corral_serve_refuses_an_unknown_model_in_one_line(home):
    proc = corral_process(home, "serve", "--port", "0", "--model", "nope")
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == 1 and "no model 'nope'" in err and "Traceback" not in err
