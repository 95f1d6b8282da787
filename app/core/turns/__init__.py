"""The chat turn, for every face: the window's engine worker, `corral chat`, `corral prompt`
and `corral serve` all go through here; none of them builds sampling, load settings, a
template choice, a rendering or a context fit itself.

    ref = resolve_model("SERVER/MODEL" or a library id or a path)   # or local_ref(LocalModel)
    backend = open_backend(ref)                    # LocalBackend (engine) or RemoteBackend
    request = TurnRequest(ref, messages=(...), options=TurnOptions(template=, system=,
                          stop=, overrides={knobs}, fit=DROP|REFUSE))   # or prompt="exact text"
    turn = Turn(backend, request, writer=store.begin_reply(cid), listener=TurnListener())
    result = turn.run()                            # TurnResult: state, stopped_by, stats, why
    turn.stop()                                    # any thread, any stage

A turn: knobs (knobs.py: app settings → the model's → the conversation's overrides) → the
template and why (template_choice.py) → the rendering fitted into the context, the oldest turns
left out, never tokenizing more than the context can hold (app.core.templates.fit) → a
PreparedTurn (model.py: the exact text, stop strings, token counts, notes) → streamed by the
backend (local.py / app.core.remote_client) → saved as it grows → TurnResult (ending.py: why it
stopped, and the one stats formatter). No Qt here.
"""

from __future__ import annotations

from typing import Any, Mapping

from app.core.templates import ContextOverflow
from app.core.turns.ending import (CONTEXT_FULL, END_OF_TEXT, ERROR, STOP_STRING, TOKEN_LIMIT,
                                   USER, TurnResult, describe_stats, stopped_by, why)
from app.core.turns.knobs import (check_overrides, default_knobs, load_settings_for,
                                  remembered_changes, reserve_for, sampling_for)
from app.core.turns.local import LocalBackend, overflow
from app.core.turns.model import (CHAT, COMPLETION, DROP, REFUSE, Backend, ModelRef,
                                  PreparedTurn, Stream, TurnListener, TurnOptions, TurnRequest,
                                  TurnStopped, local_ref, resolve_model)
from app.core.turns.preview import render_turn, template_for
from app.core.turns.run import Turn, failure_text
from app.core.turns.template_choice import (TemplateChoice, choose_template,
                                            make_default_template)

__all__ = [
    "CHAT", "COMPLETION", "CONTEXT_FULL", "DROP", "END_OF_TEXT", "ERROR", "REFUSE",
    "STOP_STRING", "TOKEN_LIMIT", "USER", "Backend", "ContextOverflow", "LocalBackend",
    "ModelRef", "PreparedTurn", "Stream", "TemplateChoice", "Turn", "TurnListener",
    "TurnOptions", "TurnRequest", "TurnResult", "TurnStopped", "check_overrides",
    "choose_template", "default_knobs", "describe_stats", "failure_text", "load_settings_for",
    "local_ref", "make_default_template", "open_backend", "overflow", "remembered_changes",
    "render_turn", "reserve_for", "resolve_model", "sampling_for", "stopped_by",
    "template_for", "why",
]


def open_backend(ref: ModelRef, *, library: Any = None, settings: Any = None,
                 face_overrides: Mapping[str, Any] | None = None, servers: Any = None,
                 **remote: Any) -> Backend:
    """The backend `ref` runs on: a fresh engine for a local model (its runner starts now, in
    the background), the registered server's client for a remote one (no request is made
    until a turn runs). Close it when done."""
    if ref.remote:
        from app.core.remote_client import RemoteBackend
        return RemoteBackend.for_server(ref.server, servers, **remote)
    return LocalBackend(library=library, settings=settings, face_overrides=face_overrides)
