"""A GGUF file's chat template is a stranger's code: it renders in a sandbox or not at all.

The payloads are the CVE-2024-34359 class (llama-cpp-python rendered tokenizer.chat_template with
a plain jinja2 Environment) and the known jinja2 sandbox tricks; each one, if it ran, would
create a marker file. None may run, and each must end in a TemplateError naming the template.
"""

from __future__ import annotations

import time

import jinja2
import pytest

from app.core.templates import TemplateError, gguf_template, render
from app.core.templates import sandbox
from app.testing.models import CHATML_TEMPLATE, ZEPHYR_TEMPLATE

MESSAGES = [{"role": "user", "content": "Hello!"}]


def _gguf(source: str):
    return gguf_template(source, bos_token="<s>", eos_token="</s>", model_name="evil.gguf")


def payloads(marker: str) -> dict[str, str]:
    cmd = f"touch {marker}"
    return {
        "mro_subclasses": "{{ ''.__class__.__mro__[1].__subclasses__() }}",
        "subclasses_popen": ("{% for c in [].__class__.__base__.__subclasses__() %}"
                             "{% if c.__name__ == 'Popen' %}{{ c(['touch', '" + marker + "']) }}"
                             "{% endif %}{% endfor %}"),
        "self_globals": "{{ self.__init__.__globals__.__builtins__.__import__('os').system('"
                        + cmd + "') }}",
        "cycler_globals": "{{ cycler.__init__.__globals__.os.popen('" + cmd + "').read() }}",
        "joiner_globals": "{{ joiner.__init__.__globals__.os.system('" + cmd + "') }}",
        "namespace_globals": "{{ namespace.__init__.__globals__.os.system('" + cmd + "') }}",
        "lipsum_globals": "{{ lipsum.__globals__['os'].popen('" + cmd + "').read() }}",
        "raise_exception_globals": "{{ raise_exception.__globals__['ctypes'] }}",
        "attr_filter": "{{ (messages|attr('__class__')|attr('__base__')|attr('__subclasses__'))()"
                       " }}",
        "item_lookup": "{{ messages['__class__']['__base__'] }}",
        "format_string": "{{ '{0.__class__.__mro__}'.format(messages) }}",
        "format_map": "{{ '{x.__class__}'.format_map({'x': messages}) }}",
        "dynamic_dunder": "{% set d = '_' * 2 %}{{ messages|attr(d ~ 'class' ~ d) }}",
        "dynamic_format": "{% set d = '_' * 2 %}{{ ('{0.' ~ d ~ 'class' ~ d ~ '}').format(1) }}",
        "include_file": "{% include '/etc/passwd' %}",
        "import_os": "{% import 'os' as os %}{{ os.system('" + cmd + "') }}",
        "builtins_name": "{{ __builtins__.open('" + marker + "', 'w') }}",
        "open_global": "{{ open('" + marker + "', 'w').write('x') }}",
        "mutate_messages": "{{ messages.append({'role': 'user', 'content': 'injected'}) }}",
        "dict_mutation": "{{ messages[0].update({'content': 'changed'}) }}",
    }


@pytest.mark.parametrize("name", sorted(payloads("MARKER")))
def test_escape_is_refused_and_nothing_runs(tmp_path, name):
    marker = tmp_path / f"pwned-{name}"
    messages = [{"role": "user", "content": "Hello!"}]
    with pytest.raises(TemplateError) as info:
        render(_gguf(payloads(str(marker))[name]), messages)
    assert "evil.gguf" in str(info.value)  # the message names the template
    assert not marker.exists()
    assert messages == [{"role": "user", "content": "Hello!"}]  # the caller's data untouched


def test_refusal_messages_say_what_was_found():
    with pytest.raises(TemplateError, match="private attribute '__class__'"):
        render(_gguf("{{ messages.__class__ }}"), MESSAGES)
    with pytest.raises(TemplateError, match="load another template"):
        render(_gguf("{% include 'x' %}"), MESSAGES)
    with pytest.raises(TemplateError, match="not allowed"):
        render(_gguf("{% set d = '_' * 2 %}{{ messages|attr(d ~ 'class' ~ d) }}"), MESSAGES)


def test_broken_template_and_raise_exception():
    with pytest.raises(TemplateError, match="not valid Jinja"):
        render(_gguf("{% for m in messages %}"), MESSAGES)
    with pytest.raises(TemplateError, match="refused this conversation: only user roles"):
        render(_gguf("{{ raise_exception('only user roles') }}"), MESSAGES)
    with pytest.raises(TemplateError, match="failed to render"):
        render(_gguf("{{ 1 / 0 }}"), MESSAGES)


def test_runaway_loop_is_stopped_by_the_deadline(monkeypatch):
    monkeypatch.setattr(sandbox, "DEADLINE_SECONDS", 0.5)
    source = ("{% for a in range(100000) %}{% for b in range(100000) %}"
              "{% endfor %}{% endfor %}done")
    start = time.monotonic()
    with pytest.raises(TemplateError, match="longer than 0.5 s"):
        render(_gguf(source), MESSAGES)
    assert time.monotonic() - start < 5
    # The thread is clean afterwards: the next render works and nothing fires late.
    assert render(_gguf("{{ messages[0].content }}"), MESSAGES).text == "Hello!"
    total = sum(i for i in range(2_000_000))
    assert total > 0


@pytest.mark.parametrize("source", [
    "{{ 'x' * 100000000 }}",
    "{{ [1] * 100000000 }}",
    "{{ 2 ** 100000000 }}",
    "{% set ns = namespace(s='xx') %}{% for i in range(40) %}{% set ns.s = ns.s ~ ns.s %}"
    "{% endfor %}{{ ns.s|length }}",
    "{% for i in range(99999) %}{{ 'y' * 99 }}{% endfor %}",
    "{{ range(10000000)|list }}",
])
def test_resource_bombs_are_refused(source):
    with pytest.raises(TemplateError):
        render(_gguf(source), MESSAGES)


def test_old_jinja_is_refused(monkeypatch):
    monkeypatch.setattr(jinja2, "__version__", "3.1.4")
    with pytest.raises(TemplateError, match="3.1.6"):
        render(_gguf("{{ messages[0].content }}"), MESSAGES)


def test_real_templates_render_as_hugging_face_does(tmp_path):
    # The Zephyr/TinyLlama and ChatML templates as model files carry them (app.testing.models):
    # rendered here with trim_blocks/lstrip_blocks they give the reference strings.
    msgs = [{"role": "system", "content": "S"}, {"role": "user", "content": "Hi"}]
    zephyr = render(_gguf(ZEPHYR_TEMPLATE), msgs)
    assert zephyr.text == "<|system|>\nS</s>\n<|user|>\nHi</s>\n<|assistant|>\n"
    assert zephyr.stop == ["</s>"] and zephyr.add_bos is True
    chatml = render(gguf_template(CHATML_TEMPLATE, bos_token="<s>", eos_token="<|im_end|>"),
                    msgs)
    assert chatml.text == ("<|im_start|>system\nS<|im_end|>\n<|im_start|>user\nHi<|im_end|>\n"
                           "<|im_start|>assistant\n")
    assert chatml.stop == ["<|im_end|>"]


def test_gguf_helpers_and_bos():
    source = ("{{ bos_token }}{% for m in messages %}{{ m.content|tojson }}{% endfor %}"
              "{{ strftime_now('%Y')|length }}<|eot_id|>")
    out = render(gguf_template(source, bos_token="<|begin_of_text|>", eos_token="<|eot_id|>"),
                 [{"role": "user", "content": "é<>"}])
    assert out.text == '<|begin_of_text|>"é<>"4<|eot_id|>'
    assert out.add_bos is False  # the template wrote BOS itself
    assert out.stop == ["<|eot_id|>"]


def test_stop_strings_from_known_markers():
    source = "{{ '<|im_end|>' }}{{ '<end_of_turn>' }}"
    t = gguf_template(source, bos_token=None, eos_token="<|endoftext|>")
    assert list(t.stop) == ["<|endoftext|>", "<|im_end|>", "<end_of_turn>"]


@pytest.mark.parametrize("name", sorted(payloads("MARKER")))
def test_the_sandbox_holds_even_without_the_source_check(tmp_path, monkeypatch, name):
    # Defence in depth: with the parse-time check switched off, jinja's sandbox (with unsafe
    # attributes raising at once) still refuses every payload and nothing runs. Rendered in
    # this process (the render worker runs this same code), where the check can be switched off.
    monkeypatch.setattr(sandbox, "_refusal", lambda node, own: None)
    marker = tmp_path / f"pwned-{name}"
    variables = {"messages": [{"role": "user", "content": "Hello!"}]}
    try:
        with pytest.raises(TemplateError):
            sandbox.render_jinja(payloads(str(marker))[name], "evil.gguf", variables)
    finally:
        sandbox._compiled.cache_clear()  # nothing compiled without the check may stay cached
    assert not marker.exists()


YANDEX_STYLE = ("{%- macro __render_user_message(message) %}{{ ' U: ' + message.content }}"
                "{%- endmacro %}{%- for message in messages %}"
                "{{- __render_user_message(message) }}{%- endfor %}")


def test_a_templates_own_dunder_names_are_its_own():
    # YandexGPT-5-Lite defines and calls macros named __render_tool, __render_user_message…:
    # names the template defines are not Python internals.
    assert render(_gguf(YANDEX_STYLE), MESSAGES).text == " U: Hello!"
    own = ("{% set __x = messages[0].content %}{% for __m in messages %}{{ __m.role }}"
           "{% endfor %}{{ __x }}")
    assert render(_gguf(own), MESSAGES).text == "userHello!"


@pytest.mark.parametrize("source,found", [
    ("{{ __builtins__ }}", "'__builtins__'"),            # a dunder it does not define
    ("{{ __loader__.load('x') }}", "'__loader__'"),
    ("{% macro __m() %}{% endmacro %}{{ __m.__globals__ }}", "'__globals__'"),  # attribute
    ("{% set __x = messages %}{{ __x.__class__ }}", "'__class__'"),
])
def test_dunders_it_does_not_define_and_dunder_attributes_stay_refused(source, found):
    with pytest.raises(TemplateError, match=found):
        render(_gguf(source), MESSAGES)


def test_nothing_runs_while_a_template_compiles():
    """Jinja folds constant expressions while it compiles: it would call filters (here upper
    and center) before any render began, outside the render's deadline. The sandbox leaves
    every output expression to run time: the compiled code calls the filters, it does not hold
    their results."""
    code = sandbox._ENV.compile("{{ 'ab'|upper }}{{ 'x'|center(9) }}", raw=True)
    assert "('ab')" in code and "('x', 9)" in code  # called when the template renders …
    assert "AB" not in code and "    x    " not in code  # … not computed now
