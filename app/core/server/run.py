"""Run the API with uvicorn: in this thread (`corral serve`) or in a background thread (tests,
benchmarks). The socket is bound before uvicorn starts, so the real port is
known at once (port 0 picks a free one) and early clients wait in the listen backlog.

Connections have deadlines: uvicorn closes an idle keep-alive connection (`idle_timeout`), but
has no deadline for a request's head, so a client that connected and sent nothing, or half a
head, held its connection forever. `_HeadDeadline` adds one (`header_timeout`, from the
connection's start or a head's first byte); Guard bounds the body (app.py)."""

from __future__ import annotations

import socket
import sys
import threading

import h11
import uvicorn
from uvicorn.protocols.http.h11_impl import H11Protocol

from app.core.engine import LoadedModel
from app.core.library import Library
from app.core.server.app import ServeConfig, create_app, find_model


def bind(host: str, port: int) -> socket.socket:
    family, kind, proto, _, address = socket.getaddrinfo(
        host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)[0]
    sock = socket.socket(family, kind, proto)
    if sys.platform != "win32":
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind(address)
    except OSError as exc:
        sock.close()
        raise OSError(exc.errno, f"cannot listen on {host}:{port}: {exc.strerror}") from None
    sock.listen(128)
    return sock


class _HeadDeadline(H11Protocol):
    """uvicorn's h11 protocol, closing a connection whose request head is not complete
    `header_timeout` seconds after the connection opened or the head's first byte came."""

    header_timeout = 10.0
    _head_timer = None

    def connection_made(self, transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._arm()

    def data_received(self, data: bytes) -> None:
        super().data_received(data)
        if self.conn.their_state is h11.IDLE:
            self._arm()  # part of a head: the deadline runs from its first byte, not each byte
        else:
            self._disarm()

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm()
        super().connection_lost(exc)

    def _arm(self) -> None:
        if self._head_timer is None:
            self._head_timer = self.loop.call_later(self.header_timeout, self._expired)

    def _disarm(self) -> None:
        if self._head_timer is not None:
            self._head_timer.cancel()
            self._head_timer = None

    def _expired(self) -> None:
        self._head_timer = None
        if self.conn.their_state is h11.IDLE and not self.transport.is_closing():
            try:
                self.conn.send(h11.ConnectionClosed())
            except h11.LocalProtocolError:
                pass
            self.transport.close()


class Server:
    """The API on one socket. `serve_forever()` blocks (Ctrl-C stops it); `start()`/`stop()`
    run it in a background thread."""

    def __init__(self, config: ServeConfig = ServeConfig(), *, library: Library | None = None,
                 log_level: str = "warning") -> None:
        self.config = config
        self.app = create_app(config, library=library)
        self.worker = self.app.state.worker
        self.library = self.app.state.library
        self.sock = bind(config.host, config.port)
        self.host, self.port = self.sock.getsockname()[:2]
        protocol = type("HeadDeadline", (_HeadDeadline,), {"header_timeout": config.header_timeout})
        self.uvicorn = uvicorn.Server(uvicorn.Config(
            self.app, log_level=log_level, log_config=None if log_level == "warning" else
            uvicorn.config.LOGGING_CONFIG, access_log=log_level != "warning", lifespan="on",
            timeout_graceful_shutdown=3, http=protocol,
            timeout_keep_alive=config.idle_timeout))  # type: ignore[arg-type]
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}/v1"

    def preload(self, model_id: str, timeout: float | None = None) -> LoadedModel:
        """Load a model of the library now (on the engine thread), not at the first request."""
        model = find_model(self.library, model_id)
        self.worker.start()
        return self.worker.call(lambda backend: backend.load(model)).result(timeout)

    def serve_forever(self) -> None:
        self.uvicorn.run(sockets=[self.sock])

    def start(self) -> "Server":
        self._thread = threading.Thread(target=self.serve_forever, name="corral-serve", daemon=True)
        self._thread.start()
        return self

    def stop(self, timeout: float = 30) -> None:
        self.worker.close(timeout)  # stop generating first, so open streams end now
        self.uvicorn.should_exit = True
        if self._thread is not None:
            self._thread.join(timeout)
        self.sock.close()

    def __enter__(self) -> "Server":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()
