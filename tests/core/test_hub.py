"""HubClient against a real local hub (app.testing.hub_server), with the real huggingface_hub client."""

from __future__ import annotations

import hashlib
import socket

import pytest

from app.core import hub as hub_module
from app.core.gguf_info import GGUFError
from app.core.hub import HubClient, HubError
from app.core.retry import RetryPolicy
from app.testing import models
from app.testing.hub_server import local_hub, start_corral  # noqa: F401  (local_hub is a fixture)

REPO = "corral-test/Tiny-GGUF"


@pytest.fixture(scope="module")
def gguf_file(tmp_path_factory):
    """A real GGUF (gguf.GGUFWriter) with a chat template and a known context length."""
    return models.tiny(tmp_path_factory.mktemp("hubmodel"), name="hubtiny", context_length=3072,
                       chat_template=models.CHATML_TEMPLATE)


@pytest.fixture
def hub(local_hub, gguf_file):
    local_hub.add_repo(REPO, downloads=300, likes=2, last_modified="2024-03-01T00:00:00.000Z")
    local_hub.add_file(REPO, "tiny.F32.gguf", gguf_file)
    local_hub.add_file(REPO, "tiny.Q8_0.gguf", b"GGUF" + bytes(60))
    local_hub.add_file(REPO, "README.md", b"# tiny\n", lfs=False)
    local_hub.add_repo("other/Llama-GGUF", downloads=100, likes=50, last_modified="2024-06-01T00:00:00.000Z")
    local_hub.add_repo("other/Newest-GGUF", downloads=1, likes=1, last_modified="2025-01-01T00:00:00.000Z")
    local_hub.add_repo("other/safetensors-only", downloads=10_000, tags=["safetensors"])
    return local_hub


FAST_RETRY = RetryPolicy(attempts=3, backoff=0.01)


@pytest.fixture
def client(hub):
    return HubClient(endpoint=hub.url, token="hf_no_access", retry=FAST_RETRY)


def test_search_finds_gguf_repos_sorted_three_ways(client):
    assert [r.repo_id for r in client.search("")] == [REPO, "other/Llama-GGUF", "other/Newest-GGUF"]
    assert [r.repo_id for r in client.search("", sort="likes")][0] == "other/Llama-GGUF"
    assert [r.repo_id for r in client.search("", sort="recent")][0] == "other/Newest-GGUF"
    found = client.search("tiny", limit=5)
    assert len(found) == 1
    tiny = found[0]
    assert (tiny.repo_id, tiny.author, tiny.downloads, tiny.likes, tiny.gated) == (REPO, "corral-test", 300, 2, False)
    assert tiny.last_modified.year == 2024
    assert len(client.search("", limit=2)) == 2
    with pytest.raises(ValueError):
        client.search("x", sort="stars")


def test_list_gguf_files_with_size_and_sha256_across_pages(hub, client, gguf_file):
    hub.tree_page_size = 1  # every entry on its own page: the client follows the Link header
    files = client.list_gguf_files(REPO)
    assert [f.filename for f in files] == ["tiny.F32.gguf", "tiny.Q8_0.gguf"]
    f32 = files[0]
    assert f32.size == gguf_file.stat().st_size
    assert f32.sha256 == hashlib.sha256(gguf_file.read_bytes()).hexdigest()


def test_file_metadata_pins_the_commit(hub, client, gguf_file):
    meta = client.file_metadata(REPO, "tiny.F32.gguf")
    commit = hub.commit(REPO)
    assert meta.commit == commit and len(commit) == 40
    assert meta.size == gguf_file.stat().st_size
    assert meta.sha256 == meta.etag and len(meta.sha256) == 64
    assert meta.url == f"{hub.url}/{REPO}/resolve/{commit}/tiny.F32.gguf"


@pytest.mark.parametrize("repo, name, kind, words", [
    ("nobody/nothing", "x.gguf", "not_found", "check the repository name"),
    (REPO, "missing.gguf", "not_found", "no such file"),
])
def test_not_found_errors(client, repo, name, kind, words):
    with pytest.raises(HubError) as err:
        client.file_metadata(repo, name)
    assert err.value.kind == kind and words in str(err.value) and name in str(err.value)


def test_gated_repo_says_to_add_a_token(hub):
    hub.add_repo(REPO, gated=True)
    for token in (None, "wrong-token"):
        with pytest.raises(HubError) as err:
            HubClient(endpoint=hub.url, token=token).file_metadata(REPO, "tiny.F32.gguf")
        assert err.value.kind == "gated" and "add a Hugging Face token in Settings" in str(err.value)
    assert HubClient(endpoint=hub.url, token=hub.token).file_metadata(REPO, "tiny.F32.gguf").size


def test_server_error_is_retried_then_reported_with_the_status(hub, client):
    hub.set_faults(REPO, "tiny.F32.gguf", status=500)
    with pytest.raises(HubError) as err:
        client.file_metadata(REPO, "tiny.F32.gguf")
    assert err.value.kind == "server" and err.value.gave_up and not err.value.retryable
    assert "500" in str(err.value) and "gave up after 3 attempts" in str(err.value)
    assert len(hub.file_requests(REPO, "tiny.F32.gguf", "HEAD")) == 3


def test_unreachable_hub_is_a_network_error():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # nothing listens here once the socket is closed
    with pytest.raises(HubError) as err:
        HubClient(endpoint=f"http://127.0.0.1:{port}", retry=FAST_RETRY).file_metadata(REPO, "x.gguf")
    assert err.value.kind == "network" and "could not reach" in str(err.value)


def test_offline_mode_makes_no_request(hub):
    offline = HubClient(endpoint=hub.url, offline=True)
    for call in (lambda: offline.search("tiny"), lambda: offline.list_gguf_files(REPO),
                 lambda: offline.file_metadata(REPO, "tiny.F32.gguf"),
                 lambda: offline.read_header(REPO, "tiny.F32.gguf")):
        with pytest.raises(HubError) as err:
            call()
        assert err.value.kind == "offline"
    assert hub.requests == []


def test_offline_defaults_to_hf_hub_offline(monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    assert HubClient(endpoint="http://127.0.0.1:9").offline
    monkeypatch.delenv("HF_HUB_OFFLINE")
    assert not HubClient(endpoint="http://127.0.0.1:9").offline


# -- reading only the header ---------------------------------------------------------------------

def test_read_header_fetches_only_the_header_in_growing_ranges(hub, client, gguf_file, monkeypatch):
    monkeypatch.setattr(hub_module, "HEADER_FIRST_READ", 4096)
    check = client.read_header(REPO, "tiny.F32.gguf")
    size = gguf_file.stat().st_size
    assert check.architecture == "llama"
    assert check.context_length == 3072
    assert check.chat_template == models.CHATML_TEMPLATE
    assert check.file_size == size
    header_end = check.info.data_offset
    assert check.header_bytes <= header_end
    gets = hub.file_requests(REPO, "tiny.F32.gguf", "GET")
    assert len(gets) >= 2 and all(r.range for r in gets)  # it grew: 4 KiB, 8 KiB, ...
    fetched = hub.bytes_sent(REPO, "tiny.F32.gguf")
    assert fetched < 2 * header_end < size


def test_read_header_copes_with_a_server_that_ignores_range(hub, client, gguf_file):
    hub.set_faults(REPO, "tiny.F32.gguf", ignore_range=True)
    check = client.read_header(REPO, "tiny.F32.gguf")
    assert check.architecture == "llama" and check.context_length == 3072


def test_read_header_rejects_what_is_not_a_model(hub, client):
    hub.add_file(REPO, "notes.gguf", b"<!DOCTYPE html><html>nope</html>" + bytes(100))
    with pytest.raises(GGUFError) as err:
        client.read_header(REPO, "notes.gguf")
    assert "web page" in str(err.value) and REPO in str(err.value)


def test_inspect_prefix_asks_for_more_until_the_header_is_whole(gguf_file):
    from app.core.gguf_info import IncompleteHeader, inspect, inspect_prefix

    data, size = gguf_file.read_bytes(), gguf_file.stat().st_size
    end = inspect(gguf_file).data_offset
    for cut in (0, 10, 24, 100, end // 2):
        with pytest.raises(IncompleteHeader):
            inspect_prefix(data[:cut], size, "remote/tiny.gguf")
    info = inspect_prefix(data[:end], size, "remote/tiny.gguf")
    assert info.architecture == "llama" and info.data_offset == end
    with pytest.raises(GGUFError, match="remote/tiny.gguf: .*truncated") as err:
        inspect_prefix(data[:end], end + 10, "remote/tiny.gguf")  # tensor data cannot fit
    assert not isinstance(err.value, IncompleteHeader)


def corral(hub, home, *argv):
    """`corral ARGV` as shipped, in a child process: (exit status, stdout, stderr)."""
    proc = start_corral(hub, home, *argv)
    out, err = proc.communicate(timeout=60)
    return proc.returncode, out, err


def test_models_search_command(hub, tmp_path):
    code, out, err = corral(hub, tmp_path, "models", "search", "gguf", "--sort", "likes", "--limit", "2", "--files")
    assert code == 0, err
    lines = out.splitlines()
    assert lines[0].split() == ["REPOSITORY", "DOWNLOADS", "LIKES", "UPDATED"]
    assert lines[1].split()[:3] == ["other/Llama-GGUF", "100", "50"]
    assert lines[2].split()[0] == REPO and "other/Newest-GGUF" not in out  # --limit 2
    assert "  tiny.F32.gguf  " in out and "README" not in out
    # One search and a file list per repository, nothing else (huggingface_hub 2.x would ask
    # the hub about AI agents first: /api/agent-harnesses).
    assert [(r.method, r.path.split("?")[0]) for r in hub.requests] == [
        ("GET", "/api/models"), ("GET", "/api/models/other/Llama-GGUF/tree/main"),
        ("GET", f"/api/models/{REPO}/tree/main")]


def test_models_pull_checks_the_header_first(hub, tmp_path, gguf_file):
    code, out, err = corral(hub, tmp_path, "models", "pull", REPO, "tiny.F32.gguf")
    assert code == 0, err
    assert f"{REPO}/tiny.F32.gguf: llama" in err and "context 3072" in err and "chat template included" in err
    assert "size and sha256 verified" in err
    path = out.strip()
    assert path == str(tmp_path / "models" / "tiny.F32.gguf")
    assert open(path, "rb").read() == gguf_file.read_bytes()
    commit = hub.commit(REPO)
    assert [(r.method, r.path, r.range) for r in hub.requests] == [  # header first, then the file
        ("HEAD", f"/{REPO}/resolve/main/tiny.F32.gguf", None),
        ("GET", f"/{REPO}/resolve/{commit}/tiny.F32.gguf", "bytes=0-1048575"),
        ("GET", f"/{REPO}/resolve/{commit}/tiny.F32.gguf", None)]


def test_models_pull_refuses_a_file_that_is_not_a_model(hub, tmp_path):
    hub.add_file(REPO, "page.gguf", b"<!DOCTYPE html>" + bytes(5000))
    code, out, err = corral(hub, tmp_path, "models", "pull", REPO, "page.gguf")
    assert code == 1 and out == ""
    [line] = err.strip().splitlines()[-1:]
    assert line.startswith(f"corral: Not downloaded: {REPO}/page.gguf: ") and "web page" in line, err
    gets = hub.file_requests(REPO, "page.gguf")
    assert gets and all(r.range for r in gets)  # only the header was read
    assert not (tmp_path / "models" / "page.gguf").exists()


def test_a_file_in_a_folder_of_the_repository_is_named_by_its_last_part(hub, client, gguf_file, tmp_path):
    from app.core.hub import check_file_name

    assert check_file_name("Q4_K_M/part.Q4_K_M.gguf") == "part.Q4_K_M.gguf"
    hub.add_file(REPO, "Q4_K_M/part.Q4_K_M.gguf", gguf_file)
    assert [f.filename for f in client.list_gguf_files(REPO)][0] == "Q4_K_M/part.Q4_K_M.gguf"
    code, out, err = corral(hub, tmp_path, "models", "pull", REPO, "Q4_K_M/part.Q4_K_M.gguf")
    assert code == 0 and out.strip() == str(tmp_path / "models" / "part.Q4_K_M.gguf"), err


def test_an_invalid_repo_id_is_a_hub_error(client):
    with pytest.raises(HubError) as err:
        client.file_metadata("not a repo id!", "x.gguf")
    assert "not a repo id!" in str(err.value) and not err.value.retryable
