"""The runner: the child process that owns llama.cpp.

llama.cpp calls abort() on some inputs (a GGUF with no layers, a CUDA driver mismatch, GPU out
of memory), which would take the whole app down with it. So the model lives here, in a process
of its own that `app.core.engine.Engine` starts and drives; when it dies, the engine reports
why and starts another.

Protocol: one JSON object per line. Requests arrive on stdin; replies leave on a private copy
of stdout (fd 1 itself is pointed at stderr, so nothing llama.cpp prints can corrupt the
protocol). A reader thread takes requests off stdin so that a {"op": "stop", "id": N} is seen
while the main thread is busy decoding: decoding releases the GIL inside llama.cpp.

The token loop is deliberately the same as a bare llama_decode + sampler loop, plus a few
dictionary lookups: it is the speed the engine is measured against (bench/engine.py).
"""

from __future__ import annotations

import ctypes
import json
import os
import queue
import sys
import threading
import time
from collections import deque

from app.core.streaming import StopMatcher, Utf8Assembler

# Test hook: the runner claims GPU offload (whatever the build), then a load that offloads
# layers fails the way a broken CUDA setup does — "gpu-abort" kills this process with SIGABRT,
# "gpu-error" fails the load. Used only by tests to prove the engine's CPU fallback on any
# build; unset in normal use.
FAULT_ENV = "CORRAL_RUNNER_FAULT"
GPU_FAULTS = ("gpu-abort", "gpu-error")
# Written to stderr when a request begins and ends: the engine blames a death only on what was
# printed since, never on an earlier request's warnings.
REQUEST_MARK = "#corral: "

LOG_WARN, LOG_ERROR, LOG_CONT = 3, 4, 5
DECODE_ABORTED = 2  # llama_decode's return value when the abort callback said stop


class Channel:
    """Requests in (reader thread → queue), replies out (the private stdout copy)."""

    def __init__(self) -> None:
        self._out = os.fdopen(os.dup(1), "wb")
        os.dup2(2, 1)  # stray prints from C or Python now go to stderr, never into the protocol
        sys.stdout = sys.stderr
        self.requests: queue.Queue[dict] = queue.Queue()
        self.stop_upto = 0  # every request id ≤ this has been asked to stop
        threading.Thread(target=self._read, name="runner-stdin", daemon=True).start()

    def _read(self) -> None:
        for line in sys.stdin.buffer:
            try:
                msg = json.loads(line)
                if msg.get("op") == "stop":
                    self.stop_upto = max(self.stop_upto, int(msg.get("id", 0)))
                    continue
            except (ValueError, TypeError, AttributeError, RecursionError):
                continue  # not a request of the engine's: this thread must not die of it
            self.requests.put(msg)
        # The engine closed our stdin (or died): stop whatever runs and leave.
        self.stop_upto = sys.maxsize
        self.requests.put({"op": "exit"})

    def stopped(self, request_id: int) -> bool:
        return request_id <= self.stop_upto

    def send(self, **msg) -> None:
        try:
            data = json.dumps(msg, ensure_ascii=False).encode()
        except UnicodeEncodeError:  # a lone surrogate (a file name's undecodable byte): escape it
            data = json.dumps(msg).encode()
        self._out.write(data + b"\n")
        self._out.flush()


class LlamaLog:
    """llama.cpp's own log lines, kept so a failed load can say *why* it failed."""

    def __init__(self, llama_cpp) -> None:
        self.lines: deque[tuple[int, str]] = deque(maxlen=400)
        self._level = 0
        self._callback = llama_cpp.llama_log_callback(self._on_log)  # keep alive: freed = segfault
        llama_cpp.llama_log_set(self._callback, ctypes.c_void_p(0))
        self.count = 0

    def _on_log(self, level: int, text: bytes, _user: object) -> None:
        if level == LOG_CONT:
            level = self._level
        self._level = level
        line = (text or b"").decode("utf-8", "replace").rstrip("\n")
        if not line:
            return
        self.lines.append((level, line))
        self.count += 1
        if level >= LOG_WARN:
            sys.stderr.write(line + "\n")

    def problems_since(self, mark: int) -> list[str]:
        new = list(self.lines)[-(self.count - mark):] if self.count > mark else []
        return [line for level, line in new if level >= LOG_WARN]


class Runner:
    def __init__(self, channel: Channel) -> None:
        import llama_cpp  # the slow import happens here, before the first load is asked for

        self.ll = llama_cpp
        self.ch = channel
        llama_cpp.llama_backend_init()
        self.log = LlamaLog(llama_cpp)
        self.model = self.ctx = self.vocab = self.mem = None
        self.cached: list[int] = []  # the tokens whose keys/values sit in the KV cache, in order
        self.n_ctx = self.n_batch = 0
        self._piece = ctypes.create_string_buffer(256)
        self._one = (llama_cpp.llama_token * 1)()
        self._abort_for = 0
        self._abort_cb = llama_cpp.ggml_abort_callback(lambda _data: self.ch.stopped(self._abort_for))
        self._progress_cb = llama_cpp.llama_progress_callback(self._on_progress)
        self._load_id = 0
        self._last_progress = 0.0

    # --- requests -----------------------------------------------------------------------
    def serve(self) -> None:
        info = self.ll.llama_print_system_info().decode("utf-8", "replace")
        offload = bool(self.ll.llama_supports_gpu_offload()) or \
            os.environ.get(FAULT_ENV, "") in GPU_FAULTS
        self.ch.send(ev="ready", gpu_offload=offload, system_info=info, pid=os.getpid())
        while True:
            req = self.ch.requests.get()
            op = req.get("op")
            if op == "exit":
                return
            handler = getattr(self, f"op_{op}", None) if isinstance(op, str) else None
            if handler is None:
                self.ch.send(ev="error", message=f"unknown request {op!r}")
                continue
            self._mark(f"{op} {req.get('id', '')}")
            try:
                handler(req)
            except RunnerError as exc:
                self.ch.send(ev="error", message=str(exc))
            except Exception as exc:  # noqa: BLE001 - one bad request must not end the runner
                self.ch.send(ev="error", message=f"the runner could not do {op!r}: "
                                                 f"{type(exc).__name__}: {exc}")
            finally:
                self._mark("idle")

    @staticmethod
    def _mark(what: str) -> None:
        sys.stderr.write(f"{REQUEST_MARK}{what}\n")
        sys.stderr.flush()

    def op_load(self, req: dict) -> None:
        self.unload()
        path, layers = req["path"], int(req.get("n_gpu_layers", 0))
        fault = os.environ.get(FAULT_ENV, "")
        if layers != 0 and fault == "gpu-abort":
            sys.stderr.write("GGML_ASSERT: CUDA error: forced by CORRAL_RUNNER_FAULT=gpu-abort\n")
            sys.stderr.flush()
            os.abort()
        if layers != 0 and fault == "gpu-error":
            raise RunnerError("GPU offload failed: forced by CORRAL_RUNNER_FAULT=gpu-error")
        mark = self.log.count
        self._load_id, self._last_progress = int(req.get("id", 0)), 0.0
        mp = self.ll.llama_model_default_params()
        mp.n_gpu_layers = layers
        mp.use_mmap = bool(req.get("use_mmap", True))
        mp.progress_callback = self._progress_cb
        t0 = time.perf_counter()
        model = self.ll.llama_model_load_from_file(os.fsencode(path), mp)
        if not model:
            if self.ch.stopped(self._load_id):
                raise RunnerError("cancelled")
            raise RunnerError(self._explain(mark, "llama.cpp could not load the model"))
        n_ctx_train = self.ll.llama_model_n_ctx_train(model)
        cp = self.ll.llama_context_default_params()
        cp.n_ctx = int(req.get("n_ctx") or min(n_ctx_train, 4096))
        cp.n_batch = int(req.get("n_batch") or 512)
        cp.n_ubatch = min(cp.n_batch, 512)
        cp.n_threads = cp.n_threads_batch = int(req.get("n_threads") or 1)
        cp.no_perf = True
        ctx = self.ll.llama_init_from_model(model, cp)
        if not ctx:
            self.ll.llama_model_free(model)
            raise RunnerError(self._explain(mark, "llama.cpp could not create a context "
                                                  f"of {cp.n_ctx} tokens (out of memory?)"))
        self.model, self.ctx = model, ctx
        self.vocab = self.ll.llama_model_get_vocab(model)
        self.mem = self.ll.llama_get_memory(ctx)
        # llama.cpp may round the context up and clamp the batch to it: use what it chose,
        # since a batch larger than its n_batch is an assert (a crash), not an error code.
        self.n_ctx, self.n_batch = self.ll.llama_n_ctx(ctx), self.ll.llama_n_batch(ctx)
        self.cached = []
        load_s = time.perf_counter() - t0
        self.ch.send(ev="loaded", n_ctx=self.n_ctx, n_ctx_train=n_ctx_train, n_batch=self.n_batch,
                     n_vocab=self.ll.llama_vocab_n_tokens(self.vocab),
                     max_token_bytes=self.max_token_bytes(), n_gpu_layers=layers,
                     load_s=load_s, warnings=self.log.problems_since(mark)[-5:])

    def max_token_bytes(self) -> int:
        """The most bytes of text one token stands for, over the whole vocabulary (special
        tokens written out, as the tokenizer parses them). No token covers more, so a text of
        N bytes has at least N / this many tokens: the engine's callers use it to tell what
        cannot fit a context before tokenizing anything (a 1 MB paste costs nothing)."""
        ll, vocab = self.ll, self.vocab
        size = 256
        buf = ctypes.create_string_buffer(size)
        longest = 1
        to_piece = ll.llama_token_to_piece
        for tok in range(ll.llama_vocab_n_tokens(vocab)):
            n = to_piece(vocab, tok, buf, size, 0, True)
            if n < 0:  # longer than the buffer: llama.cpp says how long (-n)
                n = -n
            if n > longest:
                longest = n
        return longest

    def _on_progress(self, progress: float, _user: object) -> bool:
        if progress - self._last_progress >= 0.05 or progress >= 1.0:
            self._last_progress = progress
            self.ch.send(ev="progress", value=round(float(progress), 3))
        return not self.ch.stopped(self._load_id)  # False cancels the load

    def _explain(self, mark: int, fallback: str) -> str:
        problems = self.log.problems_since(mark)
        errors = [p for p in problems if "error" in p.lower() or "failed" in p.lower()]
        return "; ".join(dict.fromkeys((errors or problems)[-3:])) or fallback

    def op_unload(self, _req: dict) -> None:
        self.unload()
        self.ch.send(ev="unloaded")

    def unload(self) -> None:
        if self.ctx:
            self.ll.llama_free(self.ctx)
        if self.model:
            self.ll.llama_model_free(self.model)
        self.model = self.ctx = self.vocab = self.mem = None
        self.cached = []

    def op_tokenize(self, req: dict) -> None:
        self._need_model()
        self.ch.send(ev="tokens", tokens=self.tokenize(req["text"], bool(req.get("add_bos", True))))

    def tokenize(self, text: str, add_bos: bool) -> list[int]:
        data = text.encode("utf-8")
        room = len(data) + 8
        buf = (self.ll.llama_token * room)()
        n = self.ll.llama_tokenize(self.vocab, data, len(data), buf, room, add_bos, True)
        if n < 0:  # more tokens than bytes cannot happen with these vocabularies, but be safe
            room = -n
            buf = (self.ll.llama_token * room)()
            n = self.ll.llama_tokenize(self.vocab, data, len(data), buf, room, add_bos, True)
        return list(buf[:n])

    def _need_model(self) -> None:
        if not self.ctx:
            raise RunnerError("no model is loaded")

    # --- generation ---------------------------------------------------------------------
    def op_generate(self, req: dict) -> None:
        self._need_model()
        rid = int(req["id"])
        p = req.get("params", {})
        t_start = time.perf_counter()
        tokens = self.tokenize(req["prompt"], bool(req.get("add_bos", True)))
        if not tokens:
            raise RunnerError("the prompt is empty")
        if len(tokens) >= self.n_ctx:
            raise RunnerError(f"the prompt has {len(tokens)} tokens but the context holds "
                              f"{self.n_ctx}: shorten it or load the model with a larger context")
        sampler = self._sampler(p, tokens)
        try:
            stats = self._run(rid, tokens, sampler, p, t_start)
        finally:
            self.ll.llama_sampler_free(sampler)
        self.ch.send(ev="done", stats=stats)

    def _reuse_prefix(self, tokens: list[int]) -> int:
        """Keep the longest prefix the KV cache already holds; drop the rest of the cache."""
        n = 0
        for a, b in zip(self.cached, tokens):
            if a != b:
                break
            n += 1
        n = min(n, len(tokens) - 1)  # the last prompt token is always evaluated: it gives the logits
        if not self.ll.llama_memory_seq_rm(self.mem, 0, n, -1):
            self.ll.llama_memory_clear(self.mem, True)
            n = 0
        del self.cached[n:]
        return n

    def _evaluate_prompt(self, rid: int, tokens: list[int], start: int) -> str | None:
        """Decode tokens[start:] in batches; the abort callback lets a stop interrupt a batch."""
        ll = self.ll
        self._abort_for = rid
        ll.llama_set_abort_callback(self.ctx, self._abort_cb, None)
        try:
            for at in range(start, len(tokens), self.n_batch):
                if self.ch.stopped(rid):
                    return "cancelled"
                self.ch.send(ev="prompt", done=at - start, total=len(tokens) - start)
                chunk = tokens[at:at + self.n_batch]
                arr = (ll.llama_token * len(chunk))(*chunk)
                rc = ll.llama_decode(self.ctx, ll.llama_batch_get_one(arr, len(chunk)))
                if rc == DECODE_ABORTED:
                    ll.llama_memory_seq_rm(self.mem, 0, len(self.cached), -1)
                    return "aborted"
                if rc != 0:
                    raise RunnerError(f"llama_decode failed on the prompt (code {rc})")
                self.cached.extend(chunk)
        finally:
            # Off while generating: llama.cpp would call it once per graph node, each a GIL round trip.
            ll.llama_set_abort_callback(self.ctx, ll.ggml_abort_callback(0), None)
        return None

    def _run(self, rid: int, tokens: list[int], sampler, p: dict, t_start: float) -> dict:
        ll, ctx, vocab, ch = self.ll, self.ctx, self.vocab, self.ch
        reused = self._reuse_prefix(tokens)
        stats = {"prompt_tokens": len(tokens), "reused_tokens": reused,
                 "evaluated_tokens": len(tokens) - reused, "generated_tokens": 0,
                 "seed": p.get("seed"), "aborted_in_prompt": False}
        halted = self._evaluate_prompt(rid, tokens, reused)
        t_prompt = time.perf_counter()
        stats["prompt_s"] = t_prompt - t_start
        if halted:
            stats.update(stop_reason="cancelled", aborted_in_prompt=halted == "aborted",
                         ttft_s=None, decode_tps=None, decode_s=0.0)
            return stats

        max_tokens = int(p.get("max_tokens") or 0) or sys.maxsize
        utf8, matcher = Utf8Assembler(), StopMatcher(tuple(p.get("stop") or ()))
        piece, one, cached, n_ctx = self._piece, self._one, self.cached, self.n_ctx
        sample, to_piece, is_eog = ll.llama_sampler_sample, ll.llama_token_to_piece, ll.llama_vocab_is_eog
        decode, batch_one = ll.llama_decode, ll.llama_batch_get_one
        generated, reason, t_first, t_last = 0, "length", None, None
        clock = time.perf_counter
        while True:
            if ch.stopped(rid):
                reason = "cancelled"
                break
            tok = sample(sampler, ctx, -1)
            t_last = clock()
            if generated == 0:
                t_first = t_last
            if is_eog(vocab, tok):
                reason = "eos"
                break
            generated += 1
            n = to_piece(vocab, tok, piece, 256, 0, True)
            text = matcher.feed(utf8.feed(piece.raw[:n])) if n > 0 else ""
            if text:
                ch.send(p=text)
            if matcher.matched is not None:
                reason = "stop"
                break
            if generated >= max_tokens or len(cached) + 1 >= n_ctx:
                reason = "length"
                break
            one[0] = tok
            rc = decode(ctx, batch_one(one, 1))
            if rc != 0:
                raise RunnerError(f"llama_decode failed while generating (code {rc})")
            cached.append(tok)
        t_end = time.perf_counter()
        if reason != "cancelled":
            tail = matcher.feed(utf8.flush()) + matcher.flush()
            if tail:
                ch.send(p=tail)
        # Decode speed = decode steps between the first and the last sampled token ÷ their time
        # (bench/engine.py measures the bare llama.cpp loop the same way).
        decode_s = (t_last - t_first) if t_first else 0.0
        stats.update(generated_tokens=generated, stop_reason=reason, stop_string=matcher.matched,
                     ttft_s=(t_first - t_start) if t_first else None, decode_s=decode_s,
                     decode_tps=((generated - 1) / decode_s) if decode_s > 0 and generated > 1 else None,
                     total_s=t_end - t_start)
        return stats

    def _sampler(self, p: dict, prompt: list[int]):
        """llama.cpp's default order: [grammar] → penalties → top-k → top-p → min-p → temperature → draw."""
        ll = self.ll
        chain = ll.llama_sampler_chain_init(ll.llama_sampler_chain_default_params())
        grammar = p.get("grammar")
        if grammar:
            g = ll.llama_sampler_init_grammar(self.vocab, grammar.encode(), b"root")
            if not g:
                ll.llama_sampler_free(chain)
                raise RunnerError("the grammar could not be parsed")
            ll.llama_sampler_chain_add(chain, g)
        # -1 = the whole context, as in llama.cpp's CLI (its sampler itself reads -1 as 0, off);
        # never more than the context: llama.cpp allocates the window up front (2**31 = 8.4 GB).
        last_n = int(p.get("repeat_last_n", 64))
        last_n = self.n_ctx if last_n < 0 else min(last_n, self.n_ctx)
        penalty = float(p.get("repeat_penalty", 1.1))
        if last_n != 0 and penalty != 1.0:
            pen = ll.llama_sampler_init_penalties(ll.llama_vocab_n_tokens(self.vocab), last_n,
                                                  penalty, 0.0, 0.0)
            window = prompt[-last_n:]
            for t in window:  # penalties look back into the prompt, as llama.cpp's CLI does
                ll.llama_sampler_accept(pen, t)
            ll.llama_sampler_chain_add(chain, pen)
        temp = float(p.get("temperature", 0.8))
        if temp <= 0:
            ll.llama_sampler_chain_add(chain, ll.llama_sampler_init_greedy())
            return chain
        top_k, top_p, min_p = int(p.get("top_k", 40)), float(p.get("top_p", 0.95)), float(p.get("min_p", 0.05))
        if top_k > 0:
            ll.llama_sampler_chain_add(chain, ll.llama_sampler_init_top_k(top_k))
        if top_p < 1.0:
            ll.llama_sampler_chain_add(chain, ll.llama_sampler_init_top_p(top_p, 1))
        if min_p > 0.0:
            ll.llama_sampler_chain_add(chain, ll.llama_sampler_init_min_p(min_p, 1))
        ll.llama_sampler_chain_add(chain, ll.llama_sampler_init_temp(temp))
        seed = p.get("seed")
        ll.llama_sampler_chain_add(chain, ll.llama_sampler_init_dist(
            ll.LLAMA_DEFAULT_SEED if seed is None else int(seed) & 0xFFFFFFFF))
        return chain


class RunnerError(Exception):
    """A failure to report to the engine as {"ev": "error"}; the runner stays up."""


def main() -> int:
    channel = Channel()
    try:
        runner = Runner(channel)
    except Exception as exc:  # noqa: BLE001 - an import failure must reach the engine as words
        channel.send(ev="fatal", message=f"cannot start llama.cpp: {type(exc).__name__}: {exc}")
        return 1
    runner.serve()
    runner.unload()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
