"""The status bar: the model and its state, the backend, Corral's memory in use, tokens/s."""

from __future__ import annotations

from PySide6.QtCore import QTimer
from PySide6.QtWidgets import QLabel, QMainWindow

from app.core.hardware import process_memory
from app.core.memory_plan import format_bytes


class StatusPanel:
    """The status bar's fields; the slots take what the chat part reports."""

    def __init__(self, window: QMainWindow) -> None:
        bar = window.statusBar()
        bar.setSizeGripEnabled(False)
        self.model = QLabel("No model loaded")
        self.model.setObjectName("status-model")
        self.backend = QLabel("")
        self.backend.setObjectName("status-backend")
        self.memory = QLabel("")
        self.memory.setObjectName("status-memory")
        self.speed = QLabel("")
        self.speed.setObjectName("status-speed")
        bar.addWidget(self.model, 1)
        for w in (self.backend, self.memory, self.speed):
            bar.addPermanentWidget(w)
        self.timer = QTimer(window)
        self.timer.setInterval(2000)
        self.timer.timeout.connect(self.update_memory)

    def set_model(self, name: str | None) -> None:
        self.model.setText(f"Model: {name}" if name else "No model loaded")

    def set_backend(self, text: str | None) -> None:
        from app.core.resources import build_info

        info = build_info()  # installers stamp their flavour; a source checkout has none
        flavour = f" · {info['flavour']} build" if info and info.get("flavour") else ""
        self.backend.setText(f"Backend: {text}{flavour}" if text else "")

    def set_tokens_per_second(self, tps: float | None) -> None:
        self.speed.setText(f"{tps:.1f} tok/s" if tps else "")

    def update_memory(self) -> None:
        used = process_memory()  # this process and its children: the llama.cpp runner
        self.memory.setText(f"Memory: {format_bytes(used)}" if used else "")
        self.memory.setToolTip("Corral and its llama.cpp runner, resident in RAM")
