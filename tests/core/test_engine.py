"""The engine against real llama.cpp, on generated models (no mocks: a runner process per engine)."""

from __future__ import annotations

import os
import threading
import time

import pytest
from gguf import GGUFReader, GGUFWriter

from app.core.engine import Engine, EngineError, LoadSettings, SamplingParams

GREEDY = SamplingParams(max_tokens=24, temperature=0.0)


@pytest.fixture(scope="module")
def engine(tiny_model):
    with Engine() as eng:
        eng.load(tiny_model, LoadSettings(threads=2, n_ctx=2048))
        yield eng


def collect(gen) -> str:
    return "".join(gen)


def test_greedy_and_seeded_generation_repeat_exactly(engine):
    first = collect(engine.generate("hello world", GREEDY))
    assert first and collect(engine.generate("hello world", GREEDY)) == first
    seeded = SamplingParams(max_tokens=24, temperature=0.8, seed=7)
    a = collect(engine.generate("hello world", seeded))
    b = collect(engine.generate("hello world", seeded))
    assert a == b
    assert collect(engine.generate("hello world", SamplingParams(max_tokens=24, temperature=0.8, seed=8))) != a


def test_stats_describe_the_reply(engine):
    gen = engine.generate("hello world", SamplingParams(max_tokens=10, temperature=0.0))
    text = collect(gen)
    s = gen.stats
    assert s.generated_tokens == 10 and s.stop_reason == "length"
    assert s.prompt_tokens >= 3 and s.ttft_s is not None and s.decode_tps > 0
    assert gen.text == text


def test_kv_cache_is_reused_across_turns(engine):
    turn1 = "USER: hello world ASSISTANT:"
    g1 = engine.generate(turn1, GREEDY)
    reply = collect(g1)
    g2 = engine.generate(turn1 + reply + "</s>USER: and the story? ASSISTANT:", GREEDY)
    collect(g2)
    # Everything up to the reply's end was in the cache already; only the new turn is evaluated.
    assert g2.stats.reused_tokens >= g1.stats.prompt_tokens
    assert g2.stats.evaluated_tokens == g2.stats.prompt_tokens - g2.stats.reused_tokens
    assert g2.stats.evaluated_tokens < 20


def test_stop_from_another_thread_takes_effect_before_the_next_token(engine):
    before = collect(engine.generate("hello world", GREEDY))
    gen = engine.generate("hello", SamplingParams(max_tokens=1500, temperature=0.8, seed=1))
    pieces: list[str] = []
    enough = threading.Event()

    def consume():
        for piece in gen:
            pieces.append(piece)
            if len(pieces) >= 20:
                enough.set()
        enough.set()

    worker = threading.Thread(target=consume)
    worker.start()
    assert enough.wait(30)
    engine.stop()
    seen_at_stop = len(pieces)
    worker.join(30)
    assert not worker.is_alive()
    assert len(pieces) <= seen_at_stop + 1  # at most the piece already being handed over
    assert gen.stats.stop_reason == "cancelled"
    assert gen.stats.generated_tokens < 1500
    # The engine is usable at once, and gives the same answer as before the stop.
    assert before and collect(engine.generate("hello world", GREEDY)) == before


def test_leaving_the_loop_early_stops_the_generation(engine):
    gen = engine.generate("hello", SamplingParams(max_tokens=1500, temperature=0.0))
    for i, _ in enumerate(gen):
        if i == 5:
            break
    # Leaving the loop closes the iterator at once (CPython frees it): it stopped the runner
    # and read to the end marker, so the stats are there.
    assert gen.stats.stop_reason == "cancelled" and 6 <= gen.stats.generated_tokens < 1500
    assert collect(engine.generate("hello", SamplingParams(max_tokens=4, temperature=0.0)))


def test_utf8_is_never_cut_mid_character(engine):
    # A grammar forces text the vocabulary can only spell with byte-fallback tokens: every
    # CJK character arrives as three one-byte tokens, and must still stream whole.
    target = "日本語のテキスト, naïve café ✓"
    gen = engine.generate("hello", SamplingParams(max_tokens=200, temperature=0.0,
                                                  grammar=f'root ::= "{target}"'))
    pieces = list(gen)
    assert "".join(pieces) == target
    assert gen.stats.generated_tokens > len(target)  # proof that characters were split over tokens
    for piece in pieces:
        assert "\ufffd" not in piece
        piece.encode("utf-8")  # a lone surrogate or cut character would raise here


def test_a_stop_string_is_never_streamed_even_partly(engine):
    target = "one two USER: three"
    gen = engine.generate("hello", SamplingParams(max_tokens=100, temperature=0.0, stop=("USER:",),
                                                  grammar=f'root ::= "{target}"'))
    pieces = list(gen)
    assert "".join(pieces) == "one two "
    assert gen.stats.stop_reason == "stop" and gen.stats.stop_string == "USER:"
    assert not any(ch in "".join(pieces) for ch in "US:")


def test_held_back_text_is_released_when_it_does_not_become_a_stop(engine):
    target = "say US then UK"
    gen = engine.generate("hello", SamplingParams(max_tokens=100, temperature=0.0, stop=("USER:",),
                                                  grammar=f'root ::= "{target}"'))
    assert collect(gen) == target
    assert gen.stats.stop_reason == "eos"


def test_stop_during_a_long_prompt_uses_the_abort_callback(small_model):
    with Engine() as eng:
        eng.load(small_model, LoadSettings(threads=2, n_ctx=4096, n_batch=4096))
        prompt = " ".join(["the quick brown fox jumps over the lazy dog"] * 200)  # ~3000 tokens
        gen = eng.generate(prompt, SamplingParams(max_tokens=8, temperature=0.0))
        evaluating = threading.Event()
        gen.on_prompt_progress = lambda done, total: evaluating.set()
        pieces: list[str] = []
        worker = threading.Thread(target=lambda: pieces.extend(gen))
        worker.start()
        assert evaluating.wait(30)
        time.sleep(0.2)  # let llama_decode get well into the single 3000-token batch
        eng.stop()
        worker.join(30)
        assert pieces == []
        assert gen.stats.stop_reason == "cancelled"
        assert gen.stats.aborted_in_prompt  # llama_decode returned "aborted": the callback fired
        # The cache was rolled back cleanly: the next turn works and matches a fresh evaluation.
        short = SamplingParams(max_tokens=6, temperature=0.0)
        after = collect(eng.generate("hello world", short))
    with Engine() as fresh:
        fresh.load(small_model, LoadSettings(threads=2, n_ctx=4096, n_batch=4096))
        assert collect(fresh.generate("hello world", short)) == after


def test_a_model_that_aborts_llama_cpp_raises_and_the_next_load_works(make_model, tiny_model):
    broken = make_model("tiny", name="no-layers", block_count=0)
    with Engine() as eng:
        # The header check refuses it before llama.cpp sees it ...
        with pytest.raises(EngineError, match=r"no-layers.*block_count is 0"):
            eng.load(broken, LoadSettings(threads=2))
        # ... and if llama.cpp gets it anyway (the runner is asked directly, as a file that
        # passes every header check but still trips an assert would be), the runner dies with
        # SIGABRT, the engine says so with llama.cpp's own words, and this process lives on.
        runner_pid = eng._ready_runner().proc.pid
        with pytest.raises(EngineError) as err:
            eng._load(broken, None, LoadSettings(threads=2), 0, None)
        message = str(err.value)
        assert "no-layers" in message and "SIGABRT" in message and "GGML_ASSERT" in message
        eng.load(tiny_model, LoadSettings(threads=2))  # a fresh runner took over
        assert eng._runner.proc.pid != runner_pid
        assert collect(eng.generate("hello", SamplingParams(max_tokens=4, temperature=0.0)))


@pytest.mark.parametrize("fault, said", [("gpu-abort", "SIGABRT"), ("gpu-error", "GPU offload failed")])
def test_gpu_failure_falls_back_to_the_cpu(tiny_model, monkeypatch, fault, said):
    # The fault hook makes the runner claim GPU offload whatever the build, so the GPU attempt
    # is made (and fails as llama.cpp does) on this CPU-only machine too.
    monkeypatch.setenv("CORRAL_RUNNER_FAULT", fault)
    for backend in ("gpu", "auto"):
        with Engine() as eng:
            assert eng.gpu_support().offload
            loaded = eng.load(tiny_model, LoadSettings(backend=backend, gpu_layers=99, threads=2))
            assert loaded.backend == "cpu" and loaded.n_gpu_layers == 0
            assert loaded.fallback_reason.startswith("loading on the GPU failed")
            assert said in loaded.fallback_reason and "running on the CPU instead" in loaded.fallback_reason
            assert collect(eng.generate("hello", SamplingParams(max_tokens=4, temperature=0.0)))


def rewrite(src, dst, *, arch=None, drop_tensor=None):
    """Copy a GGUF, changing its architecture or leaving out one tensor."""
    reader = GGUFReader(src)
    arch_now = str(bytes(reader.fields["general.architecture"].parts[-1]), "utf-8")
    writer = GGUFWriter(dst, arch or arch_now)
    for name, field in reader.fields.items():
        if name.startswith("GGUF.") or name == "general.architecture":
            continue
        value = field.contents()
        if arch and name.startswith(arch_now + "."):
            name = arch + name[len(arch_now):]
        writer.add_key_value(name, value, field.types[0],
                             sub_type=field.types[-1] if len(field.types) > 1 else None)
    for t in reader.tensors:
        if t.name != drop_tensor:
            writer.add_tensor(t.name, t.data, raw_dtype=t.tensor_type)
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    return dst


def test_load_errors_carry_llama_cpp_s_reason(tiny_model, tmp_path, engine):
    missing = rewrite(tiny_model, tmp_path / "missing-tensor.gguf", drop_tensor="blk.1.ffn_up.weight")
    foreign = rewrite(tiny_model, tmp_path / "foreign-arch.gguf", arch="notallama")
    with Engine() as eng:
        with pytest.raises(EngineError, match=r"missing-tensor\.gguf.*blk\.1\.ffn_up\.weight"):
            eng.load(missing, LoadSettings(threads=2))
        with pytest.raises(EngineError, match=r"foreign-arch\.gguf.*notallama"):
            eng.load(foreign, LoadSettings(threads=2))
        with pytest.raises(EngineError, match="not a GGUF|does not exist"):
            eng.load(tmp_path / "nothing-here.gguf", LoadSettings(threads=2))


def test_a_prompt_longer_than_the_context_is_refused_clearly(tiny_model):
    with Engine() as eng:
        loaded = eng.load(tiny_model, LoadSettings(threads=2, n_ctx=64))
        assert loaded.n_ctx >= 64  # llama.cpp rounds the context up to its padding
        with pytest.raises(EngineError, match=f"context holds {loaded.n_ctx}"):
            collect(eng.generate("hello world " * 400, GREEDY))
        # A prompt that fits but is larger than the batch llama.cpp clamped to that context.
        assert collect(eng.generate("hello " * (loaded.n_ctx // 2), SamplingParams(max_tokens=4, temperature=0.0)))
        assert collect(eng.generate("hello", SamplingParams(max_tokens=4, temperature=0.0)))


# --------------------------------------------------------------------------- hostile input

def test_sampling_values_are_checked_in_one_place():
    from app.core.sampling import SamplingError

    bad = [("temperature", float("nan")), ("temperature", 3), ("top_p", float("inf")),
           ("min_p", float("-inf")), ("repeat_penalty", float("nan")), ("repeat_penalty", 0),
           ("repeat_last_n", 2**31 - 1), ("repeat_last_n", -2), ("top_k", 1.5),
           ("max_tokens", True), ("seed", "7"), ("stop", ("ok", "x" * 1001)),
           ("stop", ("bad \udcff",)), ("grammar", 'root ::= "\ud800"')]
    for name, value in bad:
        with pytest.raises(SamplingError) as err:
            SamplingParams(**{name: value})
        assert err.value.field == name and name in str(err.value)
    # Every bound is inclusive where it is meant to be: the knobs' own ranges pass.
    SamplingParams(temperature=0, top_p=1, min_p=0, repeat_penalty=10, repeat_last_n=-1,
                   top_k=0, max_tokens=0, seed=2**32 - 1, stop=("x" * 1000,))


def test_text_that_is_not_utf8_is_refused_and_the_model_stays_loaded(engine):
    pid = engine._runner.proc.pid
    for bad in ("hi \ud800", "caf\udce9"):  # a lone surrogate; an undecodable argv byte, escaped
        with pytest.raises(EngineError, match=r"the prompt holds .* at character"):
            engine.generate(bad, GREEDY)
        with pytest.raises(EngineError, match="the text to count holds"):
            engine.count_tokens(bad)
    assert engine.model is not None and engine._runner.proc.pid == pid
    assert collect(engine.generate("hello", SamplingParams(max_tokens=4, temperature=0.0)))


def test_the_runner_survives_any_exception_in_a_request(engine):
    """A request the runner fails on for a reason of its own answers an error; it lives on."""
    runner = engine._runner
    pid = runner.proc.pid
    runner.send(op="generate", id=engine._new_id(), prompt="hi \ud800", params={})
    reply = runner.receive()
    assert reply["ev"] == "error" and "UnicodeEncodeError" in reply["message"]
    runner.send(op="generate", id=engine._new_id(), prompt="hello", params={"top_k": "many"})
    assert runner.receive()["ev"] == "error"
    runner.send(op="no-such-op")
    assert runner.receive()["message"] == "unknown request 'no-such-op'"
    assert runner.alive() and runner.proc.pid == pid and engine.model is not None
    assert collect(engine.generate("hello", SamplingParams(max_tokens=4, temperature=0.0)))


@pytest.mark.skipif(not os.path.exists("/proc/self/status"), reason="reads /proc (Linux)")
def test_the_runner_clamps_the_penalty_window_to_the_context(engine):
    """Even a request that skips SamplingParams cannot make llama.cpp allocate a huge window
    (2**31 tokens took 8.4 GB and 21 s; 2**28 here would take 1 GiB)."""
    runner = engine._runner
    runner.send(op="generate", id=engine._new_id(), prompt="hello",
                params={"max_tokens": 3, "temperature": 0.8, "repeat_last_n": 2**28, "seed": 1})
    while (msg := runner.receive()).get("ev") not in ("done", "error"):
        pass
    assert msg["ev"] == "done" and msg["stats"]["generated_tokens"] == 3
    status = open(f"/proc/{runner.proc.pid}/status").read()
    peak_kb = int(status.split("VmHWM:")[1].split()[0])
    assert peak_kb < 400 * 1024, f"runner peak {peak_kb // 1024} MB"


def test_the_runner_imports_nothing_from_the_working_folder(tiny_model, tmp_path, monkeypatch):
    marker = tmp_path / "imported"
    for name in ("queue", "llama_cpp", "json"):
        (tmp_path / f"{name}.py").write_text(
            f"open({str(marker)!r}, 'a').write('{name}\\n')\nraise ImportError('planted')\n")
    monkeypatch.chdir(tmp_path)
    with Engine() as eng:
        eng.load(tiny_model, LoadSettings(threads=2))
        assert collect(eng.generate("hello", SamplingParams(max_tokens=4, temperature=0.0)))
    assert not marker.exists(), marker.read_text()


def test_a_relative_model_path_still_loads(tiny_model, monkeypatch):
    """The runner works in a folder of its own: the engine sends it absolute paths."""
    monkeypatch.chdir(tiny_model.parent)
    with Engine() as eng:
        assert eng.load(tiny_model.name, LoadSettings(threads=2)).n_ctx > 0


def test_a_killed_runner_is_not_blamed_on_an_earlier_request(tiny_model, tmp_path):
    import signal

    missing = rewrite(tiny_model, tmp_path / "missing-tensor.gguf", drop_tensor="blk.1.ffn_up.weight")
    with Engine() as eng:
        with pytest.raises(EngineError, match="blk.1.ffn_up.weight"):
            eng.load(missing, LoadSettings(threads=2))  # llama.cpp prints errors; the runner lives
        eng.load(tiny_model, LoadSettings(threads=2))
        gen = eng.generate("hello", SamplingParams(max_tokens=100000, temperature=0.8, seed=1))
        with pytest.raises(EngineError) as err:
            for i, _ in enumerate(gen):
                if i == 2:
                    os.kill(eng._runner.proc.pid, signal.SIGKILL)
        assert str(err.value) == "Generating failed: the model runner was killed by SIGKILL"
        # Killed while idle, after a load that printed errors: the same, nothing older.
        with pytest.raises(EngineError):
            eng.load(missing, LoadSettings(threads=2))
        eng.load(tiny_model, LoadSettings(threads=2))
        os.kill(eng._runner.proc.pid, signal.SIGKILL)
        eng._runner.proc.wait(10)
        with pytest.raises(EngineError) as err:
            collect(eng.generate("hello", GREEDY))
        assert str(err.value) == "Generating failed: the model runner was killed by SIGKILL"


@pytest.mark.skipif(not os.path.exists("/proc/self/environ"), reason="reads /proc (Linux)")
def test_the_runner_gets_no_secrets_from_the_environment(monkeypatch):
    monkeypatch.setenv("CORRAL_API_KEY", "sk-serve-key")
    monkeypatch.setenv("HF_TOKEN", "hf_secret")
    monkeypatch.setenv("CORRAL_TEST_HARMLESS", "kept")
    with Engine() as eng:
        eng.gpu_support()  # started and ready
        environ = open(f"/proc/{eng._runner.proc.pid}/environ", "rb").read().split(b"\0")
    assert b"CORRAL_TEST_HARMLESS=kept" in environ and b"GGML_NO_BACKTRACE=1" in environ
    assert not [e for e in environ if b"sk-serve-key" in e or b"hf_secret" in e]


@pytest.mark.skipif(not os.path.exists("/proc/self/cwd"), reason="a script stands in for the "
                    "frozen app; reads /proc (Linux)")
def test_a_frozen_app_starts_its_runner_with_corral_runner(tiny_model, tmp_path, monkeypatch):
    """PyInstaller's app has no interpreter to pass -I to: it runs itself with --corral-runner,
    which `corral`'s main() dispatches before anything else, from the app's own folder."""
    import sys

    from app.core.child import APP_ROOT

    app = tmp_path / "Corral" / "corral"
    app.parent.mkdir()
    app.write_text(f"#!{sys.executable} -I\nimport sys\nsys.path.insert(0, {APP_ROOT!r})\n"
                   f"from app.cli import main\nsys.exit(main())\n")
    app.chmod(0o755)
    monkeypatch.setattr(sys, "frozen", True, raising=False)
    monkeypatch.setattr(sys, "executable", str(app))
    with Engine() as eng:
        eng.load(tiny_model, LoadSettings(threads=2))
        assert collect(eng.generate("hello", SamplingParams(max_tokens=4, temperature=0.0)))
        pid = eng._runner.proc.pid
        assert open(f"/proc/{pid}/cmdline", "rb").read().split(b"\0")[-2] == b"--corral-runner"
        assert os.readlink(f"/proc/{pid}/cwd") == str(app.parent)
