"""Shared fixtures, and the world every test runs in.

Isolation (set when this file is imported, before any test or child process starts, and again
for every test): HOME, CORRAL_HOME and XDG_RUNTIME_DIR are fresh folders; every HF_*,
HUGGINGFACE_*, XDG_* (but the runtime dir), OLLAMA_*, CORRAL_*, proxy and D-Bus variable of the
developer's environment is dropped, and keyring uses no OS keyring: a saved hub login, a real
library or a real keyring never reaches a test, and a test never writes to them.

Network: only loopback (tests/netguard/sitecustomize.py, in this process and in every Python
child; plus, as root on Linux, a network namespace of its own for the whole run). A test that
tries to reach anything else fails, naming the address.

Generated GGUF models are written once per session into a temporary folder."""

from __future__ import annotations

import os
import shutil
import sys
import tempfile
from pathlib import Path

# Before any QApplication exists (pytest-qt creates it lazily): tests run without a display.
os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

_NETGUARD_DIR = Path(__file__).resolve().parent / "netguard"


def _load_netguard():
    """tests/netguard/sitecustomize.py, loaded by its path: this process may hold another
    `sitecustomize` already (Debian and Ubuntu's Python ship one), or ours, when this run was
    started by a test run (then it is that one, with its hook installed)."""
    import importlib.util

    loaded = sys.modules.get("sitecustomize")
    if getattr(loaded, "__file__", None) == str(_NETGUARD_DIR / "sitecustomize.py"):
        return loaded
    spec = importlib.util.spec_from_file_location("corral_netguard",
                                                  _NETGUARD_DIR / "sitecustomize.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


netguard = _load_netguard()

import pytest  # noqa: E402

pytest_plugins = ["pytester"]  # test_isolation runs a test run of its own
# ---------------------------------------------------------------------------------- isolation
# What a developer's environment may hold that would reach into a test, or let a test reach out.
_DROPPED_PREFIXES = ("HF_", "HUGGINGFACE_", "XDG_", "OLLAMA_", "CORRAL_", "DBUS_")
_DROPPED = {"LOCALAPPDATA", "APPDATA", "PYTHON_KEYRING_BACKEND"}
_PROXIES = {"http_proxy", "https_proxy", "all_proxy", "no_proxy", "ftp_proxy"}  # any case
_NAMESPACE_WANTED = os.environ.get("CORRAL_TEST_NETNS") != "0"  # read before CORRAL_* goes
_ORIGINAL_HOME = Path(os.path.expanduser("~"))  # the developer's, for the test that proves it
_SESSION = Path(tempfile.mkdtemp(prefix="corral-tests-"))


def _scrub(environ) -> None:
    for key in list(environ):
        if key.startswith(_DROPPED_PREFIXES) or key in _DROPPED or key.lower() in _PROXIES:
            del environ[key]


def _isolate_session() -> None:
    _scrub(os.environ)
    for name in ("home", "corral-home", "run"):
        (_SESSION / name).mkdir(mode=0o700)
    os.environ.update(
        HOME=str(_SESSION / "home"),
        CORRAL_HOME=str(_SESSION / "corral-home"),  # tests that use one set their own
        XDG_RUNTIME_DIR=str(_SESSION / "run"),
        # No OS keyring: tests that test one install their own (keyring.set_keyring).
        PYTHON_KEYRING_BACKEND="keyring.backends.fail.Keyring",
        PYTHONPATH=os.pathsep.join(p for p in (str(_NETGUARD_DIR),
                                               os.environ.get("PYTHONPATH")) if p),
    )
    os.environ[netguard.LOG_VAR] = str(_SESSION / "network-refused.log")


def _own_network_namespace() -> str:
    """Move this process (and so every child it starts) into a new network namespace with only
    loopback, up. Linux as root only: elsewhere the audit hook alone guards. Says what it did."""
    if not sys.platform.startswith("linux") or not _NAMESPACE_WANTED:
        return "off"
    if os.geteuid() != 0:
        return "off (not root)"
    if len(os.listdir("/proc/self/task")) != 1:
        return "off (threads already running would stay outside it)"
    import ctypes
    import fcntl
    import socket
    import struct

    libc = ctypes.CDLL(None, use_errno=True)
    if libc.unshare(0x40000000) != 0:  # CLONE_NEWNET
        return f"off ({os.strerror(ctypes.get_errno())})"
    siocgifflags, siocsifflags, iff_up = 0x8913, 0x8914, 0x1
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        flags = struct.unpack("16sH22x", fcntl.ioctl(s, siocgifflags,
                                                     struct.pack("16sH22x", b"lo", 0)))[1]
        fcntl.ioctl(s, siocsifflags, struct.pack("16sH22x", b"lo", flags | iff_up))
    return "on (a namespace of its own: loopback only)"


_isolate_session()
NETWORK_NAMESPACE = _own_network_namespace()  # before anything starts a thread (numpy does)
netguard.install()

from app.testing import models  # noqa: E402


def pytest_report_header(config):
    return [f"isolation: HOME, CORRAL_HOME, XDG_RUNTIME_DIR under {_SESSION}; no HF_*/XDG_*/"
            f"proxy variables; no OS keyring",
            f"network: loopback only (audit hook in this process and every Python child); "
            f"network namespace {NETWORK_NAMESPACE}"]


def pytest_unconfigure(config):
    shutil.rmtree(_SESSION, ignore_errors=True)


class NetworkRefusals:
    """The refusals of the network guard (tests/netguard) while one test ran."""

    def __init__(self, log: Path) -> None:
        self.log = log
        self.offset = log.stat().st_size if log.exists() else 0

    def take(self) -> list[str]:
        """The refusals since the last take (or the test's start); the test deals with them."""
        if not self.log.exists():
            return []
        with open(self.log, encoding="utf-8") as f:
            f.seek(self.offset)
            lines = f.read().splitlines()
            self.offset = f.tell()
        return lines


@pytest.fixture(autouse=True)
def _isolated(monkeypatch, tmp_path_factory):
    """Every test: its own HOME, no hub or XDG variable (whatever a test module or an earlier
    test set), the network guarded. CORRAL_HOME stays: module-scoped servers set their own."""
    for key in list(os.environ):
        if (key.startswith(("HF_", "HUGGINGFACE_", "XDG_", "DBUS_")) or key.lower() in _PROXIES) \
                and key != "XDG_RUNTIME_DIR":
            monkeypatch.delenv(key)
    monkeypatch.setenv("HOME", str(tmp_path_factory.mktemp("user-home")))
    refusals = NetworkRefusals(Path(os.environ[netguard.LOG_VAR]))
    yield refusals
    left = refusals.take()
    if left:
        pytest.fail("this test tried to reach the network beyond loopback (tests reach only "
                    "servers they start on 127.0.0.1):\n" + "\n".join(left), pytrace=False)


@pytest.fixture
def network_refusals(_isolated) -> NetworkRefusals:
    """For a test that means to be refused: `network_refusals.take()` returns what was."""
    return _isolated


@pytest.fixture
def loopback_listener():
    """(port, accepted): a TCP listener on 127.0.0.1 that takes every connection and hangs up;
    `accepted` is a queue.Queue holding each peer address (a connection counts, sent or not)."""
    import queue
    import socket
    import threading

    server = socket.create_server(("127.0.0.1", 0))
    accepted: queue.Queue = queue.Queue()

    def serve():
        while True:
            try:
                conn, peer = server.accept()
            except OSError:
                return
            accepted.put(peer)
            conn.close()

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    yield server.getsockname()[1], accepted
    try:
        server.shutdown(socket.SHUT_RDWR)  # wakes accept() (close alone does not, on Linux)
    except OSError:
        pass
    server.close()
    thread.join(5)


@pytest.fixture(scope="session")
def models_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("models")


@pytest.fixture(scope="session")
def make_model(models_dir: Path):
    """make_model(kind="tiny", folder=None, **options) -> Path, written into the session folder.

    The file name is `{name}.{type}.gguf`: give variants distinct names (or a folder) so they
    do not overwrite each other."""
    def make(kind: str = "tiny", folder: Path | None = None, **options) -> Path:
        return models.KINDS[kind](folder or models_dir, **options)
    return make


@pytest.fixture(scope="session")
def tiny_model(make_model) -> Path:
    return make_model("tiny")


@pytest.fixture(scope="session")
def small_model(make_model) -> Path:
    return make_model("small")


@pytest.fixture
def home(tmp_path, monkeypatch) -> Path:
    """A fresh, empty Corral home (CORRAL_HOME) for one test. Test modules that need a home set
    up another way define their own `home`."""
    monkeypatch.setenv("CORRAL_HOME", str(tmp_path / "home"))
    return tmp_path / "home"


@pytest.fixture
def store(tmp_path):
    """A chats store (ChatStore) on a fresh database file, closed afterwards."""
    from app.core.chats import ChatStore

    s = ChatStore(tmp_path / "chats.sqlite3")
    yield s
    s.close()


@pytest.fixture
def special_files(tmp_path) -> dict[str, str]:
    """{name in tmp_path: what an import says of it} for a folder, a named pipe and a socket
    named like models (those this system can make)."""
    import socket

    made = {"folder.gguf": "is a directory, not a model file"}
    (tmp_path / "folder.gguf").mkdir()
    if hasattr(os, "mkfifo"):
        os.mkfifo(tmp_path / "pipe.gguf")
        made["pipe.gguf"] = "is not a regular file: it is a named pipe (FIFO)"
    if hasattr(socket, "AF_UNIX"):
        with socket.socket(socket.AF_UNIX) as sock:
            sock.bind(str(tmp_path / "sock.gguf"))  # the socket file stays after closing
        made["sock.gguf"] = "is not a regular file: it is a socket"
    return made


@pytest.fixture
def open_window(qtbot, home):
    """open_window() -> a shown MainWindow on `home`, closed (and the theme reset) afterwards."""
    from app.core.settings import load_settings
    from app.gui import theme
    from app.gui.main_window import MainWindow

    windows = []

    def make():
        window = MainWindow(load_settings())
        qtbot.addWidget(window)
        window.show()
        qtbot.waitExposed(window)
        windows.append(window)
        return window

    yield make
    for w in windows:
        w.close()
    theme.ensure("light")


START_TIMEOUT_MS = 10_000  # issue 14: the window opens "within seconds", whatever the state


@pytest.fixture
def start(qtbot, home):
    """start() -> the window `corral gui` would show on `home` (app.gui.app.create_window, what
    `corral gui` runs), once its start-up is done; closed (and the theme reset) afterwards."""
    from app.gui import theme
    from app.gui.app import create_window

    windows = []

    def run():
        _app, window = create_window([])
        qtbot.addWidget(window)
        window.show()
        windows.append(window)
        qtbot.waitUntil(lambda: window.is_ready, timeout=START_TIMEOUT_MS)
        return window

    yield run
    for w in windows:
        w.close()
    theme.ensure("light")
