"""What the library screen and the shell show about models, prepared off the UI thread.

`LibraryState` holds the core `Library` and the latest scan; `refresh()` scans in the background
(the inspect cache makes it cheap) and `changed` delivers the rows. Everything computed here —
the template each model uses and its memory plan on this machine — is plain data, no widgets.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from PySide6.QtCore import QObject, Signal

from app.core import hardware
from app.core.catalog import model_family, shipped_catalog
from app.core.library import Library, LocalModel
from app.core.memory_plan import MemoryPlan, machine_kwargs, plan_for_entry, plan_for_info
from app.core.settings import Settings
from app.gui import background


@dataclass(frozen=True)
class InstalledItem:
    model: LocalModel
    template: str | None
    template_source: str          # setting | catalog | auto
    plan: MemoryPlan | None
    family: str = ""              # Catalog.family_for the file name, else the architecture
    date: float | None = None     # the file's modification time (when it was downloaded or made)
    search: str = ""              # what the search field matches, lower case

    def matches(self, query: str) -> bool:
        return all(w in self.search for w in query.lower().split())


@dataclass(frozen=True)
class CatalogItem:
    entry: Any                    # app.core.catalog.CatalogEntry
    plans: dict[str, MemoryPlan]  # per quantisation
    installed: dict[str, str]     # file name → library id, for the files already here

    def matches(self, query: str) -> bool:
        return self.entry.matches(query)


def machine(settings: Settings, gpu: hardware.GpuSupport | None) -> dict[str, Any]:
    """plan() keyword arguments for this machine and the user's backend choice."""
    gpu = gpu or hardware.CPU_ONLY
    offload = hardware.plan_offload(settings.backend, settings.gpu_layers, gpu)
    return {**machine_kwargs(hardware.detect(gpu)), "gpu_layers": offload.n_gpu_layers}


def _date(path: Path) -> float | None:
    try:
        return os.stat(path).st_mtime
    except OSError:
        return None


def installed_items(library: Library, settings: Settings,
                    gpu: hardware.GpuSupport | None = None) -> list[InstalledItem]:
    kw = machine(settings, gpu)
    catalog = shipped_catalog()
    items = []
    for model in library.scan():
        plan = None
        template, source = None, "auto"
        if model.header is not None:
            ctx = min(settings.context_size, model.header.context_length or settings.context_size)
            try:
                plan = plan_for_info(model.header, ctx, **kw)
            except ValueError:
                plan = None
            try:
                template, source = library.template_for(model)
            except Exception:  # a broken per-model settings file must not hide the model
                template, source = None, "auto"
        family = model_family(model, catalog)
        search = " ".join((model.id, model.path.name, family, model.quantization or "",
                           model.parameters_label or "")).lower()
        items.append(InstalledItem(model, template, source, plan, family, _date(model.path), search))
    return items


def catalog_items(settings: Settings, installed: list[InstalledItem],
                  gpu: hardware.GpuSupport | None = None) -> list[CatalogItem]:
    from app.core.catalog import load_catalog

    kw = machine(settings, gpu)
    have = {item.model.path.name: item.model.id for item in installed}
    out = []
    for entry in load_catalog():
        plans = {}
        if entry.available:
            for f in entry.files:
                plans[f.quant] = plan_for_entry(entry, quant=f.quant, **kw)
        installed_here = {f.file: have[f.file] for f in entry.files if f.file in have}
        out.append(CatalogItem(entry, plans, installed_here))
    return out


class LibraryState(QObject):
    """The shell's and the library screen's shared view of the local library."""

    changed = Signal(list)        # list[InstalledItem]
    failed = Signal(str)

    def __init__(self, settings: Settings, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self.settings = settings
        self.library = Library(models_dir=settings.effective_models_dir())
        self.gpu: hardware.GpuSupport | None = None
        self.items: list[InstalledItem] | None = None   # None until the first scan is back
        self._scanning = False
        self._again = False

    def set_settings(self, settings: Settings) -> None:
        self.settings = settings
        if Path(self.library.models_dir) != settings.effective_models_dir():
            self.library = Library(models_dir=settings.effective_models_dir())
        self.refresh()

    def set_gpu(self, gpu: hardware.GpuSupport) -> None:
        self.gpu = gpu
        self.refresh()

    @property
    def usable(self) -> list[InstalledItem]:
        return [i for i in self.items or [] if i.model.ok]

    def refresh(self) -> None:
        """Scan again in the background; a refresh asked during a scan runs right after it."""
        if self._scanning:
            self._again = True
            return
        self._scanning = True
        library, settings, gpu = self.library, self.settings, self.gpu
        background.run(lambda: installed_items(library, settings, gpu),
                       done=self._scanned, failed=self._scan_failed)

    def _scanned(self, items: list[InstalledItem]) -> None:
        self._scanning = False
        self.items = items
        self.changed.emit(items)
        if self._again:
            self._again = False
            self.refresh()

    def _scan_failed(self, exc: BaseException) -> None:
        self._scanning = False
        self.failed.emit(f"Could not read the library: {exc}")
        if self._again:
            self._again = False
            self.refresh()
