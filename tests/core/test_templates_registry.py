"""Custom templates: create, edit, duplicate, delete; checked before saving; built-ins read-only."""

from __future__ import annotations

import json
from dataclasses import replace

import pytest

from app.core.paths import get_paths
from app.core.templates import PromptTemplate, TemplateError, TemplateRegistry, TurnFormat, render

CONV = [{"role": "user", "content": "Hi"}]


@pytest.fixture
def home(tmp_path, monkeypatch):
    monkeypatch.setenv("CORRAL_HOME", str(tmp_path))
    get_paths().ensure()
    return tmp_path


def _custom(tid="my-chat", **changes) -> PromptTemplate:
    base = PromptTemplate(id=tid, name="My chat", format="turns",
                          turns=TurnFormat(system="[{system}]\n", user="Q: {content}\n",
                                           assistant="A: {content}\n", generation="A:"),
                          stop=("Q:",))
    return replace(base, **changes)


def _files(home):
    return sorted(p.name for p in (home / "templates").iterdir())


def test_builtins_are_listed_and_read_only(home):
    reg = TemplateRegistry()
    assert len(reg.all()) == 18 and all(t.builtin for t in reg.all())
    with pytest.raises(TemplateError, match="built in"):
        reg.update(replace(reg.get("vicuna-v1.1"), name="mine"))
    with pytest.raises(TemplateError, match="built in"):
        reg.delete("alpaca")
    with pytest.raises(TemplateError, match="already exists"):
        reg.create(replace(reg.get("chatml"), origin="user"))
    assert _files(home) == []


def test_create_saves_json_and_reloads(home):
    TemplateRegistry().create(_custom())
    assert _files(home) == ["my-chat.json"]
    data = json.loads((home / "templates" / "my-chat.json").read_text())
    assert data["id"] == "my-chat" and data["turns"]["user"] == "Q: {content}\n"
    reg = TemplateRegistry()  # a fresh registry reads it back
    t = reg.get("my-chat")
    assert t.origin == "user" and not t.builtin
    assert render(t, CONV, system="S").text == "[S]\nQ: Hi\nA:"


@pytest.mark.parametrize("bad,match", [
    (dict(id="Bad Id"), "id 'Bad Id'"),
    (dict(id="gguf"), "gguf"),
    (dict(turns=TurnFormat(user="Q:", assistant="A: {content}")), "must contain {content}"),
    (dict(format="jinja", turns=None, jinja="{% for m in messages %}"), "not valid Jinja"),
    (dict(format="jinja", turns=None, jinja="{{ ''.__class__.__mro__ }}"), "refused"),
    (dict(format="jinja", turns=None, jinja="{{ raise_exception('no') }}"), "refused this"),
    (dict(format="preset", turns=None, preset="no placeholder"), ">PROMPT"),
])
def test_invalid_templates_are_not_saved(home, bad, match):
    with pytest.raises(TemplateError, match=match):
        TemplateRegistry().create(_custom(**bad))
    assert _files(home) == []


def test_update_validates_and_leaves_the_file_untouched_on_error(home):
    reg = TemplateRegistry()
    reg.create(_custom())
    path = home / "templates" / "my-chat.json"
    before = path.read_bytes()
    with pytest.raises(TemplateError):
        reg.update(_custom(format="jinja", turns=None, jinja="{{ broken"))
    assert path.read_bytes() == before
    reg.update(_custom(name="Renamed", stop=("Q:", "\n\n")))
    assert TemplateRegistry().get("my-chat").name == "Renamed"
    assert TemplateRegistry().get("my-chat").stop == ("Q:", "\n\n")
    assert _files(home) == ["my-chat.json"]  # no temporary files left behind
    with pytest.raises(TemplateError, match="no user template"):
        reg.update(_custom(tid="other"))


def test_duplicate_builtin_then_edit_and_delete(home):
    reg = TemplateRegistry()
    copy = reg.duplicate("llama-2-chat", "my-llama2")
    assert copy.origin == "user" and "llama-2-chat" in copy.notes
    conv = [{"role": "user", "content": "Hi"}]
    original = render(reg.get("llama-2-chat"), conv, system="S")
    assert render(TemplateRegistry().get("my-llama2"), conv, system="S").text == original.text
    with pytest.raises(TemplateError, match="already exists"):
        reg.duplicate("alpaca", "my-llama2")
    reg.delete("my-llama2")
    assert _files(home) == []
    with pytest.raises(TemplateError, match="no template"):
        TemplateRegistry().get("my-llama2")
    with pytest.raises(TemplateError, match="no user template"):
        reg.delete("my-llama2")


def test_broken_user_files_are_reported_not_hidden(home):
    folder = home / "templates"
    (folder / "broken.json").write_text("{ not json")
    (folder / "wrong-name.json").write_text(json.dumps(_custom().to_dict()))
    (folder / "chatml.json").write_text(json.dumps({**_custom().to_dict(), "id": "chatml"}))
    reg = TemplateRegistry()
    assert len(reg.all()) == 18
    text = "\n".join(reg.problems)
    assert "broken.json: not valid JSON" in text
    assert "wrong-name.json" in text and "chatml.json" in text
