import pytest
import torch

from cookbook.generation import PRESETS, PresencePenaltyLogitsProcessor, generation_kwargs, preset


def test_model_card_values():
    assert (PRESETS["instruct-vision"].temperature, PRESETS["instruct-vision"].top_p,
            PRESETS["instruct-vision"].top_k, PRESETS["instruct-vision"].presence_penalty,
            PRESETS["instruct-vision"].max_new_tokens) == (0.7, 0.8, 20, 1.5, 16384)
    assert (PRESETS["instruct-text"].temperature, PRESETS["instruct-text"].presence_penalty,
            PRESETS["instruct-text"].max_new_tokens) == (1.0, 2.0, 32768)
    assert PRESETS["thinking-vision"].presence_penalty == 0.0 and PRESETS["thinking-vision"].max_new_tokens == 40960
    assert PRESETS["thinking-stem"].max_new_tokens == 81920
    assert all(p.repetition_penalty == 1.0 and p.source for p in PRESETS.values())


def test_unknown_preset_lists_the_names():
    with pytest.raises(KeyError, match="instruct-vision"):
        preset("creative")


def test_presence_penalty_subtracts_exactly_once_per_seen_token():
    proc = PresencePenaltyLogitsProcessor(1.5, prompt_length=3)
    # prompt tokens 7, 8, 9 are not penalised; generated 2, 5, 2 are, once each
    input_ids = torch.tensor([[7, 8, 9, 2, 5, 2], [7, 8, 9, 4, 4, 4]])
    scores = torch.arange(20, dtype=torch.float32).reshape(2, 10)
    out = proc(input_ids, scores.clone())
    expected = scores.clone()
    expected[0, [2, 5]] -= 1.5
    expected[1, 4] -= 1.5
    assert torch.equal(out, expected)


def test_presence_penalty_before_any_generation_is_a_no_op():
    proc = PresencePenaltyLogitsProcessor(2.0, prompt_length=4)
    scores = torch.randn(1, 10)
    assert torch.equal(proc(torch.tensor([[1, 2, 3, 4]]), scores), scores)


def test_generation_kwargs():
    kw = generation_kwargs("instruct-vision", prompt_length=12, max_new_tokens=8)
    assert kw["temperature"] == 0.7 and kw["top_p"] == 0.8 and kw["top_k"] == 20 and kw["do_sample"]
    assert kw["max_new_tokens"] == 8 and kw["repetition_penalty"] == 1.0
    (proc,) = kw["logits_processor"]
    assert isinstance(proc, PresencePenaltyLogitsProcessor) and proc.penalty == 1.5 and proc.prompt_length == 12
    greedy = generation_kwargs("thinking-vision", do_sample=False)
    assert not greedy["do_sample"] and "temperature" not in greedy and "logits_processor" not in greedy
    with pytest.raises(ValueError, match="prompt_length"):
        generation_kwargs("instruct-text")
    assert generation_kwargs("instruct-text", presence_penalty=0)["temperature"] == 1.0

