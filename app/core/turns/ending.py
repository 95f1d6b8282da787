"""How a turn ended, and its stats in words: the one formatter every face uses (the window's
stats line, `corral chat`'s last line, a chat exported as Markdown).

Why a reply stopped (`stopped_by`, saved with the reply's stats):
    user          stopped: Stop, Esc, Ctrl+C, a client that went away
    end_of_text   the model ended its reply
    stop_string   a stop string came (the stats also hold which: `stop_string`)
    token_limit   the reply reached the number of tokens asked for
    context_full  the context had no room left
    error         something failed (the stats also hold `error`)
The engine's own `stop_reason` (eos | stop | length | cancelled | error) is kept beside it, and
read when a reply saved by an older Corral has no `stopped_by`.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Any, Mapping

from app.core.engine import Stats

if TYPE_CHECKING:
    from app.core.turns.model import PreparedTurn

USER, END_OF_TEXT, STOP_STRING = "user", "end_of_text", "stop_string"
TOKEN_LIMIT, CONTEXT_FULL, ERROR = "token_limit", "context_full", "error"
WORDS = {USER: "stopped by you", END_OF_TEXT: "end of text", STOP_STRING: "stop string",
         TOKEN_LIMIT: "token limit", CONTEXT_FULL: "context full", ERROR: "error"}
_FROM_ENGINE = {"cancelled": USER, "eos": END_OF_TEXT, "stop": STOP_STRING,
                "length": TOKEN_LIMIT, "error": ERROR}
# ReplyWriter's final states
COMPLETE, INTERRUPTED, FAILED = "complete", "interrupted", "error"


def stopped_by(stats: Stats, turn: "PreparedTurn | None" = None) -> str:
    """Why the reply ended (see the module's doc), from the engine's stats and the turn: a
    length stop is the context being full when the room left, not the tokens asked for, was
    the limit."""
    reason = _FROM_ENGINE.get(stats.stop_reason, ERROR if stats.error else END_OF_TEXT)
    if reason == TOKEN_LIMIT and turn is not None:
        asked = turn.requested_max_tokens
        if not asked or asked > turn.params.max_tokens:
            return CONTEXT_FULL
    return reason


@dataclass(frozen=True)
class TurnResult:
    """A turn's end: the reply's final `state` (complete | interrupted | error), why it stopped,
    its text and stats."""

    state: str
    stopped_by: str
    stats: Stats
    text: str = ""
    error: str | None = None

    @property
    def why(self) -> str:
        """One sentence a person can read: why the reply ended."""
        return why(self.saved_stats(), self.state)

    def saved_stats(self) -> dict[str, Any]:
        """The stats saved with the reply (app.core.chats.ReplyWriter.finish)."""
        out = {k: v for k, v in asdict(self.stats).items() if v is not None}
        out["stopped_by"] = self.stopped_by
        if self.error:
            out["error"] = self.error
        return out


def reason_of(stats: Mapping[str, Any]) -> str | None:
    """`stopped_by` of saved stats (or what an older Corral's stop_reason meant)."""
    return stats.get("stopped_by") or _FROM_ENGINE.get(stats.get("stop_reason") or "")


def why(stats: Mapping[str, Any], state: str | None = None) -> str:
    """The stop reason in words: 'stop: context full', 'stop: stop string "USER:"'…"""
    reason = reason_of(stats)
    if state == INTERRUPTED and reason != USER:
        return "interrupted (Corral was closed mid-reply)"
    if reason is None:
        return ""
    words = WORDS.get(reason, reason)
    said = stats.get("stop_string")
    if reason == STOP_STRING and isinstance(said, str) and said:
        words += f" {said if len(said) <= 40 else said[:40] + '…'!r}"
    return f"stop: {words}"


def describe_stats(stats: Mapping[str, Any], state: str | None = None, *,
                   detail: bool = False, error: bool = True) -> str:
    """One line for people: '128 tokens · 27.1 tok/s · first token 210 ms · stop: end of
    text'. `detail` adds the prompt's tokens (and those reused from the cache) and the seed;
    `error` the error's message (a face that shows it apart leaves it out: said once)."""
    parts: list[str] = []
    if stats.get("generated_tokens") is not None:
        parts.append(f"{stats['generated_tokens']} tokens")
    if stats.get("decode_tps"):
        parts.append(f"{stats['decode_tps']:.1f} tok/s")
    elif detail:
        parts.append("– tok/s")
    if stats.get("ttft_s") is not None:
        parts.append(f"first token {stats['ttft_s'] * 1000:.0f} ms")
    if detail and stats.get("prompt_tokens"):
        parts.append(f"prompt {stats['prompt_tokens']} tokens "
                     f"({stats.get('reused_tokens') or 0} reused)")
    stop = why(stats, state)
    if stop:
        parts.append(stop)
    if error and stats.get("error"):
        parts.append(f"error: {stats['error']}")
    if detail and stats.get("seed") is not None:
        parts.append(f"seed {stats['seed']}")
    return " · ".join(parts)
