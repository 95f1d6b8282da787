"""Remote engines: any OpenAI-compatible server (llama.cpp's, vLLM, Ollama, another Corral).

A user whose models outgrow one machine registers a server (URL and optional API key); its
models then show up beside the local ones as `SERVER/MODEL` and chat the same way, because both
sides speak one small protocol:

    ChatBackend.chat(model, messages, params, template=None) -> ChatStream
    ChatBackend.complete(model, prompt, params) -> ChatStream
    ChatBackend.stop() (any thread; takes effect before the next piece) / close()
    ChatStream: iterate for text pieces; then .text and .stats (app.core.engine.Stats)

`app.core.server.LocalBackend` (library + engine; its streams are engine Generations) and
`RemoteBackend` here implement it. Remote stats hold what the server reports (usage) and what
is measured here (time to first piece, pieces per second); a server that sends no usage while
streaming gets its pieces counted instead of tokens.

Keys: in the OS keyring when one is usable (service "corral", user "server:NAME"); otherwise in
`<data>/server-keys.json`, readable by its owner only (0600), never in servers.json or the chats.
"""

from __future__ import annotations

import json
import os
import re
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator, Mapping, Protocol, Sequence
from urllib.parse import urlsplit, urlunsplit

from app.core.engine import SamplingParams, Stats
from app.core.paths import get_paths
from app.core import statefile
from app.core.safetext import terminal_safe
from app.core.statefile import Damaged, expect, keep_entries, keep_items, write_json_atomic

KEYRING_SERVICE = "corral"
NAME_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,62}$")


class RemoteError(Exception):
    """A server that cannot be reached, refuses, or answers in a way Corral cannot read."""


class ChatStream(Protocol):
    text: str
    stats: Stats | None

    def __iter__(self) -> Iterator[str]: ...


class ChatBackend(Protocol):
    def chat(self, model: str, messages: Sequence[Mapping[str, Any]],
             params: SamplingParams = ..., *, template: str | None = None) -> ChatStream: ...

    def complete(self, model: str, prompt: str, params: SamplingParams = ...) -> ChatStream: ...

    def stop(self) -> None: ...

    def close(self) -> None: ...


# --------------------------------------------------------------------------- the registry

@dataclass(frozen=True)
class RemoteServer:
    name: str
    url: str                 # the API base, ending in /v1 (or wherever the server puts it)
    key_store: str | None = None  # "keyring" | "file" | None (no key)
    extras: bool = True      # send llama.cpp's top_k / min_p / repeat_penalty too

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "url": self.url, "key_store": self.key_store,
                "extras": self.extras}


@dataclass(frozen=True)
class RemoteModel:
    server: RemoteServer
    model: str               # the id on the server

    @property
    def id(self) -> str:
        return f"{self.server.name}/{self.model}"


def normalize_url(url: str) -> str:
    """http(s)://host[:port][/path]; a bare host or root gets /v1, a given path is kept."""
    url = url.strip()
    if "://" not in url:
        url = "http://" + url
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise RemoteError(f"{url!r} is not an http:// or https:// server address")
    path = parts.path.rstrip("/") or "/v1"
    return urlunsplit((parts.scheme, parts.netloc, path, "", ""))


def default_name(url: str) -> str:
    parts = urlsplit(url)
    name = parts.hostname or "server"
    if parts.port:
        name += f"-{parts.port}"
    return re.sub(r"[^A-Za-z0-9._-]", "-", name).strip("-.") or "server"


def _usable_keyring():
    """The keyring module when a real OS keyring is there, else None."""
    try:
        import keyring
        from keyring.backends import fail, null
    except ImportError:
        return None
    backend = keyring.get_keyring()
    if isinstance(backend, (fail.Keyring, null.Keyring)) or getattr(backend, "priority", 0) <= 0:
        return None
    return keyring


def _check_servers(value: Any, problems: list[str]) -> dict[str, Any]:
    data = expect(value, dict)
    servers = keep_items(expect(data.get("servers", []), list, "servers"), _check_server,
                         problems, "server")
    seen: set[str] = set()
    unique = []
    for server in servers:
        if server["name"].lower() in seen:
            problems.append(f"server {server['name']!r}: a second server of that name")
            continue
        seen.add(server["name"].lower())
        unique.append(server)
    return {"version": 1, "servers": unique}


def _check_server(entry: Any) -> dict[str, Any]:
    expect(entry, dict, "its entry")
    name, url = expect(entry.get("name"), str, "name"), expect(entry.get("url"), str, "url")
    if not NAME_PATTERN.match(name):
        raise Damaged(f"{terminal_safe(repr(name))[:70]} is not a server name")
    try:
        url = normalize_url(url)
    except RemoteError:
        raise Damaged("url is not an http:// or https:// address") from None
    if entry.get("key_store") not in (None, "keyring", "file"):
        raise Damaged("key_store must be \"keyring\", \"file\" or null")
    return {"name": name, "url": url, "key_store": entry.get("key_store"),
            "extras": expect(entry.get("extras", True), bool, "extras")}


def _check_keys(value: Any, problems: list[str]) -> dict[str, str]:
    # Only names and kinds in the messages: never a key.
    return keep_entries(expect(value, dict), lambda _name, key: expect(key, str, "the key"),
                        problems, "the key of")


SERVERS_FILE = statefile.Schema(
    default=lambda: {"version": 1, "servers": []}, check=_check_servers,
    then="the server list starts empty (`corral servers add` them again)")
KEYS_FILE = statefile.Schema(
    check=_check_keys, private=True,
    then="the servers whose key was kept there need it again (`corral servers rm`, then `add` "
         "with --key)")


class ServerRegistry:
    """servers.json (names and URLs) and the keys, kept apart from it; both read through
    app.core.statefile (a damaged file is set aside with a message, never written over)."""

    def __init__(self, data_dir: str | os.PathLike | None = None) -> None:
        data = Path(data_dir) if data_dir is not None else get_paths().data
        self.path = data / "servers.json"
        self.keys_path = data / "server-keys.json"

    def list(self) -> list[RemoteServer]:
        return [RemoteServer(s["name"], s["url"], s["key_store"], s["extras"])
                for s in statefile.read(self.path, SERVERS_FILE)["servers"]]

    def _keys(self) -> dict[str, str]:
        return statefile.read(self.keys_path, KEYS_FILE)

    def get(self, name: str) -> RemoteServer:
        for server in self.list():
            if server.name.lower() == name.lower():
                return server
        raise RemoteError(f"no server named {name!r}; `corral servers list` shows them")

    def find(self, name: str) -> RemoteServer | None:
        try:
            return self.get(name)
        except RemoteError:
            return None

    def _save(self, servers: list[RemoteServer]) -> None:
        write_json_atomic(self.path, {"version": 1, "servers": [s.to_dict() for s in servers]})

    def add(self, url: str, *, key: str | None = None, name: str | None = None,
            extras: bool = True) -> RemoteServer:
        url = normalize_url(url)
        name = name or default_name(url)
        if not NAME_PATTERN.match(name):
            raise RemoteError(f"server name {name!r}: use letters, digits, '.', '_' or '-' "
                              f"(no '/': a remote model is named SERVER/MODEL)")
        servers = self.list()
        if any(s.name.lower() == name.lower() for s in servers):
            raise RemoteError(f"a server named {name!r} already exists; remove it first or "
                              f"choose another --name")
        store = self._store_key(name, key) if key else None
        server = RemoteServer(name, url, store, extras)
        self._save(servers + [server])
        return server

    def remove(self, name: str) -> RemoteServer:
        server = self.get(name)
        self._save([s for s in self.list() if s.name != server.name])
        self._forget_key(server)
        return server

    # ------------------------------------------------------------------ keys
    def _store_key(self, name: str, key: str) -> str:
        ring = _usable_keyring()
        if ring is not None:
            try:
                ring.set_password(KEYRING_SERVICE, f"server:{name}", key)
                return "keyring"
            except Exception:  # noqa: BLE001 - a locked or broken keyring: use the private file
                pass
        keys = self._keys()
        keys[name] = key
        write_json_atomic(self.keys_path, keys, private=True)
        return "file"

    def key(self, server: RemoteServer) -> str | None:
        if server.key_store == "keyring":
            ring = _usable_keyring()
            value = ring.get_password(KEYRING_SERVICE, f"server:{server.name}") if ring else None
            if value is None:
                raise RemoteError(f"the key of server {server.name!r} is not in the keyring any "
                                  f"more; remove the server and add it again with --key")
            return value
        if server.key_store == "file":
            return self._keys().get(server.name)
        return None

    def _forget_key(self, server: RemoteServer) -> None:
        if server.key_store == "keyring":
            ring = _usable_keyring()
            try:
                if ring:
                    ring.delete_password(KEYRING_SERVICE, f"server:{server.name}")
            except Exception:  # noqa: BLE001 - already gone
                pass
        elif server.key_store == "file":
            keys = self._keys()
            if keys.pop(server.name, None) is not None:
                write_json_atomic(self.keys_path, keys, private=True)


# --------------------------------------------------------------------------- the client

def _error_text(response) -> str:
    try:
        body = json.loads(response.read())
        err = body.get("error", body) if isinstance(body, dict) else body
        if isinstance(err, dict):
            return str(err.get("message") or err.get("detail") or err)
        return str(err)
    except (ValueError, UnicodeDecodeError):
        return response.reason_phrase or "no details"


class RemoteBackend:
    """Chat with the models of one server (see ChatBackend). One stream at a time."""

    def __init__(self, server: RemoteServer, key: str | None = None, *,
                 connect_timeout: float = 10, read_timeout: float = 600) -> None:
        import httpx2

        self.server = server
        headers = {"Authorization": f"Bearer {key}"} if key else {}
        self._http = httpx2.Client(headers=headers, timeout=httpx2.Timeout(
            read_timeout, connect=connect_timeout))
        self._errors = (httpx2.HTTPError, httpx2.StreamError)
        self._current: RemoteGeneration | None = None

    @classmethod
    def for_server(cls, server: RemoteServer, registry: ServerRegistry | None = None,
                   **kw) -> "RemoteBackend":
        return cls(server, (registry or ServerRegistry()).key(server), **kw)

    def _url(self, path: str) -> str:
        return self.server.url.rstrip("/") + path

    def models(self) -> list[str]:
        try:
            response = self._http.get(self._url("/models"))
        except self._errors as exc:
            raise RemoteError(f"cannot reach {self.server.name} ({self.server.url}): "
                              f"{exc}") from None
        if response.status_code >= 400:
            raise RemoteError(f"{self.server.name}: {response.status_code} {_error_text(response)}")
        try:
            return [m["id"] for m in response.json()["data"]]
        except (ValueError, KeyError, TypeError):
            raise RemoteError(f"{self.server.name}: {self.server.url}/models did not answer with "
                              f"an OpenAI model list") from None

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

    def chat(self, model: str, messages: Sequence[Mapping[str, Any]],
             params: SamplingParams = SamplingParams(), *,
             template: str | None = None) -> "RemoteGeneration":
        """Stream a reply; the server applies its own template (`template` is not sent)."""
        body = self._body(model, params)
        body["messages"] = [{"role": m["role"], "content": m["content"]} for m in messages]
        return self._start("/chat/completions", body, params)

    def complete(self, model: str, prompt: str,
                 params: SamplingParams = SamplingParams()) -> "RemoteGeneration":
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
    _started: float = field(default_factory=time.perf_counter)

    def __iter__(self) -> Iterator[str]:
        b, name = self.backend, self.backend.server.name
        t_first = t_last = None
        pieces, reason, usage, timing = 0, "", None, None
        outcome = "cancelled"  # until the stream ends as it should, or fails
        self._started = time.perf_counter()  # the request is sent now, not when it was made
        try:
            with b._http.stream("POST", b._url(self.path), json=self.body) as response:
                if response.status_code >= 400:
                    raise RemoteError(f"{name}: {response.status_code} {_error_text(response)}")
                for line in response.iter_lines():
                    if self.stopped:
                        break  # leaving closes the connection: the server stops too
                    if not line.startswith("data:"):
                        continue
                    data = line[5:].strip()
                    if data == "[DONE]":
                        outcome = "done"
                        break
                    event = json.loads(data)
                    if "error" in event:
                        err = event["error"]
                        said = err.get("message", err) if isinstance(err, dict) else err
                        raise RemoteError(f"{name}: {said}")
                    usage = event.get("usage") or usage
                    timing = event.get("timings") or timing
                    for choice in event.get("choices") or []:
                        delta = choice.get("delta") or {}
                        piece = delta.get("content") if "delta" in choice else choice.get("text")
                        reason = choice.get("finish_reason") or reason
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
                raise RemoteError(f"{name} ({b.server.url}): {exc}") from None
        except ValueError:
            outcome = "error"
            raise RemoteError(f"{name}: the server sent an event that is not JSON") from None
        except RemoteError:
            outcome = "error"
            raise
        finally:
            # Anything else (the caller broke off, Ctrl-C) leaves outcome "cancelled".
            if self.stopped and outcome != "error":
                outcome = "cancelled"
            self.stats = self._stats(t_first, t_last, pieces, reason, usage, outcome, timing)

    def _stats(self, t_first, t_last, pieces, reason, usage, outcome, timing) -> Stats:
        usage = usage or {}
        n = int(usage.get("completion_tokens") or pieces)
        decode_s = (t_last - t_first) if t_first and t_last else 0.0
        if outcome == "done":
            stop_reason = "length" if reason == "length" else "stop"
        else:
            stop_reason = outcome  # cancelled | error
        tps = ((n - 1) / decode_s) if decode_s > 0 and n > 1 else None
        if isinstance(timing, dict) and timing.get("predicted_per_second"):
            tps = float(timing["predicted_per_second"])  # the server's own measure (llama.cpp's)
        return Stats(prompt_tokens=int(usage.get("prompt_tokens") or 0), generated_tokens=n,
                     evaluated_tokens=int(usage.get("prompt_tokens") or 0),
                     ttft_s=(t_first - self._started) if t_first else None, decode_tps=tps,
                     decode_s=decode_s, total_s=time.perf_counter() - self._started,
                     stop_reason=stop_reason, seed=self.seed)

    def run(self, on_piece=None) -> Stats:
        for piece in self:
            if on_piece:
                on_piece(piece)
        assert self.stats is not None
        return self.stats


# --------------------------------------------------------------------------- models, by id

def resolve(ref: str, registry: ServerRegistry | None = None) -> RemoteModel | None:
    """RemoteModel when `ref` is SERVER/MODEL of a registered server (and not a local file)."""
    if "/" not in ref or os.path.exists(ref):
        return None
    name, model = ref.split("/", 1)
    server = (registry or ServerRegistry()).find(name)
    return RemoteModel(server, model) if server and model else None


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
    """Every registered server's models, and for each server that failed, why."""
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
