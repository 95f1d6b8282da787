"""The Library screen over the real core: import (API, file drop, in place), bad files, delete,
"Chat with this model", the catalog and its selected entry's card, other apps' models, offline
hub search. (Scale — 200 models, search, sorting, import progress — in test_gui_library_scale.)"""

from __future__ import annotations

import shutil

import pytest
from PySide6.QtCore import QMimeData, QPoint, QPointF, Qt, QUrl
from PySide6.QtGui import QDragEnterEvent, QDropEvent
from PySide6.QtWidgets import QApplication, QPushButton

from app.core.memory_plan import FITS, TIGHT, WILL_NOT_FIT, format_bytes
from app.core.settings import Settings, load_settings, save_settings
from app.gui.main_window import MainWindow
from app.testing.hub_server import local_hub  # noqa: F401  (a fixture)


@pytest.fixture
def home(tmp_path, monkeypatch):
    monkeypatch.setenv("CORRAL_HOME", str(tmp_path / "home"))
    # Other apps' folders are looked for under this fake home only.
    monkeypatch.setenv("HOME", str(tmp_path / "user"))
    for name in ("HF_HUB_CACHE", "HUGGINGFACE_HUB_CACHE", "HF_HOME", "XDG_CACHE_HOME",
                 "XDG_DATA_HOME", "OLLAMA_MODELS"):
        monkeypatch.delenv(name, raising=False)
    return tmp_path / "home"


@pytest.fixture
def window(qtbot, home):
    w = MainWindow(load_settings())
    qtbot.addWidget(w)
    w.show()
    yield w
    w.close()


@pytest.fixture
def library(window, qtbot):
    screen = window.show_screen("library")
    qtbot.waitUntil(lambda: window.library_state.items is not None)
    return screen


def card_ids(screen) -> list[str]:
    return screen.installed_ids()


def installed_card(screen, model_id: str):
    """The card of the installed model `model_id`, selected in the table."""
    assert screen.installed.select(model_id)
    card = screen.installed.card
    assert card is not None and card.item.model.id == model_id
    return card


def installed_item(screen, model_id: str):
    return next(i for i in screen.installed.items() if i.model.id == model_id)


def catalog_card(screen, entry_id: str):
    assert screen.catalog.select(entry_id)
    card = screen.catalog.card
    assert card is not None and card.item.entry.id == entry_id
    return card


def drop(widget, paths) -> None:
    mime = QMimeData()
    mime.setUrls([QUrl.fromLocalFile(str(p)) for p in paths])
    # QDragEnterEvent takes an integer QPoint (PySide6 6.11 refuses a QPointF); QDropEvent a QPointF.
    enter = QDragEnterEvent(QPoint(20, 20), Qt.DropAction.CopyAction, mime,
                            Qt.MouseButton.LeftButton, Qt.KeyboardModifier.NoModifier)
    QApplication.sendEvent(widget, enter)
    assert enter.isAccepted()
    event = QDropEvent(QPointF(20, 20), Qt.DropAction.CopyAction, mime,
                       Qt.MouseButton.LeftButton, Qt.KeyboardModifier.NoModifier)
    QApplication.sendEvent(widget, event)
    assert event.isAccepted()


def test_import_by_api_adds_a_row(library, qtbot, tiny_model, home):
    library.import_paths([tiny_model])
    qtbot.waitUntil(lambda: "corral-tiny.F32" in card_ids(library))
    card = library.installed.card  # the imported model is selected, its card shown
    assert card is not None and card.item.model.id == "corral-tiny.F32"
    assert card.item.model.kind == "folder"
    assert (home / "models" / tiny_model.name).is_file()  # copied
    assert tiny_model.is_file()
    assert "Added corral-tiny.F32" in library.banner.text.text()
    assert library.tabs.tabText(0) == "Installed (1)"


def test_drop_gguf_files_imports_them(library, qtbot, make_model, tmp_path):
    first = make_model("tiny", folder=tmp_path / "drop", name="dropped-one")
    second = make_model("tiny", folder=tmp_path / "drop", name="dropped-two")
    drop(library, [first, second])
    qtbot.waitUntil(lambda: {"dropped-one.F32", "dropped-two.F32"} <= set(card_ids(library)))


def test_drop_on_the_window_uses_the_file_in_place(window, library, qtbot, make_model, tmp_path, home):
    model = make_model("tiny", folder=tmp_path / "elsewhere", name="in-place")
    library.copy_files.setChecked(False)
    window.show_screen("chat")
    drop(window, [model])
    assert window.current_screen() == "library"
    qtbot.waitUntil(lambda: "in-place.F32" in card_ids(library))
    item = installed_item(library, "in-place.F32")
    assert item.model.kind == "linked"
    assert item.model.path == model
    assert not (home / "models" / model.name).exists()


def test_a_bad_file_is_named_and_the_app_stays_up(library, window, qtbot, tmp_path):
    bad = tmp_path / "not-a-model.gguf"
    bad.write_bytes(b"this is not a GGUF file at all" * 10)
    library.import_paths([bad])
    qtbot.waitUntil(lambda: library.banner.isVisible() and library.banner.kind == "error")
    text = library.banner.text.text()
    assert "not-a-model.gguf" in text
    assert "GGUF" in text
    assert window.isVisible()
    assert card_ids(library) == []


def test_a_broken_file_in_the_models_folder_is_listed_with_its_reason(window, home, qtbot):
    (home / "models").mkdir(parents=True, exist_ok=True)
    (home / "models" / "half.gguf").write_bytes(b"GGUF\x03\x00\x00\x00")
    window.library_state.refresh()
    screen = window.show_screen("library")
    qtbot.waitUntil(lambda: "half" in card_ids(screen))
    card = installed_card(screen, "half")
    assert card.item.model.error and "half.gguf" in card.item.model.error
    assert card.findChild(QPushButton, "chat-button") is None


def test_delete_asks_first(library, qtbot, tiny_model, home):
    library.import_paths([tiny_model])
    qtbot.waitUntil(lambda: "corral-tiny.F32" in card_ids(library))
    asked = []
    library.confirm = lambda title, text: asked.append(text) or False
    installed_card(library, "corral-tiny.F32").findChild(QPushButton, "delete-button").click()
    assert asked and "corral-tiny.F32" in asked[0]
    assert (home / "models" / tiny_model.name).exists()
    library.confirm = lambda title, text: True
    installed_card(library, "corral-tiny.F32").findChild(QPushButton, "delete-button").click()
    qtbot.waitUntil(lambda: card_ids(library) == [])
    assert not (home / "models" / tiny_model.name).exists()


def test_chat_with_this_model_goes_to_the_chat(library, window, qtbot, tiny_model):
    library.import_paths([tiny_model])
    qtbot.waitUntil(lambda: "corral-tiny.F32" in card_ids(library))
    with qtbot.waitSignal(library.chatRequested) as signal:
        installed_card(library, "corral-tiny.F32").findChild(QPushButton, "chat-button").click()
    assert signal.args[0] == "corral-tiny.F32"
    assert window.current_screen() == "chat"
    assert not window.showing_welcome()
    # A new chat with that model, which starts loading (the status bar follows the engine).
    assert window.chat_screen.session.conv.model_id == "corral-tiny.F32"
    qtbot.waitUntil(lambda: window.status.model.text() == "Model: corral-tiny.F32", timeout=60000)


def test_catalog_cards_show_memory_fit_and_download(library, qtbot):
    library.show_tab("catalog")
    qtbot.waitUntil(lambda: len(library.catalog.items()) > 5)
    card = catalog_card(library, "tinyllama-1.1b-chat")
    texts = " ".join(w.text() for w in card.findChildren(type(library.banner.text)))
    assert "TinyLlama" in texts and "apache-2.0" in texts and "zephyr" in texts
    # The verdict for this computer and the selected file, with what it needs.
    plan = card.item.plans[card.current_file().quant]
    verdict = {FITS: "Fits in memory", TIGHT: "Tight fit", WILL_NOT_FIT: "Too big for this machine"}[
        plan.verdict]
    assert f"{verdict} · {format_bytes(plan.total)}" in texts
    assert card.current_file().size < plan.total < card.current_file().size + 2 * 1024 ** 3
    assert card.findChild(QPushButton, "download-button").isVisibleTo(card)
    unavailable = [i for i in library.catalog.items() if not i.entry.available]
    assert unavailable
    card = catalog_card(library, unavailable[0].entry.id)
    alternative = card.findChild(QPushButton, "alternative-button")
    assert alternative is not None
    alternative.click()  # the alternative entry is selected, its card shown
    assert library.catalog.card.item.entry.id == unavailable[0].entry.alternative
    library.search.setText("vicuna")
    qtbot.waitUntil(lambda: "llama-7b" not in {i.entry.id for i in library.catalog.items()})
    shown = {i.entry.id for i in library.catalog.items()}
    assert {"vicuna-7b-v1.5", "vicuna-13b-v1.5"} <= shown
    assert library.tabs.tabText(1) == f"Catalog ({len(shown)})"


def test_catalog_shows_an_installed_file_as_chat(library, qtbot, make_model, tmp_path):
    model = make_model("tiny", folder=tmp_path / "cat", name="tiny-catalog")
    named = tmp_path / "tinyllama-1.1b-chat-v1.0.Q4_K_M.gguf"
    shutil.copy(model, named)
    library.import_paths([named])
    qtbot.waitUntil(lambda: any(i.installed for i in library.catalog.items()))
    card = catalog_card(library, "tinyllama-1.1b-chat")
    assert card.chat.isVisibleTo(card) and not card.download.isVisibleTo(card)


def test_models_from_other_apps_are_used_in_place(library, qtbot, make_model, tmp_path):
    lm_studio = tmp_path / "user" / ".lmstudio" / "models" / "TheBloke" / "Some-GGUF"
    found = make_model("tiny", folder=lm_studio, name="lmstudio-model")
    library.show_tab("other")
    qtbot.waitUntil(lambda: library.other_list.count() == 1)
    card = library.other_list.itemAt(0).widget()
    assert card.found.source == "lm-studio"
    card.findChild(QPushButton, "use-button").click()
    qtbot.waitUntil(lambda: "lmstudio-model.F32" in card_ids(library))
    item = installed_item(library, "lmstudio-model.F32")
    assert item.model.kind == "linked" and item.model.path == found


def test_offline_mode_makes_no_hub_request(home, qtbot, local_hub):  # noqa: F811
    save_settings(Settings(offline=True))
    w = MainWindow(load_settings())
    qtbot.addWidget(w)
    w.show()
    screen = w.show_screen("library")
    screen.show_tab("hub")
    screen.search.setText("llama")
    qtbot.waitUntil(lambda: "Offline mode is on" in screen.hub_status.text())
    screen.show_tab("catalog")
    qtbot.waitUntil(lambda: len(screen.catalog.items()) > 0)
    catalog_card(screen, "tinyllama-1.1b-chat").findChild(QPushButton, "download-button").click()
    assert "Offline mode is on" in screen.banner.text.text()
    assert local_hub.requests == []
    w.close()


def test_hub_search_is_debounced_and_lists_files(window, library, qtbot, local_hub, tiny_model):  # noqa: F811
    local_hub.add_repo("someone/Tiny-Llama-GGUF", downloads=1234, likes=56)
    local_hub.add_file("someone/Tiny-Llama-GGUF", "tiny-llama.Q8_0.gguf", tiny_model)
    local_hub.add_repo("someone/Other-GGUF")
    library.show_tab("hub")
    for text in ("t", "ti", "tin", "tiny"):
        library.search.setText(text)
    qtbot.waitUntil(lambda: library.hub_list.count() == 1, timeout=10000)
    searches = [r for r in local_hub.requests if r.path.startswith("/api/models?")]
    assert len(searches) == 1 and "search=tiny" in searches[0].path  # one request for four keystrokes
    card = library.hub_list.itemAt(0).widget()
    assert card.repo.repo_id == "someone/Tiny-Llama-GGUF"
    card.show_files.click()
    qtbot.waitUntil(lambda: card.files_box.count() == 1)
    assert card.findChild(QPushButton, "download-button") is not None
