"""Detection: user's choice → the GGUF's own template → name rules → raw completion.

REAL_FILES are GGUF files published on the Hugging Face Hub (repository, file name). Marked
"seen" where the file listing was read (stored Hub tree pages); the others are the uploaders'
usual naming for that repository. The expected template is the format the model card / the
trainer's code gives for that family.
"""

from __future__ import annotations

from types import SimpleNamespace

import pytest

from app.core.templates import (GGUF_ID, TemplateError, TemplateRegistry, detect,
                                detect_for_model, template_for_model)

REAL_FILES = [
    # (repo id, file name, expected template)
    ("TheBloke/vicuna-7B-v1.5-GGUF", "vicuna-7b-v1.5.Q4_K_M.gguf", "vicuna-v1.1"),  # seen
    ("TheBloke/vicuna-13B-v1.5-GGUF", "vicuna-13b-v1.5.Q4_K_M.gguf", "vicuna-v1.1"),  # seen
    ("TheBloke/vicuna-13B-v1.5-16K-GGUF", "vicuna-13b-v1.5-16k.Q4_K_M.gguf", "vicuna-v1.1"),  # seen
    ("mradermacher/vicuna-7b-v1.3-GGUF", "vicuna-7b-v1.3.Q4_K_M.gguf", "vicuna-v1.1"),  # seen
    ("TheBloke/Wizard-Vicuna-7B-Uncensored-GGUF", "Wizard-Vicuna-7B-Uncensored.Q4_K_M.gguf",
     "vicuna-v1.1"),
    ("TheBloke/stable-vicuna-13B-GGUF", "stable-vicuna-13B.Q4_K_M.gguf", "vicuna-v0"),  # seen
    ("mradermacher/koala-13B-HF-GGUF", "koala-13B-HF.Q4_K_M.gguf", "koala"),  # seen
    ("TheBloke/Llama-2-7B-Chat-GGUF", "llama-2-7b-chat.Q4_K_M.gguf", "llama-2-chat"),
    ("TheBloke/Llama-2-13B-chat-GGUF", "llama-2-13b-chat.Q4_K_M.gguf", "llama-2-chat"),
    ("TheBloke/CodeLlama-7B-Instruct-GGUF", "codellama-7b-instruct.Q4_K_M.gguf", "llama-2-chat"),
    ("TheBloke/Llama-2-7B-GGUF", "llama-2-7b.Q4_K_M.gguf", "llama"),
    ("TheBloke/Llama-2-13B-GGUF", "llama-2-13b.Q4_K_M.gguf", "llama"),
    ("TheBloke/LLaMA-7b-GGUF", "llama-7b.Q4_K_M.gguf", "llama"),  # seen
    ("mav23/falcon-7b-GGUF", "falcon-7b.Q4_K_M.gguf", "llama"),  # seen (base model: raw)
    ("TheBloke/WizardLM-7B-uncensored-GGUF", "WizardLM-7B-uncensored.Q4_K_M.gguf",
     "wizardlm"),  # seen; trained on WizardLM_alpaca_evol_instruct_70k_unfiltered
    ("TheBloke/WizardLM-13B-V1.2-GGUF", "wizardlm-13b-v1.2.Q4_K_M.gguf", "vicuna-v1.1"),
    ("TheBloke/TinyLlama-1.1B-Chat-v1.0-GGUF", "tinyllama-1.1b-chat-v1.0.Q4_K_M.gguf", "zephyr"),
    ("TheBloke/zephyr-7B-beta-GGUF", "zephyr-7b-beta.Q4_K_M.gguf", "zephyr"),
    ("TheBloke/Mistral-7B-Instruct-v0.2-GGUF", "mistral-7b-instruct-v0.2.Q4_K_M.gguf",
     "mistral-instruct"),
    ("TheBloke/Mistral-7B-Instruct-v0.1-GGUF", "mistral-7b-instruct-v0.1.Q4_K_M.gguf",
     "mistral-instruct"),
    ("TheBloke/Mixtral-8x7B-Instruct-v0.1-GGUF", "mixtral-8x7b-instruct-v0.1.Q4_K_M.gguf",
     "mistral-instruct"),
    ("QuantFactory/Meta-Llama-3-8B-Instruct-GGUF", "Meta-Llama-3-8B-Instruct.Q4_K_M.gguf",
     "llama-3"),
    ("lmstudio-community/Meta-Llama-3.1-8B-Instruct-GGUF",
     "Meta-Llama-3.1-8B-Instruct-Q4_K_M.gguf", "llama-3"),
    ("bartowski/Llama-3.2-1B-Instruct-GGUF", "Llama-3.2-1B-Instruct-Q4_K_M.gguf", "llama-3"),
    ("hugging-quants/Llama-3.2-1B-Instruct-Q8_0-GGUF", "llama-3.2-1b-instruct-q8_0.gguf",
     "llama-3"),
    ("Qwen/Qwen2.5-0.5B-Instruct-GGUF", "qwen2.5-0.5b-instruct-q4_k_m.gguf", "chatml"),
    ("TheBloke/OpenHermes-2.5-Mistral-7B-GGUF", "openhermes-2.5-mistral-7b.Q4_K_M.gguf",
     "chatml"),
    ("TheBloke/dolphin-2.2.1-mistral-7B-GGUF", "dolphin-2.2.1-mistral-7b.Q4_K_M.gguf", "chatml"),
    ("QuantFactory/falcon-7b-instruct-GGUF", "falcon-7b-instruct.Q4_K_M.gguf",
     "falcon-instruct"),  # seen
    # The file name says nothing; the repository id does.
    ("Pi3141/alpaca-7b-native-enhanced-GGUF", "ggml-model-q4_k.gguf", "alpaca"),  # seen
]


@pytest.mark.parametrize("repo,file_name,expected", REAL_FILES,
                         ids=[f for _, f, _ in REAL_FILES])
def test_real_hub_files(repo, file_name, expected):
    found = detect(file_name=file_name, repo_id=repo)
    assert found.template_id == expected
    assert found.rule in ("name", "fallback")
    assert (found.rule == "fallback") == (expected == "llama")


def test_enough_real_names_across_the_families():
    assert len(REAL_FILES) >= 25
    families = {e for _, _, e in REAL_FILES}
    assert families >= {"vicuna-v1.1", "vicuna-v0", "koala", "llama-2-chat", "llama", "wizardlm",
                        "zephyr", "mistral-instruct", "llama-3", "chatml", "falcon-instruct",
                        "alpaca"}


def test_every_detected_id_exists(tmp_path):
    ids = set(TemplateRegistry(user_folder=tmp_path).ids())
    assert {e for _, _, e in REAL_FILES} <= ids


def test_order_user_then_gguf_then_names_then_raw():
    embedded = "{{ messages[0].content }}"
    user = detect(user_choice="alpaca", chat_template=embedded,
                  file_name="vicuna-7b-v1.5.Q4_K_M.gguf")
    assert (user.template_id, user.rule) == ("alpaca", "user")
    own = detect(chat_template=embedded, file_name="vicuna-7b-v1.5.Q4_K_M.gguf")
    assert (own.template_id, own.rule) == (GGUF_ID, "gguf")
    named = detect(chat_template="  ", file_name="vicuna-7b-v1.5.Q4_K_M.gguf")
    assert (named.template_id, named.rule) == ("vicuna-v1.1", "name")
    assert "vicuna-7b-v1.5.Q4_K_M.gguf" in named.detail
    raw = detect(file_name="my-model.gguf")
    assert (raw.template_id, raw.rule) == ("llama", "fallback")
    assert "raw completion" in raw.detail


def test_general_name_is_used_when_the_file_name_says_nothing():
    found = detect(file_name="model.gguf", general_name="TinyLlama 1.1B Chat v1.0")
    assert found.template_id == "zephyr" and "model name" in found.detail
    # The file name wins over a generic general.name ("LLaMA v2" in many old conversions).
    found = detect(file_name="vicuna-13b-v1.5.Q4_K_M.gguf", general_name="LLaMA v2")
    assert found.template_id == "vicuna-v1.1"


def test_vicuna_v0_names():
    assert detect(file_name="ggml-vicuna-13b-delta-v0.q4_0.gguf").template_id == "vicuna-v0"
    assert detect(file_name="vicuna-7b-v0.Q4_0.gguf").template_id == "vicuna-v0"


def _info(path, *, name=None, chat_template=None, metadata=None):
    return SimpleNamespace(path=path, name=name, chat_template=chat_template,
                           bos_token="<s>", eos_token="</s>", metadata=metadata or {})


def test_model_info_wrapper(tmp_path):
    registry = TemplateRegistry(user_folder=tmp_path)
    template, found = template_for_model(_info("/m/vicuna-7b-v1.5.Q4_K_M.gguf"),
                                         registry=registry)
    assert template.id == "vicuna-v1.1" and found.rule == "name"
    info = _info("/m/x.gguf", name="x", chat_template="{{ messages[0].content }}<|im_end|>")
    template, found = template_for_model(info, registry=registry)
    assert template.id == GGUF_ID and found.rule == "gguf"
    assert template.stop == ("</s>", "<|im_end|>")
    found = detect_for_model(_info("/m/ggml-model-q4_k.gguf", metadata={
        "general.source.huggingface.repository": "Pi3141/alpaca-7b-native-enhanced-GGUF"}))
    assert found.template_id == "alpaca"
    with pytest.raises(TemplateError, match="no chat template"):
        template_for_model(_info("/m/a.gguf"), user_choice=GGUF_ID, registry=registry)
    with pytest.raises(TemplateError, match="no template 'gone'"):
        template_for_model(_info("/m/a.gguf"), user_choice="gone", registry=registry)
