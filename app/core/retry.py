"""Bounded retries with exponential back-off: one helper for every network call Corral makes.

    retrying = Retrying(RetryPolicy(attempts=6, backoff=2.0), on_retry=print, stop=event)
    meta = retrying.call(lambda: fetch_metadata())      # retried while the failure is retryable
    ...
    retrying.progressed()                               # bytes arrived: the count starts again
    retrying.wait_after("the connection was lost")      # a failure found by the caller itself

The hub's metadata, search and file-list calls, the header check and the transfer itself all
go through one `Retrying`, so a stall or a dropped connection is handled the same way wherever
it happens: the user is told what went wrong and when the next try is ("… — retrying in 4 s
(attempt 3 of 6)"), `attempts` failures in a row without progress give up (`GaveUp`), and a
`stop` event (pause, cancel, shutdown) ends the wait at once (`Interrupted`).

An exception is retried when it says so: `exc.retryable` is true (see hub.HubError). No Qt here.
"""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass
from typing import Callable, TypeVar

log = logging.getLogger(__name__)
T = TypeVar("T")


class Interrupted(Exception):
    """pause(), cancel() or shutdown() asked this work to stop."""


class GaveUp(Exception):
    """`attempts` failures in a row: the message is the last problem and how many tries it took."""

    def __init__(self, problem: str, attempts: int, last: BaseException | None = None):
        super().__init__(f"{problem} (gave up after {attempts} attempts)")
        self.problem = problem
        self.attempts = attempts
        self.last = last


@dataclass(frozen=True)
class RetryPolicy:
    attempts: int = 6           # tries in a row without progress, the first included
    backoff: float = 2.0        # seconds before the second try; doubled each time ...
    backoff_max: float = 60.0   # ... up to this

    def delay(self, failures: int) -> float:
        return min(self.backoff_max, self.backoff * 2 ** max(0, failures - 1))


class Retrying:
    """The retry state of one operation (one download, one search). Not shared between threads."""

    def __init__(self, policy: RetryPolicy | None = None, *,
                 on_retry: Callable[[str], None] | None = None, stop: threading.Event | None = None):
        self.policy = policy or RetryPolicy()
        self.on_retry = on_retry or log.warning
        self.stop = stop or threading.Event()
        self.failures = 0

    def progressed(self) -> None:
        """The last try moved the work forward: the next failure counts as the first."""
        self.failures = 0

    def wait_after(self, problem: str, last: BaseException | None = None) -> None:
        """Count one failure; say so and wait before the next try. Raises GaveUp when the tries
        are used up, Interrupted when `stop` is set while waiting."""
        self.failures += 1
        if self.failures >= self.policy.attempts:
            raise GaveUp(problem, self.failures, last)
        delay = self.policy.delay(self.failures)
        self.on_retry(f"{problem.rstrip('.')} — retrying in {delay:.2g} s (attempt {self.failures + 1} of "
                      f"{self.policy.attempts})")
        if self.stop.wait(delay):
            raise Interrupted()

    def call(self, fn: Callable[[], T]) -> T:
        """fn(), tried again after each retryable failure (see the module docstring)."""
        while True:
            if self.stop.is_set():
                raise Interrupted()
            try:
                return fn()
            except Exception as exc:
                if not getattr(exc, "retryable", False):
                    raise
                self.wait_after(str(exc), exc)
