"""The Library with what people accumulate (issue 17): 200 models searched key by key and sorted
by every column, no widget per row; a large import followed with progress and cancelled without
a trace; one unit for a size in the window and in the CLI."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
from pathlib import Path

import pytest
from PySide6.QtCore import QPoint, Qt
from PySide6.QtTest import QTest
from PySide6.QtWidgets import QPushButton, QWidget

from app.core.catalog import load_catalog
from app.core.library import COPY, Library
from app.core.settings import load_settings
from app.gui.main_window import MainWindow
from app.testing.many_models import seed_library

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def home(tmp_path, monkeypatch):
    monkeypatch.setenv("CORRAL_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("HOME", str(tmp_path / "user"))
    return tmp_path / "home"


@pytest.fixture
def window(qtbot, home):
    w = MainWindow(load_settings())
    qtbot.addWidget(w)
    w.resize(1280, 800)
    w.show()
    yield w
    w.close()


@pytest.fixture
def many(home):
    paths = seed_library(home / "models", 200)
    # Hard links share one date: a few files become copies of their own, each with its date.
    for i, path in enumerate(p for i, p in enumerate(paths[:10]) if i % 5 != 4):  # (tiny ones)
        data = path.read_bytes()
        path.unlink()
        path.write_bytes(data)
        os.utime(path, (1_600_000_000 + i * 86_400, 1_600_000_000 + i * 86_400))
    return paths


@pytest.fixture
def library(window, many, qtbot):
    screen = window.show_screen("library")
    qtbot.waitUntil(lambda: len(screen.installed_ids()) == 200, timeout=30_000)
    return screen


def searchable(item) -> str:
    """What the search field is documented to match: the id, the file name, the family (the
    catalog's for the file name, else the architecture), the quantisation and the size label."""
    m = item.model
    family = load_catalog().family_for(m.path.name) or m.header.architecture
    return " ".join((m.id, m.path.name, family, m.quantization or "", m.parameters_label or "")).lower()


def test_search_filters_200_models_key_by_key_without_a_widget_per_row(library, window, qtbot):
    items = window.library_state.items
    assert len(items) == 200
    # The screen holds a table, not 200 cards: far fewer widgets than rows.
    assert len(library.findChildren(QWidget)) < 200
    query = "mistral q4_k"
    assert library.installed.select("zephyr-7b-beta.Q8_0")  # a row the search will hide
    library.search.setFocus()
    for n in range(1, len(query) + 1):
        QTest.keyClick(library.search, query[n - 1])
        words = query[:n].split()
        expected = sorted(i.model.id for i in items if all(w in searchable(i) for w in words))
        qtbot.waitUntil(lambda: sorted(library.installed_ids()) == expected, timeout=5000)
    assert sorted(library.installed_ids()) == ["mistral-7b-instruct-v0.2.Q4_K_M",
                                                "openhermes-2.5-mistral-7b.Q4_K_M"]
    # The first match is selected and its card (with its buttons) shown; the tab says how many.
    assert library.installed.card.item.model.id == library.installed_ids()[0]
    assert library.installed.table.selectionModel().isRowSelected(0)
    assert library.installed.card.findChild(QPushButton, "chat-button") is not None
    assert library.tabs.tabText(0) == "Installed (2 of 200)"
    library.search.clear()
    qtbot.waitUntil(lambda: len(library.installed_ids()) == 200)
    assert library.tabs.tabText(0) == "Installed (200)"
    library.search.setText("no such model anywhere")
    qtbot.waitUntil(lambda: library.installed_ids() == [])
    assert library.installed.nothing.isVisible() and "None of your 200 models" in library.installed.nothing.text()
    assert library.installed.card is None


SORT_KEYS = {
    "Name": lambda i: i.model.id.lower(),
    "Params": lambda i: i.model.header.parameters,
    "Quant": lambda i: i.model.quantization.lower(),
    "Family": lambda i: i.family.lower(),
    "Size": lambda i: i.model.size,
    "Memory": lambda i: i.plan.total,
    "Date": lambda i: i.date,
}


def test_every_column_sorts_both_ways(library, window, qtbot):
    table = library.installed.table
    header = table.horizontalHeader()
    titles = [table.model().headerData(c, Qt.Orientation.Horizontal) for c in range(header.count())]
    assert set(titles) == set(SORT_KEYS)
    items = window.library_state.items
    assert len({i.model.size for i in items}) > 1 and len({i.family for i in items}) > 3
    assert len({i.date for i in items}) > 5
    for column, title in enumerate(titles):
        key = SORT_KEYS[title]
        expected = [i.model.id for i in sorted(items, key=lambda i: (key(i), i.model.id.lower()))]
        # A click on the header, as a person sorts: ascending first (or descending when the
        # column was already sorted ascending), a second click the other way.
        was = header.sortIndicatorSection() == column and header.sortIndicatorOrder() == Qt.SortOrder.AscendingOrder
        where = QPoint(header.sectionViewportPosition(column) + header.sectionSize(column) // 2, 5)
        QTest.mouseClick(header.viewport(), Qt.MouseButton.LeftButton, pos=where)
        first = expected[::-1] if was else expected
        assert library.installed_ids() == first, title
        QTest.mouseClick(header.viewport(), Qt.MouseButton.LeftButton, pos=where)
        assert library.installed_ids() == first[::-1], title
    # Sorting keeps the search: only the matches, in the new order.
    library.search.setText("vicuna")
    qtbot.waitUntil(lambda: len(library.installed_ids()) == 10)
    table.sortByColumn(titles.index("Name"), Qt.SortOrder.DescendingOrder)
    assert library.installed_ids() == sorted(library.installed_ids(), key=str.lower, reverse=True)


class HeldLibrary(Library):
    """The real Library, whose copy waits after its first block until the test lets it go on
    (a large file's copy, without writing gigabytes)."""

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.first_block = threading.Event()
        self.go = threading.Event()

    def import_file(self, src, mode=COPY, **kwargs):
        progress = kwargs.get("progress")

        def held(done: int, total: int) -> None:
            progress(done, total)
            if not self.first_block.is_set():
                self.first_block.set()
                assert self.go.wait(30)

        return super().import_file(src, mode, **{**kwargs, "progress": held})


@pytest.fixture
def held(window):
    state = window.library_state
    state.library = HeldLibrary(models_dir=state.library.models_dir)
    yield state.library
    state.library.go.set()


def everything_in(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.rglob("*")) if folder.exists() else []


def test_an_import_shows_its_progress_and_cancel_leaves_nothing(window, held, qtbot, small_model, home):
    library = window.show_screen("library")
    library.import_paths([small_model])
    qtbot.waitUntil(lambda: len(library.imports.rows) == 1 and library.imports.isVisible())
    row = library.imports.rows[0]
    qtbot.waitUntil(lambda: row.bar.maximum() == 1000 and row.bar.value() > 0, timeout=10_000)
    size = small_model.stat().st_size
    assert 0 < row.bar.value() < 1000
    assert row.figures.text().startswith("8.39 MB of ") and "%" in row.figures.text()
    row.cancel.click()
    assert row.cancel.text() == "Cancelling…" and not row.cancel.isEnabled()
    held.go.set()
    qtbot.waitUntil(lambda: not library.imports.rows, timeout=10_000)
    assert not library.imports.isVisible()
    assert library.banner.kind == "info" and "cancelled; nothing was copied" in library.banner.text.text()
    assert everything_in(home / "models") == []      # no copy, no hidden temporary file
    assert Library().scan() == [] and small_model.stat().st_size == size


def test_an_import_followed_to_the_end_is_listed(window, held, qtbot, small_model, home):
    library = window.show_screen("library")
    library.import_paths([small_model])
    qtbot.waitUntil(lambda: held.first_block.is_set() and library.imports.rows
                    and library.imports.rows[0].bar.value() > 0, timeout=10_000)
    held.go.set()
    qtbot.waitUntil(lambda: small_model.stem in library.installed_ids(), timeout=10_000)
    assert not library.imports.rows and not library.imports.isVisible()
    assert library.installed.card.item.model.id == small_model.stem   # selected once listed
    assert everything_in(home / "models") == [small_model.name]


def cli(*args: str) -> str:
    r = subprocess.run([sys.executable, "-m", "app", *args], capture_output=True, text=True,
                       cwd=ROOT, env=os.environ, timeout=120)
    assert r.returncode == 0, r.stderr
    return r.stdout


def test_a_size_reads_the_same_in_the_window_and_the_cli(window, qtbot, small_model):
    library = window.show_screen("library")
    library.import_paths([small_model])
    qtbot.waitUntil(lambda: small_model.stem in library.installed_ids(), timeout=10_000)
    table = library.installed.table
    size_column = [table.model().headerData(c, Qt.Orientation.Horizontal)
                   for c in range(table.model().columnCount())].index("Size")
    shown = table.model().index(0, size_column).data()
    card = library.installed.card
    facts = " ".join(w.text() for w in card.findChildren(type(library.banner.text)))
    inspect = next(line for line in cli("inspect", str(small_model)).splitlines() if line.startswith("size:"))
    listed = cli("models", "list").splitlines()[1].split()
    # "35.5 MB": decimal, labelled, the same figure everywhere (the window showed MiB as "MB")
    assert shown.endswith(" MB") and shown == " ".join(listed[1:3])
    assert inspect.split(":", 1)[1].strip().startswith(f"{shown} (")
    assert f"  ·  {shown}  ·  " in facts


def test_the_keyboard_chats_with_the_selected_row_and_delete_asks(window, qtbot, tiny_model, home):
    library = window.show_screen("library")
    library.import_paths([tiny_model])
    qtbot.waitUntil(lambda: library.installed_ids() == [tiny_model.stem], timeout=10_000)
    table = library.installed.table
    table.setFocus()
    asked = []
    library.confirm = lambda title, text: asked.append(text) or False
    QTest.keyClick(table, Qt.Key.Key_Delete)
    assert asked and tiny_model.stem in asked[0] and (home / "models" / tiny_model.name).exists()
    with qtbot.waitSignal(library.chatRequested) as signal:
        QTest.keyClick(table, Qt.Key.Key_Return)
    assert signal.args == [tiny_model.stem, str(home / "models" / tiny_model.name)]
