"""Real published chat templates against the renderings llama.cpp expects of them.

tests/data/llama_cpp_chat_templates.json holds, from llama.cpp's own test suite
(tests/test-chat-template.cpp, named with its commit in the file), 35 templates of published
models — Phi-3, Gemma 7B it, Mistral-7B-Instruct v0.2, Orion-14B, YandexGPT-5-Lite (its own
`__`-named macros), IBM Granite (tool-call roles)… — and the text each must give for one
conversation with a system message. A model file carries such a template, so each is rendered
exactly as a GGUF's own template is (the render worker, the sandbox).
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from app.core.templates import gguf_template, render

DATA = json.loads((Path(__file__).parents[1] / "data" / "llama_cpp_chat_templates.json")
                  .read_text(encoding="utf-8"))
CASES = {case["name"]: case for case in DATA["cases"]}
SYSTEM = DATA["conversation"][0]["content"]
# The templates with no system role: they leave a system message out, or refuse it.
NO_SYSTEM_ROLE = {
    "Phi-3-mini": "leaves a system message out",
    "Phi-3-medium": "leaves a system message out",
    "OrionStarAI/Orion-14B-Chat": "leaves a system message out",
    "yandex/YandexGPT-5-Lite-8B-instruct": "leaves a system message out",
    "google/gemma-7b-it": 'refuses a system message ("System role not supported")',
    "mistralai/Mistral-7B-Instruct-v0.2 (NOTE: Old pre-v1 without a system prompt)":
        'refuses a system message ("Conversation roles must alternate '
        'user/assistant/user/assistant/...")',
}


def test_the_suite_is_complete():
    assert len(CASES) == 35 and set(NO_SYSTEM_ROLE) <= set(CASES)
    assert {"Phi-3-mini", "Phi-3-medium", "google/gemma-7b-it",
            "ibm-granite/granite-3.x (tool call)", "yandex/YandexGPT-5-Lite-8B-instruct"} \
        <= set(CASES)


@pytest.mark.parametrize("name", sorted(CASES))
def test_published_template_renders_as_llama_cpp_expects(name):
    case = CASES[name]
    template = gguf_template(case["template"], bos_token=case["bos_token"] or None,
                             eos_token=case["eos_token"] or None, model_name=name)
    rendered = render(template, DATA["conversation"] + case["extra_conversation"],
                      add_generation_prompt=DATA["add_generation_prompt"])
    assert rendered.text == case["expected"]
    assert SYSTEM in rendered.text  # the system prompt is never lost
    if name in NO_SYSTEM_ROLE:
        # … and when the template has no place for it, the note says where it went.
        assert rendered.notes == (f"{name}'s own chat template {NO_SYSTEM_ROLE[name]}, so the "
                                  f"system prompt was put at the start of the first user "
                                  f"message (as llama.cpp does).",)
    else:
        assert rendered.notes == ()


def test_other_roles_reach_the_models_own_template_but_not_a_builtin_one(tmp_path):
    from app.core.templates import TemplateError, TemplateRegistry

    granite = CASES["ibm-granite/granite-3.x (tool call)"]
    conversation = DATA["conversation"] + granite["extra_conversation"]
    assert "<|tool_call|>" in render(gguf_template(granite["template"], bos_token=None,
                                                   eos_token=None), conversation).text
    chatml = TemplateRegistry(user_folder=tmp_path).get("chatml")
    with pytest.raises(TemplateError, match=r"^template 'chatml': message 8 has role "
                                            r"'assistant_tool_call'; use system, user or "
                                            r"assistant; this template knows no other$"):
        render(chatml, conversation)


def test_a_system_prompt_before_a_reply_becomes_a_user_message_of_its_own():
    phi3 = CASES["Phi-3-mini"]
    rendered = render(gguf_template(phi3["template"], bos_token=None, eos_token=None),
                      [{"role": "system", "content": "S"}, {"role": "assistant", "content": "A"},
                       {"role": "user", "content": "U"}])
    assert rendered.text == "<|user|>\nS<|end|>\n<|assistant|>\nA<|end|>\n<|user|>\nU<|end|>\n" \
                            "<|assistant|>\n"
    assert "first, as a user message of its own" in rendered.notes[0]
