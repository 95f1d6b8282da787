"""Every built-in template against renderings derived by hand from its reference implementation.

Each expected string below was written from the reference named above it (file and function),
not from Corral's output. The conversations: 1 turn = [U1]; 2 turns = [U1, A1, U2];
3 turns = [U1, A1, U2, A2, U3]; "sys" passes system=S, "nosys" passes system="" (no system
prompt at all), "default" passes system=None (the template's own default system prompt).
"""

from __future__ import annotations

import pytest

from app.core.templates import TemplateError, TemplateRegistry, render

U1, A1, U2, A2, U3 = "Hello!", "Hi! How can I help?", "What is 2+2?", "4.", "Thanks. And 3+3?"
S = "You are a terse assistant."
CONVERSATIONS = {
    1: [{"role": "user", "content": U1}],
    2: [{"role": "user", "content": U1}, {"role": "assistant", "content": A1},
        {"role": "user", "content": U2}],
    3: [{"role": "user", "content": U1}, {"role": "assistant", "content": A1},
        {"role": "user", "content": U2}, {"role": "assistant", "content": A2},
        {"role": "user", "content": U3}],
}

VICUNA_V11_SYSTEM = ("A chat between a curious user and an artificial intelligence assistant. "
                     "The assistant gives helpful, detailed, and polite answers to the user's "
                     "questions.")
VICUNA_V0_SYSTEM = ("A chat between a curious human and an artificial intelligence assistant. "
                    "The assistant gives helpful, detailed, and polite answers to the human's "
                    "questions.")
ALPACA_NO_INPUT = ("Below is an instruction that describes a task. Write a response that "
                   "appropriately completes the request.")
ALPACA_INPUT = ("Below is an instruction that describes a task, paired with an input that "
                "provides further context. Write a response that appropriately completes the "
                "request.")

EXPECTED: dict[str, dict[tuple[int, str], str]] = {
    # lm-sys/FastChat fastchat/conversation.py, register_conv_template(name="vicuna_v1.1"),
    # SeparatorStyle.ADD_COLON_TWO in get_prompt(): system + sep, then role + ": " + message +
    # [sep, sep2][i % 2] with sep=" ", sep2="</s>", and "ASSISTANT:" for the empty last message.
    # ("nosys": FastChat would still write the sep, a lone leading space; Corral writes none.)
    "vicuna-v1.1": {
        (1, "sys"): "You are a terse assistant. USER: Hello! ASSISTANT:",
        (2, "sys"): "You are a terse assistant. USER: Hello! ASSISTANT: Hi! How can I help?</s>"
                    "USER: What is 2+2? ASSISTANT:",
        (3, "sys"): "You are a terse assistant. USER: Hello! ASSISTANT: Hi! How can I help?</s>"
                    "USER: What is 2+2? ASSISTANT: 4.</s>USER: Thanks. And 3+3? ASSISTANT:",
        (1, "nosys"): "USER: Hello! ASSISTANT:",
        (2, "nosys"): "USER: Hello! ASSISTANT: Hi! How can I help?</s>USER: What is 2+2? "
                      "ASSISTANT:",
        (3, "nosys"): "USER: Hello! ASSISTANT: Hi! How can I help?</s>USER: What is 2+2? "
                      "ASSISTANT: 4.</s>USER: Thanks. And 3+3? ASSISTANT:",
        (1, "default"): VICUNA_V11_SYSTEM + " USER: Hello! ASSISTANT:",
    },
    # lm-sys/FastChat fastchat/conversation.py, register_conv_template(name="zero_shot") (and
    # "one_shot", which only adds an example exchange): roles Human/Assistant,
    # SeparatorStyle.ADD_COLON_SINGLE with sep="\n### ": get_prompt() writes system + sep, then
    # role + ": " + message + sep per message, and "Assistant:" for the empty last message.
    # ("nosys": FastChat would still write the sep first, a leading "\n### "; Corral starts
    # with "### Human:".)
    "vicuna-v0": {
        (1, "sys"): "You are a terse assistant.\n### Human: Hello!\n### Assistant:",
        (2, "sys"): "You are a terse assistant.\n### Human: Hello!\n### Assistant: Hi! How "
                    "can I help?\n### Human: What is 2+2?\n### Assistant:",
        (3, "sys"): "You are a terse assistant.\n### Human: Hello!\n### Assistant: Hi! How "
                    "can I help?\n### Human: What is 2+2?\n### Assistant: 4.\n### Human: "
                    "Thanks. And 3+3?\n### Assistant:",
        (1, "nosys"): "### Human: Hello!\n### Assistant:",
        (2, "nosys"): "### Human: Hello!\n### Assistant: Hi! How can I help?\n### Human: What "
                      "is 2+2?\n### Assistant:",
        (3, "nosys"): "### Human: Hello!\n### Assistant: Hi! How can I help?\n### Human: What "
                      "is 2+2?\n### Assistant: 4.\n### Human: Thanks. And 3+3?\n### Assistant:",
        (1, "default"): VICUNA_V0_SYSTEM + "\n### Human: Hello!\n### Assistant:",
    },
    # FastChat fastchat/conversation.py register_conv_template(name="koala_v1"): system
    # "BEGINNING OF CONVERSATION:", roles USER/GPT, ADD_COLON_TWO with sep=" ", sep2="</s>".
    "koala": {
        (1, "sys"): "You are a terse assistant. USER: Hello! GPT:",
        (2, "sys"): "You are a terse assistant. USER: Hello! GPT: Hi! How can I help?</s>USER: "
                    "What is 2+2? GPT:",
        (3, "sys"): "You are a terse assistant. USER: Hello! GPT: Hi! How can I help?</s>USER: "
                    "What is 2+2? GPT: 4.</s>USER: Thanks. And 3+3? GPT:",
        (1, "nosys"): "USER: Hello! GPT:",
        (2, "nosys"): "USER: Hello! GPT: Hi! How can I help?</s>USER: What is 2+2? GPT:",
        (3, "nosys"): "USER: Hello! GPT: Hi! How can I help?</s>USER: What is 2+2? GPT: 4.</s>"
                      "USER: Thanks. And 3+3? GPT:",
        (1, "default"): "BEGINNING OF CONVERSATION: USER: Hello! GPT:",
    },
    # tatsu-lab/stanford_alpaca train.py PROMPT_DICT["prompt_no_input"] (1 turn, default) and
    # SupervisedDataset targets = output + eos_token: an earlier answer follows "### Response:"
    # directly and ends with </s>; exchanges are separated by "\n\n" (Corral's multi-turn rule).
    "alpaca": {
        (1, "sys"): "You are a terse assistant.\n\n### Instruction:\nHello!\n\n### Response:",
        (2, "sys"): "You are a terse assistant.\n\n### Instruction:\nHello!\n\n### Response:Hi! "
                    "How can I help?</s>\n\n### Instruction:\nWhat is 2+2?\n\n### Response:",
        (3, "sys"): "You are a terse assistant.\n\n### Instruction:\nHello!\n\n### Response:Hi! "
                    "How can I help?</s>\n\n### Instruction:\nWhat is 2+2?\n\n### Response:4."
                    "</s>\n\n### Instruction:\nThanks. And 3+3?\n\n### Response:",
        (1, "nosys"): "### Instruction:\nHello!\n\n### Response:",
        (2, "nosys"): "### Instruction:\nHello!\n\n### Response:Hi! How can I help?</s>\n\n"
                      "### Instruction:\nWhat is 2+2?\n\n### Response:",
        (3, "nosys"): "### Instruction:\nHello!\n\n### Response:Hi! How can I help?</s>\n\n"
                      "### Instruction:\nWhat is 2+2?\n\n### Response:4.</s>\n\n"
                      "### Instruction:\nThanks. And 3+3?\n\n### Response:",
        (1, "default"): ALPACA_NO_INPUT + "\n\n### Instruction:\nHello!\n\n### Response:",
    },
    # nlpxucan/WizardLM src/train_freeform.py PROMPT_DICT "{instruction}\n\n### Response:",
    # targets = output + eos_token; earlier exchanges and a system prompt are joined by "\n\n".
    "wizardlm": {
        (1, "sys"): "You are a terse assistant.\n\nHello!\n\n### Response:",
        (2, "sys"): "You are a terse assistant.\n\nHello!\n\n### Response:Hi! How can I help?"
                    "</s>\n\nWhat is 2+2?\n\n### Response:",
        (3, "sys"): "You are a terse assistant.\n\nHello!\n\n### Response:Hi! How can I help?"
                    "</s>\n\nWhat is 2+2?\n\n### Response:4.</s>\n\nThanks. And 3+3?\n\n"
                    "### Response:",
        (1, "nosys"): "Hello!\n\n### Response:",
        (2, "nosys"): "Hello!\n\n### Response:Hi! How can I help?</s>\n\nWhat is 2+2?\n\n"
                      "### Response:",
        (3, "nosys"): "Hello!\n\n### Response:Hi! How can I help?</s>\n\nWhat is 2+2?\n\n"
                      "### Response:4.</s>\n\nThanks. And 3+3?\n\n### Response:",
    },
    # meta-llama/llama llama/generation.py Llama.chat_completion: the system message becomes
    # B_SYS + system + E_SYS + first user content; each (prompt, answer) pair is
    # encode(f"{B_INST} {prompt.strip()} {E_INST} {answer.strip()} ", bos=True, eos=True), the
    # last prompt encode(f"{B_INST} {prompt.strip()} {E_INST}", bos=True). <s>/</s> = BOS/EOS.
    "llama-2-chat": {
        (1, "sys"): "<s>[INST] <<SYS>>\nYou are a terse assistant.\n<</SYS>>\n\nHello! [/INST]",
        (2, "sys"): "<s>[INST] <<SYS>>\nYou are a terse assistant.\n<</SYS>>\n\nHello! [/INST] "
                    "Hi! How can I help? </s><s>[INST] What is 2+2? [/INST]",
        (3, "sys"): "<s>[INST] <<SYS>>\nYou are a terse assistant.\n<</SYS>>\n\nHello! [/INST] "
                    "Hi! How can I help? </s><s>[INST] What is 2+2? [/INST] 4. </s><s>[INST] "
                    "Thanks. And 3+3? [/INST]",
        (1, "nosys"): "<s>[INST] Hello! [/INST]",
        (2, "nosys"): "<s>[INST] Hello! [/INST] Hi! How can I help? </s><s>[INST] What is 2+2? "
                      "[/INST]",
        (3, "nosys"): "<s>[INST] Hello! [/INST] Hi! How can I help? </s><s>[INST] What is 2+2? "
                      "[/INST] 4. </s><s>[INST] Thanks. And 3+3? [/INST]",
    },
    # meta-llama/llama3 llama/tokenizer.py ChatFormat.encode_dialog_prompt: <|begin_of_text|>,
    # then per message encode_header (<|start_header_id|>role<|end_header_id|> + "\n\n") +
    # content.strip() + <|eot_id|>, then the assistant header.
    "llama-3": {
        (1, "sys"): "<|begin_of_text|><|start_header_id|>system<|end_header_id|>\n\nYou are a "
                    "terse assistant.<|eot_id|><|start_header_id|>user<|end_header_id|>\n\n"
                    "Hello!<|eot_id|><|start_header_id|>assistant<|end_header_id|>\n\n",
        (2, "sys"): "<|begin_of_text|><|start_header_id|>system<|end_header_id|>\n\nYou are a "
                    "terse assistant.<|eot_id|><|start_header_id|>user<|end_header_id|>\n\n"
                    "Hello!<|eot_id|><|start_header_id|>assistant<|end_header_id|>\n\nHi! How "
                    "can I help?<|eot_id|><|start_header_id|>user<|end_header_id|>\n\nWhat is "
                    "2+2?<|eot_id|><|start_header_id|>assistant<|end_header_id|>\n\n",
        (3, "sys"): "<|begin_of_text|><|start_header_id|>system<|end_header_id|>\n\nYou are a "
                    "terse assistant.<|eot_id|><|start_header_id|>user<|end_header_id|>\n\n"
                    "Hello!<|eot_id|><|start_header_id|>assistant<|end_header_id|>\n\nHi! How "
                    "can I help?<|eot_id|><|start_header_id|>user<|end_header_id|>\n\nWhat is "
                    "2+2?<|eot_id|><|start_header_id|>assistant<|end_header_id|>\n\n4.<|eot_id|>"
                    "<|start_header_id|>user<|end_header_id|>\n\nThanks. And 3+3?<|eot_id|>"
                    "<|start_header_id|>assistant<|end_header_id|>\n\n",
        (1, "nosys"): "<|begin_of_text|><|start_header_id|>user<|end_header_id|>\n\nHello!"
                      "<|eot_id|><|start_header_id|>assistant<|end_header_id|>\n\n",
        (2, "nosys"): "<|begin_of_text|><|start_header_id|>user<|end_header_id|>\n\nHello!"
                      "<|eot_id|><|start_header_id|>assistant<|end_header_id|>\n\nHi! How can I "
                      "help?<|eot_id|><|start_header_id|>user<|end_header_id|>\n\nWhat is 2+2?"
                      "<|eot_id|><|start_header_id|>assistant<|end_header_id|>\n\n",
        (3, "nosys"): "<|begin_of_text|><|start_header_id|>user<|end_header_id|>\n\nHello!"
                      "<|eot_id|><|start_header_id|>assistant<|end_header_id|>\n\nHi! How can I "
                      "help?<|eot_id|><|start_header_id|>user<|end_header_id|>\n\nWhat is 2+2?"
                      "<|eot_id|><|start_header_id|>assistant<|end_header_id|>\n\n4.<|eot_id|>"
                      "<|start_header_id|>user<|end_header_id|>\n\nThanks. And 3+3?<|eot_id|>"
                      "<|start_header_id|>assistant<|end_header_id|>\n\n",
    },
    # oobabooga/text-generation-webui instruction-templates/ChatML.yaml turn_template
    # "<|im_start|><|user|>\n<|user-message|><|im_end|>\n<|im_start|><|bot|>\n<|bot-message|>
    # <|im_end|>\n" (roles user/assistant), system as "<|im_start|>system\n...<|im_end|>\n".
    "chatml": {
        (1, "sys"): "<|im_start|>system\nYou are a terse assistant.<|im_end|>\n<|im_start|>user\n"
                    "Hello!<|im_end|>\n<|im_start|>assistant\n",
        (2, "sys"): "<|im_start|>system\nYou are a terse assistant.<|im_end|>\n<|im_start|>user\n"
                    "Hello!<|im_end|>\n<|im_start|>assistant\nHi! How can I help?<|im_end|>\n"
                    "<|im_start|>user\nWhat is 2+2?<|im_end|>\n<|im_start|>assistant\n",
        (3, "sys"): "<|im_start|>system\nYou are a terse assistant.<|im_end|>\n<|im_start|>user\n"
                    "Hello!<|im_end|>\n<|im_start|>assistant\nHi! How can I help?<|im_end|>\n"
                    "<|im_start|>user\nWhat is 2+2?<|im_end|>\n<|im_start|>assistant\n4."
                    "<|im_end|>\n<|im_start|>user\nThanks. And 3+3?<|im_end|>\n"
                    "<|im_start|>assistant\n",
        (1, "nosys"): "<|im_start|>user\nHello!<|im_end|>\n<|im_start|>assistant\n",
        (2, "nosys"): "<|im_start|>user\nHello!<|im_end|>\n<|im_start|>assistant\nHi! How can I "
                      "help?<|im_end|>\n<|im_start|>user\nWhat is 2+2?<|im_end|>\n"
                      "<|im_start|>assistant\n",
        (3, "nosys"): "<|im_start|>user\nHello!<|im_end|>\n<|im_start|>assistant\nHi! How can I "
                      "help?<|im_end|>\n<|im_start|>user\nWhat is 2+2?<|im_end|>\n"
                      "<|im_start|>assistant\n4.<|im_end|>\n<|im_start|>user\nThanks. And 3+3?"
                      "<|im_end|>\n<|im_start|>assistant\n",
    },
    # mistralai/cookbook concept-deep-dive/tokenization/chat_templates.md, "Tokenizer V1":
    # BOS + encode("[INST] user [/INST]") + encode("answer") + EOS + encode("[INST] ... [/INST]"),
    # system prompt prepended to the first user message with "\n\n". Written without a space
    # after <s>/</s>: llama.cpp inserts sentencepiece's leading space after a special token.
    "mistral-instruct": {
        (1, "sys"): "<s>[INST] You are a terse assistant.\n\nHello! [/INST]",
        (2, "sys"): "<s>[INST] You are a terse assistant.\n\nHello! [/INST] Hi! How can I help?"
                    "</s>[INST] What is 2+2? [/INST]",
        (3, "sys"): "<s>[INST] You are a terse assistant.\n\nHello! [/INST] Hi! How can I help?"
                    "</s>[INST] What is 2+2? [/INST] 4.</s>[INST] Thanks. And 3+3? [/INST]",
        (1, "nosys"): "<s>[INST] Hello! [/INST]",
        (2, "nosys"): "<s>[INST] Hello! [/INST] Hi! How can I help?</s>[INST] What is 2+2? "
                      "[/INST]",
        (3, "nosys"): "<s>[INST] Hello! [/INST] Hi! How can I help?</s>[INST] What is 2+2? "
                      "[/INST] 4.</s>[INST] Thanks. And 3+3? [/INST]",
    },
    # TinyLlama/TinyLlama-1.1B-Chat-v1.0 tokenizer_config.json chat_template (= zephyr-7b-beta's):
    # "<|role|>\n" + content + eos_token, each followed by "\n" (trim_blocks), and
    # "<|assistant|>\n" to generate; transformers.js tests show the same rendering.
    "zephyr": {
        (1, "sys"): "<|system|>\nYou are a terse assistant.</s>\n<|user|>\nHello!</s>\n"
                    "<|assistant|>\n",
        (2, "sys"): "<|system|>\nYou are a terse assistant.</s>\n<|user|>\nHello!</s>\n"
                    "<|assistant|>\nHi! How can I help?</s>\n<|user|>\nWhat is 2+2?</s>\n"
                    "<|assistant|>\n",
        (3, "sys"): "<|system|>\nYou are a terse assistant.</s>\n<|user|>\nHello!</s>\n"
                    "<|assistant|>\nHi! How can I help?</s>\n<|user|>\nWhat is 2+2?</s>\n"
                    "<|assistant|>\n4.</s>\n<|user|>\nThanks. And 3+3?</s>\n<|assistant|>\n",
        (1, "nosys"): "<|user|>\nHello!</s>\n<|assistant|>\n",
        (2, "nosys"): "<|user|>\nHello!</s>\n<|assistant|>\nHi! How can I help?</s>\n<|user|>\n"
                      "What is 2+2?</s>\n<|assistant|>\n",
        (3, "nosys"): "<|user|>\nHello!</s>\n<|assistant|>\nHi! How can I help?</s>\n<|user|>\n"
                      "What is 2+2?</s>\n<|assistant|>\n4.</s>\n<|user|>\nThanks. And 3+3?</s>\n"
                      "<|assistant|>\n",
    },
    # FastChat fastchat/conversation.py register_conv_template(name="falcon"), SeparatorStyle.RWKV:
    # role + ": " + message + "\n\n" per message, "Assistant:" to generate (the system prompt
    # gets a blank line after it: FastChat writes none, a Corral choice).
    "falcon-instruct": {
        (1, "sys"): "You are a terse assistant.\n\nUser: Hello!\n\nAssistant:",
        (2, "sys"): "You are a terse assistant.\n\nUser: Hello!\n\nAssistant: Hi! How can I "
                    "help?\n\nUser: What is 2+2?\n\nAssistant:",
        (3, "sys"): "You are a terse assistant.\n\nUser: Hello!\n\nAssistant: Hi! How can I "
                    "help?\n\nUser: What is 2+2?\n\nAssistant: 4.\n\nUser: Thanks. And 3+3?\n\n"
                    "Assistant:",
        (1, "nosys"): "User: Hello!\n\nAssistant:",
        (2, "nosys"): "User: Hello!\n\nAssistant: Hi! How can I help?\n\nUser: What is 2+2?\n\n"
                      "Assistant:",
        (3, "nosys"): "User: Hello!\n\nAssistant: Hi! How can I help?\n\nUser: What is 2+2?\n\n"
                      "Assistant: 4.\n\nUser: Thanks. And 3+3?\n\nAssistant:",
    },
    # meta-llama/llama llama/generation.py Llama.text_completion: the prompt text as it is
    # (BOS added by the tokenizer). Messages are concatenated; a system prompt is a preamble.
    "llama": {
        (1, "sys"): "You are a terse assistant.\n\nHello!",
        (2, "sys"): "You are a terse assistant.\n\nHello!Hi! How can I help?What is 2+2?",
        (3, "sys"): "You are a terse assistant.\n\nHello!Hi! How can I help?What is 2+2?4."
                    "Thanks. And 3+3?",
        (1, "nosys"): "Hello!",
        (2, "nosys"): "Hello!Hi! How can I help?What is 2+2?",
        (3, "nosys"): "Hello!Hi! How can I help?What is 2+2?4.Thanks. And 3+3?",
    },
}

# cocktailpeanut/dalai bin/web/prompts/<file> at <commit>: the preset with >PROMPT replaced by
# the last user message (one-shot: earlier turns are not sent). Texts copied from the files.
DALAI = {
    "dalai-default": ("default-alpaca.txt @ edd6eba",
                      "Below is an instruction that describes a task. Write a response that "
                      "appropriately completes the request.\n\n### Instruction:\n{p}\n\n"
                      "### Response:\n"),
    "dalai-rewrite": ("rewrite-alpaca.txt @ 6f0d1da",
                      "Below is an instruction that describes a task, paired with an input that "
                      "provides further context. Write a response that appropriately completes "
                      "the request.\n\n### Instruction:\nRephrase the sentence.\n\n### Input:\n"
                      "{p}\n\n### Response:\n"),
    "dalai-ai-dialog": ("ai-dialog.txt @ 6f0d1da",
                        "Below is a dialog, where User interacts with AI. AI is helpful, kind, "
                        "obedient, honest, and knows its own limits.\n\nInstruction\nWrite the "
                        "last AI response to complete the dialog.\n\nDialog\nUser: Hello, AI.\n"
                        "AI: Hello! How can I assist you today?\nUser: {p}\n\nResponse\nAI:\n"),
    "dalai-chatbot": ("chatbot.txt @ 6f0d1da",
                      "The expected response for a highly intelligent chatbot to \"{p}\" is\n\"\n"),
    "dalai-translate": ("translate.txt @ cb88ee7 (>LANGUAGE = French by default)",
                        "Here is how a professional Translator accurately translates the "
                        "following English text to a grammatically correct French text:\n\n"
                        "English: {p}\nFrench:"),
    "dalai-tweet-sentiment": ("tweet-sentiment.txt @ 6f0d1da",
                              "Tweet: 'I hate it when my phone battery dies.'\nSentiment: "
                              "Negative\n###\nTweet: 'My day has been 👍'\nSentiment: Positive\n"
                              "###\nTweet: 'This is the link to the article'\nSentiment: "
                              "Neutral\n###\nTweet: '{p}'\nSentiment:\n"),
}
# The preset lengths the stored files have (read_file total_chars), placeholder unreplaced.
DALAI_FILE_LENGTHS = {"dalai-default": 147, "dalai-rewrite": 234, "dalai-ai-dialog": 270,
                      "dalai-chatbot": 73, "dalai-translate": 158, "dalai-tweet-sentiment": 214}

SYSTEM_ARG = {"sys": S, "nosys": "", "default": None}


@pytest.fixture(scope="module")
def registry(tmp_path_factory):
    return TemplateRegistry(user_folder=tmp_path_factory.mktemp("no-user-templates"))


def test_every_builtin_has_expected_renderings(registry):
    covered = set(EXPECTED) | set(DALAI)
    assert covered == {t.id for t in registry.all()}


CASES = [(tid, turns, mode) for tid, table in EXPECTED.items() for (turns, mode) in table]


@pytest.mark.parametrize("tid,turns,mode", CASES)
def test_builtin_matches_reference(registry, tid, turns, mode):
    rendered = render(registry.get(tid), CONVERSATIONS[turns], system=SYSTEM_ARG[mode])
    assert rendered.text == EXPECTED[tid][(turns, mode)]
    assert rendered.template_id == tid


@pytest.mark.parametrize("tid", sorted(EXPECTED))
def test_every_chat_template_covers_1_2_3_turns_with_and_without_system(tid):
    assert {(n, m) for n in (1, 2, 3) for m in ("sys", "nosys")} <= set(EXPECTED[tid])


@pytest.mark.parametrize("tid", sorted(DALAI))
@pytest.mark.parametrize("turns", [1, 2, 3])
@pytest.mark.parametrize("mode", ["sys", "nosys"])
def test_dalai_presets(registry, tid, turns, mode):
    template = registry.get(tid)
    assert len(template.preset) == DALAI_FILE_LENGTHS[tid]
    last_user = CONVERSATIONS[turns][-1]["content"]
    expected = DALAI[tid][1].replace("{p}", last_user)
    if mode == "sys":
        expected = S + "\n\n" + expected
    rendered = render(template, CONVERSATIONS[turns], system=SYSTEM_ARG[mode])
    assert rendered.text == expected


def test_dalai_language_variable_and_literal_placeholders_in_messages(registry):
    template = registry.get("dalai-translate")
    msg = [{"role": "user", "content": "say >LANGUAGE and >PROMPT"}]
    out = render(template, msg, variables={"LANGUAGE": "German"}).text
    assert out == ("Here is how a professional Translator accurately translates the following "
                   "English text to a grammatically correct German text:\n\nEnglish: say "
                   ">LANGUAGE and >PROMPT\nGerman:")


def test_alpaca_with_input_uses_prompt_input(registry):
    # stanford_alpaca train.py PROMPT_DICT["prompt_input"], exactly.
    msgs = [{"role": "user", "content": "Translate to French.", "input": "Good morning"}]
    out = render(registry.get("alpaca"), msgs).text
    assert out == (ALPACA_INPUT + "\n\n### Instruction:\nTranslate to French.\n\n### Input:\n"
                   "Good morning\n\n### Response:")


def test_llama2_strips_like_meta(registry):
    # generation.py strips each prompt and answer; the first prompt is stripped after the
    # system block is put in front of it, so its leading spaces stay (inside the text).
    msgs = [{"role": "system", "content": "Be brief."},
            {"role": "user", "content": "  Hello!  \n"},
            {"role": "assistant", "content": "\n Hi! "}, {"role": "user", "content": " Bye "}]
    out = render(registry.get("llama-2-chat"), msgs).text
    assert out == ("<s>[INST] <<SYS>>\nBe brief.\n<</SYS>>\n\n  Hello! [/INST] Hi! </s>"
                   "<s>[INST] Bye [/INST]")
    out = render(registry.get("llama-2-chat"), msgs[1:]).text
    assert out.startswith("<s>[INST] Hello! [/INST] Hi! </s>")


def test_llama2_refuses_non_alternating_roles(registry):
    msgs = [{"role": "user", "content": "a"}, {"role": "user", "content": "b"}]
    with pytest.raises(TemplateError, match="llama-2-chat"):
        render(registry.get("llama-2-chat"), msgs)


def test_falcon_folds_blank_lines_like_fastchat(registry):
    msgs = [{"role": "user", "content": "line one\n\nline two\r\nthree"}]
    assert render(registry.get("falcon-instruct"), msgs).text == (
        "User: line one\nline two\nthree\n\nAssistant:")


def test_message_text_is_never_interpreted(registry):
    msgs = [{"role": "user", "content": "{content} {system} {0.__class__} {{ 7*7 }}"}]
    out = render(registry.get("vicuna-v1.1"), msgs, system="").text
    assert out == "USER: {content} {system} {0.__class__} {{ 7*7 }} ASSISTANT:"
    out = render(registry.get("llama-3"), msgs, system="").text
    assert "{{ 7*7 }}" in out and "49" not in out


def test_no_generation_prompt_ends_after_the_last_message(registry):
    msgs = CONVERSATIONS[2] + [{"role": "assistant", "content": "4."}]
    out = render(registry.get("vicuna-v1.1"), msgs, system="", add_generation_prompt=False)
    assert out.text == ("USER: Hello! ASSISTANT: Hi! How can I help?</s>USER: What is 2+2? "
                        "ASSISTANT: 4.</s>")


def test_system_message_in_conversation_and_override(registry):
    t = registry.get("vicuna-v1.1")
    msgs = [{"role": "system", "content": "From the chat."}] + CONVERSATIONS[1]
    assert render(t, msgs).text == "From the chat. USER: Hello! ASSISTANT:"
    assert render(t, msgs, system="Override.").text == "Override. USER: Hello! ASSISTANT:"
    assert render(t, msgs, system="").text == "USER: Hello! ASSISTANT:"


def test_bos_handling(registry):
    vicuna = render(registry.get("vicuna-v1.1"), CONVERSATIONS[1])
    assert vicuna.add_bos is True and not vicuna.text.startswith("<s>")
    for tid in ("llama-2-chat", "mistral-instruct", "llama-3"):
        assert render(registry.get(tid), CONVERSATIONS[1]).add_bos is False
    # A model's own tokens replace the template's defaults.
    llama3 = registry.get("llama-3").with_tokens("<BOS>", "<EOS>")
    out = render(llama3, CONVERSATIONS[1])
    assert out.text.startswith("<BOS><|start_header_id|>") and out.add_bos is False


@pytest.mark.parametrize("bad,match", [
    ("not a list", "list"),
    ([{"role": "bot", "content": "x"}], "role 'bot'"),
    ([{"role": "user"}], "content"),
    ([{"role": "user", "content": "a"}, {"role": "system", "content": "b"}], "first"),
    ([{"role": "assistant", "content": "a", "input": "b"}], "input"),
])
def test_bad_conversations_are_refused(registry, bad, match):
    with pytest.raises(TemplateError, match=match):
        render(registry.get("chatml"), bad)


def test_stop_strings(registry):
    assert render(registry.get("vicuna-v0"), CONVERSATIONS[1]).stop == ["###"]
    assert "<|eot_id|>" in render(registry.get("llama-3"), CONVERSATIONS[1]).stop
    assert render(registry.get("chatml"), CONVERSATIONS[1]).stop == ["<|im_end|>"]
