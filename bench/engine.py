"""Engine speed against a bare llama.cpp loop, in one run, on the TinyLlama-1.1B-shaped model.

Prints:
- decode tokens/s of `Engine` (runner process, pipes, stop-string and UTF-8 handling) and of a
  bare low-level loop in this process (llama_decode one token + a greedy llama_sampler), over
  the same model and settings, and their ratio (target ≥ 0.97);
- time to first token of a conversation's second turn with and without KV-cache reuse
  (target: with ≤ 0.2× without).

Short runs alternate (bare, engine, engine, bare, …) with both models kept loaded, and the
medians are compared, because this machine is noisy. Usage: python bench/engine.py [--model PATH] [--tokens 48] [--rounds 12]
"""

from __future__ import annotations

import argparse
import ctypes
import statistics
import time

from app.core.engine import Engine, LoadSettings, SamplingParams
from app.testing import models

_quiet_log = None
PROMPT = "The history of the llama begins in the high plains of South America, where"


class BareLoop:
    """llama.cpp with nothing around it, in this process: the reference the engine is measured against."""

    def __init__(self, model_path: str, threads: int, n_ctx: int) -> None:
        import llama_cpp as ll

        global _quiet_log  # llama.cpp keeps the pointer: a collected callback would segfault
        _quiet_log = ll.llama_log_callback(lambda *a: None)
        ll.llama_log_set(_quiet_log, ctypes.c_void_p(0))
        self.ll = ll
        self.model = ll.llama_model_load_from_file(model_path.encode(), ll.llama_model_default_params())
        cp = ll.llama_context_default_params()
        cp.n_ctx, cp.n_batch = n_ctx, 512
        cp.n_threads = cp.n_threads_batch = threads
        cp.no_perf = True
        self.ctx = ll.llama_init_from_model(self.model, cp)
        self.vocab = ll.llama_model_get_vocab(self.model)

    def decode_tps(self, n_tokens: int) -> float:
        """Prompt, then n_tokens greedy tokens; decode steps between first and last token ÷ time."""
        ll = self.ll
        ll.llama_memory_clear(ll.llama_get_memory(self.ctx), True)
        data = PROMPT.encode()
        buf = (ll.llama_token * 512)()
        n = ll.llama_tokenize(self.vocab, data, len(data), buf, 512, True, True)
        ll.llama_decode(self.ctx, ll.llama_batch_get_one(buf, n))
        smpl = ll.llama_sampler_chain_init(ll.llama_sampler_chain_default_params())
        ll.llama_sampler_chain_add(smpl, ll.llama_sampler_init_greedy())
        one = (ll.llama_token * 1)()
        t_first = t_last = 0.0
        for i in range(n_tokens):
            tok = ll.llama_sampler_sample(smpl, self.ctx, -1)
            t_last = time.perf_counter()
            if i == 0:
                t_first = t_last
            if i == n_tokens - 1:
                break
            one[0] = tok
            ll.llama_decode(self.ctx, ll.llama_batch_get_one(one, 1))
        ll.llama_sampler_free(smpl)
        return (n_tokens - 1) / (t_last - t_first)

    def close(self) -> None:
        self.ll.llama_free(self.ctx)
        self.ll.llama_model_free(self.model)


def engine_decode_tps(engine: Engine, n_tokens: int) -> float:
    gen = engine.generate(PROMPT, SamplingParams(max_tokens=n_tokens, temperature=0.0,
                                                 repeat_penalty=1.0))
    for _ in gen:
        pass
    assert gen.stats.generated_tokens == n_tokens, gen.stats
    return gen.stats.decode_tps


def turn2_ttft(engine: Engine, model_path, settings: LoadSettings, reuse: bool) -> float:
    """Time to first token of turn 2 of a conversation, with or without the KV cache of turn 1."""
    turn1 = ("A chat between a curious user and an artificial intelligence assistant. " * 12 +
             "USER: Tell me about llamas. ASSISTANT:")
    params = SamplingParams(max_tokens=32, temperature=0.0, repeat_penalty=1.0)
    engine.load(model_path, settings)  # a fresh context: nothing cached
    gen = engine.generate(turn1, params)
    reply = "".join(gen)
    turn2 = turn1 + reply + "</s>USER: And alpacas? ASSISTANT:"
    if not reuse:
        engine.load(model_path, settings)  # forget turn 1: the whole conversation is evaluated again
    gen = engine.generate(turn2, SamplingParams(max_tokens=1, temperature=0.0))
    for _ in gen:
        pass
    return gen.stats.ttft_s, gen.stats


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", help="GGUF file (default: the generated TinyLlama-1.1B-shaped Q4_0)")
    ap.add_argument("--tokens", type=int, default=48)
    ap.add_argument("--rounds", type=int, default=12)
    ap.add_argument("--threads", type=int, default=2)
    args = ap.parse_args()
    path = args.model or str(models.cached_model("tinyllama_shape"))
    n_ctx = 2048
    settings = LoadSettings(backend="cpu", threads=args.threads, n_ctx=n_ctx)
    print(f"model: {path}\nthreads: {args.threads}, tokens per run: {args.tokens}, rounds: {args.rounds}")

    bare, ours = [], []
    reference = BareLoop(path, args.threads, n_ctx)
    with Engine() as engine:
        engine.load(path, settings)
        engine_decode_tps(engine, 8)  # warm the page cache and the runner
        reference.decode_tps(8)
        # Short runs, alternated, so that whatever else the machine does falls on both alike.
        for r in range(args.rounds):
            first, second = (reference.decode_tps, lambda n: engine_decode_tps(engine, n))
            if r % 2:
                ours.append(second(args.tokens))
                bare.append(first(args.tokens))
            else:
                bare.append(first(args.tokens))
                ours.append(second(args.tokens))
            print(f"  round {r + 1:2}: bare {bare[-1]:6.2f} tok/s   engine {ours[-1]:6.2f} tok/s   "
                  f"ratio {ours[-1] / bare[-1]:.3f}")
        reference.close()
        b, e = statistics.median(bare), statistics.median(ours)
        ratios = sorted(o / r for o, r in zip(ours, bare))
        print(f"decode tokens/s  bare llama.cpp loop: {b:.2f}   Engine: {e:.2f}   "
              f"ratio Engine/bare: {e / b:.3f} (median of per-round ratios "
              f"{statistics.median(ratios):.3f})  (target >= 0.97)")

        with_reuse, s1 = turn2_ttft(engine, path, settings, reuse=True)
        without, s2 = turn2_ttft(engine, path, settings, reuse=False)
        print(f"turn-2 time to first token  with KV reuse: {with_reuse * 1000:.0f} ms "
              f"({s1.evaluated_tokens} of {s1.prompt_tokens} prompt tokens evaluated)   "
              f"without: {without * 1000:.0f} ms ({s2.evaluated_tokens} evaluated)   "
              f"ratio: {with_reuse / without:.3f}  (target <= 0.2)")


if __name__ == "__main__":
    main()
