"""The ASGI application: OpenAI's routes on Starlette, over the engine worker.

Routes: GET /v1/models, GET /v1/models/{id}, POST /v1/chat/completions, POST /v1/completions.
`Guard` (plain ASGI, outermost after CORS) applies the safety rules to every request before any
route runs: the Host header on a loopback bind (no DNS rebinding), the API key, the body size
limit and deadline, and JSON bodies only (so a web page cannot post a "simple" form to the
local server). A body is then parsed once, bounded in depth and checked to hold only text that
can be encoded (`_read_json`); a request's head and an idle connection have deadlines too
(run.py).
"""

from __future__ import annotations

import asyncio
import contextlib
import hmac
import json
import re
from dataclasses import dataclass
from typing import Any

from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.middleware.cors import CORSMiddleware
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from app.core import statefile
from app.core.engine import Engine
from app.core.inputs import bad_text
from app.core.library import Library, LibraryError, LocalModel
from app.core.memory_plan import format_bytes
from app.core.server import schema
from app.core.server.errors import APIError, send_error
from app.core.server.worker import EngineWorker, Job, QueueFull
from app.core.turns import LocalBackend, ModelRef, local_ref, resolve_model

LOOPBACK_NAMES = {"localhost", "127.0.0.1", "::1"}


@dataclass(frozen=True)
class ServeConfig:
    host: str = "127.0.0.1"
    port: int = 8484
    model: str | None = None          # the default model (loaded at start by `corral serve`)
    api_key: str | None = None
    cors: tuple[str, ...] = ()        # origins allowed to call from a browser; none by default
    max_queue: int = 8                # requests waiting behind the running one
    max_body: int = 4 * 1024 * 1024   # bytes
    max_depth: int = 64               # nesting of a JSON body
    header_timeout: float = 10.0      # seconds for a request's head to arrive, from its first byte
    body_timeout: float = 60.0        # seconds for a request's body to arrive, from its head
    idle_timeout: float = 5.0         # seconds an idle keep-alive connection stays open
    threads: int | None = None        # llama.cpp threads (None: the settings' or the machine's)


def is_loopback(host: str) -> bool:
    return host in LOOPBACK_NAMES or host.startswith("127.")


class _BadBody(Exception):
    """Raised from inside the app while it reads the body; Guard answers `error`."""

    def __init__(self, error: APIError) -> None:
        super().__init__(error.message)
        self.error = error


class Guard:
    """Host check, API key, body size and content type, for every HTTP request."""

    def __init__(self, app, config: ServeConfig) -> None:
        self.app = app
        self.config = config
        self.hosts = LOOPBACK_NAMES | {config.host} if is_loopback(config.host) else None
        self.key = config.api_key.encode() if config.api_key else None

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope["headers"]}
        refused = self._refuse(scope, headers)
        if refused:
            return await send_error(send, refused, [(b"www-authenticate", b"Bearer")]
                                    if refused.status == 401 else [])
        limit, seen, started, body_done = self.config.max_body, 0, False, False
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.config.body_timeout

        async def counted_receive():
            nonlocal seen, body_done
            if body_done:  # e.g. a stream watching for the client to leave: no deadline
                return await receive()
            try:
                message = await asyncio.wait_for(receive(), max(0.0, deadline - loop.time()))
            except asyncio.TimeoutError:
                raise _BadBody(APIError(408, f"the request body did not arrive within "
                                             f"{self.config.body_timeout:g} s",
                                        code="request_timeout")) from None
            body_done = message["type"] != "http.request" or not message.get("more_body")
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > limit:
                    raise _BadBody(self._too_large())
            return message

        async def tracked_send(message):
            nonlocal started
            started = started or message["type"] == "http.response.start"
            await send(message)

        try:
            await self.app(scope, counted_receive, tracked_send)
        except _BadBody as exc:
            if not started:
                await send_error(send, exc.error, [(b"connection", b"close")])

    def _too_large(self) -> APIError:
        return APIError(413, f"the request body is larger than the limit of "
                             f"{format_bytes(self.config.max_body)}", code="request_too_large")

    def _refuse(self, scope, headers: dict[str, str]) -> APIError | None:
        if self.hosts is not None:
            host = headers.get("host", "")
            name = host[1:host.index("]")] if host.startswith("[") and "]" in host \
                else host.rsplit(":", 1)[0]
            if name.lower() not in self.hosts:
                return APIError(400, f"this server answers only to requests for the local "
                                     f"machine, not for host {host!r}", code="invalid_host")
        if self.key is not None:
            given = headers.get("authorization", "")
            token = given[7:].strip().encode() if given[:7].lower() == "bearer " else b""
            if not hmac.compare_digest(token, self.key):
                return APIError(401, "Incorrect or missing API key: send the header "
                                     "'Authorization: Bearer KEY' with the key this server was "
                                     "started with", code="invalid_api_key")
        length = headers.get("content-length")
        if length is not None and (not length.isdigit() or int(length) > self.config.max_body):
            return self._too_large()
        if scope["method"] in ("POST", "PUT", "PATCH"):
            kind = headers.get("content-type", "").split(";")[0].strip().lower()
            if kind != "application/json":
                return APIError(415, "send the request body as JSON, with the header "
                                     "'Content-Type: application/json'",
                                code="unsupported_media_type")
        return None


# --------------------------------------------------------------------------- responses

def _sse(data: Any) -> bytes:
    text = data if isinstance(data, str) else json.dumps(data, ensure_ascii=False,
                                                         separators=(",", ":"))
    return b"data: " + text.encode() + b"\n\n"


class GenerationResponse:
    """Waits for the job to start (or fail), then answers: a JSON body, or server-sent events.
    A client that goes away (seen at once, while waiting or streaming) cancels the job."""

    def __init__(self, job: Job, worker: EngineWorker) -> None:
        self.job = job
        self.worker = worker
        self.gone = False  # the client disconnected
        self.ended = False  # the job's last event (done or error) was handled

    async def __call__(self, scope, receive, send) -> None:
        job = self.job
        watcher = asyncio.create_task(self._watch(receive))
        try:
            kind, value = await job.events.get()
            if kind == "gone":
                return
            if kind == "error":
                self.ended = True
                return await send_error(send, value)
            model = value.model_id
            if job.request.stream:
                await self._stream(send, model)
            else:
                await self._whole(send, model)
        except OSError:  # the client went away while we were writing
            pass
        finally:
            watcher.cancel()
            if not self.ended:
                self.worker.cancel(job)

    async def _watch(self, receive) -> None:
        while (await receive())["type"] != "http.disconnect":
            pass
        self.gone = True
        self.worker.cancel(self.job)
        self.job.events.put_nowait(("gone", None))

    async def _whole(self, send, model: str) -> None:
        pieces: list[str] = []
        while True:
            kind, value = await self.job.events.get()
            if kind == "piece":
                pieces.append(value)
                continue
            if kind == "gone":
                return
            self.ended = True
            if kind == "error":
                return await send_error(send, value)
            body = json.dumps(schema.whole(self.job.request, model, "".join(pieces), value),
                              ensure_ascii=False).encode()
            await send({"type": "http.response.start", "status": 200, "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(body)).encode())]})
            return await send({"type": "http.response.body", "body": body})

    async def _stream(self, send, model: str) -> None:
        req = self.job.request
        await send({"type": "http.response.start", "status": 200, "headers": [
            (b"content-type", b"text/event-stream; charset=utf-8"),
            (b"cache-control", b"no-cache"), (b"x-accel-buffering", b"no")]})

        async def event(data: Any) -> None:
            await send({"type": "http.response.body", "body": _sse(data), "more_body": True})

        if req.kind == schema.CHAT:
            await event(schema.chunk(req, model, None, role=True))
        events, ended = self.job.events, False
        while not ended:
            # Everything that has arrived goes out in one write: under load, a slow client
            # costs one syscall per batch, not per token.
            batch, out = [await events.get()], bytearray()
            while not events.empty():
                batch.append(events.get_nowait())
            for kind, value in batch:
                if kind == "piece":
                    out += _sse(schema.chunk(req, model, value))
                elif kind == "done":
                    out += _sse(schema.chunk(req, model, None, stats=value,
                                             finish=schema.finish_reason(value)))
                    if req.include_usage:
                        out += _sse(schema.usage_chunk(req, model, value))
                    ended = True
                elif kind == "error":
                    out += _sse(value.body())
                    ended = True
                else:  # gone
                    return
            self.ended = ended
            if ended:
                out += _sse("[DONE]")
            if self.gone:
                return
            await send({"type": "http.response.body", "body": bytes(out), "more_body": not ended})


# --------------------------------------------------------------------------- routes

async def _read_json(request: Request) -> Any:
    """The body's JSON: valid, nested at most max_depth deep (the one bounded JSON parser,
    statefile.parse), every string encodable text (a lone surrogate reached the runner and
    killed it). Else 400 naming the field."""
    body = await request.body()
    try:
        data = statefile.parse(body, request.app.state.config.max_depth)
    except statefile.Damaged as exc:
        raise APIError(400, f"the request body {exc}", code="invalid_json") from None
    bad = bad_text(data)
    if bad:
        where, problem = bad
        param = re.split(r"[.\[]", where, maxsplit=1)[0]
        raise APIError(400, f"{where} {problem}", code="invalid_value",
                       param=None if param == "the value" else param)
    return data


def find_model(library: Library, model_id: str) -> ModelRef:
    """A usable model of the library by id, exact or in any case (LibraryError if none). Ids
    only, never paths, never another server: a client cannot make this server open a file
    outside the library or contact anything."""
    return resolve_model(model_id, library=library, allow_paths=False, allow_remote=False)


def _resolve(app_state, name: str) -> ModelRef:
    config: ServeConfig = app_state.config
    library: Library = app_state.library
    if not name or name == "default":
        backend = app_state.worker.backend
        name = config.model or (backend.loaded_id if backend else None) or ""
        if not name:
            usable = [m for m in library.scan() if m.ok]
            if len(usable) != 1:
                raise APIError(400, "model is required: name one of GET /v1/models",
                               code="model_required", param="model")
            return local_ref(usable[0])
    try:
        return find_model(library, name)
    except LibraryError as exc:
        known = ", ".join(m.id for m in library.scan() if m.ok) or "none"
        raise APIError(404, f"{exc}; the models here are: {known}{_remote_note(name)}",
                       code="model_not_found", param="model") from None


def _remote_note(name: str) -> str:
    """For SERVER/MODEL of a registered server: why it is not served (this server never
    forwards a request to another; in offline mode it would not even if it did)."""
    from app.core.remote import resolve
    from app.core.settings import current_settings

    try:
        found = resolve(name)
    except Exception:  # noqa: BLE001 - only a hint: a registry it cannot read adds nothing
        return ""
    if found is None:
        return ""
    offline = "; offline mode is on" if current_settings().offline else ""
    return (f" ({name} is a model of the remote server {found.server.name}, which corral serve "
            f"does not forward to{offline})")


async def _generate(request: Request, kind: str):
    req = schema.parse(await _read_json(request), kind)
    state = request.app.state
    model = await run_in_threadpool(_resolve, state, req.model)
    job = Job(req, model, asyncio.get_running_loop())
    try:
        state.worker.submit(job)
    except QueueFull as exc:
        raise APIError(429, str(exc), code="queue_full") from None
    return GenerationResponse(job, state.worker)


async def chat_completions(request: Request):
    return await _generate(request, schema.CHAT)


async def completions(request: Request):
    return await _generate(request, schema.COMPLETION)


def _model_entry(m: LocalModel | ModelRef) -> dict[str, Any]:
    try:
        created = int(m.path.stat().st_mtime) if m.path is not None else 0
    except OSError:
        created = 0
    return {"id": m.id, "object": "model", "created": created, "owned_by": "corral"}


async def list_models(request: Request):
    models = await run_in_threadpool(request.app.state.library.scan)
    return JSONResponse({"object": "list", "data": [_model_entry(m) for m in models if m.ok]})


async def get_model(request: Request):
    try:
        model = await run_in_threadpool(find_model, request.app.state.library,
                                        request.path_params["model"])
    except LibraryError as exc:
        raise APIError(404, str(exc), code="model_not_found", param="model") from None
    return JSONResponse(_model_entry(model))


async def _api_error(_request: Request, exc: Exception) -> Response:
    assert isinstance(exc, APIError)
    headers = {"Retry-After": "1"} if exc.status == 429 else None
    return Response(exc.json_bytes(), status_code=exc.status, headers=headers,
                    media_type="application/json")


async def _http_error(_request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, HTTPException)
    codes = {404: "not_found", 405: "method_not_allowed"}
    err = APIError(exc.status_code, str(exc.detail), code=codes.get(exc.status_code))
    return JSONResponse(err.body(), status_code=exc.status_code)


async def _internal_error(_request: Request, exc: Exception) -> JSONResponse:
    err = APIError(500, f"internal error: {type(exc).__name__}: {exc}", code="internal_error")
    return JSONResponse(err.body(), status_code=500)


def create_app(config: ServeConfig = ServeConfig(), *, library: Library | None = None,
               worker: EngineWorker | None = None) -> Starlette:
    """The API over a library and an engine worker (made here unless given)."""
    library = library or Library()
    worker = worker or EngineWorker(
        lambda: LocalBackend(Engine(), library, face_overrides={"threads": config.threads}),
        config.max_queue)

    @contextlib.asynccontextmanager
    async def lifespan(_app):
        worker.start()
        yield
        await run_in_threadpool(worker.close)

    middleware = []
    if config.cors:
        middleware.append(Middleware(CORSMiddleware, allow_origins=list(config.cors),
                                     allow_methods=["GET", "POST"],
                                     allow_headers=["Authorization", "Content-Type"]))
    middleware.append(Middleware(Guard, config=config))
    app = Starlette(
        routes=[Route("/v1/models", list_models, methods=["GET"]),
                Route("/v1/models/{model:path}", get_model, methods=["GET"]),
                Route("/v1/chat/completions", chat_completions, methods=["POST"]),
                Route("/v1/completions", completions, methods=["POST"])],
        middleware=middleware,
        exception_handlers={APIError: _api_error, HTTPException: _http_error,
                            Exception: _internal_error},
        lifespan=lifespan)
    app.state.config, app.state.library, app.state.worker = config, library, worker
    return app
