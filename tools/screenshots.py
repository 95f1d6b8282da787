"""Screenshots of the real app for the README: `make screenshots` → docs/screenshots/*.png.

    python tools/screenshots.py [--out docs/screenshots] [--size 1280x800] [--only library ...]

Starts the real window (`app.gui.app.create_window`, as `corral` does) under a temporary
CORRAL_HOME seeded with generated models named like real ones (TinyLlama-shaped, Vicuna,
Llama 2 Chat), the chat part's demo conversations (app/gui/chat/demo.py), a model in a fake
GPT4All folder (for "Other apps"), and a local Hugging Face hub (app/testing/hub_server.py)
serving files slowly, so the Downloads screen has one download running, one paused, one done
and one refused. Last, the Library grows to 200 models (app/testing/many_models.py) and is
searched ("library-search.png"), and a 1000-message chat (app/testing/long_chat.py) is opened
and scrolled to its middle ("chat-1000-middle.png"). On the X server in DISPLAY (e.g. Xvfb :99)
if set, else offscreen.
Nothing here touches your own Corral folders or the network.
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

MB = 1000 * 1000
# repo, file, the TinyLlama-shaped GGUF it serves (see tinyllama(); None: the small model),
# throttle (bytes/s), what to do with it. Real generated GGUFs: every window
# download has its header checked on the hub first (zeros are refused there), and the running
# one's check is shown under it, so that one is the 1.1B TinyLlama its name says.
DOWNLOADS = (
    ("TheBloke/TinyLlama-1.1B-Chat-v1.0-GGUF", "tinyllama-1.1b-chat-v1.0.Q4_0.gguf",
     "tinyllama", 7 * MB, "run"),
    ("TheBloke/vicuna-13B-v1.5-GGUF", "vicuna-13b-v1.5.Q4_K_M.gguf", "shorter", 60 * MB, "pause"),
    ("TheBloke/Mistral-7B-Instruct-v0.2-GGUF", "mistral-7b-instruct-v0.2.Q4_K_M.gguf", "shorter",
     None, "gated"),
    ("TheBloke/TinyLlama-1.1B-Chat-v1.0-GGUF", "tinyllama-1.1b-chat-v1.0.Q2_K.gguf", None, None, "done"),
)


GROUPS = ("chat", "library", "downloads", "settings", "menu", "library-search", "chat-long",
          "picker")
PICKED = "mistral q4_k_m"   # the query of picker-search.png
SEARCHED = "mistral"   # the query of library-search.png


def wait(predicate, timeout: float = 30.0, what: str = "") -> None:
    from PySide6.QtCore import QEventLoop, QTimer
    from PySide6.QtWidgets import QApplication

    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise SystemExit(f"screenshots: timed out waiting for {what or predicate}")
        QApplication.processEvents()
        loop = QEventLoop()
        QTimer.singleShot(20, loop.quit)
        loop.exec()


def settle(seconds: float = 0.4) -> None:
    end = time.monotonic() + seconds
    wait(lambda: time.monotonic() >= end, seconds + 5)


def tinyllama(shape: str = "tinyllama") -> Path:
    """A generated TinyLlama-shaped GGUF from the model cache: "tinyllama" is TinyLlama 1.1B
    Chat's shape and template (620 MB), "shorter" the same with 16 layers (471 MB)."""
    from app.testing import models

    if shape == "shorter":
        return models.cached_model("tinyllama_shape", name="vicuna-13b-v1.5", block_count=16)
    return models.cached_model("tinyllama_shape", name="tinyllama-1.1b-chat",
                               chat_template=models.ZEPHYR_TEMPLATE)


def seed_models(home: Path, xdg: Path, hf_cache: Path) -> dict[str, Path]:
    from app.testing import models

    folder = home / "models"
    folder.mkdir(parents=True, exist_ok=True)
    made = {
        "tinyllama-1.1b-chat-v1.0.Q4_K_M.gguf": tinyllama(),
        "vicuna-7b-v1.5.Q4_K_M.gguf": models.cached_model("small", name="vicuna-7b-v1.5"),
        "llama-2-7b-chat.Q4_K_M.gguf": models.cached_model("small", name="llama-2-7b-chat", seed=1),
    }
    out = {}
    for name, source in made.items():
        dest = folder / name
        try:
            os.link(source, dest)  # same bytes, no copy of 600 MB
        except OSError:
            shutil.copy(source, dest)
        out[name] = dest
    gpt4all = xdg / "nomic.ai" / "GPT4All"  # another app's model, offered "Use in place"
    gpt4all.mkdir(parents=True, exist_ok=True)
    shutil.copy(models.cached_model("tiny", name="orca-mini-3b"), gpt4all / "orca-mini-3b-gguf2-q4_0.gguf")
    repo = hf_cache / "models--bartowski--Llama-3.2-1B-Instruct-GGUF"  # as huggingface_hub keeps it
    blob = repo / "blobs" / ("0" * 64)
    blob.parent.mkdir(parents=True)
    shutil.copy(models.cached_model("tiny", name="llama-3.2-1b"), blob)
    snapshot = repo / "snapshots" / ("a" * 40)
    snapshot.mkdir(parents=True)
    (snapshot / "Llama-3.2-1B-Instruct-Q4_K_M.gguf").symlink_to(Path("../..") / "blobs" / blob.name)
    return out


def start_hub(small: Path):
    from app.testing.hub_server import LocalHub

    hub = LocalHub().start()
    for repo, name, shape, throttle, kind in DOWNLOADS:
        hub.add_repo(repo, gated=kind == "gated", downloads=12000)
        source = small if shape is None else tinyllama(shape)
        hub.add_file(repo, name, source)
        if throttle:
            hub.set_faults(repo, name, throttle=throttle)
    return hub


def save(widget, out: Path, name: str) -> None:
    path = out / name
    if not widget.grab().save(str(path)):
        raise SystemExit(f"screenshots: could not write {path}")
    print(f"wrote {path.relative_to(ROOT) if path.is_relative_to(ROOT) else path}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=ROOT / "docs" / "screenshots")
    parser.add_argument("--size", default="1280x800")
    parser.add_argument("--only", action="append", choices=GROUPS,
                        help="take only these screenshots (repeatable; default: all)")
    args = parser.parse_args(argv)
    want = set(args.only or GROUPS)
    width, height = (int(v) for v in args.size.split("x"))
    args.out.mkdir(parents=True, exist_ok=True)

    with tempfile.TemporaryDirectory(prefix="corral-shots-") as tmp_name:
        tmp = Path(tmp_name)
        home, xdg = tmp / "home", tmp / "xdg"
        os.environ.update({"CORRAL_HOME": str(home), "XDG_DATA_HOME": str(xdg),
                           "HF_HUB_CACHE": str(tmp / "hf-cache"), "OLLAMA_MODELS": str(tmp / "ollama"),
                           "HF_HUB_DISABLE_TELEMETRY": "1"})  # Corral never uses Xet
        os.environ.pop("HF_TOKEN", None)
        if not os.environ.get("DISPLAY"):
            os.environ["QT_QPA_PLATFORM"] = "offscreen"
        files = seed_models(home, xdg, tmp / "hf-cache")
        tiny = files["vicuna-7b-v1.5.Q4_K_M.gguf"]
        hub = start_hub(tiny)
        os.environ["HF_ENDPOINT"] = hub.url

        from app.core.chats import ChatStore
        from app.gui.chat import demo

        tinyllama = files["tinyllama-1.1b-chat-v1.0.Q4_K_M.gguf"]
        store = ChatStore()
        demo.seed_demo(store, tinyllama.stem, str(tinyllama))
        store.close()

        from app.gui.app import create_window

        app, window = create_window()
        try:
            window.resize(width, height)
            window.show()
            wait(lambda: window.is_ready and window.library_state.items is not None, what="start-up")
            if "chat" in want:
                shoot_chat(window, args.out, tinyllama, width)
            library = window.show_screen("library")
            window.resize(width, height)  # the chat screen may have widened the window
            wait(lambda: len(library.installed_ids()) == len(files), what="the library")
            wait(lambda: len(library.catalog.items()) > 0, what="the catalog")
            if "library" in want:
                shoot_library(window, library, args.out)
            if "downloads" in want:
                shoot_downloads(window, args.out, width, height)
            if "settings" in want:
                shoot_settings(window, args.out)
                shoot_servers(window, home, args.out)
            if "menu" in want:
                shoot_menu(window, args.out)
            if "library-search" in want:
                shoot_library_search(window, home, args.out, width, height)
            if "chat-long" in want:
                shoot_long_chat(window, args.out, width, height)
            if "picker" in want:
                shoot_picker(window, home, args.out, width, height)
        finally:
            window.close()
            hub.stop()
            app.processEvents()
    return 0


def shoot_chat(window, out: Path, tinyllama: Path, width: int) -> None:
    from app.gui import theme
    from app.gui.chat import demo

    chat = window.chat_screen
    # Chat mode, with the demo conversation's model loaded by the real engine.
    demo.show_demo(chat, "chat")
    chat.session.choose_model(tinyllama.stem)
    wait(lambda: window.status.model.text() == f"Model: {tinyllama.stem}", 120, "the model to load")
    chat.splitter.setSizes([220, width - 92 - 220 - 320, 320])
    settle(0.8)
    save(window, out, "chat.png")
    theme.ensure("dark")
    settle(0.8)
    save(window, out, "chat-dark.png")
    theme.ensure("light")

    demo.show_demo(chat, "completion", tab="Prompt")
    settle(0.8)
    save(window, out, "chat-completion.png")


def shoot_library(window, library, out: Path) -> None:
    library.installed.select("tinyllama-1.1b-chat-v1.0.Q4_K_M")
    settle()
    save(window, out, "library.png")
    library.show_tab("catalog")
    library.catalog.select("vicuna-7b-v1.5")
    settle()
    save(window, out, "library-catalog.png")
    library.show_tab("other")
    wait(lambda: library.other_list.count() > 0, what="other apps' models")
    settle()
    save(window, out, "library-other-apps.png")


def shoot_library_search(window, home: Path, out: Path, width: int, height: int) -> None:
    """200 models (the three seeded ones among them), searched as a person types."""
    from PySide6.QtTest import QTest

    from app.testing.many_models import seed_library

    seed_library(home / "models", 200)
    library = window.show_screen("library")
    window.resize(width, height)
    library.show_tab("installed")
    window.library_state.refresh()
    wait(lambda: len(library.installed_ids()) == 200, 60, "200 models listed")
    library.search.setFocus()
    library.search.clear()
    QTest.keyClicks(library.search, SEARCHED)
    wait(lambda: 0 < len(library.installed_ids()) < 200, what="the search")
    settle()
    save(window, out, "library-search.png")


def shoot_long_chat(window, out: Path, width: int, height: int) -> None:
    """A 1000-message chat with Markdown and code, opened and scrolled to its middle."""
    from app.testing.long_chat import seed_long_chat

    cid = seed_long_chat(window.chat_store, 1000, title="A long conversation",
                         model_id="tinyllama-1.1b-chat-v1.0.Q4_K_M")
    window.show_screen("chat")
    window.resize(width, height)
    chat = window.chat_screen
    chat.open_conversation(cid)
    view = chat.messages
    wait(lambda: len(view.message_ids()) == 1000, what="the 1000 messages")
    view.scroll_to_message(view.message_ids()[500])
    settle(0.8)
    save(window, out, "chat-1000-middle.png")


def shoot_downloads(window, out: Path, width: int, height: int) -> None:
    controller = window.downloads
    jobs = {}

    def share(kind: str) -> float:  # how much of its file a download has
        job = controller.manager.get(jobs[kind].id)
        return job.bytes_done / job.size if job.size else 0.0

    for repo, name, shape, throttle, kind in reversed(DOWNLOADS):
        jobs[kind] = controller.enqueue(repo, name)
        if kind == "done":
            wait(lambda: controller.manager.get(jobs["done"].id).state == "done", 30, "a download")
        if kind == "gated":
            wait(lambda: controller.manager.get(jobs["gated"].id).state == "failed", 30, "refusal")
        if kind == "pause":
            job_id = jobs["pause"].id
            wait(lambda: share("pause") > 0.38, 60, "progress")
            controller.pause(job_id)
            wait(lambda: controller.manager.get(job_id).state == "paused", 30, "pause")
    downloads = window.show_screen("downloads")
    window.resize(width, height)
    running = jobs["run"].id
    wait(lambda: running in downloads.rows and downloads.rows[running].eta is not None
         and share("run") > 0.12, 90, "a running download")
    settle(0.3)
    save(window, out, "downloads.png")
    controller.pause(running)


def shoot_settings(window, out: Path) -> None:
    window.show_screen("chat")
    window.open_settings()
    dialog = window.settings_dialog
    dialog.token.setText("hf_xxxxxxxxxxxxxxxxxxxxxxxxxxxx")
    wait(dialog.isVisible, what="the settings dialog")
    dialog.backend.setFocus()
    settle()
    save(dialog, out, "settings.png")
    dialog.reject()


def shoot_servers(window, home: Path, out: Path) -> None:
    """Settings → Servers with a real `corral serve` (this home's models) added and tested."""
    from app.testing.servers import corral_serve

    with corral_serve(home, api_key="sk-demo") as url:
        window.open_settings()
        dialog = window.settings_dialog
        wait(dialog.isVisible, what="the settings dialog")
        page = dialog.show_page("servers")
        page.url.setText(url)
        page.key.setText("sk-demo")
        page.name.setText("gpu-box")
        page.add_button.click()
        wait(page.add_button.isEnabled, 60, "the server's models")
        dialog.resize(640, 640)
        settle()
        save(dialog, out, "settings-servers.png")
        page.list.setCurrentItem(page.list.topLevelItem(0))
        page.confirm = lambda title, text: True
        page.remove_button.click()  # its key (maybe in your OS keyring) is not kept after
        dialog.reject()


def shoot_picker(window, home: Path, out: Path, width: int, height: int) -> None:
    """The chat's model picker (Ctrl+K) searching 200 local models and a `corral serve` of the
    same models registered as "lab-server" (removed after): picker-search.png."""
    from PySide6.QtGui import QPainter
    from PySide6.QtTest import QTest

    from app.core.remote import ServerRegistry
    from app.testing.many_models import seed_library
    from app.testing.servers import corral_serve

    if len(list((home / "models").glob("*.gguf"))) < 200:
        seed_library(home / "models", 200)
    window.library_state.refresh()
    window.show_screen("chat")
    window.resize(width, height)
    chat = window.chat_screen
    wait(lambda: len(chat.session.models.local) >= 200, 60, "200 models in the chat")
    with corral_serve(home) as url:
        ServerRegistry().add(url, name="lab-server")
        try:
            chat.session.models.refresh_remote()
            wait(lambda: len(chat.session.models.remote) >= 200, 60, "the server's models")
            chat.choose_model()
            picker = chat.toolbar.picker
            wait(lambda: picker.isVisible() and picker.search.hasFocus(), what="the picker")
            QTest.keyClicks(picker.search, PICKED)
            wait(lambda: 0 < len(picker.shown_entries()) < 20, what="the search")
            settle()
            picture = window.grab().toImage()
            painter = QPainter(picture)
            painter.drawPixmap(window.mapFromGlobal(picker.pos()), picker.grab())
            painter.end()
            picker.hide()
        finally:
            ServerRegistry().remove("lab-server")
            chat.session.models.refresh_remote()
    path = out / "picker-search.png"
    if not picture.save(str(path)):
        raise SystemExit(f"screenshots: could not write {path}")
    print(f"wrote {path.relative_to(ROOT) if path.is_relative_to(ROOT) else path}")


def shoot_menu(window, out: Path) -> None:
    """The Chat menu open over the window (a popup is a window of its own: painted onto the
    window's picture where it opened), and Help → Keyboard shortcuts."""
    from PySide6.QtGui import QPainter

    window.show_screen("chat")
    bar = window.menuBar()
    action = next(a for a in bar.actions() if a.text().replace("&", "") == "Chat")
    where = bar.mapToGlobal(bar.actionGeometry(action).bottomLeft())
    action.menu().popup(where)
    wait(action.menu().isVisible, what="the Chat menu")
    settle()
    picture = window.grab().toImage()
    painter = QPainter(picture)
    painter.drawPixmap(window.mapFromGlobal(where), action.menu().grab())
    painter.end()
    action.menu().hide()
    path = out / "menu.png"
    if not picture.save(str(path)):
        raise SystemExit(f"screenshots: could not write {path}")
    print(f"wrote {path.relative_to(ROOT) if path.is_relative_to(ROOT) else path}")
    dialog = window.show_shortcuts()
    wait(dialog.isVisible, what="the shortcuts")
    settle()
    save(dialog, out, "shortcuts.png")
    dialog.reject()


if __name__ == "__main__":
    raise SystemExit(main())
