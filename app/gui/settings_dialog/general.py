"""Settings → General: models folder, backend and GPU layers, threads, context, theme, the
Hugging Face token (and where it is kept), offline mode. Saved by the dialog's Save."""

from __future__ import annotations

from dataclasses import replace

from PySide6.QtCore import Qt
from PySide6.QtWidgets import (QCheckBox, QComboBox, QFileDialog, QFormLayout, QHBoxLayout,
                               QLineEdit, QPushButton, QSpinBox, QWidget)

from app.core import hardware
from app.core.paths import get_paths
from app.core.settings import Settings, settings_path
from app.gui import theme
from app.gui.widgets import label

BACKENDS = (("auto", "Auto — the GPU when this build of llama.cpp has one"),
            ("cpu", "CPU only"), ("gpu", "GPU — offload layers"))
THEMES = (("system", "Follow the system"), ("light", "Light"), ("dark", "Dark"))


class GeneralPage(QWidget):
    def __init__(self, settings: Settings, gpu: hardware.GpuSupport | None = None,
                 parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("settings-general")
        self.original = settings
        form = QFormLayout(self)
        form.setContentsMargins(4, 12, 4, 4)
        form.setHorizontalSpacing(16)
        form.setVerticalSpacing(10)
        form.setLabelAlignment(Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter)

        folder_row = QHBoxLayout()
        self.models_dir = QLineEdit(settings.models_dir or "")
        self.models_dir.setObjectName("models-dir")
        self.models_dir.setPlaceholderText(str(get_paths().models))
        browse = QPushButton("Browse…")
        browse.clicked.connect(self._browse)
        folder_row.addWidget(self.models_dir, 1)
        folder_row.addWidget(browse)
        form.addRow("Models folder", folder_row)

        self.backend = QComboBox()
        self.backend.setObjectName("backend")
        for key, text in BACKENDS:
            self.backend.addItem(text, key)
        self.backend.setCurrentIndex([k for k, _ in BACKENDS].index(settings.backend))
        form.addRow("Backend", self.backend)
        gpu = gpu or hardware.CPU_ONLY
        form.addRow("", label(f"GPU: {gpu.detail}" if gpu.offload else
                              "This build of llama.cpp runs on the CPU only (see README: GPU "
                              "acceleration).", role="muted", wrap=True))

        self.gpu_layers = QSpinBox()
        self.gpu_layers.setObjectName("gpu-layers")
        self.gpu_layers.setRange(-1, 999)
        self.gpu_layers.setSpecialValueText("All layers")
        self.gpu_layers.setValue(settings.gpu_layers)
        form.addRow("GPU layers", self.gpu_layers)

        self.threads = QSpinBox()
        self.threads.setObjectName("threads")
        self.threads.setRange(0, max(64, hardware.cpu_cores()))
        self.threads.setSpecialValueText(f"Automatic ({hardware.default_threads()})")
        self.threads.setValue(settings.threads or 0)
        form.addRow("Threads", self.threads)

        self.context = QSpinBox()
        self.context.setObjectName("context")
        self.context.setRange(256, 131072)
        self.context.setSingleStep(512)
        self.context.setSuffix(" tokens")
        self.context.setValue(settings.context_size)
        form.addRow("Context size", self.context)

        self.theme = QComboBox()
        self.theme.setObjectName("theme")
        for key, text in THEMES:
            self.theme.addItem(text, key)
        self.theme.setCurrentIndex([k for k, _ in THEMES].index(settings.theme))
        self.theme.currentIndexChanged.connect(lambda _i: theme.ensure(self.theme.currentData()))
        form.addRow("Theme", self.theme)

        token_row = QHBoxLayout()
        self.token = QLineEdit(settings.hf_token or "")
        self.token.setObjectName("hf-token")
        self.token.setEchoMode(QLineEdit.EchoMode.Password)
        self.token.setPlaceholderText("hf_…  (only for gated models)")
        show = QPushButton("Show")
        show.setCheckable(True)
        show.toggled.connect(lambda on: (self.token.setEchoMode(
            QLineEdit.EchoMode.Normal if on else QLineEdit.EchoMode.Password),
            show.setText("Hide" if on else "Show")))
        token_row.addWidget(self.token, 1)
        token_row.addWidget(show)
        form.addRow("Hugging Face token", token_row)
        self.token_note = label(f"Kept in {settings_path()}, readable by you alone.",
                                role="muted", wrap=True, selectable=True)
        self.token_note.setObjectName("token-storage")
        form.addRow("", self.token_note)

        self.offline = QCheckBox("Offline mode: never use the network")
        self.offline.setObjectName("offline")
        self.offline.setChecked(settings.offline)
        form.addRow("Network", self.offline)
        form.addRow("", label("While it is on, Corral makes no network request: hub search, "
                              "downloads and remote servers stay off until you turn it off.",
                              role="muted", wrap=True))
        self.backend.currentIndexChanged.connect(self._backend_changed)
        self._backend_changed()

    def _browse(self) -> None:
        folder = QFileDialog.getExistingDirectory(self, "Models folder",
                                                  self.models_dir.text() or str(get_paths().models))
        if folder:
            self.models_dir.setText(folder)

    def _backend_changed(self, *_: object) -> None:
        self.gpu_layers.setEnabled(self.backend.currentData() != "cpu")

    def values(self, base: Settings) -> Settings:
        return replace(base,
                       models_dir=self.models_dir.text().strip() or None,
                       backend=self.backend.currentData(),
                       gpu_layers=self.gpu_layers.value(),
                       threads=self.threads.value() or None,
                       context_size=self.context.value(),
                       theme=self.theme.currentData(),
                       hf_token=self.token.text().strip() or None,
                       offline=self.offline.isChecked())
