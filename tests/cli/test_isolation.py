"""The world the tests run in (tests/conftest.py, tests/netguard): loopback only, and nothing of
the developer's — no HOME, no hub login, no HF_*/XDG_* variable — in this process or in a
`corral` child. Each guard is proved by trying to get past it."""

from __future__ import annotations

import errno
import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest

import conftest
from app.testing.hub_server import LocalHub, start_corral

OUTSIDE = ("10.255.255.1", 9)  # a private address nothing here answers: never reached anyway


def corral(home: Path, *args: str, env: dict | None = None) -> subprocess.CompletedProcess:
    """The shipped command in a child, with the test run's environment (and so its guard)."""
    return subprocess.run([sys.executable, "-m", "app", *args], capture_output=True, text=True,
                          env={**os.environ, "CORRAL_HOME": str(home), **(env or {})},
                          timeout=120)


# ------------------------------------------------------------------------------ the test process

def test_this_process_reaches_loopback_and_nothing_else(loopback_listener, network_refusals):
    port, accepted = loopback_listener
    for host in ("127.0.0.1", "localhost"):
        socket.create_connection((host, port), timeout=10).close()
        assert accepted.get(timeout=10)[0] == "127.0.0.1"
    test = "tests/cli/test_isolation.py::test_this_process_reaches_loopback_and_nothing_else"

    with pytest.raises(OSError) as refused:
        socket.create_connection(OUTSIDE, timeout=10)
    assert "network access outside loopback refused: connect to ('10.255.255.1', 9)" in str(
        refused.value) and test in str(refused.value)
    with pytest.raises(OSError, match="name lookup of 'huggingface.co'"):
        socket.getaddrinfo("huggingface.co", 443)
    with pytest.raises(OSError, match=r"sendto to \('8.8.8.8', 53\)"):
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as udp:
            udp.sendto(b"x", ("8.8.8.8", 53))
    said = network_refusals.take()
    assert [line.split(" [test: ")[0] for line in said] == [
        "network access outside loopback refused: connect to ('10.255.255.1', 9)",
        "network access outside loopback refused: name lookup of 'huggingface.co'",
        "network access outside loopback refused: sendto to ('8.8.8.8', 53)"]
    assert all(f"[test: {test} (call)" in line for line in said)


def test_a_refusal_the_product_swallows_still_fails_the_test(pytester):
    """The hub client turns a refused connection into "cannot reach the hub", as it should: the
    test that made it fails all the same, at its teardown, naming the address."""
    pytester.makeconftest(f"""
        import importlib.util
        spec = importlib.util.spec_from_file_location("corral_tests_conftest", {conftest.__file__!r})
        suite = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(suite)
        _isolated, network_refusals = suite._isolated, suite.network_refusals
    """)
    pytester.makepyfile(test_swallowed="""
        import socket
        def test_quiet():
            try:
                socket.create_connection(("192.0.2.1", 80), timeout=5)
            except OSError:
                pass  # what a product's retry loop does
    """)
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider")
    result.assert_outcomes(passed=1, errors=1)
    result.stdout.fnmatch_lines(["*this test tried to reach the network beyond loopback*",
                                 "*connect to ('192.0.2.1', 80)*test_swallowed.py::test_quiet*"])


# ------------------------------------------------------------------------------ children

def test_a_corral_child_is_refused_too(tmp_path, network_refusals):
    r = corral(tmp_path / "home", "servers", "add", f"http://{OUTSIDE[0]}:{OUTSIDE[1]}",
               "--name", "far")
    assert r.returncode == 1 and "Traceback" not in r.stderr
    assert r.stderr.startswith("corral: cannot reach far") and r.stderr.count("\n") == 1, r.stderr
    said = network_refusals.take()
    assert said and all(line.startswith("network access outside loopback refused: connect to "
                                        "('10.255.255.1', 9)") for line in said), said
    assert all("test_a_corral_child_is_refused_too" in line and "app/__main__.py servers add"
               in line for line in said), said

    r = corral(tmp_path / "home", "servers", "add", "https://huggingface.co", "--name", "hf")
    assert r.returncode == 1 and r.stderr.startswith("corral: cannot reach hf"), r.stderr
    said = network_refusals.take()
    assert said and all("name lookup of 'huggingface.co'" in line for line in said), said


@pytest.mark.skipif(not conftest.NETWORK_NAMESPACE.startswith("on"),
                    reason=f"network namespace {conftest.NETWORK_NAMESPACE}")
def test_children_without_the_guard_have_only_loopback(loopback_listener):
    """`python -I` (the runner, the render worker) skips PYTHONPATH and so the audit hook: the
    namespace holds for it, and for code that does not go through Python's socket module."""
    port, accepted = loopback_listener
    code = ("import socket, sys\n"
            "socket.create_connection(('127.0.0.1', int(sys.argv[1])), timeout=10).close()\n"
            "try:\n"
            "    socket.create_connection(('10.255.255.1', 9), timeout=10)\n"
            "except OSError as e:\n"
            "    print(e.errno, 'sitecustomize' in sys.modules)\n")
    r = subprocess.run([sys.executable, "-I", "-c", code, str(port)], capture_output=True,
                       text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    assert r.stdout.split() == [str(errno.ENETUNREACH), "False"]  # refused by the kernel
    assert accepted.get(timeout=10)[0] == "127.0.0.1"


# ------------------------------------------------------------------------------ the developer's world

def test_no_home_login_or_variable_of_the_developer_reaches_a_test(tmp_path):
    """A token saved by `hf auth login` in the developer's own HOME (written here if there is
    none, and removed) is seen neither by this process nor by a `corral` child: requests to
    the hub carry no Authorization header."""
    import huggingface_hub

    from app.core.hub import HubClient

    assert Path.home() != conftest._ORIGINAL_HOME and Path.home().is_dir()
    assert os.environ["CORRAL_HOME"] != str(conftest._ORIGINAL_HOME)
    assert not [k for k in os.environ if k.startswith(("HF_", "HUGGINGFACE_"))
                or (k.startswith("XDG_") and k != "XDG_RUNTIME_DIR")]
    assert os.environ["PYTHON_KEYRING_BACKEND"] == "keyring.backends.fail.Keyring"

    saved = conftest._ORIGINAL_HOME / ".cache" / "huggingface" / "token"
    planted = not saved.exists() and os.access(conftest._ORIGINAL_HOME, os.W_OK)
    made = [p for p in (saved.parent.parent, saved.parent) if not p.exists()]
    if planted:
        saved.parent.mkdir(parents=True, exist_ok=True)
        saved.write_text("hf_corral_tests_must_never_see_this")
    try:
        assert huggingface_hub.get_token() is None
        assert "authorization" not in {k.lower() for k in HubClient().auth_headers()}
        with LocalHub() as hub:
            hub.add_repo("corral-test/Tiny-GGUF")
            proc = start_corral(hub, tmp_path / "home", "models", "search", "tiny")
            out, err = proc.communicate(timeout=60)
            assert proc.returncode == 0, err
            assert hub.requests and [r.authorization for r in hub.requests] == [None] * len(
                hub.requests)
        child = subprocess.run(
            [sys.executable, "-c", "import json, os, huggingface_hub; print(json.dumps("
             "[huggingface_hub.get_token(), os.path.expanduser('~')]))"],
            capture_output=True, text=True, timeout=60, check=True)
        assert json.loads(child.stdout) == [None, os.environ["HOME"]]
    finally:
        if planted:
            saved.unlink()
            for folder in reversed(made):
                folder.rmdir()


def test_each_test_has_a_home_of_its_own():
    assert Path.home().name.startswith("user-home") and not list(Path.home().iterdir())
    (Path.home() / "left-by-a-test").write_text("x")


def test_the_next_test_does_not_see_what_the_last_one_left():
    assert not (Path.home() / "left-by-a-test").exists()
