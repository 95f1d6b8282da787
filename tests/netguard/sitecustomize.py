"""The test suite's network guard: no connection to anything but this machine's loopback.

tests/conftest.py installs it in the test process and puts this folder on PYTHONPATH for every
child the tests start, where Python imports it as `sitecustomize` before anything else. An audit
hook (sys.addaudithook; it cannot be removed) refuses a connect or sendto to an address outside
127.0.0.0/8 and ::1, and a name lookup of anything but localhost, with an OSError naming the
address and the test (PYTEST_CURRENT_TEST, which children inherit). Each refusal is also written
to the file named by CORRAL_TEST_NETGUARD_LOG, so conftest fails the test that caused it even
when the product caught the error and carried on ("cannot reach the hub") as it should.

Children started with `python -I` ignore PYTHONPATH: the llama.cpp runner and the template render
worker (app.core.child). They make no network calls; where the suite runs as root on Linux,
conftest also puts the whole run in a network namespace of its own with only loopback, which
holds for them and for code that does not go through Python's socket module.

Kept free of imports beyond sys and os: every child pays for it at start-up. In children it
hides a system `sitecustomize` (Debian and Ubuntu's installs apport's crash handler): harmless
for tests.
"""

from __future__ import annotations

import os
import sys

LOG_VAR = "CORRAL_TEST_NETGUARD_LOG"
_LOCAL_NAMES = frozenset({"localhost", "localhost.localdomain", "ip6-localhost", "ip6-loopback"})
_AF_INET, _AF_INET6 = 2, 10 if sys.platform.startswith("linux") else 30
_ADDRESS_EVENTS = frozenset({"socket.connect", "socket.sendto", "socket.sendmsg"})
_NAME_EVENTS = frozenset({"socket.getaddrinfo", "socket.gethostbyname", "socket.gethostbyname_ex",
                          "socket.gethostbyaddr", "socket.getnameinfo"})


class NetworkRefused(OSError):
    """A test tried to reach something outside this machine."""


def _text(host) -> str:
    if isinstance(host, (bytes, bytearray)):
        return bytes(host).decode("ascii", "replace")
    return str(host)


def _is_ip(host: str) -> bool:
    if ":" in host:
        return all(c in "0123456789abcdefABCDEF:." for c in host.split("%")[0])
    parts = host.split(".")
    return len(parts) == 4 and all(p.isdigit() for p in parts)


def is_loopback(host) -> bool:
    """127.0.0.0/8, ::1 (also IPv4-mapped), or a name for them."""
    h = _text(host).strip("[]").lower().split("%")[0]
    if h in _LOCAL_NAMES:
        return True
    if h.startswith("::ffff:"):
        h = h[7:]
    if _is_ip(h) and "." in h and ":" not in h:
        return h.startswith("127.")
    return h in ("::1", "0:0:0:0:0:0:0:1")


def _refusal(event: str, args: tuple) -> str | None:
    """What is refused about this audit event, or None when it stays on this machine."""
    if event in _ADDRESS_EVENTS:
        sock, address = args[0], args[-1]
        if getattr(sock, "family", None) not in (_AF_INET, _AF_INET6) or address is None:
            return None  # AF_UNIX, netlink, …: not the network
        host = address[0] if isinstance(address, tuple) and address else address
        if is_loopback(host):
            return None
        return f"{event.split('.')[1]} to {address!r}"
    if event in _NAME_EVENTS:
        host = args[0]
        if event == "socket.getnameinfo":
            host = host[0] if isinstance(host, tuple) and host else host
        if host is None or _text(host) in ("", "0.0.0.0", "::") or is_loopback(host):
            return None  # passive (a server's own address) or this machine
        if event == "socket.getaddrinfo" and _is_ip(_text(host).strip("[]")):
            return None  # a number needs no lookup: a connect to it is checked on its own
        return f"name lookup of {_text(host)!r}"
    return None


def _caller(depth: int = 6) -> str:
    """Where the refused call came from: the innermost frames of code outside the standard
    library and site-packages (the product's, the test's)."""
    frame, where = sys._getframe(3), []
    while frame is not None and len(where) < depth:
        name = frame.f_code.co_filename
        if "site-packages" not in name and not name.startswith((sys.base_prefix, "<")):
            where.append(f"{name}:{frame.f_lineno} {frame.f_code.co_name}")
        frame = frame.f_back
    return " < ".join(where)


def _record(what: str) -> str:
    test = os.environ.get("PYTEST_CURRENT_TEST", "(no test running)")
    line = (f"network access outside loopback refused: {what} "
            f"[test: {test}; pid {os.getpid()}: {' '.join(sys.argv)[:200]}; from {_caller()}]")
    path = os.environ.get(LOG_VAR)
    if path:
        try:
            with open(path, "a", encoding="utf-8", errors="backslashreplace") as log:
                log.write(line.replace("\n", " ") + "\n")
        except OSError:
            pass
    return line


def _hook(event: str, args: tuple) -> None:
    if not event.startswith("socket."):
        return
    what = _refusal(event, args)
    if what is not None:
        raise NetworkRefused(101, _record(what))  # 101: ENETUNREACH on Linux


_installed = False


def install() -> None:
    global _installed
    if not _installed:
        _installed = True
        sys.addaudithook(_hook)


if os.environ.get(LOG_VAR):  # imported as sitecustomize in a child of the test run
    install()
