"""The HTTP side of remote engines: `RemoteBackend` speaks OpenAI's API to one registered
server (app.core.remote holds the registry). It is the turn pipeline's second Backend
(app.core.turns): `prepare` resolves a turn's knobs and messages (the server applies its own
template, so nothing is rendered or counted here), `start` streams it; `chat`/`complete` are
the two HTTP calls beneath.

Remote stats hold what the server reports (usage) and what is measured here (time to first
piece, pieces per second); a server that sends no usage while streaming gets its pieces counted
instead of tokens.

Offline mode (the settings' switch) is checked here, before every request, so that no face —
`corral chat SERVER/MODEL`, `corral servers`, the window — can reach a server while it is on:
`OfflineError` says so. A server's answers are read as hostile: bounded in size, any shape
refused with a RemoteError, never a traceback; a password in its URL is never shown.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field, replace
from typing import Any, Iterator, Mapping, Sequence

from app.core.engine import SamplingParams, Stats
from app.core.memory_plan import format_bytes
from app.core.turns import knobs
from app.core.turns.model import CHAT, PreparedTurn, TurnListener, TurnRequest
from app.core.remote import (RemoteError, RemoteModel, RemoteServer, ServerRegistry, resolve,
                             scrub)

MAX_ANSWER_BYTES = 8 * 1024 * 1024  # a model list or an error body
MAX_ERROR_CHARS = 500
# One server-sent event line. A reply piece is a few hundred bytes; a server that sends no newline
# would otherwise make the reader buffer whatever it sends (httpx's iter_lines has no bound).
MAX_EVENT_BYTES = 1024 * 1024


class OfflineError(RemoteError):
    """Offline mode is on: no request was sent."""


def offline_mode() -> bool:
    from app.core.settings import current_settings  # read at each request: it may change

    return current_settings().offline


def _read_limited(response, limit: int = MAX_ANSWER_BYTES) -> bytes:
    data = bytearray()
    for chunk in response.iter_bytes():
        data += chunk
        if len(data) > limit:
            raise RemoteError(f"the server's answer is larger than {format_bytes(limit)}")
    return bytes(data)


def _event_lines(response, limit: int = MAX_EVENT_BYTES) -> Iterator[str]:
    """The stream's lines (SSE ends them with \n or \r\n), each at most `limit` bytes."""
    def too_long():
        return _BadEvent(f"an event line longer than {format_bytes(limit)}")

    pending = bytearray()
    for chunk in response.iter_bytes():
        pending += chunk
        start = 0
        while (end := pending.find(b"\n", start)) >= 0:
            if end - start > limit:
                raise too_long()
            yield pending[start:end].rstrip(b"\r").decode("utf-8", "replace")
            start = end + 1
        del pending[:start]
        if len(pending) > limit:
            raise too_long()
    if pending:
        yield pending.rstrip(b"\r").decode("utf-8", "replace")


def _error_text(response) -> str:
    try:
        body = json.loads(_read_limited(response, 64 * 1024))
        err = body.get("error", body) if isinstance(body, dict) else body
        if isinstance(err, dict):
            err = err.get("message") or err.get("detail") or err
        return str(err)[:MAX_ERROR_CHARS]
    except (ValueError, UnicodeDecodeError, RecursionError, RemoteError):
        return response.reason_phrase or "no details"


class RemoteBackend:
    """A turn pipeline Backend for the models of one server. One stream at a time.
    `offline`: None follows the saved settings at each request; True/False overrides them."""

    def __init__(self, server: RemoteServer, key: str | None = None, *,
                 connect_timeout: float = 10, read_timeout: float = 600,
                 offline: bool | None = None) -> None:
        import httpx2

        self.server = server
        self.offline = offline
        headers = {"Authorization": f"Bearer {key}"} if key else {}
        self._http = httpx2.Client(headers=headers, timeout=httpx2.Timeout(
            read_timeout, connect=connect_timeout))
        self._errors = (httpx2.HTTPError, httpx2.StreamError)
        self._timeouts = httpx2.TimeoutException
        self._read_timeout = read_timeout
        self._current: RemoteGeneration | None = None

    @classmethod
    def for_server(cls, server: RemoteServer, registry: ServerRegistry | None = None,
                   **kw) -> "RemoteBackend":
        return cls(server, (registry or ServerRegistry()).key(server), **kw)

    def _url(self, path: str) -> str:
        return self.server.url.rstrip("/") + path

    def check_online(self) -> None:
        """OfflineError when offline mode is on (nothing is sent then)."""
        if self.offline if self.offline is not None else offline_mode():
            raise OfflineError(f"offline mode is on: Corral does not contact the server "
                               f"{self.server.name} ({self.server.shown_url}); turn offline "
                               f"mode off in Settings to use it")

    def failed(self, exc: Exception, *, answering: bool = False) -> RemoteError:
        """A transport error, phrased with the server's name and its URL (password hidden).
        `answering`: the server had begun its reply, so it was reached and the connection
        dropped (or went quiet) mid-reply; what it sent so far is kept by the caller."""
        where = f"{self.server.name} ({self.server.shown_url})"
        said = scrub(str(exc), self.server.url) or type(exc).__name__
        if not answering:
            return RemoteError(f"cannot reach {where}: {said}")
        if isinstance(exc, self._timeouts):
            return RemoteError(f"{where} stopped answering mid-reply: nothing came for "
                               f"{self._read_timeout:g} s")
        return RemoteError(f"the connection to {where} dropped mid-reply: {said}")

    def models(self) -> list[str]:
        self.check_online()
        name = self.server.name
        try:
            with self._http.stream("GET", self._url("/models")) as response:
                if response.status_code >= 400:
                    raise RemoteError(f"{name}: {response.status_code} {_error_text(response)}")
                data = json.loads(_read_limited(response))
        except self._errors as exc:
            raise self.failed(exc) from None
        except (ValueError, RecursionError):
            data = None
        except RemoteError as exc:
            message = scrub(str(exc), self.server.url)
            if not message.startswith(f"{name}:"):
                message = f"{name}: {message}"
            raise RemoteError(message) from None
        try:
            ids = [m["id"] for m in data["data"]]
            if all(isinstance(i, str) for i in ids):
                return ids
        except (KeyError, TypeError, IndexError):
            pass
        raise RemoteError(f"{name}: {self.server.shown_url}/models did not answer with an OpenAI "
                          f"model list")

    def _body(self, model: str, params: SamplingParams) -> dict[str, Any]:
        body: dict[str, Any] = {"model": model, "stream": True,
                                "stream_options": {"include_usage": True},
                                "temperature": params.temperature, "top_p": params.top_p}
        if params.max_tokens:
            body["max_tokens"] = params.max_tokens
        if params.stop:
            body["stop"] = list(params.stop)
        if params.seed is not None:
            body["seed"] = params.seed
        if self.server.extras:
            body.update(top_k=params.top_k, min_p=params.min_p,
                        repeat_penalty=params.repeat_penalty)
        return body

    # ------------------------------------------------------------------ the turn pipeline
    def prepare(self, request: TurnRequest, *, listener: TurnListener | None = None,
                check=None, load: bool = True) -> PreparedTurn:
        """The turn as it will be sent: the knobs (a remote model has no settings here), the
        system prompt placed as the first message, the stop strings. SamplingError."""
        options = request.options
        params = knobs.sampling_for(None, options.overrides)
        stop = tuple(params.stop) + tuple(s for s in (options.stop or ()) if s not in params.stop)
        params = replace(params, stop=stop)
        messages = tuple(with_system(request.messages, options.system))
        chat = request.mode == CHAT
        return PreparedTurn(
            model=request.model, mode=request.mode, text=None if chat else request.prompt,
            messages=messages if chat else (), add_bos=request.add_bos, stop=stop,
            params=params, load=None, template=None,
            template_id="server" if chat else "raw", requested_max_tokens=params.max_tokens,
            notes=(f"{self.server.name} applies its own chat template",) if chat else ())

    def start(self, turn: PreparedTurn) -> "RemoteGeneration":
        model = turn.model.remote_id or turn.model.id
        if turn.mode == CHAT:
            return self.chat(model, turn.messages, turn.params)
        return self.complete(model, turn.text or "", turn.params)

    # ------------------------------------------------------------------ the HTTP calls
    def chat(self, model: str, messages: Sequence[Mapping[str, Any]],
             params: SamplingParams | None = None) -> "RemoteGeneration":
        """Stream a reply; the server applies its own template."""
        params = params or knobs.ENGINE_DEFAULTS
        body = self._body(model, params)
        body["messages"] = [{"role": m["role"], "content": m["content"]} for m in messages]
        return self._start("/chat/completions", body, params)

    def complete(self, model: str, prompt: str,
                 params: SamplingParams | None = None) -> "RemoteGeneration":
        params = params or knobs.ENGINE_DEFAULTS
        body = self._body(model, params)
        body["prompt"] = prompt
        return self._start("/completions", body, params)

    def _start(self, path: str, body: dict, params: SamplingParams) -> "RemoteGeneration":
        self._current = RemoteGeneration(self, path, body, params.seed)
        return self._current

    def stop(self) -> None:
        current = self._current
        if current is not None:
            current.stopped = True

    def close(self) -> None:
        self.stop()
        self._http.close()


class _BadEvent(Exception):
    pass


def _read_event(data: str) -> dict[str, Any]:
    """One server-sent event's JSON object (_BadEvent when it is not one)."""
    try:
        event = json.loads(data)
    except (ValueError, RecursionError):
        raise _BadEvent("an event that is not JSON") from None
    if not isinstance(event, dict):
        raise _BadEvent("an event that is not a JSON object")
    return event


def _pieces(event: dict[str, Any]) -> list[tuple[str | None, str | None]]:
    """(text, finish_reason) of each choice; _BadEvent for any other shape."""
    out = []
    choices = event.get("choices") or []
    if not isinstance(choices, list):
        raise _BadEvent("choices that are not a list")
    for choice in choices:
        if not isinstance(choice, dict):
            raise _BadEvent("a choice that is not an object")
        delta = choice.get("delta") or {}
        piece = delta.get("content") if isinstance(delta, dict) and "delta" in choice \
            else choice.get("text")
        reason = choice.get("finish_reason")
        if not isinstance(piece, (str, type(None))) or not isinstance(reason, (str, type(None))):
            raise _BadEvent("a choice whose text is not text")
        out.append((piece, reason))
    return out


@dataclass(eq=False)
class RemoteGeneration:
    """The pieces of one remote reply as they arrive; `stats` is filled in when it ends."""

    backend: RemoteBackend
    path: str
    body: dict
    seed: int | None = None
    text: str = ""
    stats: Stats | None = None
    stopped: bool = False
    on_prompt_progress: Any = None  # the server does not report prompt evaluation
    _started: float = field(default_factory=time.perf_counter)

    def __iter__(self) -> Iterator[str]:
        b, name = self.backend, self.backend.server.name
        t_first = t_last = None
        pieces, reason, usage, timing = 0, "", None, None
        outcome = "cancelled"  # until the stream ends as it should, or fails
        answering = False      # the server said 200: a transport error now is a drop
        self._started = time.perf_counter()  # the request is sent now, not when it was made
        try:
            b.check_online()
            with b._http.stream("POST", b._url(self.path), json=self.body) as response:
                if response.status_code >= 400:
                    raise RemoteError(f"{name}: {response.status_code} {_error_text(response)}")
                answering = True
                for line in _event_lines(response):
                    if self.stopped:
                        break  # leaving closes the connection: the server stops too
                    if not line.startswith("data:"):
                        continue
                    data = line[5:].strip()
                    if data == "[DONE]":
                        outcome = "done"
                        break
                    event = _read_event(data)
                    if "error" in event:
                        err = event["error"]
                        said = err.get("message", err) if isinstance(err, dict) else err
                        raise RemoteError(f"{name}: {str(said)[:MAX_ERROR_CHARS]}")
                    usage = event.get("usage") or usage
                    timing = event.get("timings") or timing
                    for piece, finish in _pieces(event):
                        reason = finish or reason
                        if piece:
                            now = time.perf_counter()
                            t_first, t_last = t_first or now, now
                            pieces += 1
                            self.text += piece
                            yield piece
                else:
                    outcome = "done"  # the server closed the stream without [DONE]
        except b._errors as exc:
            if not self.stopped:
                outcome = "error"
                raise b.failed(exc, answering=answering) from None
        except _BadEvent as exc:
            outcome = "error"
            raise RemoteError(f"{name}: the server sent {exc}") from None
        except OfflineError:
            outcome = "error"
            raise
        except RemoteError as exc:
            outcome = "error"
            raise RemoteError(scrub(str(exc), b.server.url)) from None
        finally:
            # Anything else (the caller broke off, Ctrl-C) leaves outcome "cancelled".
            if self.stopped and outcome != "error":
                outcome = "cancelled"
            self.stats = self._stats(t_first, t_last, pieces, reason, usage, outcome, timing)

    def _stats(self, t_first, t_last, pieces, reason, usage, outcome, timing) -> Stats:
        usage = usage if isinstance(usage, dict) else {}
        n = _count(usage.get("completion_tokens")) or pieces
        decode_s = (t_last - t_first) if t_first and t_last else 0.0
        if outcome == "done":
            stop_reason = "length" if reason == "length" else "stop"
        else:
            stop_reason = outcome  # cancelled | error
        tps = ((n - 1) / decode_s) if decode_s > 0 and n > 1 else None
        if isinstance(timing, dict) and isinstance(timing.get("predicted_per_second"), (int, float)):
            tps = float(timing["predicted_per_second"])  # the server's own measure (llama.cpp's)
        prompt = _count(usage.get("prompt_tokens"))
        return Stats(prompt_tokens=prompt, generated_tokens=n, evaluated_tokens=prompt,
                     ttft_s=(t_first - self._started) if t_first else None, decode_tps=tps,
                     decode_s=decode_s, total_s=time.perf_counter() - self._started,
                     stop_reason=stop_reason, seed=self.seed)

    def run(self, on_piece=None) -> Stats:
        for piece in self:
            if on_piece:
                on_piece(piece)
        assert self.stats is not None
        return self.stats


def with_system(messages: Sequence[Mapping[str, Any]], system: str | None
                ) -> list[dict[str, str]]:
    """The messages with `system` as their system prompt: None keeps theirs, "" removes it,
    a text replaces it (as a first message, as every OpenAI server reads it)."""
    out = [{"role": m["role"], "content": m["content"]} for m in messages]
    if system is None:
        return out
    if out and out[0]["role"] == "system":
        out = out[1:]
    return ([{"role": "system", "content": system}] if system else []) + out


def _count(value: Any) -> int:
    return value if isinstance(value, int) and not isinstance(value, bool) and value >= 0 else 0


# --------------------------------------------------------------------------- models, by id

def open_remote(ref: str, registry: ServerRegistry | None = None
                ) -> tuple[RemoteBackend, str] | None:
    """For `corral chat REF`: (backend, the model's id on its server) when REF names a remote
    model, else None (REF is local). Close the backend when done."""
    registry = registry or ServerRegistry()
    found = resolve(ref, registry)
    if found is None:
        return None
    return RemoteBackend.for_server(found.server, registry), found.model


def list_remote_models(registry: ServerRegistry | None = None
                       ) -> tuple[list[RemoteModel], dict[str, str]]:
    """Every registered server's models, and for each server that failed, why (offline mode:
    every server, with no request sent)."""
    registry = registry or ServerRegistry()
    models: list[RemoteModel] = []
    errors: dict[str, str] = {}
    for server in registry.list():
        try:
            backend = RemoteBackend.for_server(server, registry, connect_timeout=5,
                                               read_timeout=15)
            try:
                models += [RemoteModel(server, m) for m in backend.models()]
            finally:
                backend.close()
        except RemoteError as exc:
            errors[server.name] = str(exc)
    return models, errors
