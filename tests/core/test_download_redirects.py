"""Downloads through a hub like the real one: large files are redirected to a download host.

The local hub (app/testing/hub_server.py, `cdn=True`) answers HEAD and GET on an LFS file with a
302 to a second server on another address, as huggingface.co does; that host serves Range
requests from a signed URL and refuses any request carrying an Authorization header. These tests
run without HF_HUB_DISABLE_XET: Corral never uses Xet (see app/core/hub.py), and the hub here
sends the Xet headers the real one sends for Xet-backed files, to show they are ignored.
"""

from __future__ import annotations

import hashlib
import os
import re
import subprocess
import sys
import textwrap
from pathlib import Path
from urllib.parse import urlsplit

import pytest

from app.core.downloads import DONE, FAILED, DownloadManager
from app.core.hub import HubClient
from app.core.paths import PARTIAL_DIR
from app.core.settings import Settings, save_settings
from app.testing.hub_server import LocalHub, start_corral

REPO = "corral-test/Redirected-GGUF"
FILE = "redirected.Q4_K_M.gguf"
SIZE = 3 << 20
MiB = 1 << 20
ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def payload() -> bytes:
    return os.urandom(SIZE)


@pytest.fixture
def hub(payload, monkeypatch):
    with LocalHub(cdn=True, xet=True) as hub:
        monkeypatch.setenv("HF_ENDPOINT", hub.url)
        hub.add_repo(REPO, gated=True)  # the token is needed, so it is sent to the hub
        hub.add_file(REPO, FILE, payload)
        yield hub


@pytest.fixture
def manager(hub, tmp_path):
    m = DownloadManager(tmp_path / "models", tmp_path / "queue.json", HubClient(endpoint=hub.url, token=hub.token),
                        backoff=0.05, max_attempts=3, check_headers=False)
    yield m
    m.shutdown()


def test_a_download_is_redirected_to_the_download_host_without_the_token(hub, manager, payload):
    job = manager.enqueue(REPO, FILE)
    manager.start()
    done = manager.wait(job.id, timeout=30)
    assert done.state == DONE, done.message
    assert Path(done.path).read_bytes() == payload and done.verified == "sha256"
    at_hub = hub.file_requests(REPO, FILE, "GET")
    hub_gets = [r for r in at_hub if r.host == "hub"]
    cdn_gets = [r for r in at_hub if r.host == "cdn"]
    assert [r.status for r in hub_gets] == [302] and [r.status for r in cdn_gets] == [200]
    assert all(r.authorization == f"Bearer {hub.token}" for r in hub.requests if r.host == "hub")
    assert all(r.authorization is None for r in cdn_gets)
    assert cdn_gets[0].bytes_sent == SIZE
    # Another origin (127.0.0.2 where the system has it, else another port): what makes the
    # HTTP client drop the token on the way.
    assert urlsplit(hub.cdn_url).netloc != urlsplit(hub.url).netloc
    if sys.platform.startswith("linux"):
        assert urlsplit(hub.cdn_url).hostname == "127.0.0.2"


def test_a_download_dropped_at_the_download_host_resumes_there_with_range(hub, manager, payload, tmp_path):
    hub.set_faults(REPO, FILE, drop_after=SIZE // 3)
    job = manager.enqueue(REPO, FILE)
    manager.start()
    done = manager.wait(job.id, timeout=30)
    assert done.state == DONE, done.message
    first, second = [r for r in hub.file_requests(REPO, FILE, "GET") if r.host == "cdn"]
    assert first.range is None and first.bytes_sent == SIZE // 3
    resumed_at = int(second.range.split("=")[1].rstrip("-"))
    assert second.status == 206 and 0 < resumed_at <= SIZE // 3
    assert second.bytes_sent == SIZE - resumed_at and second.authorization is None
    assert Path(done.path).read_bytes() == payload  # verified: its sha256 matched the hub's


def test_the_header_check_reads_ranges_from_the_download_host(hub, tiny_model):
    hub.add_file(REPO, "tiny.gguf", tiny_model)
    check = HubClient(endpoint=hub.url, token=hub.token).read_header(REPO, "tiny.gguf")
    assert check.architecture == "llama" and check.file_size == tiny_model.stat().st_size
    cdn = [r for r in hub.file_requests(REPO, "tiny.gguf", "GET") if r.host == "cdn"]
    assert cdn and all(r.status == 206 and r.range.startswith("bytes=0-") and r.authorization is None
                       for r in cdn)


def test_a_token_sent_to_the_download_host_is_refused_there(hub):
    """The download host refuses a request with a token, so the tests above would fail if one
    were forwarded: this shows the refusal is real."""
    import httpx2

    HubClient(endpoint=hub.url, token=hub.token).file_metadata(REPO, FILE)
    head = hub.requests[-1]
    assert head.status == 302
    url = httpx2.head(f"{hub.url}{head.path}", headers={"Authorization": f"Bearer {hub.token}"}).headers["Location"]
    assert httpx2.get(url, headers={"Authorization": f"Bearer {hub.token}"}).status_code == 400
    assert httpx2.get(url.replace("Signature=", "Signature=0")).status_code == 403  # not signed by the hub
    assert httpx2.get(url, headers={"Range": "bytes=10-19"}).status_code == 206


def test_xet_headers_are_ignored_and_hf_xet_is_not_used(hub, tmp_path, payload):
    """With hf_xet installed and HF_HUB_DISABLE_XET unset, a download still goes over plain HTTP:
    no Xet token is asked for and hf_xet is never imported."""
    script = textwrap.dedent(f"""
        import sys
        from app.core.downloads import DownloadManager
        from app.core.hub import HubClient
        m = DownloadManager({str(tmp_path / "models")!r}, {str(tmp_path / "queue.json")!r},
                            HubClient(endpoint={hub.url!r}, token={hub.token!r}))
        job = m.enqueue({REPO!r}, {FILE!r}, check=False)
        m.start()
        job = m.wait(job.id, timeout=60)
        m.shutdown()
        print(job.state, job.path, "hf_xet" in sys.modules)
    """)
    env = {k: v for k, v in os.environ.items() if k != "HF_HUB_DISABLE_XET"}
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120,
                         env={**env, "PYTHONPATH": os.pathsep.join(
                             filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))},
                         check=True).stdout.split()
    assert out == [DONE, str(tmp_path / "models" / FILE), "False"]
    assert hashlib.sha256(Path(out[1]).read_bytes()).hexdigest() == hashlib.sha256(payload).hexdigest()
    head = next(r for r in hub.requests if r.method == "HEAD")
    assert head.status == 302  # the Xet headers were there to be followed ...
    assert not [r for r in hub.requests if "xet" in r.path]  # ... and were not


def test_a_failure_at_the_download_host_is_retried_then_reported(hub, tmp_path):
    hub.set_faults(REPO, FILE, drop_after=0, drop_times=None)  # the host drops every time
    m = DownloadManager(tmp_path / "models", tmp_path / "queue.json", HubClient(endpoint=hub.url, token=hub.token),
                        backoff=0.01, max_attempts=3, check_headers=False)
    try:
        job = m.enqueue(REPO, FILE)
        m.start()
        failed = m.wait(job.id, timeout=30)
    finally:
        m.shutdown()
    assert failed.state == FAILED and "gave up after 3 attempts" in failed.message, failed.message
    assert len([r for r in hub.file_requests(REPO, FILE, "GET") if r.host == "cdn"]) == 3


def test_corral_models_pull_resumes_through_the_redirect_with_the_saved_token_kept_at_the_hub(
        hub, tiny_model, tmp_path):
    """The shipped `corral models pull` against a gated repo, with the token saved in Corral's
    settings: the hub sends the file to the download host, which drops the connection a third of
    the way in; the pull resumes there with Range, never sending the token off the hub."""
    name, data = "pulled.F32.gguf", tiny_model.read_bytes()
    hub.add_file(REPO, name, tiny_model)
    hub.set_faults(REPO, name, drop_after=len(data) // 3, applies_to="transfer")  # not the header check
    home = tmp_path / "home"
    save_settings(Settings(hf_token=hub.token), home / "settings.json")
    proc = start_corral(hub, home, "models", "pull", REPO, name)
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == 0, err
    assert "size and sha256 verified" in err, err
    assert out.strip() == str(home / "models" / name)
    assert (home / "models" / name).read_bytes() == data
    gets = hub.file_requests(REPO, name, "GET")
    at_hub = [r for r in hub.requests if r.host == "hub"]
    at_cdn = [r for r in gets if r.host == "cdn"]
    hub_gets = [r.status for r in gets if r.host == "hub"]
    assert hub_gets and set(hub_gets) == {302}  # the hub never served the bytes itself
    assert all(r.authorization == f"Bearer {hub.token}" for r in at_hub)  # the saved token was used ...
    assert at_cdn and all(r.authorization is None for r in at_cdn)  # ... and stayed at the hub
    dropped = [r for r in at_cdn if r.range is None]
    assert [r.bytes_sent for r in dropped] == [len(data) // 3]
    resumed = [r for r in at_cdn if r.range and re.fullmatch(r"bytes=[1-9]\d*-", r.range)]
    assert resumed and resumed[-1].status == 206
    start = int(resumed[-1].range[len("bytes="):-1])
    assert 0 < start <= len(data) // 3 and resumed[-1].bytes_sent == len(data) - start
    partial = home / "models" / PARTIAL_DIR
    assert not partial.exists() or not any(partial.iterdir()), list(partial.iterdir())
