"""Where server secrets live and who can read them (issue 16 §2, issue 17 §5): servers.json may
hold a password in a URL and server-keys.json holds keys, so both are owner-only; when no OS
keyring works, `key_storage()` says where keys go instead of falling back silently."""

from __future__ import annotations

import os
import stat

import pytest
from keyring.backends import fail

from app.core.remote import ServerRegistry, key_storage
from app.testing.keyrings import MemoryKeyring, keyring_as


@pytest.fixture
def ring(request):
    with keyring_as(request.param()) as backend:
        yield backend


def mode(path) -> int:
    return stat.S_IMODE(os.stat(path).st_mode)


@pytest.mark.skipif(os.name != "posix", reason="file modes")
@pytest.mark.parametrize("ring", [fail.Keyring], indirect=True)
def test_without_a_keyring_both_files_are_owner_only_and_the_place_is_said(tmp_path, ring):
    old = os.umask(0o022)  # a usual umask: files would be world-readable unless made private
    try:
        reg = ServerRegistry(tmp_path)
        reg.add("http://alice:s3cret@10.0.0.5:8080", name="box")
        reg.add("http://10.0.0.6:8080", name="keyed", key="sk-1")
    finally:
        os.umask(old)
    assert "s3cret" in reg.path.read_text()  # the URL is kept as given (shown as *** elsewhere)
    assert mode(reg.path) == 0o600 and mode(reg.keys_path) == 0o600
    said = key_storage(reg)
    assert str(reg.keys_path) in said and "you alone" in said and "no OS keyring" in said


@pytest.mark.skipif(os.name != "posix", reason="file modes")
@pytest.mark.parametrize("ring", [fail.Keyring], indirect=True)
def test_files_an_older_corral_left_readable_are_tightened(tmp_path, ring):
    reg = ServerRegistry(tmp_path)
    reg.path.write_text('{"version": 1, "servers": [{"name": "box", '
                        '"url": "http://u:pw@h:1/v1", "key_store": "file"}]}')
    reg.keys_path.write_text('{"box": "sk-old"}')
    os.chmod(reg.path, 0o644)
    os.chmod(reg.keys_path, 0o644)
    server = reg.get("box")
    assert mode(reg.path) == 0o600
    assert reg.key(server) == "sk-old" and mode(reg.keys_path) == 0o600


@pytest.mark.parametrize("ring", [MemoryKeyring], indirect=True)
def test_with_a_keyring_the_keyring_is_named(tmp_path, ring):
    reg = ServerRegistry(tmp_path)
    assert key_storage(reg).startswith("in the OS keyring (")
    reg.add("http://h:1", name="h", key="sk-2")
    assert not reg.keys_path.exists() and ring.data == {("corral", "server:h"): "sk-2"}
