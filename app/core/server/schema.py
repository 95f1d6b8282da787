"""The OpenAI request and response shapes: parse a request body, build the replies.

Only what Corral can honour is accepted. Fields that would change the answer but cannot be done
here (n > 1, logprobs, tools, a JSON response_format, penalties other than repeat_penalty) are
refused with a 400 that names them, rather than silently ignored; fields that change nothing
(user, metadata, …) are ignored. A message's role is any name: the template the request is
rendered with takes it or refuses it (400). Sampling values are checked by the engine's own
bounds, through the turn pipeline (one set of bounds for every face); this module only names
the field.
"""

from __future__ import annotations

import time
import uuid
from dataclasses import dataclass, field
from typing import Any

from app.core.engine import SamplingError, Stats
from app.core.server.errors import APIError
from app.core.turns import check_overrides

CHAT, COMPLETION = "chat", "completion"
MAX_ROLE_CHARS = 64
SAMPLING_FIELDS = ("temperature", "top_p", "top_k", "min_p", "repeat_penalty", "repeat_last_n",
                   "seed")


@dataclass
class GenerationRequest:
    kind: str                      # chat | completion
    model: str                     # "" = the server's default model
    messages: list[dict[str, str]] | None = None
    prompt: str | None = None
    stream: bool = False
    include_usage: bool = False
    max_tokens: int = 0            # 0 = until the end of the context
    template: str | None = None
    sampling: dict[str, Any] = field(default_factory=dict)  # SamplingParams fields
    id: str = ""
    created: int = 0

    def __post_init__(self) -> None:
        prefix = "chatcmpl-" if self.kind == CHAT else "cmpl-"
        self.id = self.id or prefix + uuid.uuid4().hex[:24]
        self.created = self.created or int(time.time())


def _bad(message: str, param: str | None = None, code: str | None = "invalid_value") -> APIError:
    return APIError(400, message, code=code, param=param)


def _stops(body: dict) -> tuple[str, ...]:
    stop = body.get("stop")
    if stop is None:
        return ()
    if isinstance(stop, str):
        stop = [stop]
    if not isinstance(stop, list) or not all(isinstance(s, str) for s in stop):
        raise _bad("stop must be a string or a list of strings", "stop")
    return tuple(s for s in stop if s)


def _unsupported(body: dict) -> None:
    checks = (
        ("n", lambda v: v not in (None, 1), "n > 1 is not supported: one choice per request"),
        ("best_of", lambda v: v not in (None, 1), "best_of > 1 is not supported"),
        ("logprobs", lambda v: v not in (None, False, 0), "logprobs are not supported"),
        ("top_logprobs", lambda v: v not in (None, 0), "logprobs are not supported"),
        ("echo", lambda v: v not in (None, False), "echo is not supported"),
        ("suffix", lambda v: v not in (None, ""), "suffix (insertion) is not supported"),
        ("tools", lambda v: bool(v), "tools are not supported"),
        ("functions", lambda v: bool(v), "functions are not supported"),
        ("response_format", lambda v: v not in (None, {"type": "text"}),
         "response_format other than text is not supported"),
        ("presence_penalty", lambda v: v not in (None, 0, 0.0),
         "presence_penalty is not supported; use repeat_penalty"),
        ("frequency_penalty", lambda v: v not in (None, 0, 0.0),
         "frequency_penalty is not supported; use repeat_penalty"),
        ("logit_bias", lambda v: bool(v), "logit_bias is not supported"),
    )
    for name, bad, why in checks:
        if bad(body.get(name)):
            raise _bad(why, name, code="unsupported_parameter")


def _content(content: Any, i: int) -> str:
    if content is None:
        return ""
    if isinstance(content, str):
        return content
    if isinstance(content, list):  # [{"type": "text", "text": "..."}, …]
        texts = []
        for part in content:
            if not isinstance(part, dict) or part.get("type") != "text" \
                    or not isinstance(part.get("text"), str):
                raise _bad(f"messages[{i}]: only text content parts are supported", "messages")
            texts.append(part["text"])
        return "".join(texts)
    raise _bad(f"messages[{i}].content must be a string or a list of text parts", "messages")


def _messages(body: dict) -> list[dict[str, str]]:
    messages = body.get("messages")
    if not isinstance(messages, list) or not messages:
        raise _bad("messages must be a non-empty list of {role, content} objects", "messages")
    out = []
    for i, m in enumerate(messages):
        if not isinstance(m, dict):
            raise _bad(f"messages[{i}] must be an object with role and content", "messages")
        role = m.get("role")
        role = "system" if role == "developer" else role
        # Any named role passes here: whether it can be rendered is the chosen template's
        # call (a model's own template may take `tool`, `assistant_tool_call`…; Corral's
        # built-in ones refuse them with a 400 naming the role, from the turn pipeline).
        if not isinstance(role, str) or not role.strip() or len(role) > MAX_ROLE_CHARS:
            raise _bad(f"messages[{i}].role must be a role's name (system, user, assistant, "
                       f"or one the model's own template takes)", "messages")
        if m.get("tool_calls"):
            raise _bad(f"messages[{i}]: tool_calls are not supported (a model's own template "
                       f"may take the call as an assistant_tool_call message's content)",
                       "messages", code="unsupported_parameter")
        out.append({"role": role, "content": _content(m.get("content"), i)})
    return out


def _prompt(body: dict) -> str:
    prompt = body.get("prompt")
    if isinstance(prompt, list) and len(prompt) == 1 and isinstance(prompt[0], str):
        prompt = prompt[0]
    if not isinstance(prompt, str):
        raise _bad("prompt must be a string (token arrays and batches are not supported)",
                   "prompt")
    return prompt


def parse(body: Any, kind: str) -> GenerationRequest:
    """A checked request, or APIError(400) naming the field at fault."""
    if not isinstance(body, dict):
        raise _bad("the request body must be a JSON object", code="invalid_request")
    _unsupported(body)
    model = body.get("model") or ""
    if not isinstance(model, str):
        raise _bad("model must be a string", "model")
    template = body.get("template")
    if template is not None and (kind != CHAT or not isinstance(template, str)):
        raise _bad("template is a template id, and only for chat completions", "template")
    stream = body.get("stream") or False
    if not isinstance(stream, bool):
        raise _bad("stream must be true or false", "stream")
    options = body.get("stream_options") or {}
    if not isinstance(options, dict):
        raise _bad("stream_options must be an object", "stream_options")
    max_name = "max_tokens" if body.get("max_tokens") is not None else "max_completion_tokens"
    max_tokens = body.get(max_name)
    sampling = {k: body[k] for k in SAMPLING_FIELDS if body.get(k) is not None}
    sampling["stop"] = _stops(body)
    try:
        check_overrides({**sampling, "max_tokens": max_tokens})
    except SamplingError as exc:
        param = max_name if exc.field == "max_tokens" else exc.field
        raise _bad(f"{param} {exc.problem}", param) from None
    return GenerationRequest(
        kind=kind, model=model, stream=stream, include_usage=bool(options.get("include_usage")),
        messages=_messages(body) if kind == CHAT else None,
        prompt=_prompt(body) if kind == COMPLETION else None,
        max_tokens=max_tokens or 0, template=template, sampling=sampling)


# --------------------------------------------------------------------------- replies

def finish_reason(stats: Stats | None) -> str:
    reason = stats.stop_reason if stats else ""
    return "length" if reason == "length" else "stop"


def usage(stats: Stats | None) -> dict[str, int]:
    p = stats.prompt_tokens if stats else 0
    c = stats.generated_tokens if stats else 0
    return {"prompt_tokens": p, "completion_tokens": c, "total_tokens": p + c}


def timings(stats: Stats | None) -> dict[str, Any]:
    """llama.cpp's server's extra "timings" object (clients that do not know it ignore it)."""
    if stats is None:
        return {}
    n, decode_s = stats.generated_tokens, stats.decode_s or 0.0
    return {"prompt_n": stats.evaluated_tokens, "prompt_ms": round(stats.prompt_s * 1000, 3),
            "cache_n": stats.reused_tokens, "predicted_n": n,
            "predicted_ms": round(decode_s * 1000, 3),
            "predicted_per_second": stats.decode_tps}


def _envelope(req: GenerationRequest, model: str, chunk: bool) -> dict[str, Any]:
    if req.kind == CHAT:
        obj = "chat.completion.chunk" if chunk else "chat.completion"
    else:
        obj = "text_completion"
    return {"id": req.id, "object": obj, "created": req.created, "model": model,
            "system_fingerprint": None}


def chunk(req: GenerationRequest, model: str, text: str | None, *, role: bool = False,
          finish: str | None = None, stats: Stats | None = None) -> dict[str, Any]:
    """One streamed event: a piece of text, the opening role (chat), or the finish reason
    (with the timings of the generation)."""
    out = _envelope(req, model, True)
    if req.kind == CHAT:
        delta: dict[str, Any] = {}
        if role:
            delta = {"role": "assistant", "content": ""}
        elif text:
            delta = {"content": text}
        out["choices"] = [{"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish}]
    else:
        out["choices"] = [{"index": 0, "text": text or "", "logprobs": None,
                           "finish_reason": finish}]
    if stats is not None:
        out["timings"] = timings(stats)
    return out


def usage_chunk(req: GenerationRequest, model: str, stats: Stats | None) -> dict[str, Any]:
    """The last event when stream_options.include_usage is set: no choices, the usage."""
    return {**_envelope(req, model, True), "choices": [], "usage": usage(stats)}


def whole(req: GenerationRequest, model: str, text: str, stats: Stats | None) -> dict[str, Any]:
    """The reply of a request that did not stream."""
    out = _envelope(req, model, False)
    if req.kind == CHAT:
        out["choices"] = [{"index": 0, "message": {"role": "assistant", "content": text},
                           "logprobs": None, "finish_reason": finish_reason(stats)}]
    else:
        out["choices"] = [{"index": 0, "text": text, "logprobs": None,
                           "finish_reason": finish_reason(stats)}]
    out["usage"] = usage(stats)
    out["timings"] = timings(stats)
    return out
