"""PySide6 6.12.0 on Python < 3.12 handed back True and None without a reference of their own:
every signal emitted dropped one reference to True, every call of a method returning nothing one
to None, and the interpreter aborted ("bool_dealloc: deallocating True or False") within
minutes of normal use. pyproject.toml excludes that release; this catches it (or a release like
it) in whatever PySide6 is installed. Run in a child process: the bug kills the interpreter."""

from __future__ import annotations

import os
import subprocess
import sys

CHECK = r"""
import sys
from PySide6.QtCore import QObject, Signal

class Probe(QObject):
    ping = Signal()
    flag = Signal(bool)

probe = Probe()
probe.flag.connect(lambda value: None)
true, none = sys.getrefcount(True), sys.getrefcount(None)
for _ in range(20000):  # far more than one reference each could survive under the bug
    probe.ping.emit()
    probe.flag.emit(True)
    probe.setObjectName("probe")
print(true - sys.getrefcount(True), none - sys.getrefcount(None))
"""


def test_signals_and_calls_keep_the_references_of_true_and_none():
    env = dict(os.environ, QT_QPA_PLATFORM="offscreen")
    r = subprocess.run([sys.executable, "-c", CHECK], capture_output=True, text=True, env=env,
                       timeout=120)
    assert r.returncode == 0, f"the interpreter died ({r.returncode}): {r.stderr[-500:]}"
    lost_true, lost_none = map(int, r.stdout.split())
    assert lost_true <= 0 and lost_none <= 0, r.stdout
