"""`corral chat` renders the user's message with the model's template and stops at its stop strings."""

from __future__ import annotations

import os
import subprocess
import sys


def corral(*args: str, home) -> subprocess.CompletedProcess:
    env = dict(os.environ, CORRAL_HOME=str(home))
    return subprocess.run([sys.executable, "-m", "app", *args], capture_output=True, text=True,
                          env=env, timeout=120)


def test_vicuna_named_model_is_prompted_with_vicuna_v11_and_stops_at_user(make_model, tmp_path):
    model = make_model("tiny", name="vicuna-7b-v1.5")
    # The generated model's weights are random, so a grammar makes it "answer" with text that
    # runs on into a next turn, as chat models do; the template's stop strings must cut it there.
    grammar = tmp_path / "reply.gbnf"
    grammar.write_text('root ::= "Llamas are camelids. USER: tell me more ASSISTANT: ok"')
    r = corral("chat", str(model), "-p", "What is a llama?", "--temp", "0", "--max-tokens", "64",
               "--grammar-file", str(grammar), home=tmp_path)
    assert r.returncode == 0, r.stderr
    assert "template vicuna-v1.1" in r.stderr and "name:" in r.stderr
    assert r.stdout == "Llamas are camelids. \n"
    assert "stop: stop" in r.stderr


def test_the_prompt_sent_is_the_vicuna_rendering(make_model, tmp_path):
    model = make_model("tiny", name="vicuna-7b-v1.5")
    messages = tmp_path / "m.json"
    messages.write_text('[{"role": "user", "content": "What is a llama?"}]')
    r = corral("prompt", str(model), "--messages", str(messages), home=tmp_path)
    assert r.returncode == 0, r.stderr
    # FastChat conversation.py, template "vicuna_v1.1": system + " " + "USER: … ASSISTANT:"
    assert r.stdout == ("A chat between a curious user and an artificial intelligence assistant. "
                        "The assistant gives helpful, detailed, and polite answers to the user's "
                        "questions. USER: What is a llama? ASSISTANT:")
    assert '"USER:"' in r.stderr and '"</s>"' in r.stderr


def test_template_can_be_chosen_and_raw_llama_sends_the_prompt_as_is(tiny_model, tmp_path):
    grammar = tmp_path / "g.gbnf"
    grammar.write_text('root ::= "abc ### Human: x"')
    r = corral("chat", str(tiny_model), "-p", "hi", "--template", "vicuna-v0", "--temp", "0",
               "--grammar-file", str(grammar), home=tmp_path)
    assert r.returncode == 0, r.stderr
    assert "template vicuna-v0 (user:" in r.stderr and r.stdout == "abc \n"
    r = corral("chat", str(tiny_model), "-p", "hi", "--template", "nope", home=tmp_path)
    assert r.returncode != 0 and len(r.stderr.strip().splitlines()) == 1 and "nope" in r.stderr
