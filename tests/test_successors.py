"""cookbook.successors (14): the hybrid cache and parameter rules against a real tiny Qwen3.5, the
family table, the vLLM command, and settings.successor()."""

from __future__ import annotations

import shlex
from dataclasses import replace

import pytest

from cookbook import memory, successors
from cookbook.kit import tiny_qwen35
from cookbook.runtime.settings import successor


@pytest.fixture(scope="module")
def loaded(tmp_path_factory):
    from transformers import AutoModelForImageTextToText, AutoProcessor

    folder = tiny_qwen35.build(root=tmp_path_factory.mktemp("tiny35"))
    return AutoModelForImageTextToText.from_pretrained(folder).eval(), AutoProcessor.from_pretrained(folder)


def _cache(model, processor, words: int):
    import torch

    prompt = [{"role": "user", "content": [{"type": "text", "text": " ".join(["apple"] * words)}]}]
    enc = processor.apply_chat_template(prompt, tokenize=True, add_generation_prompt=True,
                                        return_dict=True, return_tensors="pt")
    with torch.no_grad():
        out = model(**enc, use_cache=True)
    return (out["cache"] if "cache" in out else out["past_key_values"]), enc["input_ids"].shape[1]


def test_cache_rule_matches_the_measured_cache_within_5_percent(loaded):
    model, processor = loaded
    seen = []
    for words in (3, 90):
        cache, tokens = _cache(model, processor, words)
        measured = successors.measured_cache_bytes(cache)
        rule = successors.cache_bytes(model.config, tokens, dtype_bytes=4)
        for part in ("kv", "conv", "recurrent", "total"):
            assert abs(rule[part] - measured[part]) <= 0.05 * measured[part], (part, rule, measured)
        seen.append((tokens, measured))
    (short, a), (long, b) = seen
    assert long > short and b["kv"] / a["kv"] == pytest.approx(long / short)  # KV grows with the prompt
    assert (a["conv"], a["recurrent"]) == (b["conv"], b["recurrent"]) > (0, 0)  # the states do not


def test_parameter_rule_matches_the_model_within_5_percent(loaded):
    model, _ = loaded
    counted = sum(p.numel() for p in model.parameters())
    vision = memory.parameters(replace(memory.shape(model.config), deepstack=0)).vision
    rule = successors.text_parameters(model.config)["total"] + vision
    assert abs(rule - counted) <= 0.05 * counted
    assert rule == counted  # in fact exact
    measured_bytes = sum(p.numel() * p.element_size() for p in model.parameters())
    assert 4 * rule == measured_bytes


def test_default_config_is_three_to_one_and_the_cache_is_a_quarter():
    from transformers import Qwen3_5TextConfig

    big = Qwen3_5TextConfig()
    kinds = successors.layer_map(big)
    assert kinds.count("linear_attention") == 3 * kinds.count("full_attention")
    tokens = 262_144
    all_full = len(kinds) * 2 * big.num_key_value_heads * big.head_dim * tokens * 2
    assert successors.cache_bytes(big, tokens)["kv"] * 4 == all_full
    assert successors.cache_bytes(big, 0)["kv"] == 0


def test_family_lists_the_published_sizes():
    from cookbook.successors import SUCCESSOR_FAMILY

    assert SUCCESSOR_FAMILY["Qwen3.5"]["sizes"] == (
        "0.8B", "2B", "4B", "9B", "27B", "35B-A3B", "122B-A10B", "397B-A17B")
    assert SUCCESSOR_FAMILY["Qwen3.6"]["sizes"] == ("27B", "35B-A3B")
    assert SUCCESSOR_FAMILY["Qwen3.8"]["sizes"] == ("27B", "2.4T-A95B")


def test_vllm_command_has_the_recipe_flags():
    argv = shlex.split(successors.vllm_command("Qwen/Qwen3.5-9B", text_only=True, mtp_tokens=2))
    assert argv[:3] == ["vllm", "serve", "Qwen/Qwen3.5-9B"]
    assert argv[argv.index("--reasoning-parser") + 1] == "qwen3"
    assert argv[argv.index("--tool-call-parser") + 1] == "qwen3_coder"
    assert "--language-model-only" in argv
    assert argv[argv.index("--speculative-config") + 1] == '{"method": "mtp", "num_speculative_tokens": 2}'
    plain = shlex.split(successors.vllm_command("m", tools=False))
    assert "--tool-call-parser" not in plain and "--language-model-only" not in plain


@pytest.mark.parametrize(("name", "expected"), [
    ("tiny", "tiny-qwen3.5"),
    ("tiny-thinking", "tiny-qwen3.5"),
    ("Qwen/Qwen3-VL-8B-Instruct", "Qwen/Qwen3.5-9B"),
    ("Qwen/Qwen3-VL-32B-Thinking", "Qwen/Qwen3.5-27B"),
    ("Qwen/Qwen3-VL-2B-Instruct-FP8", "Qwen/Qwen3.5-2B"),
    ("Qwen/Qwen3-VL-235B-A22B-Instruct", "Qwen/Qwen3.5-397B-A17B"),
    ("Qwen/Qwen3.6-35B-A3B", "Qwen/Qwen3.6-35B-A3B"),
])
def test_successor_of_each_model(name, expected):
    assert successor(name) == expected


def test_published_27b_shape_gives_27b_parameters():
    from transformers import Qwen3_5TextConfig

    big = Qwen3_5TextConfig(**successors.TEXT_CONFIGS["Qwen3.6-27B"])
    assert successors.layer_map(big) == (["linear_attention"] * 3 + ["full_attention"]) * 16
    total = successors.text_parameters(big)["total"]
    assert abs(total - 27e9) <= 0.05 * 27e9  # the card's 27B includes a vision encoder of a few 100M
    assert total < 27e9


def test_successor_presets_are_the_cards_rows():
    from cookbook.generation import PRESETS

    rows = {k: (p.temperature, p.top_p, p.top_k, p.presence_penalty) for k, p in PRESETS.items() if k.startswith("qwen3.5")}
    assert rows == {
        "qwen3.5-thinking": (1.0, 0.95, 20, 1.5),
        "qwen3.5-thinking-coding": (0.6, 0.95, 20, 0.0),
        "qwen3.5-instruct": (0.7, 0.8, 20, 1.5),
        "qwen3.5-instruct-reasoning": (1.0, 1.0, 40, 2.0),
    }
    assert all("Qwen3.5 model cards" in PRESETS[k].source for k in rows)


def test_successor_line_up_reads_the_published_sizes():
    from cookbook.successors import SUCCESSORS

    by_id = {c.id: c for c in SUCCESSORS}
    assert len(by_id) == 12
    moe = by_id["Qwen/Qwen3.5-397B-A17B"]
    assert (moe.params_b, moe.active_params_b) == (397.0, 17.0)
    assert by_id["Qwen/Qwen3.8-2.4T-A95B"].params_b == 2400.0
    assert by_id["Qwen/Qwen3.5-9B"].active_params_b is None
    assert by_id["Qwen/Qwen3.5-9B"].weights_gib == round(9e9 * 2 / 2**30, 1)


@pytest.mark.parametrize(("gpus", "gb", "expected"), [
    (1, 8, "Qwen/Qwen3.5-2B"), (1, 24, "Qwen/Qwen3.5-9B"), (1, 80, "Qwen/Qwen3.8-27B"),
    (8, 80, "Qwen/Qwen3.5-122B-A10B"),
])
def test_recommendation_names_the_largest_successor_that_fits(gpus, gb, expected):
    from cookbook.lineup import gpu_gib, machine, recommend_model
    from cookbook.successors import SUCCESSORS

    hw = machine("GPU", gb, (8, 9), gpus)
    rec = recommend_model(hw)
    assert rec.successor.id == expected and rec.successor_reason
    room = gpu_gib(hw) * gpus
    assert rec.successor.min_memory_gib <= room
    assert not [c for c in SUCCESSORS if c.params_b > rec.successor.params_b and c.min_memory_gib <= room]
    assert f"or its successor: {expected}" in str(rec)


def test_cache_allowance_covers_two_8k_requests_of_the_27b():
    from transformers import Qwen3_5TextConfig

    from cookbook.successors import SUCCESSOR_CACHE_GIB

    big = Qwen3_5TextConfig(**successors.TEXT_CONFIGS["Qwen3.6-27B"])
    need = successors.cache_bytes(big, 8192, batch=2)["total"] / 2**30
    assert need <= SUCCESSOR_CACHE_GIB < 2 * need


def test_settings_shows_a_successor_as_thinking(monkeypatch):
    import cookbook as cb

    monkeypatch.setenv("COOKBOOK_MODEL", "Qwen/Qwen3.5-9B")
    assert cb.settings().thinking and cb.successor() == "Qwen/Qwen3.5-9B"
    monkeypatch.setenv("COOKBOOK_MODEL", "tiny-qwen3.5")
    s = cb.settings()
    assert s.smoke and s.thinking and s.model == "tiny-qwen3.5" and "tiny random-weight Qwen3.5" in str(s)
    monkeypatch.setenv("COOKBOOK_MODEL", "Qwen/Qwen3-VL-8B-Instruct")
    assert not cb.settings().thinking
