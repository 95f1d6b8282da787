"""Which template a model gets, and which rule chose it.

Order: the user's choice for that model → the template inside the GGUF (the model's own, so it
beats any guess from a name) → rules on the names (file name, then Hugging Face repo id, then
general.name) → raw completion. Old LLaMA derivatives carry no template, so their names are the
only evidence; the rules below encode what each family was trained on (see the template files'
"source" for the format itself).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from app.core.templates.model import GGUF_ID

RAW_ID = "llama"


@dataclass(frozen=True)
class Detection:
    template_id: str
    rule: str    # "user" | "gguf" | "name" | "fallback"
    detail: str  # a sentence for the user: why this template


# (pattern, template id, why). Checked in order on one name at a time, so the more specific
# families come first: "openhermes-2.5-mistral" is ChatML, not Mistral Instruct;
# "wizard-vicuna" is Vicuna, not WizardLM.
_NAME_RULES: tuple[tuple[str, str, str], ...] = (
    (r"(meta-)?llama-?3(\.\d+)?\b.*(instruct|chat)", "llama-3", "Llama 3 Instruct"),
    (r"codellama.*instruct", "llama-2-chat", "Code Llama Instruct uses the Llama 2 chat format"),
    (r"llama-?2.*chat", "llama-2-chat", "Llama 2 Chat"),
    (r"stable-?vicuna", "vicuna-v0", "StableVicuna uses the '### Human:' format of Vicuna v0"),
    (r"vicuna.*(\bv0\b|delta-v0)", "vicuna-v0", "Vicuna v0"),
    (r"wizard-?vicuna", "vicuna-v1.1", "Wizard-Vicuna uses the Vicuna v1.1 format"),
    (r"vicuna", "vicuna-v1.1", "Vicuna v1.1 / v1.3 / v1.5"),
    (r"koala", "koala", "Koala"),
    (r"wizardlm.*(v1\.[12]|13b-v?1\.0|30b-v?1\.0|70b)", "vicuna-v1.1",
     "WizardLM 13B/30B/70B v1.x use the Vicuna v1.1 format"),
    (r"wizardlm", "wizardlm", "WizardLM 7B ('{instruction}\\n\\n### Response:')"),
    (r"tinyllama.*chat", "zephyr", "TinyLlama Chat uses the Zephyr format"),
    (r"zephyr", "zephyr", "Zephyr"),
    (r"(open-?hermes|nous-hermes-2|hermes-2|dolphin|qwen\d*(\.\d+)?.*(instruct|chat))",
     "chatml", "this family uses ChatML"),
    (r"(mistral|mixtral).*instruct", "mistral-instruct", "Mistral Instruct"),
    (r"falcon.*instruct", "falcon-instruct", "Falcon Instruct"),
    (r"alpaca", "alpaca", "Alpaca"),
)
_COMPILED = tuple((re.compile(p), tid, why) for p, tid, why in _NAME_RULES)


def normalize_name(name: str) -> str:
    """Lowercase, '_' and spaces as '-', without a .gguf extension, so 'Meta-Llama-3-8B-Instruct
    .Q4_K_M.gguf' and the general.name 'Meta Llama 3 8B Instruct' read alike to the rules."""
    s = re.sub(r"\.gguf$", "", name.strip().lower())
    return re.sub(r"[_\s]+", "-", s)


def detect(*, user_choice: str | None = None, chat_template: str | None = None,
           file_name: str | None = None, repo_id: str | None = None,
           general_name: str | None = None) -> Detection:
    """Decide the template from plain facts about a model (no file access)."""
    if user_choice:
        return Detection(user_choice, "user", f"you chose {user_choice!r} for this model")
    if chat_template and chat_template.strip():
        return Detection(GGUF_ID, "gguf", "the model file carries its own chat template")
    for what, value in (("file name", file_name), ("repository", repo_id),
                        ("model name", general_name)):
        if not value:
            continue
        name = normalize_name(value)
        for pattern, tid, why in _COMPILED:
            if pattern.search(name):
                return Detection(tid, "name", f"{what} {value!r}: {why}")
    return Detection(RAW_ID, "fallback", "no template in the file and no known chat family in "
                     "its name: raw completion (the text is sent as it is)")


def repo_id_from_metadata(metadata: dict[str, object]) -> str | None:
    """The Hugging Face repository a GGUF says it came from, when its writer recorded one."""
    for key in ("general.source.huggingface.repository", "general.source.repo_url",
                "general.source.url", "general.url"):
        value = metadata.get(key)
        if isinstance(value, str) and value:
            return value.removeprefix("https://huggingface.co/")
    return None
