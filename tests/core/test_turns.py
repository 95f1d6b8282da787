"""The core turn pipeline (app.core.turns) on the real engine with generated models: the knobs'
order, the context fit bounded by the context (a huge paste refused from its bytes, never
tokenized), a turn stopped at every stage with the reason saved, why a reply ended."""

from __future__ import annotations

import threading
import time

import pytest

from app.core.chats import ChatStore
from app.core.library import Library, register_download
from app.core.remote import RemoteServer
from app.core.remote_client import RemoteBackend
from app.core.sampling import SamplingError
from app.core.settings import ModelSettings, Settings
from app.core.templates import ContextOverflow, TemplateRegistry, fit_conversation
from app.core.turns import (CONTEXT_FULL, TOKEN_LIMIT, USER, LocalBackend, ModelRef, Turn,
                            TurnListener, TurnOptions, TurnRequest, check_overrides,
                            load_settings_for, resolve_model, sampling_for)

PASTE = "a line of pasted log output, with some words and numbers 12345\n" * 20_000  # 1.2 MB


@pytest.fixture(scope="module")
def engine_backend():
    backend = LocalBackend()
    yield backend
    backend.close()


def ask(path, messages=(), prompt=None, **knobs) -> TurnRequest:
    overrides = {"threads": 2, "temperature": 0.0, **knobs}
    return TurnRequest(ModelRef(path.name, path), messages=tuple(messages), prompt=prompt,
                       options=TurnOptions(overrides=overrides))


def user(text: str) -> dict[str, str]:
    return {"role": "user", "content": text}


# --------------------------------------------------------------------------- knobs

def test_knobs_come_from_the_engine_the_model_and_the_conversation_in_that_order():
    saved = ModelSettings(context=1024, gpu_layers=3, sampling={"temperature": 0.2, "top_k": 5})
    params = sampling_for(saved, {"top_k": 7, "seed": -1, "stop": ["x"], "min_p": None})
    assert (params.temperature, params.top_k, params.seed, params.stop) == (0.2, 7, None, ("x",))
    assert params.min_p == 0.05 and params.max_tokens == 256  # llama.cpp's defaults
    app = Settings(backend="cpu", gpu_layers=-1, threads=3, context_size=4096)
    load = load_settings_for(app, saved, {"threads": 2})
    assert (load.backend, load.gpu_layers, load.threads, load.n_ctx) == ("cpu", 3, 2, 1024)
    load = load_settings_for(app, ModelSettings(), {}, n_ctx_train=2048)
    assert (load.gpu_layers, load.threads, load.n_ctx) == (None, 3, 2048)
    with pytest.raises(SamplingError) as err:
        check_overrides({"temperature": float("nan")})
    assert err.value.field == "temperature"


# --------------------------------------------------------------------------- the fit

def test_the_fit_never_counts_more_than_the_context_can_hold():
    vicuna = TemplateRegistry().get("vicuna-v1.1")
    counted: list[int] = []

    def count(text: str) -> int:  # one token per word of at most 7 bytes (with its space)
        counted.append(len(text.encode()))
        return len(text.split())

    chat = []
    for i in range(500):
        chat += [user(f"q{i} " + "llama " * 20), {"role": "assistant", "content": "yes " * 20}]
    chat.append(user("last one"))
    unbounded, used = fit_conversation(vicuna, chat, 200, count, 50)
    assert max(counted) > 100_000  # without a bound the whole chat was counted first
    counted.clear()
    bounded, used_bounded = fit_conversation(vicuna, chat, 200, count, 50, max_token_bytes=7)
    assert (bounded.text, bounded.dropped_turns, used_bounded) == \
        (unbounded.text, unbounded.dropped_turns, used)
    assert counted and max(counted) <= (200 - 50) * 7
    # A last message that cannot fit is refused from its size alone: nothing is counted.
    counted.clear()
    with pytest.raises(ContextOverflow, match="needs at least 180000 tokens") as err:
        fit_conversation(vicuna, chat + [user(PASTE)], 200, count, 50, max_token_bytes=7)
    assert counted == [] and err.value.exact is False and err.value.n_ctx == 200


def test_a_huge_paste_is_refused_at_once_with_its_numbers(engine_backend, small_model):
    chat = []
    for i in range(500):
        chat += [user(f"question {i}: what is a llama?"), {"role": "assistant", "content": "a camelid"}]
    for messages in ([user(PASTE)], chat + [user(PASTE)]):
        engine_backend.prepare(ask(small_model, [user("hi")], context=2048))  # loaded
        t0 = time.perf_counter()
        with pytest.raises(ContextOverflow) as err:
            Turn(engine_backend, ask(small_model, messages, context=2048)).run()
        assert time.perf_counter() - t0 < 0.5  # "well under a second" (issue 17)
        assert "needs at least" in str(err.value) and "holds 2048" in str(err.value)
    # Completion mode: the text is sent as it is, and refused the same way.
    with pytest.raises(ContextOverflow, match="at least .* tokens"):
        engine_backend.prepare(ask(small_model, prompt=PASTE, context=2048))


# --------------------------------------------------------------------------- stopping

class Watch(TurnListener):
    def __init__(self) -> None:
        self.evaluating = threading.Event()
        self.streaming = threading.Event()

    def prompt_progress(self, done: int, total: int) -> None:
        if done > 0:
            self.evaluating.set()

    def pieces(self, text: str) -> None:
        self.streaming.set()


def run_and_stop(backend, request, store, when: str):
    """Run the turn in a thread, stop it once `when` happened; (result, seconds to stop)."""
    conv = store.create_conversation(title="t")
    store.add_message(conv.id, "user", "x")
    writer = store.begin_reply(conv.id)
    watch = Watch()
    turn = Turn(backend, request, writer=writer, listener=watch)
    done: dict = {}
    thread = threading.Thread(target=lambda: done.setdefault("result", turn.run()))
    thread.start()
    assert getattr(watch, when).wait(120)
    t0 = time.perf_counter()
    turn.stop()
    thread.join(60)
    assert not thread.is_alive()
    return done["result"], time.perf_counter() - t0, store.message(writer.message_id)


def test_stop_during_prompt_evaluation_and_generation_ends_the_turn_saying_why(
        home, engine_backend, small_model):
    store = ChatStore()
    long_prompt = [user("the history of the llama " * 500)]  # several batches to evaluate
    result, took, saved = run_and_stop(engine_backend, ask(small_model, long_prompt,
                                                           context=4096, max_tokens=16),
                                       store, "evaluating")
    assert took < 0.5 and result.stopped_by == USER and result.stats.aborted_in_prompt
    assert (saved.state, saved.stats["stopped_by"], saved.stats["stop_reason"]) == \
        ("interrupted", "user", "cancelled")
    result, took, saved = run_and_stop(engine_backend, ask(small_model, [user("hello")],
                                                           context=4096, max_tokens=4000),
                                       store, "streaming")
    assert took < 0.5 and result.stopped_by == USER and saved.content == result.text
    assert 0 < result.stats.generated_tokens < 4000
    # The runner is free again: the next turn runs to its end.
    after = Turn(engine_backend, ask(small_model, [user("hello")], context=4096,
                                     max_tokens=3)).run()
    assert (after.state, after.stopped_by, after.stats.generated_tokens) == \
        ("complete", TOKEN_LIMIT, 3)
    store.close()


def test_a_turn_stopped_before_it_starts_runs_nothing(home, tiny_model):
    backend = LocalBackend()
    try:
        store = ChatStore()
        conv = store.create_conversation(title="t")
        writer = store.begin_reply(conv.id)
        turn = Turn(backend, ask(tiny_model, [user("hi")]), writer=writer)
        turn.stop()  # before the model is even loaded
        result = turn.run()
        assert result.stopped_by == USER and backend.engine.model is None
        assert store.message(writer.message_id).stats["stopped_by"] == "user"
        store.close()
    finally:
        backend.close()


def test_a_reply_that_fills_the_context_says_so(engine_backend, tiny_model):
    # 256 tokens of context (llama.cpp's least), no token limit: the reply runs to the end of it.
    result = Turn(engine_backend, ask(tiny_model, [user("hello world " * 20)], context=256,
                                      max_tokens=0)).run()
    assert result.stopped_by == CONTEXT_FULL and result.why == "stop: context full"
    assert result.stats.prompt_tokens + result.stats.generated_tokens >= 255
    limited = Turn(engine_backend, ask(tiny_model, [user("hello")], context=256,
                                       max_tokens=5)).run()
    assert limited.stopped_by == TOKEN_LIMIT and limited.why == "stop: token limit"


# --------------------------------------------------------------------------- models, backends

def test_models_are_named_by_path_library_id_or_server(home, tiny_model, tmp_path):
    model = Library().import_file(tiny_model)
    assert resolve_model(str(model.path)) == resolve_model(model.id)
    assert resolve_model(model.id.upper()).id == model.id and resolve_model(model.id).in_library
    outside = resolve_model(str(tiny_model))  # the same bytes, elsewhere: not the library's
    assert outside.path == tiny_model and not outside.in_library
    from app.core.remote import ServerRegistry
    ServerRegistry().add("http://127.0.0.1:9/v1", name="box")
    remote = resolve_model("box/some-model")
    assert remote.remote and remote.remote_id == "some-model" and remote.id == "box/some-model"
    from app.core.library import LibraryError
    with pytest.raises(LibraryError, match="no model"):
        resolve_model("box/some-model", allow_paths=False, allow_remote=False)


def test_a_remote_turn_is_prepared_without_any_request():
    backend = RemoteBackend(RemoteServer("box", "http://127.0.0.1:9/v1"), offline=True)
    request = TurnRequest(ModelRef("box/m", server=backend.server, remote_id="m"),
                          messages=({"role": "system", "content": "old"}, user("hi")),
                          options=TurnOptions(system="Be brief.", stop=("END",),
                                              overrides={"max_tokens": 9, "stop": ["\n"]}))
    turn = backend.prepare(request)
    assert turn.messages == ({"role": "system", "content": "Be brief."}, user("hi"))
    assert turn.stop == ("\n", "END") and turn.params.max_tokens == 9 and turn.text is None
    assert turn.template_id == "server" and turn.load is None
    backend.close()


def test_a_finished_download_is_registered_with_its_header(home, tiny_model):
    models = Library().models_dir
    models.mkdir(parents=True, exist_ok=True)
    path = models / "fresh.gguf"
    path.write_bytes(tiny_model.read_bytes())
    model = register_download(models, path)
    assert model.path == path and model.ok and model.header.context_length == 2048
    assert "fresh" in Library().registry_path.read_text()
