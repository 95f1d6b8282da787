"""The Downloads screen: one row per download with progress, speed, ETA, state and its buttons.

Rows are fed by `DownloadController.jobChanged` (already on the UI thread and coalesced); a
button calls the controller, and the row changes when the manager reports the new state.
"""

from __future__ import annotations

from PySide6.QtCore import Qt, Signal
from PySide6.QtWidgets import (QFrame, QHBoxLayout, QProgressBar, QPushButton, QScrollArea,
                               QVBoxLayout, QWidget)

from app.core.memory_plan import format_bytes
from app.gui.downloads.worker import DownloadController, OfflineError
from app.gui.overlay import float_banners
from app.gui.widgets import Banner, badge, label, repolish

STATE_WORDS = {"queued": "Queued", "downloading": "Downloading", "paused": "Paused",
               "verifying": "Verifying", "done": "Done", "failed": "Failed",
               "cancelled": "Cancelled"}
STATE_BADGE = {"queued": "neutral", "downloading": "accent", "paused": "warn",
               "verifying": "accent", "done": "ok", "failed": "bad", "cancelled": "neutral"}


def format_eta(seconds: float | None) -> str:
    if seconds is None or seconds < 0:
        return ""
    seconds = int(seconds + 0.5)
    if seconds < 60:
        return f"{seconds} s left"
    if seconds < 3600:
        return f"{seconds // 60} min {seconds % 60:02d} s left"
    return f"{seconds // 3600} h {seconds % 3600 // 60:02d} min left"


class DownloadRow(QFrame):
    """One job: its name, progress, figures and the buttons its state allows."""

    def __init__(self, job, controller: DownloadController, screen: "DownloadsScreen") -> None:
        super().__init__()
        self.job_id = job.id
        self.controller = controller
        self.screen = screen
        self.setProperty("card", True)
        self.setObjectName(f"download-{job.id}")
        outer = QVBoxLayout(self)
        outer.setContentsMargins(16, 12, 16, 12)
        outer.setSpacing(6)
        top = QHBoxLayout()
        names = QVBoxLayout()
        names.setSpacing(1)
        self.name = label(job.name, role="cardtitle")
        self.repo = label(job.repo_id, role="muted")
        names.addWidget(self.name)
        names.addWidget(self.repo)
        top.addLayout(names, 1)
        self.state = badge("", "neutral")
        top.addWidget(self.state, 0, Qt.AlignmentFlag.AlignTop)
        outer.addLayout(top)
        self.bar = QProgressBar()
        self.bar.setRange(0, 1000)
        self.bar.setTextVisible(False)
        outer.addWidget(self.bar)
        bottom = QHBoxLayout()
        self.figures = label("", role="muted")
        bottom.addWidget(self.figures, 1)
        self.buttons: dict[str, QPushButton] = {}
        for key, text in (("pause", "Pause"), ("resume", "Resume"), ("retry", "Retry"),
                          ("cancel", "Cancel"), ("remove", "Remove")):
            button = QPushButton(text)
            button.setObjectName(f"{key}-button")
            button.setCursor(Qt.CursorShape.PointingHandCursor)
            button.clicked.connect(lambda _=False, k=key: self._act(k))
            if key == "cancel":
                button.setProperty("danger", True)
            bottom.addWidget(button)
            self.buttons[key] = button
        outer.addLayout(bottom)
        self.message = label("", wrap=True)
        self.message.hide()
        outer.addWidget(self.message)
        self.speed: float | None = None
        self.eta: float | None = None
        self.update_job(job)

    def _act(self, key: str) -> None:
        try:
            getattr(self.controller, key)(self.job_id)
        except OfflineError as exc:
            self.screen.banner.show_message(str(exc), "error")
        except Exception as exc:  # DownloadError and friends: say it, keep going
            self.screen.banner.show_message(f"{self.name.text()}: {exc}", "error")

    def update_job(self, job, speed: float | None = None, eta: float | None = None,
                   progress: bool = False) -> None:
        self.job = job
        if progress:
            self.speed, self.eta = speed, eta
        elif job.state != "downloading":
            self.speed = self.eta = None
        state = job.state
        self.state.setText(STATE_WORDS.get(state, state))
        self.state.setProperty("badge", STATE_BADGE.get(state, "neutral"))
        repolish(self.state)
        size = job.size
        done = job.bytes_done if state != "done" else (size or job.bytes_done)
        if size:
            self.bar.setRange(0, 1000)
            self.bar.setValue(int(1000 * min(1.0, done / size)))
        elif state == "downloading":
            self.bar.setRange(0, 0)  # busy indicator until the hub tells the size
        else:
            self.bar.setRange(0, 1000)
            self.bar.setValue(1000 if state == "done" else 0)
        self.bar.setProperty("state", state)
        repolish(self.bar)
        if size:
            parts = [f"{format_bytes(done)} of {format_bytes(size)}"
                     + ("" if state == "done" else f" ({100 * done / size:.0f} %)")]
        else:
            parts = [format_bytes(done) if done else ""]
        if state == "downloading" and self.speed:
            parts.append(f"{format_bytes(self.speed)}/s")
            if self.eta is not None:
                parts.append(format_eta(self.eta))
        if state == "done" and job.path:
            parts.append(f"saved to {job.path}")
        self.figures.setText("  ·  ".join(p for p in parts if p))
        words = job.message or ""
        if state == "paused" and words == "paused":
            words = ""
        if state == "cancelled" and words == "cancelled":
            words = ""
        self.message.setText(words)
        self.message.setProperty("role", "error" if state == "failed" else "muted")
        repolish(self.message)
        self.message.setVisible(bool(words))
        show = {"pause": state in ("queued", "downloading"),
                "resume": state == "paused",
                "retry": state == "failed",
                "cancel": state in ("queued", "downloading", "paused", "failed"),
                "remove": state in ("done", "cancelled")}
        for key, button in self.buttons.items():
            button.setVisible(show[key])


class DownloadsScreen(QWidget):
    browseCatalog = Signal()

    def __init__(self, controller: DownloadController, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("DownloadsScreen")
        self.controller = controller
        self.rows: dict[str, DownloadRow] = {}
        outer = QVBoxLayout(self)
        outer.setContentsMargins(28, 22, 28, 12)
        outer.setSpacing(12)
        head = QHBoxLayout()
        head.addWidget(label("Downloads", role="title"))
        head.addStretch(1)
        self.summary = label("", role="muted")
        head.addWidget(self.summary)
        outer.addLayout(head)
        # Floats over the foot of the list (below): showing it moves nothing, and the newest rows'
        # buttons and the window's notices (over the top of the screen) stay in sight.
        self.banner = Banner()
        self.scroll = QScrollArea()
        self.scroll.setWidgetResizable(True)
        self.scroll.setFrameShape(QFrame.Shape.NoFrame)
        body = QWidget()
        body.setObjectName("ScrollBody")
        self.list = QVBoxLayout(body)
        self.list.setContentsMargins(0, 0, 8, 0)
        self.list.setSpacing(10)
        self.empty = self._empty_state()
        self.list.addWidget(self.empty)
        self.list.addStretch(1)
        self.scroll.setWidget(body)
        outer.addWidget(self.scroll, 1)
        self.banners = float_banners(self, self.scroll, self.banner)
        controller.jobChanged.connect(self._on_event)
        controller.jobRemoved.connect(self._on_removed)
        controller.ready.connect(self.reload)
        controller.noticed.connect(lambda text: self.banner.show_message(text, "error"))
        if controller.notices:
            self.banner.show_message(controller.notices[-1], "error")
        self.reload()

    def _empty_state(self) -> QWidget:
        box = QWidget()
        lay = QVBoxLayout(box)
        lay.setContentsMargins(0, 60, 0, 0)
        lay.setSpacing(10)
        lay.addWidget(label("No downloads yet", role="h2"), 0, Qt.AlignmentFlag.AlignHCenter)
        text = label("Models you download from the catalog or the Hugging Face hub show up here, "
                     "with their progress.", role="muted", wrap=True)
        text.setAlignment(Qt.AlignmentFlag.AlignHCenter)
        lay.addWidget(text)
        button = QPushButton("Browse the catalog")
        button.setProperty("primary", True)
        button.clicked.connect(self.browseCatalog)
        lay.addWidget(button, 0, Qt.AlignmentFlag.AlignHCenter)
        return box

    def reload(self) -> None:
        for job in sorted(self.controller.jobs(), key=lambda j: j.created):
            self._row_for(job).update_job(job)
        self._update_summary()

    def _row_for(self, job) -> DownloadRow:
        row = self.rows.get(job.id)
        if row is None:
            row = DownloadRow(job, self.controller, self)
            self.rows[job.id] = row
            self.list.insertWidget(0, row)  # newest first
            self.empty.hide()
        return row

    def _on_event(self, event) -> None:
        row = self._row_for(event.job)
        row.update_job(event.job, event.speed, event.eta, progress=event.kind == "progress")
        self._update_summary()

    def _on_removed(self, job_id: str) -> None:
        row = self.rows.pop(job_id, None)
        if row is not None:
            row.setParent(None)
            row.deleteLater()
        self.empty.setVisible(not self.rows)
        self._update_summary()

    def _update_summary(self) -> None:
        rows = [r.job for r in self.rows.values()]
        active = [j for j in rows if j.state in ("downloading", "verifying", "queued")]
        if not rows:
            self.summary.setText("")
            return
        total_speed = sum(r.speed or 0 for r in self.rows.values() if r.job.state == "downloading")
        text = f"{len(active)} active of {len(rows)}"
        if total_speed:
            text += f"  ·  {format_bytes(total_speed)}/s"
        self.summary.setText(text)

    def active_count(self) -> int:
        return sum(1 for r in self.rows.values() if r.job.state in ("downloading", "verifying", "queued"))


__all__ = ["DownloadsScreen", "DownloadRow", "format_eta"]
