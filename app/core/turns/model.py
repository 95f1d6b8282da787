"""The data of a turn: what a face asks for (`TurnRequest`), what the pipeline makes of it
(`PreparedTurn`), the model it names (`ModelRef`), and the protocols a backend and a listener
follow. No behaviour here beyond naming a model."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Iterator, Mapping, Protocol

from app.core.engine import LoadedModel, LoadSettings, SamplingParams, Stats

if TYPE_CHECKING:
    from app.core.library import Library, LocalModel
    from app.core.remote import RemoteServer, ServerRegistry
    from app.core.turns.template_choice import TemplateChoice

CHAT, COMPLETION = "chat", "completion"
DROP, REFUSE = "drop", "refuse"


class TurnStopped(Exception):
    """The turn was stopped before its reply began (raised by the pipeline's checks)."""


@dataclass(frozen=True)
class ModelRef:
    """A model a turn can run on: a file on this machine (a library model or not), or
    SERVER/MODEL on a registered server."""

    id: str                               # library id, SERVER/MODEL, or the file's name
    path: Path | None = None              # a local model's file
    server: "RemoteServer | None" = None  # a remote model's server…
    remote_id: str | None = None          # …and its id there
    n_ctx_train: int | None = None        # from the GGUF header, when known
    in_library: bool = False              # its per-model settings apply

    @property
    def remote(self) -> bool:
        return self.server is not None


def local_ref(model: "LocalModel") -> ModelRef:
    """The ModelRef of a library model."""
    trained = model.header.context_length if model.header else None
    return ModelRef(model.id, model.path, n_ctx_train=trained, in_library=True)


def resolve_model(ref: str, *, library: "Library | None" = None,
                  servers: "ServerRegistry | None" = None, allow_paths: bool = True,
                  allow_remote: bool = True) -> ModelRef:
    """What REF names, in this order: a file that exists (`allow_paths`; the library's entry
    when it holds that file), SERVER/MODEL of a registered server (`allow_remote`; no network
    request), a library model id (exact, then in any case); else, with `allow_paths`, a file
    path the engine will say is missing. LibraryError when nothing fits. `corral serve` names
    library ids only: a client never makes it open a file or contact another server."""
    from app.core.library import Library, LibraryError

    if allow_paths and os.path.exists(ref):
        library = library or Library()
        found = library.find_path(ref)
        return local_ref(found) if found is not None else ModelRef(Path(ref).name, Path(ref))
    if allow_remote:
        from app.core.remote import resolve
        remote = resolve(ref, servers)
        if remote is not None:
            return ModelRef(remote.id, server=remote.server, remote_id=remote.model)
    library = library or Library()
    models = library.scan()
    for m in [m for m in models if m.id == ref] or [m for m in models
                                                     if m.id.lower() == ref.lower()]:
        if not m.ok:
            raise LibraryError(f"model {m.id!r} cannot be loaded: {m.error or m.status}")
        return local_ref(m)
    if allow_paths:
        return ModelRef(Path(ref).name, Path(ref))
    raise LibraryError(f"no model {ref!r} in the library")


@dataclass(frozen=True)
class TurnOptions:
    """The conversation's own choices (None everywhere: the model's or the app's)."""

    template: str | None = None       # this conversation's template id (GGUF_ID: the model's own)
    system: str | None = None         # the system prompt; None: a leading system message or the
    #                                   template's default; "": none
    stop: tuple[str, ...] | None = None   # replaces the template's stop strings
    overrides: Mapping[str, Any] = field(default_factory=dict)  # knobs (see knobs.py)
    fit: str = DROP                   # DROP: leave out the oldest turns; REFUSE: ContextOverflow
    add_generation_prompt: bool = True


@dataclass(frozen=True)
class TurnRequest:
    """What a face asks for: a conversation's messages (chat), or an exact `prompt` sent as it
    is (completion mode, an edited prompt), on `model`."""

    model: ModelRef
    messages: tuple[Mapping[str, Any], ...] = ()
    prompt: str | None = None
    add_bos: bool = True              # for `prompt`: whether the engine adds BOS
    options: TurnOptions = TurnOptions()

    @property
    def mode(self) -> str:
        return COMPLETION if self.prompt is not None else CHAT


@dataclass(frozen=True)
class PreparedTurn:
    """A turn ready to run: everything that will be sent, and what it cost to fit."""

    model: ModelRef
    mode: str
    text: str | None                  # the exact prompt (None: a remote chat, rendered there)
    messages: tuple[Mapping[str, Any], ...]  # the messages sent (the oldest left out)
    add_bos: bool
    stop: tuple[str, ...]             # every stop string, the template's included
    params: SamplingParams            # as sent: stop merged, max_tokens within the room left
    load: LoadSettings | None         # None: remote
    template: "TemplateChoice | None"  # None: an exact prompt or a remote chat
    template_id: str                  # "raw" for an exact prompt, "server" for a remote chat
    dropped_turns: int = 0
    prompt_tokens: int | None = None  # BOS included; None when the server counts them
    n_ctx: int | None = None
    reserve: int = 0                  # tokens kept for the reply when fitting
    notes: tuple[str, ...] = ()       # what rendering changed (e.g. where the system prompt went)
    requested_max_tokens: int = 0     # the knob's value (0: until the context is full)

    @property
    def model_id(self) -> str:
        return self.model.id


class Stream(Protocol):
    """A reply as it is generated: iterate for text pieces; then `stats`."""

    stats: Stats | None
    on_prompt_progress: Callable[[int, int], None] | None

    def __iter__(self) -> Iterator[str]: ...


class Backend(Protocol):
    """Where turns run: the local engine (turns.local.LocalBackend) or a registered server
    (remote_client.RemoteBackend). One thread drives it; `stop()` may come from any thread."""

    def prepare(self, request: TurnRequest, *, listener: "TurnListener | None" = None,
                check: Callable[[], None] | None = None, load: bool = True) -> PreparedTurn: ...

    def start(self, turn: PreparedTurn) -> Stream: ...

    def stop(self) -> None: ...

    def close(self) -> None: ...


class TurnListener:
    """What a face hears while a turn runs (every method is optional; all run on the thread
    that runs the turn). The window's worker turns each into a Qt signal."""

    def load_started(self, path: Path) -> None: ...

    def load_progress(self, fraction: float) -> None: ...

    def loaded(self, model: LoadedModel) -> None: ...

    def load_failed(self, message: str) -> None: ...

    def prepared(self, turn: PreparedTurn) -> None: ...

    def prompt_progress(self, done: int, total: int) -> None: ...

    def pieces(self, text: str) -> None: ...
