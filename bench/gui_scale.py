"""Does the window stay responsive with what people accumulate? (issue 17)

    python bench/gui_scale.py [--json] [--only library] [--rounds 3]

Offscreen Qt (or $DISPLAY), the real main window over a temporary CORRAL_HOME seeded with
generated data. Each measurement runs in its own child process (a fresh home, a fresh Qt), so
one cannot warm or slow another; `--rounds` children per measurement, the median of each key
kept. With --json one JSON object is printed, every key measured (none estimated):

- library: 200 model entries (app/testing/many_models.py: real GGUF headers under 200 names).
  `library_200_open_ms`: the Library screen asked for (the library already scanned, as after
  start-up) to its 200 rows listed and the window painted. `library_200_open_max_stall_ms`:
  the event loop's largest stall from that moment until 2.5 s later (the screen's own refresh
  and catalog included). `library_search_keystroke_max_stall_ms`: the largest stall while a
  query is typed one key every 120 ms, until the rows match it and 0.5 s more.
  Targets on the 2-core machine: open <= 300 ms, stalls <= 50 ms.
- chat_1000: a 1000-message chat with Markdown and code (app/testing/long_chat.py).
  `open_chat_1000_ms` (open to the last message painted, <= 200 ms),
  `scroll_top_1000_max_stall_ms` (paging from the end to the first message, <= 50 ms),
  `rss_growth_1000_mb` (after that, less before the open, <= 150 MB).
- picker: `picker_search_keystroke_max_stall_ms` (<= 50 ms) typing in the chat's model picker
  with 200 local models and a server's 200; `picker_open_ms`.
- chat_limits (the 1.1B-shaped model, 2k context): `paste_20000_lines_ms` (<= 500 ms),
  `send_paste_in_1000_chat_ms` (<= 1000 ms), `stop_during_prompt_eval_ms` (<= 500 ms).
- startup: `startup_ready_ratio`, `corral gui --quit-after-show` ready with 200 models and the
  1000-message chat reopened ÷ with an empty home, same run (<= 1.2).

Adding a measurement: write `def name(home: Path) -> dict[str, float]` that seeds `home`,
measures and returns its keys, decorate it with `@measurement("name")`; it then runs in its own
child and its keys join the object. `StallMeter` measures event-loop stalls; `spin()` runs the
event loop for a while, `wait_until()` until a condition holds.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Callable

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

TICK_MS = 5
MEASUREMENTS: dict[str, Callable[[Path], dict[str, float]]] = {}


def measurement(name: str):
    def register(fn: Callable[[Path], dict[str, float]]):
        MEASUREMENTS[name] = fn
        return fn
    return register


# ---------------------------------------------------------------------- event-loop helpers
class StallMeter:
    """A 5 ms precise timer: each tick notes the time; a stall is how much later than 5 ms after
    the previous tick the next one ran (the event loop was busy that long)."""

    def __init__(self) -> None:
        from PySide6.QtCore import Qt, QTimer

        self.timer = QTimer(interval=TICK_MS, timerType=Qt.TimerType.PreciseTimer)
        self.timer.timeout.connect(self._tick)
        self.stamps: list[int] = []

    def start(self) -> None:
        self.stamps = [time.perf_counter_ns()]
        self.timer.start()

    def _tick(self) -> None:
        self.stamps.append(time.perf_counter_ns())

    def stop(self) -> float:
        """The largest stall in ms since start() (the time up to now included)."""
        self.timer.stop()
        s = [*self.stamps, time.perf_counter_ns()]
        return max((max(0.0, (b - a) / 1e6 - TICK_MS) for a, b in zip(s, s[1:])), default=0.0)


def spin(seconds: float) -> None:
    """Run the event loop for `seconds`."""
    from PySide6.QtCore import QEventLoop, QTimer

    loop = QEventLoop()
    QTimer.singleShot(int(seconds * 1000), loop.quit)
    loop.exec()


def wait_until(predicate: Callable[[], bool], timeout: float, what: str) -> None:
    """Run the event loop until `predicate()` holds (checked every millisecond or so)."""
    from PySide6.QtWidgets import QApplication

    deadline = time.perf_counter() + timeout
    while not predicate():
        if time.perf_counter() > deadline:
            raise SystemExit(f"gui_scale: timed out after {timeout:.0f} s waiting for {what}")
        QApplication.processEvents()
        spin(0.001)


def main_window(width: int = 1280, height: int = 800):
    """The app's main window over the current CORRAL_HOME, shown, the library scanned."""
    from PySide6.QtWidgets import QApplication

    from app.core.settings import load_settings
    from app.gui.main_window import MainWindow

    app = QApplication.instance() or QApplication(["corral-bench"])
    window = MainWindow(load_settings())
    window.resize(width, height)
    window.show()
    wait_until(lambda: window.library_state.items is not None, 60, "the library scan")
    return app, window


# ---------------------------------------------------------------------- measurements
LIBRARY_QUERY = "mistral q4_k"


def _typed(screen, text: str) -> None:
    from PySide6.QtCore import Qt
    from PySide6.QtTest import QTest

    screen.search.setFocus(Qt.FocusReason.OtherFocusReason)
    for ch in text:
        QTest.keyClick(screen.search, ch)
        spin(0.12)


@measurement("library")
def library(home: Path) -> dict[str, float]:
    from app.testing.many_models import seed_library

    paths = seed_library(home / "models", 200)
    app, window = main_window()
    wait_until(lambda: len(window.library_state.items or []) == 200, 60, "200 models scanned")
    spin(1.5)  # start-up work (the chat screen, the downloads look-up) out of the way

    meter = StallMeter()
    meter.start()
    t0 = time.perf_counter()
    screen = window.show_screen("library")
    wait_until(lambda: len(screen.installed_ids()) == 200, 30, "200 rows")
    window.repaint()
    open_ms = (time.perf_counter() - t0) * 1000
    spin(2.5)
    open_stall = meter.stop()

    words = LIBRARY_QUERY.split()
    expected = sorted(p.name[:-len(".gguf")] for p in paths if all(w in p.name.lower() for w in words))
    meter.start()
    _typed(screen, LIBRARY_QUERY)
    wait_until(lambda: sorted(screen.installed_ids()) == expected, 30, "the rows to match the query")
    spin(0.5)
    key_stall = meter.stop()
    window.close()
    return {"library_200_open_ms": round(open_ms, 1),
            "library_200_open_max_stall_ms": round(open_stall, 1),
            "library_search_keystroke_max_stall_ms": round(key_stall, 1)}


CHAT_LENGTH = 1000


def _rss_mb() -> float:
    from app.core.hardware import process_memory

    return (process_memory() or 0) / 2**20


def _chat_view_shows_last(view, last_id: int) -> bool:
    """The view has the last message laid out in its viewport, scrolled to the end (the old
    column of bubbles or the new list: both are asked through what they expose)."""
    bar = view.verticalScrollBar()
    if hasattr(view, "more_button"):  # the old view: a column of bubble widgets
        return bool(view.bubbles) and view.bubbles[-1].message_id == last_id \
            and bar.value() == bar.maximum()
    return last_id in view.visible_ids() and bar.value() == bar.maximum()


def _chat_view_at_top(view, first_id: int) -> bool:
    bar = view.verticalScrollBar()
    if hasattr(view, "more_button"):
        return view.more_button.isHidden() and bar.value() == 0 \
            and view.bubbles[0].message_id == first_id
    return bar.value() == 0 and first_id in view.visible_ids()


@measurement("chat_1000")
def chat_1000(home: Path) -> dict[str, float]:
    """A 1000-message chat with Markdown and code (app/testing/long_chat.py), opened from the
    chat screen after start-up (a short chat is open then). `open_chat_1000_ms`: open asked for
    to the last message laid out and the window painted. `scroll_top_1000_max_stall_ms`: the
    largest event-loop stall while paging up from the end to the first message (one page every
    16 ms, as a held PageUp; the old view's "Show N earlier messages" clicked when it is at the
    top, which is how its reader got there). `rss_growth_1000_mb`: resident memory after that,
    less before the open."""
    import gc

    from PySide6.QtWidgets import QAbstractSlider

    from app.core.chats import ChatStore
    from app.testing.long_chat import seed_long_chat

    store = ChatStore()
    cid = seed_long_chat(store, CHAT_LENGTH)
    ids = [m.id for m in store.messages(cid)]
    recent = store.create_conversation(title="A short chat")
    store.add_message(recent.id, "user", "Hello")
    store.add_message(recent.id, "assistant", "Hi! What shall we talk about?")
    store.close()
    app, window = main_window()
    wait_until(lambda: window.is_ready and window.chat_screen is not None, 60, "the chat screen")
    screen = window.show_screen("chat")
    screen = window.chat_screen
    spin(2.5)  # start-up work (the warm-up at 1.5 s, the downloads look-up) out of the way
    view = screen.messages
    gc.collect()
    rss0 = _rss_mb()

    meter = StallMeter()
    t0 = time.perf_counter()
    screen.open_conversation(cid)
    wait_until(lambda: _chat_view_shows_last(view, ids[-1]), 60, "the last message shown")
    window.repaint()
    open_ms = (time.perf_counter() - t0) * 1000
    spin(0.5)

    bar = view.verticalScrollBar()
    meter.start()
    deadline = time.perf_counter() + 300
    while not _chat_view_at_top(view, ids[0]):
        if time.perf_counter() > deadline:
            raise SystemExit("gui_scale: the chat never reached its first message")
        more = getattr(view, "more_button", None)
        if bar.value() == 0 and more is not None and more.isVisible():
            more.click()
        else:
            bar.triggerAction(QAbstractSlider.SliderAction.SliderPageStepSub)
        spin(0.016)
    spin(0.3)
    stall = meter.stop()
    gc.collect()
    spin(0.2)
    rss1 = _rss_mb()
    window.close()
    return {"open_chat_1000_ms": round(open_ms, 1),
            "scroll_top_1000_max_stall_ms": round(stall, 1),
            "rss_growth_1000_mb": round(rss1 - rss0, 1)}


def _ready_ms(env: dict[str, str]) -> float:
    """`corral gui --quit-after-show` once: its own "ready in N ms" (the chat screen built)."""
    import re

    proc = subprocess.run([sys.executable, "-m", "app", "gui", "--quit-after-show"], env=env,
                          cwd=ROOT, capture_output=True, text=True, timeout=120)
    m = re.search(r"ready in (\d+) ms", proc.stdout)
    if proc.returncode != 0 or m is None:
        raise SystemExit(f"gui_scale: corral gui --quit-after-show failed "
                         f"(exit code {proc.returncode}):\n{proc.stdout}{proc.stderr}")
    return float(m.group(1))


@measurement("startup")
def startup(home: Path) -> dict[str, float]:
    """`startup_ready_ratio`: `corral gui --quit-after-show` ready time with 200 models and the
    1000-message chat open (the most recent one, the one reopened) ÷ with an empty home, both
    measured here, alternately (after one warm-up run of each), median of 5 each."""
    from app.core.chats import ChatStore
    from app.testing.long_chat import seed_long_chat
    from app.testing.many_models import seed_library

    full, empty = home / "full", home / "empty"
    env = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
    env["PYTHONPYCACHEPREFIX"] = str(home / "pycache")  # as an installed app has them
    os.environ["CORRAL_HOME"] = str(full)
    seed_library(full / "models", 200)
    store = ChatStore()
    seed_long_chat(store, CHAT_LENGTH)
    store.close()
    envs = {"full": {**env, "CORRAL_HOME": str(full)}, "empty": {**env, "CORRAL_HOME": str(empty)}}
    for e in envs.values():
        _ready_ms(e)  # warm-up: disk cache, inspect cache, window.ini (the chat to reopen)
    times: dict[str, list[float]] = {"full": [], "empty": []}
    for _ in range(5):
        for name, e in envs.items():
            times[name].append(_ready_ms(e))
    full_ms, empty_ms = (statistics.median(times[k]) for k in ("full", "empty"))
    return {"startup_ready_full_ms": round(full_ms, 1), "startup_ready_empty_ms": round(empty_ms, 1),
            "startup_ready_ratio": round(full_ms / empty_ms, 3)}


# ---------------------------------------------------------------------- the chat's picker and limits
PICKER_QUERY = "mistral q4_k"


@measurement("picker")
def picker(home: Path) -> dict[str, float]:
    """The chat's model picker with 200 local models and a `corral serve` of the same 200
    registered (app/testing/servers.py): 400 models under two headings. `picker_open_ms`: Ctrl+K
    to the popup shown and painted. `picker_search_keystroke_max_stall_ms`: the largest
    event-loop stall while a query is typed in its search field one key every 120 ms, until
    the rows match it and 0.5 s more (<= 50 ms)."""
    from PySide6.QtTest import QTest

    from app.core.remote import ServerRegistry
    from app.testing.many_models import seed_library
    from app.testing.servers import corral_serve

    paths = seed_library(home / "models", 200)
    words = PICKER_QUERY.split()
    matching = sum(1 for p in paths if all(w in p.name.lower() for w in words))
    with corral_serve(home) as url:
        ServerRegistry().add(url, name="box")
        app, window = main_window()
        wait_until(lambda: window.is_ready and window.chat_screen is not None, 60, "the chat")
        window.show_screen("chat")
        chat = window.chat_screen
        wait_until(lambda: len(chat.session.models.remote) == 200, 60, "the server's models")
        spin(1.5)
        popup = chat.toolbar.picker
        t0 = time.perf_counter()
        chat.choose_model()
        wait_until(popup.isVisible, 10, "the picker")
        popup.repaint()
        open_ms = (time.perf_counter() - t0) * 1000
        spin(0.3)
        meter = StallMeter()
        meter.start()
        for ch in PICKER_QUERY:
            QTest.keyClick(popup.search, ch)
            spin(0.12)
        wait_until(lambda: len(popup.shown_entries()) == 2 * matching, 30, "the rows to match")
        spin(0.5)
        stall = meter.stop()
        popup.hide()
        window.close()
    return {"picker_open_ms": round(open_ms, 1),
            "picker_search_keystroke_max_stall_ms": round(stall, 1)}


def _answered() -> float:
    """When the event loop runs a zero timer: it answers again."""
    from PySide6.QtCore import QEventLoop, QTimer

    loop = QEventLoop()
    QTimer.singleShot(0, loop.quit)
    loop.exec()
    return time.perf_counter()


@measurement("chat_limits")
def chat_limits(home: Path) -> dict[str, float]:
    """Huge input and Stop in the window, on the TinyLlama-1.1B-shaped generated model
    (app/testing/models.py, ~591 MiB, linked in place) loaded with a 2048-token context.
    `paste_20000_lines_ms`: 20,000 lines (1.2 MB) pasted into the composer of a short chat to
    the warning shown and the event loop answering again (<= 500 ms; its largest stall as
    `paste_20000_lines_max_stall_ms`). `send_paste_in_1000_chat_ms`: the same in a 1000-message
    chat, Enter pressed at once (before any check answered) to the refusal said in the
    composer, nothing saved (<= 1000 ms). `stop_during_prompt_eval_ms`: a ~1900-token message
    sent, Stop pressed once a batch is evaluated, to the runner idle and the reply ended
    (<= 500 ms)."""
    from PySide6.QtCore import Qt
    from PySide6.QtGui import QGuiApplication
    from PySide6.QtTest import QTest

    from app.core.chats import ChatStore
    from app.core.library import LINK, Library
    from app.testing import models
    from app.testing.long_chat import seed_long_chat

    model = Library().import_file(models.cached_model("tinyllama_shape"), LINK)
    knobs = {"context": 2048, "threads": 2, "max_tokens": 32}
    store = ChatStore()
    long_id = seed_long_chat(store, CHAT_LENGTH, model_id=model.id)
    store.update_conversation(long_id, params=knobs)
    short = store.create_conversation(title="A short chat", model_id=model.id, params=knobs)
    store.add_message(short.id, "user", "Hello")
    store.add_message(short.id, "assistant", "Hi! What shall we talk about?")
    store.close()
    app, window = main_window()
    wait_until(lambda: window.is_ready and window.chat_screen is not None, 60, "the chat")
    window.show_screen("chat")
    chat = window.chat_screen
    session, composer = chat.session, chat.composer
    wait_until(lambda: session.conv is not None and session.conv.id == short.id, 30, "the chat")
    session.load_model()
    wait_until(lambda: session.worker.model is not None, 300, "the model loaded")
    spin(1.5)

    paste = "a line of pasted log output, with some words and numbers 12345\n" * 20_000
    QGuiApplication.clipboard().setText(paste)
    composer.edit.setFocus()
    spin(0.2)
    meter = StallMeter()
    meter.start()
    t0 = time.perf_counter()
    composer.edit.paste()
    wait_until(composer.warning.isVisible, 30, "the paste's warning")
    paste_ms = (_answered() - t0) * 1000
    spin(0.3)
    paste_stall = meter.stop()

    composer.edit.clear()
    chat.open_conversation(long_id)
    spin(1.5)
    composer.set_text(paste)
    t0 = time.perf_counter()
    QTest.keyClick(composer.edit, Qt.Key.Key_Return)
    wait_until(lambda: composer.warning.label.text().startswith("Not sent."), 60, "the refusal")
    send_ms = (time.perf_counter() - t0) * 1000
    if len(session.store.messages(long_id)) != CHAT_LENGTH:
        raise SystemExit("gui_scale: the paste was saved into the long chat")

    composer.edit.clear()
    chat.open_conversation(short.id)
    spin(0.5)
    evaluated: list[int] = []
    session.worker.promptProgress.connect(lambda _rid, done, _total: evaluated.append(done))
    composer.set_text("the history of the llama " * 260)
    QTest.keyClick(composer.edit, Qt.Key.Key_Return)
    wait_until(lambda: any(evaluated), 120, "a batch of the prompt evaluated")
    t0 = time.perf_counter()
    chat.stop()
    wait_until(lambda: not session.busy and not session.worker.busy, 60, "the runner idle")
    stop_ms = (time.perf_counter() - t0) * 1000
    reply = session.store.messages(short.id)[-1]
    if reply.stats.get("stopped_by") != "user" or not reply.stats.get("aborted_in_prompt"):
        raise SystemExit(f"gui_scale: the reply was not stopped in its prompt: {reply.stats}")
    window.close()
    return {"paste_20000_lines_ms": round(paste_ms, 1),
            "paste_20000_lines_max_stall_ms": round(paste_stall, 1),
            "send_paste_in_1000_chat_ms": round(send_ms, 1),
            "stop_during_prompt_eval_ms": round(stop_ms, 1)}


# ---------------------------------------------------------------------- driver
def run_child(name: str) -> dict[str, float]:
    """One measurement in a child process with its own temporary home; its keys."""
    with tempfile.TemporaryDirectory(prefix=f"corral-gui-scale-{name}-") as tmp:
        env = {**os.environ, "CORRAL_HOME": str(Path(tmp) / "home"), "HOME": str(Path(tmp) / "user"),
               "XDG_DATA_HOME": str(Path(tmp) / "xdg"), "HF_HUB_CACHE": str(Path(tmp) / "hf"),
               "OLLAMA_MODELS": str(Path(tmp) / "ollama"), "HF_HUB_OFFLINE": "1"}
        if not env.get("DISPLAY") and not env.get("WAYLAND_DISPLAY"):
            env["QT_QPA_PLATFORM"] = "offscreen"
        proc = subprocess.run([sys.executable, __file__, "--child", name], env=env, cwd=ROOT,
                              capture_output=True, text=True, timeout=600)
        if proc.returncode != 0:
            raise SystemExit(f"gui_scale: {name} failed:\n{proc.stdout}{proc.stderr}")
        return json.loads(proc.stdout.strip().splitlines()[-1])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    parser.add_argument("--only", action="append", choices=sorted(MEASUREMENTS),
                        help="run only this measurement (repeatable)")
    parser.add_argument("--rounds", type=int, default=3, help="children per measurement (median)")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        result = MEASUREMENTS[args.child](Path(os.environ["CORRAL_HOME"]))
        print(json.dumps(result))
        return 0
    out: dict[str, float] = {}
    for name in args.only or list(MEASUREMENTS):
        rounds = [run_child(name) for _ in range(max(1, args.rounds))]
        for key in rounds[0]:
            out[key] = round(statistics.median(r[key] for r in rounds), 3 if "ratio" in key else 1)
            if not args.json:
                print(f"{key:45s} {out[key]:8.1f}   rounds: {', '.join(str(r[key]) for r in rounds)}")
    if args.json:
        print(json.dumps(out, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
