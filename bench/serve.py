"""Streaming through `corral serve` against `corral chat`, same model, same settings, one run.

    python bench/serve.py [--model PATH] [--tokens 64] [--rounds 9] [--threads 2]

Starts `corral serve` as a user would (a subprocess, CORRAL_HOME in a temporary folder whose
library holds the model; default: the generated TinyLlama-1.1B-shaped Q4_0), then alternates:
  - `corral chat MODEL -p PROMPT --temp 0 --max-tokens N` as a whole command; its decode
    tokens/s is what it prints (measured in the runner, first token → last);
  - POST /v1/completions with "stream": true, the same prompt and sampling; tokens/s is measured
    by this client from the arrival of the first streamed token to the last (every token has
    crossed the runner's pipe, the server's worker thread, asyncio, HTTP and SSE parsing); the
    server's own runner rate ("timings") is printed beside it, to tell a slow API path from a
    machine that was busy with something else during that run.
Each round's prompt starts differently, so the server's KV cache cannot reuse a previous prompt
(turn-to-turn reuse is a feature, but not what is compared here). Prints medians, the ratio
API/chat (target ≥ 0.95: the median of per-round ratios, since this 2-core machine is shared and
noisy), and the API's time to first byte (response headers) and to the first token.
"""

from __future__ import annotations

import argparse
import os
import queue
import re
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import httpx2  # noqa: E402

from app.testing import models  # noqa: E402

PROMPT = "The history of the llama begins in the high plains of South America, where"
# `corral serve` even before it is listed in app.cli's commands
RUN_CLI = ("import sys, app.cli as cli; "
           "cli.COMMAND_MODULES = tuple(dict.fromkeys(cli.COMMAND_MODULES + "
           "('app.cli.serve_cmd', 'app.cli.servers_cmd'))); sys.exit(cli.main())")


def chat_run(env, path: str, prompt: str, tokens: int, threads: int) -> tuple[float, float]:
    r = subprocess.run([sys.executable, "-m", "app", "chat", path, "-p", prompt, "--temp", "0",
                        "--repeat-penalty", "1", "--max-tokens", str(tokens),
                        "--threads", str(threads), "--backend", "cpu"],
                       env=env, capture_output=True, text=True, timeout=600, cwd=ROOT)
    found = re.search(r"(\d+) tokens, ([\d.]+) tok/s, first token (\d+) ms", r.stderr)
    if r.returncode != 0 or not found:
        raise SystemExit(f"corral chat failed: {r.stderr}")
    assert int(found[1]) == tokens, r.stderr
    return float(found[2]), float(found[3]) / 1000


def api_run(http: httpx2.Client, url: str, model: str, prompt: str,
            tokens: int) -> tuple[float, float, float, float]:
    """(tokens/s first → last streamed token, time to first byte, time to first token, the
    server runner's own decode tokens/s from "timings")."""
    t0 = time.perf_counter()
    response = http.send(http.build_request("POST", url + "/completions", json={
        "model": model, "prompt": prompt, "max_tokens": tokens, "temperature": 0,
        "repeat_penalty": 1.0, "stream": True, "stream_options": {"include_usage": True}}),
        stream=True)
    ttfb = time.perf_counter() - t0
    first = last = None
    usage = timings = None
    try:
        for line in response.iter_lines():
            if not line.startswith("data: ") or line == "data: [DONE]":
                continue
            event = __import__("json").loads(line[6:])
            usage = event.get("usage") or usage
            timings = event.get("timings") or timings
            if any(c.get("text") for c in event.get("choices", [])):
                last = time.perf_counter()
                first = first or last
    finally:
        response.close()
    n = usage["completion_tokens"]
    assert n == tokens, usage
    return n / (last - first), ttfb, first - t0, timings["predicted_per_second"]


def start_server(env, model_id: str, threads: int) -> tuple[subprocess.Popen, str]:
    proc = subprocess.Popen([sys.executable, "-c", RUN_CLI, "serve", "--port", "0", "--model",
                             model_id, "--threads", str(threads)], env=env, cwd=ROOT, text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
    lines: queue.Queue = queue.Queue()
    threading.Thread(target=lambda: [lines.put(x) for x in proc.stdout], daemon=True).start()
    line = lines.get(timeout=300)
    if not line.startswith("Serving the OpenAI API at "):
        raise SystemExit(f"corral serve did not start: {line}")
    return proc, line.split(" at ")[1].split()[0]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", help="GGUF file (default: the generated TinyLlama-1.1B-shaped Q4_0)")
    ap.add_argument("--tokens", type=int, default=64)
    ap.add_argument("--rounds", type=int, default=9)
    ap.add_argument("--threads", type=int, default=2)
    args = ap.parse_args()
    path = Path(args.model or models.cached_model("tinyllama_shape")).resolve()
    home = Path(tempfile.mkdtemp(prefix="corral-bench-serve-"))
    (home / "models").mkdir()
    (home / "models" / path.name).symlink_to(path)
    (home / "settings.json").write_text('{"backend": "cpu"}')
    model_id = path.name.removesuffix(".gguf")
    env = dict(os.environ, CORRAL_HOME=str(home), PYTHONUNBUFFERED="1")
    print(f"model: {path}\nthreads: {args.threads}, tokens per run: {args.tokens}, "
          f"rounds: {args.rounds}")

    # A SIGTERM (timeout, kill) ends this script through its `finally`, which stops the server.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    proc, url = start_server(env, model_id, args.threads)
    chat, api, ttfbs, ttfts, chat_ttfts, inner = [], [], [], [], [], []
    try:
        with httpx2.Client(timeout=600) as http:
            api_run(http, url, model_id, "Warm-up. " + PROMPT, 8)  # page cache, first load
            chat_run(env, str(path), "Warm-up. " + PROMPT, 8, args.threads)
            for r in range(args.rounds):
                prompt = f"Round {r + 1}. {PROMPT}"
                order = ("chat", "api") if r % 2 == 0 else ("api", "chat")
                for which in order:
                    if which == "chat":
                        tps, ttft = chat_run(env, str(path), prompt, args.tokens, args.threads)
                        chat.append(tps)
                        chat_ttfts.append(ttft)
                    else:
                        tps, ttfb, ttft, runner = api_run(http, url, model_id, prompt,
                                                          args.tokens)
                        api.append(tps)
                        inner.append(runner)
                        ttfbs.append(ttfb)
                        ttfts.append(ttft)
                print(f"  round {r + 1}: corral chat {chat[-1]:6.2f} tok/s   API stream "
                      f"{api[-1]:6.2f} tok/s (its runner {inner[-1]:6.2f})   "
                      f"ratio {api[-1] / chat[-1]:.3f}   "
                      f"API first byte {ttfbs[-1] * 1000:.0f} ms, first token "
                      f"{ttfts[-1] * 1000:.0f} ms", flush=True)
    finally:
        proc.terminate()
        proc.wait(timeout=60)
    c, a = statistics.median(chat), statistics.median(api)
    ratio = statistics.median(x / y for x, y in zip(api, chat))
    print(f"streamed tokens/s (medians)  corral chat: {c:.2f}   API (SSE): {a:.2f}")
    print(f"ratio API/chat: {ratio:.3f}  (target >= 0.95; the median of the per-round ratios, "
          f"each round's two runs back to back, so a burst of load elsewhere hits one round)")
    print(f"API time to first byte: {statistics.median(ttfbs) * 1000:.0f} ms (median), "
          f"to first token: {statistics.median(ttfts) * 1000:.0f} ms "
          f"(corral chat's first token: {statistics.median(chat_ttfts) * 1000:.0f} ms)")


if __name__ == "__main__":
    main()
