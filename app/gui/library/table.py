"""The Library's lists as Qt model/view: rows of plain items, a proxy that filters and sorts them,
a table that paints only the rows in view.

200 cards (one widget tree per model, rebuilt at every keystroke) froze the window for a second;
here a row is data: the view asks `RowsModel.data()` for the cells it paints, the search is
`SearchProxy.set_query()` (each item's own `matches(query)`, no widget touched), and a sort is
the proxy ordering integers. Each tab shows the details and buttons of the selected row in one
card below its table.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable

from PySide6.QtCore import QAbstractTableModel, QModelIndex, QSortFilterProxyModel, Qt, Signal
from PySide6.QtGui import QColor
from PySide6.QtWidgets import QAbstractItemView, QHeaderView, QTableView, QVBoxLayout, QWidget

from app.gui import theme
from app.gui.widgets import label

ROW = Qt.ItemDataRole.UserRole          # the item itself
RANK = Qt.ItemDataRole.UserRole + 1     # the row's place in this column's order (the sort key)


@dataclass(frozen=True)
class Column:
    title: str
    text: Callable[[Any], str]
    key: Callable[[Any], Any] | None = None     # sort key; None: the text, case-insensitive
    chars: int = 0                              # width in average characters; 0: stretches
    right: bool = False                         # figures: right-aligned
    color: Callable[[Any], str | None] | None = None   # a theme colour name (theme.colors())
    tip: Callable[[Any], str | None] | None = None


class RowsModel(QAbstractTableModel):
    """A list of items shown as rows; `name(item)` breaks ties when sorting, `key(item)` keeps
    the selection across a refresh."""

    def __init__(self, columns: list[Column], name: Callable[[Any], str],
                 parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.columns = columns
        self.name = name
        self.rows: list[Any] = []
        self._ranks: dict[int, list[int]] = {}

    def set_rows(self, rows: list[Any]) -> None:
        self.beginResetModel()
        self.rows = list(rows)
        self._ranks = {}
        self.endResetModel()

    def rowCount(self, parent: QModelIndex = QModelIndex()) -> int:  # noqa: B008 (Qt's signature)
        return 0 if parent.isValid() else len(self.rows)

    def columnCount(self, parent: QModelIndex = QModelIndex()) -> int:  # noqa: B008
        return 0 if parent.isValid() else len(self.columns)

    def headerData(self, section: int, orientation: Qt.Orientation, role: int = Qt.ItemDataRole.DisplayRole):
        if orientation != Qt.Orientation.Horizontal:
            return None
        if role == Qt.ItemDataRole.DisplayRole:
            return self.columns[section].title
        if role == Qt.ItemDataRole.TextAlignmentRole:
            side = Qt.AlignmentFlag.AlignRight if self.columns[section].right else Qt.AlignmentFlag.AlignLeft
            return int(side | Qt.AlignmentFlag.AlignVCenter)
        return None

    def data(self, index: QModelIndex, role: int = Qt.ItemDataRole.DisplayRole):
        if not index.isValid():
            return None
        item, col = self.rows[index.row()], self.columns[index.column()]
        if role == Qt.ItemDataRole.DisplayRole:
            return col.text(item)
        if role == RANK:
            return self._rank(index.column())[index.row()]
        if role == ROW:
            return item
        if role == Qt.ItemDataRole.ForegroundRole and col.color is not None:
            name = col.color(item)
            return QColor(theme.colors()[name]) if name else None
        if role == Qt.ItemDataRole.ToolTipRole and col.tip is not None:
            return col.tip(item)
        if role == Qt.ItemDataRole.TextAlignmentRole and col.right:
            return int(Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter)
        return None

    def _rank(self, column: int) -> list[int]:
        """Each row's position when sorted by `column` (ties by name): the proxy then sorts
        integers in C++, with no Python call per comparison."""
        ranks = self._ranks.get(column)
        if ranks is None:
            col = self.columns[column]

            def key(i: int) -> tuple:
                item = self.rows[i]
                value = col.key(item) if col.key is not None else col.text(item).lower()
                return (value is None, value if value is not None else 0, self.name(item).lower())

            ranks = [0] * len(self.rows)
            for place, i in enumerate(sorted(range(len(self.rows)), key=key)):
                ranks[i] = place
            self._ranks[column] = ranks
        return ranks


class SearchProxy(QSortFilterProxyModel):
    """Rows whose item `matches(query)`; sorted by the model's ranks."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.query = ""
        self.setSortRole(RANK)

    def set_query(self, text: str) -> None:
        text = text.strip()
        if text == self.query:
            return
        self.beginFilterChange()
        self.query = text
        self.endFilterChange(QSortFilterProxyModel.Direction.Rows)

    def filterAcceptsRow(self, source_row: int, source_parent: QModelIndex) -> bool:
        return not self.query or self.sourceModel().rows[source_row].matches(self.query)

    def items(self) -> list[Any]:
        """The items shown, in the order shown."""
        model = self.sourceModel()
        return [model.rows[self.mapToSource(self.index(r, 0)).row()] for r in range(self.rowCount())]


class RowsTable(QTableView):
    """A table of `RowsModel` rows through a `SearchProxy`: click a header to sort, select a
    row for its details (`currentChanged(item or None)`), Enter or a double-click to act."""

    currentItem = Signal(object)
    activatedItem = Signal(object)

    def __init__(self, columns: list[Column], name: Callable[[Any], str], key: Callable[[Any], Any],
                 object_name: str, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName(object_name)
        self.key = key
        self.source = RowsModel(columns, name, self)
        self.proxy = SearchProxy(self)
        self.proxy.setSourceModel(self.source)
        self.setModel(self.proxy)
        self.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
        self.setSelectionMode(QAbstractItemView.SelectionMode.SingleSelection)
        self.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
        self.setWordWrap(False)
        self.setShowGrid(False)
        self.setAlternatingRowColors(True)
        self.setCornerButtonEnabled(False)
        self.setTextElideMode(Qt.TextElideMode.ElideRight)
        self.setVerticalScrollMode(QAbstractItemView.ScrollMode.ScrollPerPixel)
        rows = self.verticalHeader()
        rows.hide()
        rows.setSectionResizeMode(QHeaderView.ResizeMode.Fixed)  # never measured row by row
        rows.setDefaultSectionSize(self.fontMetrics().height() + 12)
        head = self.horizontalHeader()
        head.setHighlightSections(False)
        head.setSectionsMovable(False)
        em = self.fontMetrics().averageCharWidth()
        for i, col in enumerate(columns):
            if col.chars:
                head.setSectionResizeMode(i, QHeaderView.ResizeMode.Interactive)
                head.resizeSection(i, col.chars * em + 24)
            else:
                head.setSectionResizeMode(i, QHeaderView.ResizeMode.Stretch)
        self.setSortingEnabled(True)
        self.sortByColumn(0, Qt.SortOrder.AscendingOrder)
        self.selectionModel().currentRowChanged.connect(self._current_changed)
        # Not `activated`: a style may activate on a single click, and this starts a chat.
        self.doubleClicked.connect(lambda index: self.activatedItem.emit(index.data(ROW)))

    def keyPressEvent(self, event) -> None:
        if event.key() in (Qt.Key.Key_Return, Qt.Key.Key_Enter) and self.current() is not None:
            self.activatedItem.emit(self.current())
            return
        super().keyPressEvent(event)

    def set_items(self, items: list[Any]) -> None:
        """New rows; the selected item (by key) stays selected while it is there, else the
        first row is (its details shown at once)."""
        current = self.current()
        keep = self.key(current) if current is not None else None
        self.source.set_rows(items)
        self.proxy.sort(self.horizontalHeader().sortIndicatorSection(),
                        self.horizontalHeader().sortIndicatorOrder())
        if keep is None or not self.select(lambda item: self.key(item) == keep):
            self._first()

    def set_query(self, text: str) -> None:
        """Show the rows matching `text`; the selection follows to the first of them when the
        selected row is filtered out."""
        before = self.current()
        self.proxy.set_query(text)
        # A filtered-out current row moves Qt's current index to a neighbour: the first instead.
        if before is None or self.current() is not before or not self.selectionModel().hasSelection():
            self._first()

    def _first(self) -> None:
        if self.proxy.rowCount():
            self.setCurrentIndex(self.proxy.index(0, 0))
            self.scrollToTop()
        else:
            self.currentItem.emit(None)

    def items(self) -> list[Any]:
        return self.proxy.items()

    def current(self) -> Any:
        index = self.currentIndex()
        return index.data(ROW) if index.isValid() else None

    def select(self, predicate: Callable[[Any], bool]) -> bool:
        """Make the first shown item for which `predicate` holds the current one."""
        for r in range(self.proxy.rowCount()):
            index = self.proxy.index(r, 0)
            if predicate(index.data(ROW)):
                self.setCurrentIndex(index)
                self.scrollTo(index)
                return True
        return False

    def _current_changed(self, current: QModelIndex, _previous: QModelIndex) -> None:
        self.currentItem.emit(current.data(ROW) if current.isValid() else None)


class TableTab(QWidget):
    """A tab of the Library: an optional line of intro, the table, and the card of the selected
    row below it (`make_card(item)`, made again when the selection changes — one card, not one
    per row)."""

    def __init__(self, columns: list[Column], *, name: Callable[[Any], str], key: Callable[[Any], Any],
                 object_name: str, intro: str = "", parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.lay = QVBoxLayout(self)
        self.lay.setContentsMargins(0, 12, 0, 0)
        self.lay.setSpacing(10)
        if intro:
            self.lay.addWidget(label(intro, role="muted", wrap=True))
        self.table = RowsTable(columns, name, key, object_name)
        self.table.currentItem.connect(self._show_details)
        self.lay.addWidget(self.table, 1)
        self.details = QVBoxLayout()
        self.details.setContentsMargins(0, 0, 0, 0)
        self.lay.addLayout(self.details)
        self.card: QWidget | None = None

    def make_card(self, item: Any) -> QWidget:
        raise NotImplementedError

    def set_items(self, items: list[Any]) -> None:
        self.table.set_items(items)

    def set_query(self, text: str) -> None:
        self.table.set_query(text)

    def items(self) -> list[Any]:
        """The items shown (the search applied), in the order shown."""
        return self.table.items()

    def _show_details(self, item: Any) -> None:
        if self.card is not None:
            self.card.setParent(None)
            self.card.deleteLater()
            self.card = None
        if item is not None:
            self.card = self.make_card(item)
            self.details.addWidget(self.card)
