"""Hostile chat templates: whatever a model file's template does, its rendering is refused in at
most 6 s with under 1 GB of memory, in one line and no traceback — through the render API,
`corral prompt` and `corral serve`, and `corral serve` keeps answering meanwhile.

The cases are the ones a sweep found (issue 14): Jinja folding constants while it compiles
(`'a'|center(3000000000)` reached 11.7 GB), huge powers (`((10**1024)**1024)**16`: one C call of
14 s holding the GIL), huge results of ljust/join/replace/format/%/tojson(indent), deep nesting
(RecursionError), and endless recursion or loops of macros. Untrusted templates render in a
child process with an address-space limit and a wall-clock kill (render_worker.py); the
sandbox's own size checks refuse most cases first, and a second run with those checks switched
off (render_worker.TEST_ENV) shows the process bounds hold on their own.
"""

from __future__ import annotations

import json
import os
import queue
import resource
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import httpx2
import pytest

from app.core.templates import TemplateError, gguf_template, render
from app.core.templates import render_worker

pytestmark = [pytest.mark.timeout(600),
              pytest.mark.skipif(sys.platform != "linux", reason="reads /proc; RLIMIT_AS")]

GB = 1_000_000_000
S = "{% set s = 'x' * 999999 %}"
HOSTILE = {
    "center_folded": "{{ 'a'|center(3000000000) }}",
    "percent_folded": "{{ '%2000000000s' % 'a' }}",
    "power_16": "{{ ((10**1024)**1024)**16 }}",
    "power_32": "{% set n = ((10**1024)**1024)**32 %}x",
    "ljust": "{{ 'a'.ljust(2000000000) }}",
    "join": S + "{{ ([s] * 1000)|join }}",
    "join_method": S + "{{ s.join([s] * 1000) }}",
    "replace": "{{ ('x' * 999999)|replace('x', 'y' * 1000) }}",
    "replace_method": "{{ ('x' * 999999).replace('x', 'y' * 1000) }}",
    "format": "{{ '{:>2000000000}'.format('a') }}",
    "format_filter": "{{ '%2000000000s'|format('a') }}",
    "tojson_indent": "{{ messages|tojson(indent=1000000000) }}",
    "tojson_size": S + "{{ ([s] * 999999)|tojson }}",
    "translate": "{{ ('x' * 999999).translate({120: 'y' * 999999}) }}",
    "map_upper": S + "{{ ([s] * 999999)|map('upper')|list|length }}",
    "nested_if": "{% if true %}" * 2000 + "x" + "{% endif %}" * 2000,
    "nested_parentheses": "{{ " + "(" * 5000 + "1" + ")" * 5000 + " }}",
    "macro_recursion": "{% macro f(n) %}{{ f(n + 1) }}{% endmacro %}{{ f(0) }}",
    "macro_fan_out": ("{% macro f(n) %}{% if n < 64 %}{{ f(n + 1) }}{{ f(n + 1) }}{% endif %}"
                      "{% endmacro %}{{ f(0) }}"),
    "endless_loop": ("{% for a in range(100000) %}{% for b in range(100000) %}{% endfor %}"
                     "{% endfor %}"),
}
SLOW = {"macro_fan_out", "endless_loop"}  # stopped by the deadline, not refused up front
MESSAGES = [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Hello!"}]


def _status_kb(pid: int, field: str) -> int:
    """A /proc/PID/status figure in kB (VmHWM: the peak resident memory), 0 once it is gone."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith(field + ":"):
                return int(line.split()[1])
    except OSError:
        pass
    return 0


def _address_space_limit(pid: int) -> int | None:
    """RLIMIT_AS of a process in bytes; None while unlimited (a worker just started)."""
    for line in Path(f"/proc/{pid}/limits").read_text().splitlines():
        if line.startswith("Max address space"):
            value = line.split()[3]
            return None if value == "unlimited" else int(value)
    raise AssertionError("no address-space line")


def _check_workers() -> None:
    """Every live worker is capped at 1 GB of address space and never got near it."""
    for pid in render_worker.worker_pids():
        assert _address_space_limit(pid) == GB
        assert _status_kb(pid, "VmHWM") * 1024 < GB


@pytest.fixture
def fresh_workers():
    render_worker.reset()
    yield
    render_worker.reset()


def _refuse(source: str) -> tuple[str, float]:
    template = gguf_template(source, bos_token="<s>", eos_token="</s>", model_name="evil")
    start = time.monotonic()
    with pytest.raises(TemplateError) as info:
        render(template, MESSAGES)
    return str(info.value), time.monotonic() - start


@pytest.mark.parametrize("name", sorted(HOSTILE))
def test_render_refuses_in_bounded_time_and_memory(fresh_workers, name):
    peak_before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    message, seconds = _refuse(HOSTILE[name])
    assert seconds <= 6, seconds
    assert message.startswith("evil's own chat template: ") and "\n" not in message
    assert ("longer than 4 s" in message) == (name in SLOW)
    # This process did not build the value (its peak resident memory grew by < 100 MB)…
    assert (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - peak_before) * 1024 < 100e6
    _check_workers()  # … nor did the worker get near its 1 GB limit
    # A second attempt is refused at once, in the same words (a template that ran out of
    # time is remembered).
    again, seconds = _refuse(HOSTILE[name])
    assert again == message and seconds < 0.5
    # The worker (or its replacement) renders the next, well-behaved template.
    ok = gguf_template("{{ messages[-1].content }}", bos_token=None, eos_token=None)
    assert render(ok, MESSAGES).text == "Be brief.\nHello!"  # (it has no system role)


@pytest.mark.parametrize("name", ["center_folded", "percent_folded", "power_16", "power_32",
                                  "ljust", "join", "replace", "format", "tojson_indent",
                                  "translate", "map_upper"])
def test_the_worker_bounds_hold_without_the_sandboxs_size_checks(monkeypatch, fresh_workers,
                                                                 name):
    # With the size checks off and jinja folding constants at compile time again, as before
    # the fix: the 11.7 GB center() and the 14 s / 41 s powers end at the worker's limits.
    monkeypatch.setenv(render_worker.TEST_ENV, "no-limits")
    render_worker.reset()
    watcher = _PeakWatcher()
    with watcher:
        message, seconds = _refuse(HOSTILE[name])
    assert seconds <= 6, seconds
    assert message in (
        "evil's own chat template: rendering took longer than 4 s and was stopped",
        "evil's own chat template: the template needs more memory than a chat template may "
        "use, and was stopped")
    assert ("longer than 4 s" in message) == name.startswith("power")
    assert 0 < watcher.peak_kb * 1024 < GB


def test_a_hostile_render_does_not_hold_up_other_threads_renders(fresh_workers):
    # The GUI's preview, the GUI's engine thread and `corral serve` may render at once: each
    # gets its own worker while one spends the deadline on a hostile template.
    hostile = gguf_template(HOSTILE["endless_loop"], bos_token=None, eos_token=None,
                            model_name="evil")
    outcome: list[Exception | None] = []
    busy = threading.Thread(target=lambda: outcome.append(_catch(lambda: render(hostile,
                                                                                MESSAGES))))
    busy.start()
    ok = gguf_template("{% for m in messages %}[{{ m.content }}]{% endfor %}", bos_token=None,
                       eos_token=None)
    slowest = 0.0
    while busy.is_alive():
        start = time.monotonic()
        assert render(ok, MESSAGES).text == "[Be brief.][Hello!]"
        slowest = max(slowest, time.monotonic() - start)
    busy.join()
    assert [str(e) for e in outcome] == [
        "evil's own chat template: rendering took longer than 4 s and was stopped"]
    assert slowest < 2.5, slowest  # (a worker may have to start; waiting would take 4 s)


def _catch(fn) -> Exception | None:
    try:
        fn()
    except Exception as exc:  # noqa: BLE001  (handed back to the test thread to assert on)
        return exc
    return None


class _PeakWatcher:
    """Samples the peak resident memory of this process's render workers while it is open."""

    def __init__(self, parent: int | None = None) -> None:
        self.parent = parent or os.getpid()
        self.peak_kb = 0
        self.limits: set[int] = set()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def children(self) -> list[int]:
        pids: list[int] = []
        for task in Path(f"/proc/{self.parent}/task").iterdir():
            try:
                pids += [int(p) for p in (task / "children").read_text().split()]
            except OSError:
                pass
        return pids

    def _run(self) -> None:
        while not self._stop.wait(0.02):
            for pid in self.children():
                try:
                    if "render_worker" not in Path(f"/proc/{pid}/cmdline").read_text():
                        continue
                    limit = _address_space_limit(pid)
                except (OSError, AssertionError):
                    continue
                if limit is not None:
                    self.limits.add(limit)
                self.peak_kb = max(self.peak_kb, _status_kb(pid, "VmHWM"))

    def __enter__(self) -> "_PeakWatcher":
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join()


# ----------------------------------------------------------------------------- corral prompt

# Runs `corral …` and reports its result with the peak resident memory of it and its children
# (the render worker): RUSAGE_CHILDREN of a fresh process counts nothing else.
MEASURE = ("import json, resource, subprocess, sys, time\n"
           "start = time.monotonic()\n"
           "p = subprocess.run(sys.argv[1:], capture_output=True, text=True)\n"
           "print(json.dumps({'rc': p.returncode, 'out': p.stdout, 'err': p.stderr,\n"
           "                  'seconds': time.monotonic() - start,\n"
           "                  'peak_kb': resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss}))")
CORRAL = str(Path(sys.executable).with_name("corral"))


@pytest.fixture(scope="module")
def evil_models(tmp_path_factory, make_model):
    folder = tmp_path_factory.mktemp("evil-models")
    return {name: make_model("tiny", folder=folder, name=f"evil-{name}", chat_template=source)
            for name, source in HOSTILE.items()}


@pytest.mark.parametrize("name", sorted(HOSTILE))
def test_corral_prompt_refuses_in_one_line(tmp_path, evil_models, name):
    messages = tmp_path / "chat.json"
    messages.write_text(json.dumps(MESSAGES), encoding="utf-8")
    env = dict(os.environ, CORRAL_HOME=str(tmp_path / "home"))
    r = json.loads(subprocess.run(
        [sys.executable, "-c", MEASURE, CORRAL, "prompt", str(evil_models[name]), "--messages",
         str(messages)], env=env, capture_output=True, text=True, check=True).stdout)
    assert r["rc"] == 1 and r["out"] == ""
    assert r["err"].startswith(f"corral: evil-{name}'s own chat template: ")
    assert r["err"].count("\n") == 1 and "Traceback" not in r["err"]
    assert r["seconds"] <= 6, r
    assert r["peak_kb"] * 1024 < GB, r


# ----------------------------------------------------------------------------- corral serve

def test_corral_serve_refuses_and_keeps_answering(tmp_path, make_model):
    """While `corral serve` spends the deadline on a hostile template, GET /v1/models answers
    in under 100 ms; the chat request gets one 400 line; memory stays bounded."""
    home = tmp_path / "home"
    make_model("tiny", folder=home / "models", name="evil", chat_template=HOSTILE["endless_loop"])
    make_model("tiny", folder=home / "models", name="bomb",
               chat_template=HOSTILE["center_folded"])
    env = dict(os.environ, CORRAL_HOME=str(home), PYTHONUNBUFFERED="1")
    proc = subprocess.Popen([CORRAL, "serve", "--port", "0", "--threads", "1"], env=env,
                            text=True, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    lines: queue.Queue = queue.Queue()
    threading.Thread(target=lambda: [lines.put(x) for x in proc.stdout], daemon=True).start()
    try:
        line = lines.get(timeout=120)
        assert line.startswith("Serving the OpenAI API at http://127.0.0.1:"), line
        url = line.split(" at ")[1].split()[0]
        http = httpx2.Client(timeout=60)
        # Load the model first (a raw completion renders no template), so that the chat
        # request below measures the template alone.
        assert http.post(url + "/completions", json={"model": "evil.F32", "prompt": "hi",
                                                     "max_tokens": 1}).status_code == 200
        serve_peak_before = _status_kb(proc.pid, "VmHWM")
        answer: dict = {}

        def chat() -> None:
            start = time.monotonic()
            r = http.post(url + "/chat/completions",
                          json={"model": "evil.F32", "messages": MESSAGES, "max_tokens": 4})
            answer.update(status=r.status_code, body=r.json(), seconds=time.monotonic() - start)

        watcher = _PeakWatcher(proc.pid)
        latencies: list[float] = []
        client = threading.Thread(target=chat)
        with watcher:
            client.start()
            while client.is_alive():
                start = time.monotonic()
                assert http.get(url + "/models").status_code == 200
                latencies.append(time.monotonic() - start)
            client.join()
        assert len(latencies) >= 10 and max(latencies) < 0.1, latencies
        assert answer["status"] == 400 and answer["seconds"] <= 6, answer
        error = answer["body"]["error"]
        assert error["message"] == ("evil's own chat template: rendering took longer than 4 s "
                                    "and was stopped") and error["code"] == "invalid_prompt"
        assert watcher.limits == {GB} and 0 < watcher.peak_kb * 1024 < GB
        # A memory bomb is one 400 line too, at once.
        r = http.post(url + "/chat/completions",
                      json={"model": "bomb.F32", "messages": MESSAGES, "max_tokens": 4})
        assert r.status_code == 400 and "\n" not in r.json()["error"]["message"]
        assert (_status_kb(proc.pid, "VmHWM") - serve_peak_before) * 1024 < 100e6
        print(f"\n/v1/models during a hostile render: {len(latencies)} requests, max "
              f"{max(latencies) * 1000:.1f} ms; refused in {answer['seconds']:.2f} s; worker "
              f"peak {watcher.peak_kb / 1024:.0f} MB; serve grew "
              f"{(_status_kb(proc.pid, 'VmHWM') - serve_peak_before) / 1024:.0f} MB")
    finally:
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=60)
    assert "Traceback" not in err, err
