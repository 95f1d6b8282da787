"""The model picker: a popup with a search field over the list of models — this computer's,
then each registered server's under its name — with the family and quantization beside each
name (issue 16 §2, issue 17 §2).

Model/view: the rows are data (`PickerModel`), a proxy filters them per keystroke (no widget
per model, so 200 models and their servers filter in well under a frame), a delegate paints
the visible ones. Keyboard: it opens with the keyboard in the search field; Up/Down/PageUp/
PageDown move through the models (headers and notes are skipped), Enter chooses, Esc closes.
"""

from __future__ import annotations

from dataclasses import dataclass

from PySide6.QtCore import (QAbstractListModel, QEvent, QModelIndex, QObject, QPoint, QRect,
                            QSize, QSortFilterProxyModel, Qt, Signal)
from PySide6.QtGui import QFont, QKeyEvent, QPalette
from PySide6.QtWidgets import (QFrame, QLabel, QLineEdit, QListView, QStyle,
                               QStyledItemDelegate, QStyleOptionViewItem, QVBoxLayout, QWidget)

from app.gui.chat.model_choices import ModelEntry, ServerListing
from app.gui.chat.style import muted

ROW = Qt.ItemDataRole.UserRole
HEADER, MODEL, NOTE = "header", "model", "note"
THIS_COMPUTER = "On this computer"
MIN_HEIGHT, MAX_HEIGHT = 160, 460


@dataclass(frozen=True)
class PickerRow:
    kind: str                      # header | model | note
    group: str                     # "" this computer, else the server's name
    text: str
    detail: str = ""
    entry: ModelEntry | None = None


def picker_rows(local: list[ModelEntry], remote: list[ModelEntry],
                servers: list[ServerListing]) -> list[PickerRow]:
    """The rows: this computer's models, then each server's under its name (with its note:
    offline mode, why it cannot be listed, or that it is being listed)."""
    rows: list[PickerRow] = [PickerRow(HEADER, "", THIS_COMPUTER)]
    rows += [PickerRow(MODEL, "", e.name, e.detail, e) for e in local]
    if not local:
        rows.append(PickerRow(NOTE, "", "No models yet: add one in the Library"))
    for listing in servers:
        name = listing.server.name
        rows.append(PickerRow(HEADER, name, name, listing.server.shown_url))
        rows += [PickerRow(MODEL, name, e.name, e.detail, e) for e in remote if e.group == name]
        if listing.note:
            rows.append(PickerRow(NOTE, name, listing.note))
    return rows


class PickerModel(QAbstractListModel):
    def __init__(self, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self.rows: list[PickerRow] = []

    def set_rows(self, rows: list[PickerRow]) -> None:
        self.beginResetModel()
        self.rows = rows
        self.endResetModel()

    def rowCount(self, parent: QModelIndex = QModelIndex()) -> int:  # noqa: B008
        return 0 if parent.isValid() else len(self.rows)

    def data(self, index: QModelIndex, role: int = Qt.ItemDataRole.DisplayRole):
        if not index.isValid():
            return None
        row = self.rows[index.row()]
        if role == Qt.ItemDataRole.DisplayRole:
            return row.text
        if role == ROW:
            return row
        if role == Qt.ItemDataRole.ToolTipRole and row.entry is not None:
            return f"{row.entry.id}\n{row.entry.detail}" if row.entry.detail else row.entry.id
        return None

    def flags(self, index: QModelIndex) -> Qt.ItemFlag:
        if index.isValid() and self.rows[index.row()].kind == MODEL:
            return Qt.ItemFlag.ItemIsEnabled | Qt.ItemFlag.ItemIsSelectable
        return Qt.ItemFlag.ItemIsEnabled


class PickerProxy(QSortFilterProxyModel):
    """The rows matching the query: models whose words match, the headers of groups with a
    match (or whose server's name matches), and each shown group's note."""

    def __init__(self, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self.query = ""
        self._shown: set[int] | None = None   # None: every row

    def set_query(self, text: str) -> None:
        text = text.strip().lower()
        if text == self.query:
            return
        self.beginFilterChange()
        self.query = text
        self._shown = self._compute() if text else None
        self.endFilterChange(QSortFilterProxyModel.Direction.Rows)

    def _compute(self) -> set[int]:
        rows = self.sourceModel().rows
        words = self.query.split()
        named = {r.group for r in rows if r.kind == HEADER and r.group
                 and all(w in r.group.lower() for w in words)}
        models = {i for i, r in enumerate(rows) if r.kind == MODEL and (
            r.group in named or (r.entry is not None and r.entry.matches(self.query)))}
        groups = named | {rows[i].group for i in models}
        return models | {i for i, r in enumerate(rows) if r.kind != MODEL and r.group in groups}

    def filterAcceptsRow(self, source_row: int, source_parent: QModelIndex) -> bool:  # noqa: N802
        return self._shown is None or source_row in self._shown

    def invalidate_rows(self) -> None:
        """The source's rows changed: the query applies to the new ones."""
        query, self.query = self.query, ""
        self._shown = None
        self.set_query(query)


class PickerDelegate(QStyledItemDelegate):
    """A model: its name, and muted on the right its family · parameters · quantization · size
    (or its server); a header: the group's name in small bold; a note: muted italics."""

    current_id: str | None = None

    def sizeHint(self, option: QStyleOptionViewItem, index: QModelIndex) -> QSize:  # noqa: N802
        row: PickerRow = index.data(ROW)
        height = option.fontMetrics.height()
        return QSize(200, height + (14 if row.kind == MODEL else 10))

    def paint(self, painter, option: QStyleOptionViewItem, index: QModelIndex) -> None:
        row: PickerRow = index.data(ROW)
        opt = QStyleOptionViewItem(option)
        self.initStyleOption(opt, index)
        opt.text = ""
        widget = opt.widget
        if row.kind == MODEL and widget is not None:
            widget.style().drawPrimitive(QStyle.PrimitiveElement.PE_PanelItemViewItem, opt,
                                         painter, widget)
        selected = bool(option.state & QStyle.StateFlag.State_Selected) and row.kind == MODEL
        pal, fm = option.palette, option.fontMetrics
        rect = option.rect.adjusted(10 if row.kind == HEADER else 22, 0, -10, 0)
        painter.save()
        font = QFont(option.font)
        text_role = QPalette.ColorRole.HighlightedText if selected else QPalette.ColorRole.Text
        if row.kind == HEADER:
            font.setBold(True)
            font.setPointSizeF(font.pointSizeF() * 0.9)
        elif row.kind == NOTE:
            font.setItalic(True)
            text_role = QPalette.ColorRole.PlaceholderText
        elif row.entry is not None and row.entry.id == self.current_id:
            font.setBold(True)
        painter.setFont(font)
        painter.setPen(pal.color(text_role))
        detail = row.detail
        detail_w = min(fm.horizontalAdvance(detail) + 12, rect.width() // 2) if detail else 0
        name_rect = QRect(rect.left(), rect.top(), rect.width() - detail_w, rect.height())
        align = Qt.AlignmentFlag.AlignLeft | Qt.AlignmentFlag.AlignVCenter
        painter.drawText(name_rect, align, painter.fontMetrics().elidedText(
            row.text, Qt.TextElideMode.ElideMiddle, name_rect.width()))
        if detail:
            painter.setFont(option.font)
            painter.setPen(pal.color(QPalette.ColorRole.HighlightedText if selected
                                     else QPalette.ColorRole.PlaceholderText))
            detail_rect = QRect(rect.right() - detail_w, rect.top(), detail_w, rect.height())
            painter.drawText(detail_rect, Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter,
                             fm.elidedText(detail, Qt.TextElideMode.ElideLeft, detail_w))
        painter.restore()


class ModelPicker(QFrame):
    """The popup: `open_below(widget, current_id)`; `chosen(model id)` when one is picked."""

    chosen = Signal(str)
    closed = Signal()

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent, Qt.WindowType.Popup)
        self.setObjectName("modelPicker")
        self.setFrameShape(QFrame.Shape.StyledPanel)
        lay = QVBoxLayout(self)
        lay.setContentsMargins(6, 6, 6, 6)
        lay.setSpacing(6)
        self.search = QLineEdit()
        self.search.setObjectName("modelPickerSearch")
        self.search.setPlaceholderText("Search models (family, size, quantization, server)…")
        self.search.setClearButtonEnabled(True)
        self.search.textChanged.connect(self._filter)
        self.search.installEventFilter(self)
        lay.addWidget(self.search)
        self.source = PickerModel(self)
        self.proxy = PickerProxy(self)
        self.proxy.setSourceModel(self.source)
        self.view = QListView()
        self.view.setObjectName("modelPickerList")
        self.view.setModel(self.proxy)
        self.delegate = PickerDelegate(self.view)
        self.view.setItemDelegate(self.delegate)
        self.view.setUniformItemSizes(False)
        self.view.setVerticalScrollMode(QListView.ScrollMode.ScrollPerPixel)
        self.view.setFocusPolicy(Qt.FocusPolicy.NoFocus)   # the keyboard stays in the search
        self.view.clicked.connect(self._clicked)
        lay.addWidget(self.view, 1)
        self.count = muted(QLabel())
        lay.addWidget(self.count)
        self.max_height = MAX_HEIGHT

    # ------------------------------------------------------------------ content
    def set_rows(self, rows: list[PickerRow], current_id: str | None) -> None:
        self.delegate.current_id = current_id
        self.source.set_rows(rows)
        self.proxy.invalidate_rows()
        self._after_filter(keep=current_id)

    def shown_entries(self) -> list[ModelEntry]:
        """The models listed now, in order (for tests and the count)."""
        out = []
        for r in range(self.proxy.rowCount()):
            row: PickerRow = self.proxy.index(r, 0).data(ROW)
            if row.kind == MODEL and row.entry is not None:
                out.append(row.entry)
        return out

    def current_entry(self) -> ModelEntry | None:
        index = self.view.currentIndex()
        row = index.data(ROW) if index.isValid() else None
        return row.entry if row is not None and row.kind == MODEL else None

    # ------------------------------------------------------------------ showing
    def open_below(self, anchor: QWidget, current_id: str | None = None) -> None:
        width = max(anchor.width(), 520)
        screen = anchor.screen().availableGeometry()
        pos = anchor.mapToGlobal(QPoint(0, anchor.height()))
        self.max_height = min(MAX_HEIGHT, max(MIN_HEIGHT, screen.bottom() - pos.y() - 8))
        self.resize(width, self.max_height)
        self.move(min(pos.x(), screen.right() - width), pos.y())
        self.search.clear()
        self._after_filter(keep=current_id or self.delegate.current_id)
        self.show()
        self.raise_()
        self.activateWindow()
        self.search.setFocus(Qt.FocusReason.PopupFocusReason)

    def hideEvent(self, event) -> None:  # noqa: N802
        super().hideEvent(event)
        self.closed.emit()

    # ------------------------------------------------------------------ search and keys
    def _filter(self, text: str) -> None:
        before = self.current_entry()
        self.proxy.set_query(text)
        self._after_filter(keep=before.id if before else None)

    def _after_filter(self, keep: str | None = None) -> None:
        rows = [self.proxy.index(r, 0) for r in range(self.proxy.rowCount())]
        models = [i for i in rows if i.data(ROW).kind == MODEL]
        target = next((i for i in models if keep and i.data(ROW).entry.id == keep), None)
        target = target or (models[0] if models else None)
        if target is not None:
            self.view.setCurrentIndex(target)
            self.view.scrollTo(target)
        else:
            self.view.clearSelection()
            self.view.setCurrentIndex(QModelIndex())
        total = sum(1 for r in self.source.rows if r.kind == MODEL)
        self.count.setText(f"{len(models)} of {total} models" if self.proxy.query
                           else f"{total} models · Enter chooses · Esc closes")
        self._fit_height(rows)

    def _fit_height(self, rows: list[QModelIndex]) -> None:
        """As tall as the rows shown need, up to MAX_HEIGHT (a short list, a short popup)."""
        lay = self.layout().contentsMargins()
        chrome = (self.search.sizeHint().height() + self.count.sizeHint().height()
                  + 2 * self.layout().spacing() + lay.top() + lay.bottom() + 2 * self.frameWidth())
        body = sum(self.view.sizeHintForIndex(i).height() for i in rows[:40]) + 8
        self.resize(self.width(), max(MIN_HEIGHT, min(self.max_height, chrome + body)))

    def move_by(self, step: int) -> None:
        """The current model `step` models further (headers and notes skipped)."""
        models = [r for r in range(self.proxy.rowCount())
                  if self.proxy.index(r, 0).data(ROW).kind == MODEL]
        if not models:
            return
        current = self.view.currentIndex().row()
        place = models.index(current) if current in models else -1
        place = max(0, min(len(models) - 1, place + step if place >= 0 else 0))
        index = self.proxy.index(models[place], 0)
        self.view.setCurrentIndex(index)
        self.view.scrollTo(index)

    def choose_current(self) -> None:
        entry = self.current_entry()
        if entry is not None:
            self.hide()
            self.chosen.emit(entry.id)

    def _clicked(self, index: QModelIndex) -> None:
        row: PickerRow = index.data(ROW)
        if row.kind == MODEL and row.entry is not None:
            self.hide()
            self.chosen.emit(row.entry.id)

    def eventFilter(self, obj: QObject, event: QEvent) -> bool:  # noqa: N802
        if obj is self.search and event.type() == QEvent.Type.KeyPress:
            return self._key(event)
        return super().eventFilter(obj, event)

    def keyPressEvent(self, event: QKeyEvent) -> None:  # noqa: N802
        if not self._key(event):
            super().keyPressEvent(event)

    def _key(self, event: QKeyEvent) -> bool:
        key = event.key()
        page = max(1, self.view.viewport().height() // max(1, self.view.sizeHintForRow(0)) - 1)
        steps = {Qt.Key.Key_Down: 1, Qt.Key.Key_Up: -1, Qt.Key.Key_PageDown: page,
                 Qt.Key.Key_PageUp: -page}
        if key in steps:
            self.move_by(steps[key])
            return True
        if key in (Qt.Key.Key_Return, Qt.Key.Key_Enter):
            self.choose_current()
            return True
        if key == Qt.Key.Key_Escape:
            self.hide()
            return True
        return False
