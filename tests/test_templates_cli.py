"""`corral templates list` and `corral prompt`, run in-process through app.cli.main."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

import app.cli
from app.cli import main
from app.testing.models import CHATML_TEMPLATE

# Gemma 7B it's published template (from llama.cpp tests/test-chat-template.cpp, as in
# tests/data/llama_cpp_chat_templates.json): it refuses a system message.
_PUBLISHED = json.loads((Path(__file__).parent / "data" / "llama_cpp_chat_templates.json")
                        .read_text(encoding="utf-8"))
GEMMA_TEMPLATE = next(c["template"] for c in _PUBLISHED["cases"]
                      if c["name"] == "google/gemma-7b-it")

MINE = ("app.cli.templates_cmd", "app.cli.prompt_cmd")


@pytest.fixture(autouse=True)
def commands(monkeypatch, tmp_path):
    # Registered here until app/cli/__init__.py lists them (dict.fromkeys: no duplicates after).
    monkeypatch.setattr(app.cli, "COMMAND_MODULES",
                        tuple(dict.fromkeys(app.cli.COMMAND_MODULES + MINE)))
    monkeypatch.setenv("CORRAL_HOME", str(tmp_path / "home"))


def write(tmp_path, data, name="chat.json"):
    path = tmp_path / name
    path.write_text(data if isinstance(data, str) else json.dumps(data), encoding="utf-8")
    return path


CHAT = [{"role": "user", "content": "Hello!"}, {"role": "assistant", "content": "Hi!"},
        {"role": "user", "content": "Bye?"}]


def test_templates_list(capsys):
    assert main(["templates", "list"]) == 0
    out = capsys.readouterr().out.splitlines()
    assert len(out) == 18
    assert any(line.split()[:3] == ["vicuna-v1.1", "built-in", "chat"] for line in out)
    assert main(["templates", "list", "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert {d["id"] for d in data} >= {"llama", "alpaca", "dalai-translate"}


def test_prompt_with_template_prints_exact_text(tmp_path, capsys):
    path = write(tmp_path, CHAT)
    assert main(["prompt", "--template", "vicuna-v1.1", "--messages", str(path),
                 "--system", "Be nice."]) == 0
    captured = capsys.readouterr()
    assert captured.out == "Be nice. USER: Hello! ASSISTANT: Hi!</s>USER: Bye? ASSISTANT:"
    assert '# stop: ["</s>", "USER:"]' in captured.err
    assert "# template: vicuna-v1.1" in captured.err
    assert "# add BOS: yes" in captured.err


def test_prompt_detects_from_the_model_file(tmp_path, capsys, make_model):
    model = make_model("tiny", folder=tmp_path / "models", name="vicuna-7b-v1.5")
    path = write(tmp_path, CHAT)
    assert main(["prompt", str(model), "--messages", str(path), "--system", ""]) == 0
    captured = capsys.readouterr()
    assert captured.out == "USER: Hello! ASSISTANT: Hi!</s>USER: Bye? ASSISTANT:"
    assert "name: file name 'vicuna-7b-v1.5.F32.gguf'" in captured.err
    # --template with a model is the user's choice and wins over detection.
    assert main(["prompt", str(model), "--template", "chatml", "--messages", str(path)]) == 0
    assert capsys.readouterr().out.startswith("<|im_start|>user\nHello!")


def test_prompt_uses_the_models_own_template(tmp_path, capsys, make_model):
    model = make_model("tiny", folder=tmp_path / "own", name="vicuna-with-template",
                       chat_template=CHATML_TEMPLATE)
    path = write(tmp_path, CHAT)
    assert main(["prompt", str(model), "--messages", str(path)]) == 0
    captured = capsys.readouterr()
    assert captured.out.endswith("<|im_start|>user\nBye?<|im_end|>\n<|im_start|>assistant\n")
    assert "gguf: the model file carries its own chat template" in captured.err


@pytest.mark.parametrize("content,match", [
    ("{ not json", "not valid JSON (line 1, column 3"),
    ('{"role": "user"}', "a conversation is a list"),
    ('[{"role": "bot", "content": "x"}]', "message 1 has role 'bot'"),
    ('[{"role": "user", "content": 5}]', "message 1 has no text"),
])
def test_bad_messages_file_is_one_line_naming_it(tmp_path, capsys, content, match):
    path = write(tmp_path, content)
    assert main(["prompt", "--template", "chatml", "--messages", str(path)]) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith(f"corral: {path}: ") and match in err


def test_prompt_errors(tmp_path, capsys):
    path = write(tmp_path, CHAT)
    assert main(["prompt", "--messages", str(path)]) == 2
    assert "MODEL_PATH or --template" in capsys.readouterr().err
    assert main(["prompt", "--template", "nope", "--messages", str(path)]) == 1
    assert "no template 'nope'" in capsys.readouterr().err
    assert main(["prompt", "--template", "chatml", "--messages", str(tmp_path / "x.json")]) == 1
    assert "x.json: no such file" in capsys.readouterr().err
    bad = write(tmp_path, [{"role": "user", "content": "a"}, {"role": "user", "content": "b"}],
                "double.json")
    assert main(["prompt", "--template", "llama-2-chat", "--messages", str(bad)]) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "llama-2-chat" in err


def test_prompt_vicuna_v0_is_fastchats_string(tmp_path, capsys):
    # FastChat fastchat/conversation.py, "zero_shot"/"one_shot": sep="\n### " after the system
    # message and after each message (SeparatorStyle.ADD_COLON_SINGLE); no blank line.
    path = write(tmp_path, [{"role": "user", "content": "Hi"},
                            {"role": "assistant", "content": "Hello!"},
                            {"role": "user", "content": "What is 2+2?"}])
    assert main(["prompt", "--template", "vicuna-v0", "--messages", str(path)]) == 0
    assert capsys.readouterr().out == (
        "A chat between a curious human and an artificial intelligence assistant. The "
        "assistant gives helpful, detailed, and polite answers to the human's questions."
        "\n### Human: Hi\n### Assistant: Hello!\n### Human: What is 2+2?\n### Assistant:")


def test_prompt_notes_where_the_system_prompt_went(tmp_path, capsys, make_model):
    model = make_model("tiny", folder=tmp_path / "gemma", name="gemma-like",
                       chat_template=GEMMA_TEMPLATE)
    path = write(tmp_path, [{"role": "system", "content": "Be brief."},
                            {"role": "user", "content": "Hello!"}])
    assert main(["prompt", str(model), "--messages", str(path)]) == 0
    captured = capsys.readouterr()
    assert captured.out == ("<start_of_turn>user\nBe brief.\nHello!<end_of_turn>\n"
                            "<start_of_turn>model\n")
    assert ("# note: gemma-like's own chat template refuses a system message (\"System role "
            "not supported\"), so the system prompt was put at the start of the first user "
            "message (as llama.cpp does).\n") in captured.err


def test_prompt_passes_other_roles_to_the_models_own_template(tmp_path, capsys, make_model):
    source = ("{% for m in messages %}<|{{ m.role }}|>{{ m.content }}{% endfor %}"
              "{% if add_generation_prompt %}<|assistant|>{% endif %}")
    model = make_model("tiny", folder=tmp_path / "tools", name="tool-user",
                       chat_template=source)
    path = write(tmp_path, [{"role": "user", "content": "Weather?"},
                            {"role": "assistant_tool_call", "content": "[get_weather()]"},
                            {"role": "tool_response", "content": "72F"}])
    assert main(["prompt", str(model), "--messages", str(path)]) == 0
    assert capsys.readouterr().out == ("<|user|>Weather?<|assistant_tool_call|>[get_weather()]"
                                       "<|tool_response|>72F<|assistant|>")
    assert main(["prompt", "--template", "chatml", "--messages", str(path)]) == 1
    err = capsys.readouterr().err
    assert err == (f"corral: {path}: message 2 has role 'assistant_tool_call'; use system, "
                   f"user or assistant; this template knows no other\n")
