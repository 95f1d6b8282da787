"""OS keyrings for tests: none at all (keys then go to the owner-only file) or one in memory.

    with keyring_as(fail.Keyring()): ...        # no usable keyring
    with keyring_as(MemoryKeyring()) as ring: ... ring.data == {("corral", "server:h"): "key"}
"""

from __future__ import annotations

from contextlib import contextmanager
from typing import Iterator

import keyring
from keyring.backend import KeyringBackend


class MemoryKeyring(KeyringBackend):
    """A keyring that works and keeps its secrets in `data` ((service, user) → secret)."""

    priority = 1

    def __init__(self) -> None:
        super().__init__()
        self.data: dict[tuple[str, str], str] = {}

    def get_password(self, service, username):
        return self.data.get((service, username))

    def set_password(self, service, username, password):
        self.data[(service, username)] = password

    def delete_password(self, service, username):
        del self.data[(service, username)]


@contextmanager
def keyring_as(backend: KeyringBackend) -> Iterator[KeyringBackend]:
    """`backend` as the keyring for the duration (the previous one put back after)."""
    before = keyring.get_keyring()
    keyring.set_keyring(backend)
    try:
        yield backend
    finally:
        keyring.set_keyring(before)
