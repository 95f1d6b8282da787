"""The curated catalog: every seed family, real-looking hub names, a sound schema."""

from __future__ import annotations

import dataclasses
import json

import pytest

from app.core.catalog import TEMPLATE_IDS, CatalogError, load_catalog, validate
from app.core.memory_plan import plan_for_entry
from app.core.resources import resource_path

# id -> (repo, default file): the seed families of issue 5, as checked on the hub.
SEEDS = {
    "llama-7b": ("TheBloke/LLaMA-7b-GGUF", "llama-7b.Q4_K_M.gguf"),
    "llama-2-7b": ("TheBloke/Llama-2-7B-GGUF", "llama-2-7b.Q4_K_M.gguf"),
    "llama-2-7b-chat": ("TheBloke/Llama-2-7B-Chat-GGUF", "llama-2-7b-chat.Q4_K_M.gguf"),
    "alpaca-7b": ("Pi3141/alpaca-7b-native-enhanced-GGUF", "ggml-model-q4_k.gguf"),
    "vicuna-7b-v1.5": ("TheBloke/vicuna-7B-v1.5-GGUF", "vicuna-7b-v1.5.Q4_K_M.gguf"),
    "vicuna-13b-v1.5": ("TheBloke/vicuna-13B-v1.5-GGUF", "vicuna-13b-v1.5.Q4_K_M.gguf"),
    "koala-13b": ("mradermacher/koala-13B-HF-GGUF", "koala-13B-HF.Q4_K_M.gguf"),
    "wizardlm-7b-uncensored": ("TheBloke/WizardLM-7B-uncensored-GGUF", "WizardLM-7B-uncensored.Q4_K_M.gguf"),
    "wizardlm-13b-v1.2": ("TheBloke/WizardLM-13B-V1.2-GGUF", "wizardlm-13b-v1.2.Q4_K_M.gguf"),
    "tinyllama-1.1b-chat": ("TheBloke/TinyLlama-1.1B-Chat-v1.0-GGUF", "tinyllama-1.1b-chat-v1.0.Q4_K_M.gguf"),
    "llama-3.2-1b-instruct": ("bartowski/Llama-3.2-1B-Instruct-GGUF", "Llama-3.2-1B-Instruct-Q4_K_M.gguf"),
    "llama-3.2-3b-instruct": ("bartowski/Llama-3.2-3B-Instruct-GGUF", "Llama-3.2-3B-Instruct-Q4_K_M.gguf"),
    "qwen2.5-0.5b-instruct": ("Qwen/Qwen2.5-0.5B-Instruct-GGUF", "qwen2.5-0.5b-instruct-q4_k_m.gguf"),
    "smollm2-1.7b-instruct": ("HuggingFaceTB/SmolLM2-1.7B-Instruct-GGUF", "smollm2-1.7b-instruct-q4_k_m.gguf"),
    "mistral-7b-instruct-v0.2": ("TheBloke/Mistral-7B-Instruct-v0.2-GGUF", "mistral-7b-instruct-v0.2.Q4_K_M.gguf"),
}
GGML_ONLY = {"koala-7b": "koala-13b", "gpt4-x-alpaca-13b": "alpaca-7b"}


@pytest.fixture(scope="module")
def catalog():
    return load_catalog()


def test_every_seed_family_is_present_with_repo_and_file(catalog):
    for entry_id, (repo, file) in SEEDS.items():
        e = catalog.get(entry_id)
        assert (e.repo, e.file) == (repo, file), entry_id
        assert e.available and e.files[0].file == file
        assert e.url == f"https://huggingface.co/{repo}/resolve/main/{file}"


def test_q4_k_m_is_the_default_and_other_quants_are_listed(catalog):
    for e in catalog.available():
        assert e.quantization in ("Q4_K_M", "Q4_K"), e.id  # Pi3141 names its Q4_K_M mix "q4_k"
        assert e.file_for() is e.files[0]
        assert e.file_for(e.quantization.lower()) is e.files[0]
    assert len(catalog.get("llama-2-7b-chat").files) >= 5
    assert catalog.get("mistral-7b-instruct-v0.2").file_for("Q6_K").size == 5942065440


def test_ggml_only_families_say_so_and_point_to_a_gguf_alternative(catalog):
    for entry_id, alternative in GGML_ONLY.items():
        e = catalog.get(entry_id)
        assert not e.available and not e.files and e.file is None
        assert "GGML" in e.unavailable_reason
        assert e.alternative == alternative
        assert catalog.get(e.alternative).available


def test_schema_ids_templates_and_alternatives(catalog):
    assert validate(catalog) == []
    ids = [e.id for e in catalog]
    assert len(ids) == len(set(ids))
    raw = json.loads(resource_path("catalog.json").read_text())
    assert set(raw["templates"]) == set(TEMPLATE_IDS)
    for entry in raw["entries"]:
        for key in ("id", "family", "name", "parameters", "quantization", "repo", "file", "size",
                    "sha256", "template", "license", "gated", "ram_needed", "description",
                    "verified", "source", "available", "files"):
            assert key in entry, (entry["id"], key)
    for e in catalog:
        assert e.template in TEMPLATE_IDS
        assert e.description and "\n" not in e.description and len(e.description) < 120
        assert e.license and e.source and isinstance(e.gated, bool) and isinstance(e.verified, bool)
        assert e.alternative is None or e.alternative in catalog
        for f in e.files:
            assert f.file.endswith(".gguf") and f.size > 100_000_000
            assert f.sha256 is None or len(f.sha256) == 64
            # rounded sizes keep the hub's 3 significant digits (4.08 GB, 776 MB)
            assert f.size_exact or f.size % 10 ** (len(str(f.size)) - 3) == 0, f.file


def test_exact_sizes_and_hashes_that_were_confirmed(catalog):
    chat = catalog.get("llama-2-7b-chat")
    assert (chat.size, chat.sha256) == (
        4081004224, "08a5566d61d7cb6b420c3e4387a39e0078e1f2fe5f055f3a03887385304d4bfa")
    tiny = catalog.get("tinyllama-1.1b-chat").file_for("Q4_K_M")
    assert tiny.size_exact and tiny.size == 668788096
    assert catalog.get("qwen2.5-0.5b-instruct").size == 491400032


def test_ram_needed_comes_from_the_memory_plan(catalog):
    for e in catalog.available():
        assert e.ram_needed == plan_for_entry(e).ram, e.id
        assert e.ram_needed > e.size


def test_lookup_family_and_search(catalog):
    assert {e.id for e in catalog.by_family("vicuna")} == {"vicuna-7b-v1.5", "vicuna-13b-v1.5"}
    assert "llama-2" in catalog.families()
    assert [e.id for e in catalog.search("mistral instruct")] == ["mistral-7b-instruct-v0.2"]
    assert catalog.find("nope") is None
    with pytest.raises(CatalogError, match="no model 'vicuna' in the catalog; did you mean"):
        catalog.get("vicuna")
    hit = catalog.find_file("thebloke/llama-2-7b-chat-gguf", "llama-2-7b-chat.Q5_K_M.gguf")
    assert hit and hit[0].id == "llama-2-7b-chat" and hit[1].quant == "Q5_K_M"
    assert catalog.entry_for_filename("ggml-model-q4_k.gguf").id == "alpaca-7b"


def test_broken_catalogs_are_refused_with_the_reason(tmp_path):
    raw = json.loads(resource_path("catalog.json").read_text())
    bad = tmp_path / "catalog.json"
    bad.write_text("{ not json")
    with pytest.raises(CatalogError, match="cannot be read"):
        load_catalog(bad)
    raw["entries"].append(dict(raw["entries"][0]))
    raw["entries"][1]["alternative"] = "no-such-model"
    bad.write_text(json.dumps(raw))
    with pytest.raises(CatalogError) as err:
        load_catalog(bad)
    assert "duplicate id 'llama-7b'" in str(err.value)
    assert "alternative 'no-such-model' is not in the catalog" in str(err.value)
    with pytest.raises(CatalogError, match="is missing"):
        load_catalog(tmp_path / "absent.json")


def test_a_local_file_gets_the_family_its_name_says():
    catalog = load_catalog()
    assert catalog.family_for("vicuna-7b-v1.5.Q4_K_M.gguf") == "vicuna"        # a catalog file
    assert catalog.family_for("openhermes-2.5-mistral-7b.Q4_K_M.gguf") == "mistral"
    assert catalog.family_for("TinyLlama-1.1B-Chat.Q8_0.gguf") == "tinyllama"  # not "llama"
    assert catalog.family_for("llama-2-13b-chat.Q5_K_M.gguf") == "llama-2"
    assert catalog.family_for("zephyr-7b-beta.Q4_K_M.gguf") is None


def test_a_model_is_named_by_one_family_rule(home, make_model, tmp_path):
    """model_family: the Library, the model picker and a server's models all name a model so —
    the catalog's family for its name, else the GGUF header's architecture."""
    from app.core.catalog import model_family, shipped_catalog
    from app.core.library import Library

    catalog = shipped_catalog()
    library = Library()
    mistral = library.import_file(make_model("tiny", tmp_path, name="openhermes-2.5-mistral-7b"))
    other = library.import_file(make_model("tiny", tmp_path, name="zephyr-7b-beta"))
    assert other.header.architecture == "llama"
    assert model_family(mistral, catalog) == "mistral"
    assert model_family(other, catalog) == "llama"        # no family in its name: the header's
    assert model_family(mistral, None) == "llama"         # no catalog: the header's
    assert model_family("TinyLlama-1.1B-Chat", catalog) == "tinyllama"  # a server's model id
    assert model_family("zephyr", catalog) == "" and model_family("mistral", None) == ""
    unreadable = dataclasses.replace(other, header=None)  # a missing or damaged file
    assert model_family(unreadable, catalog) == ""
    assert model_family(dataclasses.replace(mistral, header=None), catalog) == "mistral"
