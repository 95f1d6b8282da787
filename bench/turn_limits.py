"""Huge input and stopping, through the core turn pipeline, on the TinyLlama-1.1B-shaped model
with a 2k context (issue 17 §3). Measures, each on the real engine:

- paste_short_chat_ms / paste_1000_chat_ms: a single 1.2 MB, 20,000-line message sent in a
  short chat and at the end of a 1000-message chat: from Turn.run() to its refusal (the
  pipeline refuses what cannot fit from its bytes, never tokenizing it);
- tokenize_paste_ms: for scale, what tokenizing that paste alone costs (what the old fit did
  first, then again for the message alone);
- fit_1000_chat_ms: a 1000-message chat whose end fits: the turn prepared (fitted, counted);
- stop_in_prompt_eval_ms: a ~1900-token prompt being evaluated, Turn.stop() → run() returned
  (the runner idle again), and the tokens it had evaluated;
- stop_in_generation_ms: the same while tokens stream.

Usage: python bench/turn_limits.py [--model PATH] [--ctx 2048] [--threads 2] [--json]
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
os.environ.setdefault("CORRAL_HOME", tempfile.mkdtemp(prefix="corral-turn-bench-"))

from app.core.turns import (LocalBackend, ModelRef, Turn, TurnListener, TurnOptions,  # noqa: E402
                            TurnRequest)
from app.testing import models  # noqa: E402

LINE = "a line of pasted log output, with some words and numbers 12345\n"  # 62 bytes


def paste(lines: int = 20_000) -> str:
    return LINE * lines  # 20,000 lines: 1.24 MB


def long_chat(n: int) -> list[dict[str, str]]:
    out = []
    for i in range(n // 2):
        out += [{"role": "user", "content": f"question {i}: " + "what is a llama? " * 8},
                {"role": "assistant", "content": f"answer {i}: " + "a camelid. " * 12}]
    return out


class Watch(TurnListener):
    def __init__(self) -> None:
        self.progress = threading.Event()
        self.piece = threading.Event()
        self.done = 0

    def prompt_progress(self, done: int, total: int) -> None:
        self.done = done
        if done > 0:  # at least one batch evaluated: the evaluation is well under way
            self.progress.set()

    def pieces(self, text: str) -> None:
        self.piece.set()


def request(path: Path, messages, ctx: int, threads: int, **knobs) -> TurnRequest:
    overrides = {"context": ctx, "threads": threads, "temperature": 0.0, **knobs}
    return TurnRequest(ModelRef(path.name, path), messages=tuple(messages),
                       options=TurnOptions(overrides=overrides))


def timed_refusal(backend, req) -> tuple[float, str]:
    t0 = time.perf_counter()
    try:
        Turn(backend, req).run()
    except Exception as exc:  # noqa: BLE001 - the refusal is what is measured
        return (time.perf_counter() - t0) * 1000, str(exc)
    raise SystemExit("the paste was not refused")


def stop_after(backend, req, event_name: str, delay_s: float) -> tuple[float, object, Watch]:
    watch = Watch()
    turn = Turn(backend, req, listener=watch)
    out: dict = {}
    thread = threading.Thread(target=lambda: out.setdefault("result", turn.run()))
    thread.start()
    if not getattr(watch, event_name).wait(600):
        raise SystemExit(f"no {event_name} event")
    time.sleep(delay_s)
    t0 = time.perf_counter()
    turn.stop()
    thread.join()
    return (time.perf_counter() - t0) * 1000, out["result"], watch


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", help="GGUF file (default: the generated TinyLlama-1.1B shape)")
    ap.add_argument("--ctx", type=int, default=2048)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args(argv)
    path = Path(args.model) if args.model else models.cached_model("tinyllama_shape")
    backend = LocalBackend()
    out: dict = {"model": path.name, "n_ctx": args.ctx}
    try:
        short = [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "hello"}]
        big = {"role": "user", "content": paste()}
        backend.prepare(request(path, short + [{"role": "user", "content": "ok"}], args.ctx,
                                args.threads))  # load once
        out["max_token_bytes"] = backend.engine.model.max_token_bytes
        out["paste_bytes"] = len(big["content"].encode())
        out["paste_short_chat_ms"], out["refusal"] = timed_refusal(
            backend, request(path, short + [big], args.ctx, args.threads))
        out["paste_1000_chat_ms"], _ = timed_refusal(
            backend, request(path, long_chat(1000) + [big], args.ctx, args.threads))
        t0 = time.perf_counter()
        backend.engine.count_tokens(big["content"])
        out["tokenize_paste_ms"] = (time.perf_counter() - t0) * 1000
        chat = long_chat(1000) + [{"role": "user", "content": "and an alpaca?"}]
        t0 = time.perf_counter()
        prepared = backend.prepare(request(path, chat, args.ctx, args.threads, max_tokens=64))
        out["fit_1000_chat_ms"] = (time.perf_counter() - t0) * 1000
        out["fit_1000_chat_dropped_turns"] = prepared.dropped_turns
        out["fit_1000_chat_prompt_tokens"] = prepared.prompt_tokens
        # A long prompt (~1900 tokens of a 2k context): evaluating it takes many seconds here.
        long_prompt = [{"role": "user", "content": "the history of the llama " * 260}]
        ms, result, watch = stop_after(backend, request(path, long_prompt, args.ctx,
                                                        args.threads, max_tokens=32),
                                       "progress", 0.5)
        out["stop_in_prompt_eval_ms"] = ms
        out["stop_in_prompt_eval_reason"] = result.stopped_by
        out["stop_in_prompt_eval_aborted_in_prompt"] = result.stats.aborted_in_prompt
        out["stop_in_prompt_eval_prompt_tokens"] = result.stats.prompt_tokens
        ms, result, _ = stop_after(backend, request(path, short + [{"role": "user",
                                                                     "content": "tell me"}],
                                                    args.ctx, args.threads, max_tokens=2000),
                                   "piece", 0.3)
        out["stop_in_generation_ms"] = ms
        out["stop_in_generation_reason"] = result.stopped_by
    finally:
        backend.close()
    if args.json:
        print(json.dumps(out))
    else:
        for key, value in out.items():
            print(f"{key}: {value:.1f}" if isinstance(value, float) else f"{key}: {value}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
