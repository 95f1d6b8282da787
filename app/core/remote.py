"""Remote engines: any OpenAI-compatible server (llama.cpp's, vLLM, Ollama, another Corral).

A user whose models outgrow one machine registers a server (URL and optional API key); its
models then show up beside the local ones as `SERVER/MODEL` and chat the same way: a turn on
one runs through the turn pipeline (app.core.turns) like a local one, on
`app.core.remote_client.RemoteBackend` — the second implementation of the pipeline's Backend
protocol, beside the local engine's. This module holds the registry of servers; remote_client
the HTTP client (which refuses every request while offline mode is on).

Keys: in the OS keyring when one is usable (service "corral", user "server:NAME"); otherwise in
`<data>/server-keys.json`, readable by its owner only (0600), never in servers.json or the chats;
`key_storage()` says which, for a face to tell the user. A password written into a server's URL
(http://user:pass@host) is shown as `***` wherever the URL is shown (`shown_url`): in messages,
listings and errors — and since servers.json may hold one, it is owner-only (0600) too.
"""

from __future__ import annotations

import os
import re
import stat
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from app.core import statefile
from app.core.paths import get_paths
from app.core.safetext import terminal_safe
from app.core.statefile import Damaged, expect, keep_entries, keep_items, write_json_atomic

KEYRING_SERVICE = "corral"
NAME_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,62}$")


class RemoteError(Exception):
    """A server that cannot be reached, refuses, or answers in a way Corral cannot read."""


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

    @property
    def shown_url(self) -> str:
        """The URL to show anyone: a password in it is `***`."""
        return shown_url(self.url)


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
    try:
        parts = urlsplit(url)
        ok = parts.scheme in ("http", "https") and parts.hostname and (parts.port or 1)
    except ValueError:  # "http://[::1", "http://h:99999"
        ok = False
    if not ok:
        raise RemoteError(f"{terminal_safe(repr(shown_url(url)))} is not an http:// or https:// "
                          f"server address")
    path = parts.path.rstrip("/") or "/v1"
    return urlunsplit((parts.scheme, parts.netloc, path, "", ""))


def shown_url(url: str) -> str:
    """`url` with the password of any user:password@ replaced by ***."""
    try:
        parts = urlsplit(url)
    except ValueError:
        return re.sub(r"(//[^/@:]*:)[^/@]*@", r"\1***@", url)
    if parts.password is None:
        return url
    host = parts.netloc.rsplit("@", 1)[1]
    return urlunsplit((parts.scheme, f"{parts.username}:***@{host}", parts.path, parts.query,
                       parts.fragment))


def scrub(text: str, url: str) -> str:
    """`text` with the password of `url` replaced by *** wherever it appears (a library's
    error message may quote the URL)."""
    try:
        password = urlsplit(url).password
    except ValueError:
        return text
    return text.replace(password, "***") if password else text


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


def key_storage(registry: "ServerRegistry | None" = None) -> str:
    """Where a server key given now would be kept, in words: the OS keyring (by name), or the
    owner-only file when no keyring works (said, never a silent fallback)."""
    ring = _usable_keyring()
    if ring is not None:
        backend = ring.get_keyring()
        return f"in the OS keyring ({getattr(backend, 'name', type(backend).__name__)})"
    path = (registry or ServerRegistry()).keys_path
    return f"in {path}, readable by you alone (no OS keyring is available)"


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


SERVERS_FILE = statefile.Schema(  # private: a URL may hold a password
    default=lambda: {"version": 1, "servers": []}, check=_check_servers, private=True,
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
        _owner_only(self.path)
        return [RemoteServer(s["name"], s["url"], s["key_store"], s["extras"])
                for s in statefile.read(self.path, SERVERS_FILE)["servers"]]

    def _keys(self) -> dict[str, str]:
        _owner_only(self.keys_path)
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
        write_json_atomic(self.path, {"version": 1, "servers": [s.to_dict() for s in servers]},
                          private=True)

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


def _owner_only(path: Path) -> None:
    """Tighten a file an older Corral (or a copy) left readable by others to 0600: servers.json
    may hold a password in a URL, server-keys.json holds keys. Only a regular file we own."""
    try:
        st = os.lstat(path)
        if stat.S_ISREG(st.st_mode) and st.st_mode & 0o077 and st.st_uid == os.getuid():
            os.chmod(path, 0o600)
    except (OSError, AttributeError):  # none yet; or no getuid (Windows: ACLs, not modes)
        pass


# --------------------------------------------------------------------------- models, by id

def resolve(ref: str, registry: ServerRegistry | None = None) -> RemoteModel | None:
    """RemoteModel when `ref` is SERVER/MODEL of a registered server (and not a local file)."""
    if "/" not in ref or os.path.exists(ref):
        return None
    name, model = ref.split("/", 1)
    server = (registry or ServerRegistry()).find(name)
    return RemoteModel(server, model) if server and model else None
