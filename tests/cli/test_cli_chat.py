"""`corral chat`, `corral --version` and the GUI entry, run as a user runs them (subprocesses)."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest


def corral(*args: str, tmp_path, input: str | None = None) -> subprocess.CompletedProcess:
    env = dict(os.environ, CORRAL_HOME=str(tmp_path / "home"))
    return subprocess.run([sys.executable, "-m", "app", *args], capture_output=True, text=True,
                          env=env, input=input, timeout=120)


def test_greedy_chat_prints_the_same_text_twice(tiny_model, tmp_path):
    runs = [corral("chat", str(tiny_model), "-p", "hello", "--max-tokens", "32", "--temp", "0",
                   "--threads", "2", tmp_path=tmp_path) for _ in range(2)]
    for r in runs:
        assert r.returncode == 0, r.stderr
        assert r.stdout.strip()
        assert "32 tokens" in r.stderr and "tok/s" in r.stderr
    assert runs[0].stdout == runs[1].stdout


def test_seeded_sampling_prints_the_same_text_twice(tiny_model, tmp_path):
    args = ("chat", str(tiny_model), "-p", "hello", "--max-tokens", "32", "--seed", "7",
            "--temp", "0.8", "--threads", "2")
    a, b = (corral(*args, tmp_path=tmp_path) for _ in range(2))
    assert a.returncode == b.returncode == 0
    assert a.stdout == b.stdout and a.stdout.strip()
    c = corral(*args[:-5], "--seed", "8", "--temp", "0.8", "--threads", "2", tmp_path=tmp_path)
    assert c.stdout != a.stdout


def test_prompt_from_stdin(tiny_model, tmp_path):
    r = corral("chat", str(tiny_model), "--max-tokens", "4", "--temp", "0", tmp_path=tmp_path,
               input="hello")
    assert r.returncode == 0 and r.stdout.strip()


@pytest.mark.parametrize("make_bad", [
    lambda tmp: tmp / "missing.gguf",
    lambda tmp: (tmp / "notes.gguf").write_text("not a model") and tmp / "notes.gguf",
    lambda tmp: tmp,
])
def test_chat_errors_are_one_line_and_non_zero(make_bad, tmp_path):
    r = corral("chat", str(make_bad(tmp_path)), "-p", "hi", tmp_path=tmp_path)
    assert r.returncode != 0
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("corral: ")
    assert "Traceback" not in r.stderr


def test_block_count_zero_model_is_refused_in_one_line(make_model, tmp_path):
    broken = make_model("tiny", name="zero-layers", block_count=0)
    r = corral("chat", str(broken), "-p", "hi", tmp_path=tmp_path)
    assert r.returncode == 1 and "zero-layers" in r.stderr and "block_count" in r.stderr
    assert len(r.stderr.strip().splitlines()) == 1


def test_version(tmp_path):
    r = corral("--version", tmp_path=tmp_path)
    assert r.returncode == 0 and r.stdout.startswith("corral ")


def test_backend_choices_match_the_core():
    from app.cli import chat_cmd
    from app.core import hardware

    assert tuple(chat_cmd.BACKENDS) == hardware.BACKENDS


def test_backend_gpu_on_a_build_without_gpu_support_says_so(tiny_model, tmp_path):
    """README: `corral chat MODEL --backend gpu -p hi` prints a note when the build has no GPU
    support (and runs on the CPU)."""
    r = corral("chat", str(tiny_model), "--backend", "gpu", "-p", "hi", "--max-tokens", "2",
               "--temp", "0", tmp_path=tmp_path)
    assert r.returncode == 0 and r.stdout.strip(), r.stderr
    lines = r.stderr.splitlines()
    if lines[-1].endswith("· backend cpu"):  # this build has no GPU backend
        assert lines[0] == ("corral: note: GPU requested, but this llama.cpp build has no GPU "
                            "support: running on the CPU (see README: 'GPU acceleration')")
    else:  # a GPU build ran it there: nothing to say
        assert not [ln for ln in lines if "no GPU support" in ln], lines
