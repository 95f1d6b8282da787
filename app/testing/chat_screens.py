"""Chat screens for GUI tests: each on its own ChatStore and EngineWorker over the test's
CORRAL_HOME, shown, and shut down as the app does (the worker disposed, its thread ended, the
store closed).

    with chat_screens(qtbot) as make:
        screen = make()                       # the most recent conversation open
        set_knobs(screen, max_tokens=8)       # as typed in the parameter panel
"""

from __future__ import annotations

from contextlib import contextmanager
from typing import Any, Callable, Iterator


@contextmanager
def chat_screens(qtbot: Any) -> Iterator[Callable[[], Any]]:
    from app.core.chats import ChatStore
    from app.core.library import Library
    from app.core.settings import load_settings
    from app.gui.chat import ChatScreen
    from app.gui.workers import EngineWorker

    made: list = []

    def make() -> ChatScreen:
        store, worker = ChatStore(), EngineWorker()
        screen = ChatScreen(store, worker, Library(), load_settings())
        screen.resize(1200, 800)
        qtbot.addWidget(screen)
        screen.show()
        made.append((screen, worker, store))
        return screen

    try:
        yield make
    finally:
        for screen, worker, store in made:
            screen.shutdown()
            assert worker.dispose(), "the engine worker's thread did not end"
            assert not worker.thread_running
            store.close()


def set_knobs(screen: Any, **values: Any) -> None:
    """Set parameter panel fields as a person would (each change reaches the session)."""
    for key, value in values.items():
        screen.parameters.fields[key].setValue(value)
