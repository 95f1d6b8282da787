"""`corral templates list` and `corral prompt`, run in-process through app.cli.main."""

from __future__ import annotations

import json

import pytest

import app.cli
from app.cli import main
from app.testing.models import CHATML_TEMPLATE

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
