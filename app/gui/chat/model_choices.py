"""The models a chat can talk to: this computer's library, and the models of each registered
server under the server's name (issue 16 §2). Plain data for the session and the model picker.

    choices = ModelChoices(library, offline=lambda: settings.offline)
    choices.refresh_local()          # the library, scanned now (its inspect cache makes it cheap)
    choices.refresh_remote()         # every server's /models, asked off the GUI thread
    choices.entries()                # ModelEntry rows: local first, then each server's
    choices.find("box/llama")        # an entry, or None; `changed` when any of it changes

No request is made for servers in offline mode: their listing says so instead. A server that
cannot be listed keeps its line in the picker with why (down, refused key…); a conversation on
one of its models still names it (SERVER/MODEL is resolved from the registry, not the listing).
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

from PySide6.QtCore import QObject, Signal

from app.core import gguf_info
from app.core.catalog import model_family, shipped_catalog
from app.core.library import Library, LibraryError, LocalModel
from app.core.memory_plan import format_bytes
from app.core.remote import RemoteServer, ServerRegistry
from app.core.statefile import StateFileError
from app.core.turns import ModelRef, local_ref
from app.gui import background

log = logging.getLogger(__name__)

LISTING, LISTED, OFFLINE, FAILED = "listing", "listed", "offline", "failed"
FRESH_S = 60.0   # a listing older than this is asked again when the picker opens


@dataclass(frozen=True)
class ModelEntry:
    """One model the picker lists: a library model (`model`) or a server's (`server`)."""

    id: str                             # library id, or SERVER/MODEL
    name: str                           # what is shown: the id, or the model's id on its server
    group: str = ""                     # "" on this computer; else the server's name
    family: str = ""
    quant: str = ""
    params: str = ""
    size: str = ""
    model: LocalModel | None = None
    server: RemoteServer | None = None
    remote_id: str | None = None
    search: str = field(default="", compare=False)

    @property
    def remote(self) -> bool:
        return self.server is not None

    @property
    def path(self) -> Path | None:
        return self.model.path if self.model is not None else None

    @property
    def detail(self) -> str:
        """What is shown beside the name: family · parameters · quantization · size."""
        return " · ".join(b for b in (self.family, self.params, self.quant, self.size) if b)

    def matches(self, query: str) -> bool:
        return all(word in self.search for word in query.lower().split())

    def ref(self) -> ModelRef:
        if self.model is not None:
            return local_ref(self.model)
        return ModelRef(self.id, server=self.server, remote_id=self.remote_id)


@dataclass(frozen=True)
class ServerListing:
    """A registered server's line in the picker: its models were listed, are being listed, or
    why they are not (offline mode, a server down or refusing the key)."""

    server: RemoteServer
    state: str                          # listing | listed | offline | failed
    note: str = ""


def local_entry(model: LocalModel, family: str) -> ModelEntry:
    params, quant = model.parameters_label or "", model.quantization or ""
    size = format_bytes(model.size)
    search = " ".join((model.id, model.path.name, family, quant, params)).lower()
    return ModelEntry(model.id, model.id, "", family, quant, params, size, model=model,
                      search=search)


def remote_entry(server: RemoteServer, model_id: str, family: str = "") -> ModelEntry:
    """A server's model; its family is the catalog's for its name (a server says no more)."""
    full = f"{server.name}/{model_id}"
    return ModelEntry(full, model_id, server.name, family, server=server, remote_id=model_id,
                      search=f"{full} {server.name} {family}".lower())


class ModelChoices(QObject):
    """The picker's data (see the module's doc); `changed` after each refresh."""

    changed = Signal()
    unreadable = Signal(str)    # a model's file could not be read (moved or deleted since the
                                # library was read): its path

    def __init__(self, library: Library, *, offline: Callable[[], bool],
                 parent: QObject | None = None) -> None:
        super().__init__(parent)
        self.library = library
        self.offline = offline
        self.local: list[ModelEntry] = []
        self.ready = False          # the library has been read (until then nothing is missing)
        self.remote: list[ModelEntry] = []
        self.servers: list[ServerListing] = []
        self._infos: dict[str, gguf_info.ModelInfo] = {}
        self._unreadable: set[str] = set()
        self._generation = 0        # a listing that comes back after a newer one asked is dropped
        self._listed_at: float | None = None
        self._asking = False        # a listing is under way

    # ------------------------------------------------------------------ this computer
    def refresh_local(self) -> str | None:
        """Scan the library now; the problem in words when it cannot be read (no models then)."""
        problem = None
        try:
            models = [m for m in self.library.scan() if m.ok]
        except (LibraryError, StateFileError, OSError) as exc:
            models, problem = [], f"Could not read the library: {exc}"
        catalog = shipped_catalog()
        self.set_local([(m, model_family(m, catalog)) for m in models])
        return problem

    def set_local(self, models: list[tuple[LocalModel, str]]) -> None:
        """The library as the window already scanned it: (model, family) pairs."""
        self.local = [local_entry(m, family) for m, family in models if m.ok]
        self.ready = True
        self._infos.clear()   # a file may have changed since it was read
        self._unreadable.clear()
        self.changed.emit()

    # ------------------------------------------------------------------ servers
    def registered(self) -> list[RemoteServer]:
        try:
            return ServerRegistry().list()
        except (StateFileError, OSError, ValueError) as exc:  # said in the picker, not fatal
            log.warning("the servers could not be read: %s", exc)
            return []

    def refresh_remote_if_stale(self) -> None:
        """List again when the last listing is old, failed, or the servers changed."""
        names = {s.name for s in self.registered()}
        stale = (self._listed_at is None or time.monotonic() - self._listed_at > FRESH_S
                 or names != {s.server.name for s in self.servers}
                 or any(s.state == FAILED for s in self.servers))
        if stale and not self._asking:
            self.refresh_remote()

    def refresh_remote(self) -> None:
        """List every registered server's models off the GUI thread (none in offline mode).
        Until the answer comes, what the last listing said stays shown."""
        self._listed_at = time.monotonic()
        servers = self.registered()
        self._generation += 1
        generation = self._generation
        if not servers or self.offline():
            self._asking = False
            self.remote = []
            self.servers = [ServerListing(s, OFFLINE, "offline mode is on: not contacted")
                            for s in servers]
            self.changed.emit()
            return
        before = {s.server.name: s for s in self.servers}
        self.servers = [before.get(s.name) or ServerListing(s, LISTING, "listing its models…")
                        for s in servers]
        names = {s.name for s in servers}
        self.remote = [e for e in self.remote if e.group in names]
        self._asking = True
        self.changed.emit()

        def listing() -> tuple[int, tuple[list, dict[str, str]]]:
            from app.core.remote_client import list_remote_models
            try:
                return generation, list_remote_models()
            except Exception as exc:  # noqa: BLE001 - said on each server's line
                return generation, ([], {"": str(exc)})

        # A bound method: dropped by PySide if the screen is gone when the answer comes.
        background.run(listing, done=self._answer)

    def _answer(self, answer: tuple[int, tuple[list, dict[str, str]]]) -> None:
        self._listed(*answer)

    def _listed(self, generation: int, result: tuple[list, dict[str, str]]) -> None:
        if generation != self._generation:
            return
        self._asking = False
        models, errors = result
        servers = {m.server.name: m.server for m in models}
        servers.update({s.server.name: s.server for s in self.servers})
        catalog = shipped_catalog()
        self.remote = [remote_entry(m.server, m.model, model_family(m.model, catalog))
                       for m in models]
        listings = []
        for name, server in servers.items():
            if name in errors or "" in errors:  # "": the listing itself failed
                listings.append(ServerListing(server, FAILED, errors.get(name, errors.get(""))))
            else:
                count = sum(1 for m in models if m.server.name == name)
                listings.append(ServerListing(server, LISTED,
                                              "" if count else "no models on this server"))
        self.servers = listings
        self.changed.emit()

    # ------------------------------------------------------------------ reading
    def entries(self) -> list[ModelEntry]:
        return [*self.local, *self.remote]

    def find(self, model_id: str | None, path: str | None = None) -> ModelEntry | None:
        """The entry of `model_id` (or the library model at `path`); a SERVER/MODEL of a
        registered server even before (or without) its listing."""
        if not model_id:
            return None
        for entry in self.entries():
            if entry.id == model_id:
                return entry
        if path:
            for entry in self.local:
                if str(entry.path) == path:
                    return entry
        if "/" in model_id:
            name, remote_id = model_id.split("/", 1)
            known = [listing.server for listing in self.servers]
            server = next((s for s in known if s.name == name), None) or next(
                (s for s in self.registered() if s.name == name), None)
            if server is not None and remote_id:
                return remote_entry(server, remote_id)
        return None

    def info(self, entry: ModelEntry) -> gguf_info.ModelInfo:
        """A local model's GGUF header (its BOS/EOS and chat template), read once per file."""
        key = str(entry.path)
        if key not in self._infos:
            try:
                self._infos[key] = gguf_info.inspect(entry.path)
            except gguf_info.GGUFError:
                if key not in self._unreadable:  # said once until the library is read again
                    self._unreadable.add(key)
                    self.unreadable.emit(key)
                raise
        return self._infos[key]
