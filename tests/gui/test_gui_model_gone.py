"""A model file moved or deleted while the window is open: the chat says which file is gone,
once, and stays usable (another model answers next); the Library reads itself again and shows
the model as "File missing". No traceback on any path that reads the file again: the next
prompt's preview and check, sending, and choosing the model in the picker (which listed it
before it went)."""

from __future__ import annotations

import shutil

import pytest
from PySide6.QtCore import Qt

from app.core.chats import ChatStore
from app.core.library import LINK, Library
from app.testing.chat_screens import set_knobs

WAIT = 20_000


@pytest.fixture
def two_models(tmp_path, tiny_model, home):
    """`first` and `gone`, both used in place (linked) from a folder outside the library."""
    folder = tmp_path / "elsewhere"
    folder.mkdir()
    out = {}
    for name in ("first", "gone"):
        path = folder / f"{name}.F32.gguf"
        shutil.copy(tiny_model, path)
        out[name] = Library().import_file(path, LINK)
    return out


def ready_chat(open_window, qtbot, models):
    window = open_window()
    qtbot.waitUntil(lambda: window.is_ready and window.chat_screen is not None, timeout=WAIT)
    qtbot.waitUntil(lambda: len(window.library_state.usable) == len(models), timeout=WAIT)
    window.show_screen("chat")
    screen = window.chat_screen
    qtbot.waitUntil(lambda: screen.session.model() is not None, timeout=WAIT)
    return window, screen


def idle(screen) -> bool:
    s = screen.session
    return not s.busy and s.loading is None


def memory_column(window, model_id: str) -> str:
    """What the Library's table shows in the Memory column for `model_id`."""
    table = window.show_screen("library").installed.table
    model = table.model()
    column = next(c for c in range(model.columnCount())
                  if model.headerData(c, Qt.Orientation.Horizontal) == "Memory")
    row = next(r for r in range(model.rowCount())
               if model.index(r, 0).data() == model_id)
    return model.index(row, column).data()


def gone_said(model) -> str:
    return (f"The file of {model.id}, {model.path}, is gone (moved or deleted); choose another "
            f"model above, or put the file back.")


def answer_with(screen, qtbot, model_id: str, text: str) -> None:
    """The window goes on: `model_id` answers `text` in the open conversation."""
    screen.session.choose_model(model_id)
    set_knobs(screen, max_tokens=4)
    assert screen.send(text)
    qtbot.waitUntil(lambda: screen.session.messages()[-1].state == "complete"
                    and idle(screen), timeout=WAIT)
    last = screen.session.messages()[-1]
    assert (last.role, last.stats["model"], last.stats["generated_tokens"]) == (
        "assistant", model_id, 4)


def test_typing_and_sending_after_the_model_file_is_deleted(open_window, qtbot, two_models):
    gone = two_models["gone"]
    store = ChatStore()
    conv = store.create_conversation(title="On a file that will go", model_id=gone.id,
                                     model_path=str(gone.path))
    store.close()
    window, screen = ready_chat(open_window, qtbot, two_models)
    assert screen.session.conv.id == conv.id and screen.session.model().id == gone.id

    gone.path.unlink()
    with qtbot.waitSignal(screen.session.promptShown, timeout=WAIT):  # the preview, checked
        qtbot.keyClicks(screen.composer.edit, "hello there")
    qtbot.keyClick(screen.composer.edit, Qt.Key.Key_Return)
    qtbot.waitUntil(lambda: len(screen.session.messages()) == 2 and idle(screen), timeout=WAIT)
    user, reply = screen.session.messages()
    assert user.content == "hello there"
    assert (reply.state, reply.content) == ("error", "")
    assert reply.stats["error"] == f"Cannot load {gone.path}: does not exist"

    # The Library is read again: the model is there, its file missing; the chat says so.
    qtbot.waitUntil(lambda: any(i.model.id == gone.id and i.model.status == "missing"
                                for i in window.library_state.items), timeout=WAIT)
    qtbot.waitUntil(lambda: screen.error_banner.label.text() == gone_said(gone), timeout=WAIT)
    assert memory_column(window, gone.id) == "File missing"
    assert memory_column(window, two_models["first"].id) != "File missing"
    assert [e.id for e in screen.session.models.local] == [two_models["first"].id]

    window.show_screen("chat")
    answer_with(screen, qtbot, two_models["first"].id, "and now?")


def test_choosing_a_model_whose_file_went_since_the_picker_listed_it(open_window, qtbot,
                                                                     two_models):
    gone, first = two_models["gone"], two_models["first"]
    window, screen = ready_chat(open_window, qtbot, two_models)
    assert screen.session.model().id == first.id

    gone.path.unlink()
    assert gone.id in [e.id for e in screen.session.models.local]  # listed before it went
    screen.session.choose_model(gone.id)  # its file is read now: it raised GGUFError here
    qtbot.keyClicks(screen.composer.edit, "hello there")
    qtbot.waitUntil(lambda: any(i.model.id == gone.id and i.model.status == "missing"
                                for i in window.library_state.items), timeout=WAIT)
    qtbot.waitUntil(lambda: screen.error_banner.label.text() == gone_said(gone), timeout=WAIT)
    assert screen.session.model() is None
    assert memory_column(window, gone.id) == "File missing"

    window.show_screen("chat")
    qtbot.keyClick(screen.composer.edit, Qt.Key.Key_Return)  # nothing is sent: no model
    assert screen.session.messages() == [] and screen.composer.text() == "hello there"
    answer_with(screen, qtbot, first.id, "hello there")
