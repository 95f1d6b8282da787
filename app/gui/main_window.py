"""The main window (a placeholder shell until the window issue builds the screens)."""

from __future__ import annotations

from PySide6.QtCore import Qt
from PySide6.QtWidgets import QLabel, QMainWindow

from app import __version__


class MainWindow(QMainWindow):
    def __init__(self) -> None:
        super().__init__()
        self.setWindowTitle("Corral")
        self.resize(960, 640)
        label = QLabel(f"<h1>Corral</h1><p>Local LLaMA-family models, offline.</p><p>v{__version__}</p>")
        label.setAlignment(Qt.AlignmentFlag.AlignCenter)
        self.setCentralWidget(label)
        self.statusBar().showMessage("No model loaded")
