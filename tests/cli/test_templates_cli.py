"""`corral templates list` and `corral prompt`, run as users get them: the shipped command in a
child process (`python -m app`), nothing registered by the test."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from app.testing.models import CHATML_TEMPLATE

# Gemma 7B it's published template (from llama.cpp tests/test-chat-template.cpp, as in
# tests/data/llama_cpp_chat_templates.json): it refuses a system message.
_PUBLISHED = json.loads((Path(__file__).parents[1] / "data" / "llama_cpp_chat_templates.json")
                        .read_text(encoding="utf-8"))
GEMMA_TEMPLATE = next(c["template"] for c in _PUBLISHED["cases"]
                      if c["name"] == "google/gemma-7b-it")


@pytest.fixture
def corral(tmp_path):
    """corral(*args) -> the finished `corral ARGS` (text stdout and stderr), on its own home."""
    def run(*args: str) -> subprocess.CompletedProcess:
        return subprocess.run([sys.executable, "-m", "app", *args], capture_output=True,
                              text=True, timeout=120,
                              env={**os.environ, "CORRAL_HOME": str(tmp_path / "home")})
    return run


def write(tmp_path, data, name="chat.json"):
    path = tmp_path / name
    path.write_text(data if isinstance(data, str) else json.dumps(data), encoding="utf-8")
    return path


CHAT = [{"role": "user", "content": "Hello!"}, {"role": "assistant", "content": "Hi!"},
        {"role": "user", "content": "Bye?"}]


BUILT_IN = [  # id, kind, name: the whole table
    ("alpaca", "chat", "Alpaca (Stanford)"),
    ("chatml", "chat", "ChatML (<|im_start|>)"),
    ("dalai-ai-dialog", "completion", "Dalai: AI dialog"),
    ("dalai-chatbot", "completion", "Dalai: chatbot"),
    ("dalai-default", "completion", "Dalai: default (Alpaca instruction)"),
    ("dalai-rewrite", "completion", "Dalai: rewrite"),
    ("dalai-translate", "completion", "Dalai: translate"),
    ("dalai-tweet-sentiment", "completion", "Dalai: tweet sentiment"),
    ("falcon-instruct", "chat", "Falcon Instruct (User: / Assistant:)"),
    ("koala", "chat", "Koala (BEGINNING OF CONVERSATION)"),
    ("llama-2-chat", "chat", "Llama 2 Chat ([INST] <<SYS>>)"),
    ("llama-3", "chat", "Llama 3 Instruct"),
    ("llama", "completion", "Raw completion (no template)"),
    ("mistral-instruct", "chat", "Mistral Instruct v0.1 / v0.2 ([INST])"),
    ("vicuna-v0", "chat", "Vicuna v0 (### Human / ### Assistant)"),
    ("vicuna-v1.1", "chat", "Vicuna v1.1 / v1.3 / v1.5 (USER / ASSISTANT)"),
    ("wizardlm", "chat", "WizardLM 7B ({instruction} ### Response:)"),
    ("zephyr", "chat", "Zephyr / TinyLlama Chat (<|user|>)"),
]


def test_templates_list(corral):
    r = corral("templates", "list")
    assert (r.returncode, r.stderr) == (0, "")
    assert [tuple(line.split(None, 3)) for line in r.stdout.splitlines()] == [
        (tid, "built-in", kind, name) for tid, kind, name in BUILT_IN]
    r = corral("templates", "list", "--json")
    assert (r.returncode, r.stderr) == (0, "")
    data = json.loads(r.stdout)
    assert [(d["id"], d["kind"], d["name"]) for d in data] == BUILT_IN
    vicuna = next(d for d in data if d["id"] == "vicuna-v1.1")
    assert (vicuna["stop"], vicuna["format"]) == (["</s>", "USER:"], "turns")


def header(template: str, why: str, stop: str, bos: str = "yes") -> str:
    """What `corral prompt` says on stderr about the prompt it printed."""
    return f"# template: {template}; {why}\n# add BOS: {bos}\n# stop: {stop}\n"


VICUNA = "vicuna-v1.1 (Vicuna v1.1 / v1.3 / v1.5 (USER / ASSISTANT))"
CHATML = "chatml (ChatML (<|im_start|>))"
CHATML_CHAT = ("<|im_start|>user\nHello!<|im_end|>\n<|im_start|>assistant\nHi!<|im_end|>\n"
               "<|im_start|>user\nBye?<|im_end|>\n<|im_start|>assistant\n")


def test_prompt_with_template_prints_exact_text(tmp_path, corral):
    path = write(tmp_path, CHAT)
    r = corral("prompt", "--template", "vicuna-v1.1", "--messages", str(path),
               "--system", "Be nice.")
    assert r.returncode == 0
    assert r.stdout == "Be nice. USER: Hello! ASSISTANT: Hi!</s>USER: Bye? ASSISTANT:"
    assert r.stderr == header(VICUNA, "user: chosen for this conversation", '["</s>", "USER:"]')


def test_prompt_detects_from_the_model_file(tmp_path, corral, make_model):
    model = make_model("tiny", folder=tmp_path / "models", name="vicuna-7b-v1.5")
    path = write(tmp_path, CHAT)
    r = corral("prompt", str(model), "--messages", str(path), "--system", "")
    assert r.returncode == 0
    assert r.stdout == "USER: Hello! ASSISTANT: Hi!</s>USER: Bye? ASSISTANT:"
    assert r.stderr == header(VICUNA, "name: file name 'vicuna-7b-v1.5.F32.gguf': Vicuna v1.1 / "
                              "v1.3 / v1.5", '["</s>", "USER:"]')
    # --template with a model is the user's choice and wins over detection.
    r = corral("prompt", str(model), "--template", "chatml", "--messages", str(path))
    assert (r.returncode, r.stdout) == (0, CHATML_CHAT)
    assert r.stderr == header(CHATML, "user: chosen for this conversation", '["<|im_end|>"]')


def test_prompt_uses_the_models_own_template(tmp_path, corral, make_model):
    model = make_model("tiny", folder=tmp_path / "own", name="vicuna-with-template",
                       chat_template=CHATML_TEMPLATE)
    path = write(tmp_path, CHAT)
    r = corral("prompt", str(model), "--messages", str(path))
    assert (r.returncode, r.stdout) == (0, CHATML_CHAT)
    assert r.stderr == header("gguf (vicuna-with-template's own chat template)",
                              "gguf: the model file carries its own chat template",
                              '["</s>", "<|im_end|>"]')


@pytest.mark.parametrize("content,said", [
    ("{ not json", "is not valid JSON (line 1, column 3: Expecting property name enclosed in "
                   "double quotes)"),
    ('{"role": "user"}', 'a conversation is a list of {"role", "content"} objects'),
    ('[{"role": "bot", "content": "x"}]', "message 1 has role 'bot'; use system, user or "
                                          "assistant; this template knows no other"),
    ('[{"role": "user", "content": 5}]', 'message 1 has no text "content"'),
])
def test_bad_messages_file_is_one_line_naming_it(tmp_path, corral, content, said):
    path = write(tmp_path, content)
    r = corral("prompt", "--template", "chatml", "--messages", str(path))
    assert (r.returncode, r.stdout, r.stderr) == (1, "", f"corral: {path}: {said}\n")


def test_prompt_errors(tmp_path, corral):
    path = write(tmp_path, CHAT)
    r = corral("prompt", "--messages", str(path))
    assert (r.returncode, r.stdout, r.stderr) == (
        2, "", "corral: give a MODEL_PATH or --template ID (see `corral templates list`)\n")
    r = corral("prompt", "--template", "nope", "--messages", str(path))
    known = ", ".join(tid for tid, _, _ in BUILT_IN)
    assert (r.returncode, r.stdout, r.stderr) == (
        1, "", f"corral: no template 'nope'; known: {known}\n")
    r = corral("prompt", "--template", "chatml", "--messages", str(tmp_path / "x.json"))
    assert (r.returncode, r.stdout, r.stderr) == (1, "", f"corral: {tmp_path / 'x.json'}: no "
                                                         f"such file\n")
    bad = write(tmp_path, [{"role": "user", "content": "a"}, {"role": "user", "content": "b"}],
                "double.json")
    r = corral("prompt", "--template", "llama-2-chat", "--messages", str(bad))
    assert (r.returncode, r.stdout, r.stderr) == (
        1, "", "corral: template 'llama-2-chat': the template refused this conversation: "
               "Llama 2 Chat needs user and assistant messages in turn, starting with the user\n")


def test_prompt_vicuna_v0_is_fastchats_string(tmp_path, corral):
    # FastChat fastchat/conversation.py, "zero_shot"/"one_shot": sep="\n### " after the system
    # message and after each message (SeparatorStyle.ADD_COLON_SINGLE); no blank line.
    path = write(tmp_path, [{"role": "user", "content": "Hi"},
                            {"role": "assistant", "content": "Hello!"},
                            {"role": "user", "content": "What is 2+2?"}])
    r = corral("prompt", "--template", "vicuna-v0", "--messages", str(path))
    assert r.returncode == 0, r.stderr
    assert r.stdout == (
        "A chat between a curious human and an artificial intelligence assistant. The "
        "assistant gives helpful, detailed, and polite answers to the human's questions."
        "\n### Human: Hi\n### Assistant: Hello!\n### Human: What is 2+2?\n### Assistant:")


def test_prompt_notes_where_the_system_prompt_went(tmp_path, corral, make_model):
    model = make_model("tiny", folder=tmp_path / "gemma", name="gemma-like",
                       chat_template=GEMMA_TEMPLATE)
    path = write(tmp_path, [{"role": "system", "content": "Be brief."},
                            {"role": "user", "content": "Hello!"}])
    r = corral("prompt", str(model), "--messages", str(path))
    assert r.returncode == 0, r.stderr
    assert r.stdout == ("<start_of_turn>user\nBe brief.\nHello!<end_of_turn>\n"
                        "<start_of_turn>model\n")
    assert ("# note: gemma-like's own chat template refuses a system message (\"System role "
            "not supported\"), so the system prompt was put at the start of the first user "
            "message (as llama.cpp does).\n") in r.stderr


def test_prompt_passes_other_roles_to_the_models_own_template(tmp_path, corral, make_model):
    source = ("{% for m in messages %}<|{{ m.role }}|>{{ m.content }}{% endfor %}"
              "{% if add_generation_prompt %}<|assistant|>{% endif %}")
    model = make_model("tiny", folder=tmp_path / "tools", name="tool-user",
                       chat_template=source)
    path = write(tmp_path, [{"role": "user", "content": "Weather?"},
                            {"role": "assistant_tool_call", "content": "[get_weather()]"},
                            {"role": "tool_response", "content": "72F"}])
    r = corral("prompt", str(model), "--messages", str(path))
    assert (r.returncode, r.stdout) == (0, "<|user|>Weather?<|assistant_tool_call|>"
                                           "[get_weather()]<|tool_response|>72F<|assistant|>")
    r = corral("prompt", "--template", "chatml", "--messages", str(path))
    assert (r.returncode, r.stdout) == (1, "")
    assert r.stderr == (f"corral: {path}: message 2 has role 'assistant_tool_call'; use system, "
                        f"user or assistant; this template knows no other\n")
