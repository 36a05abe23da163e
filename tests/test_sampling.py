"""cookbook.sampling: transforms equal transformers' warpers, metrics on hand-computed examples."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from transformers import TemperatureLogitsWarper, TopKLogitsWarper, TopPLogitsWarper

from cookbook import generation, sampling
from cookbook.kit import panel as views


def hf_probs(logits: torch.Tensor, temperature=1.0, top_k=0, top_p=1.0) -> np.ndarray:
    """The distribution transformers samples from, built from its own warpers in generate's order."""
    scores = logits.clone()[None, :]
    ids = torch.zeros((1, 1), dtype=torch.long)
    if temperature != 1.0:
        scores = TemperatureLogitsWarper(float(temperature))(ids, scores)
    if top_k:
        scores = TopKLogitsWarper(top_k)(ids, scores)
    if top_p < 1.0:
        scores = TopPLogitsWarper(top_p)(ids, scores)
    return scores.double().softmax(-1)[0].numpy()


# --- hand-computed examples -----------------------------------------------------------------


def test_temperature_hand_computed():
    # logits ln(1), ln(2), ln(4) -> probabilities 1/7, 2/7, 4/7 at T=1;
    # at T=0.5 the logits double, so the weights square: 1, 4, 16 -> /21.
    logits = np.log([1.0, 2.0, 4.0])
    np.testing.assert_allclose(sampling.reshape(logits), [1 / 7, 2 / 7, 4 / 7])
    np.testing.assert_allclose(sampling.reshape(logits, temperature=0.5), [1 / 21, 4 / 21, 16 / 21])
    # T=2 takes square roots: 1, sqrt2, 2
    w = np.array([1.0, math.sqrt(2), 2.0])
    np.testing.assert_allclose(sampling.reshape(logits, temperature=2.0), w / w.sum())


def test_top_k_hand_computed_keeps_ties():
    logits = np.array([3.0, 1.0, 2.0, 2.0, 0.0])
    out = sampling.apply_top_k(logits, 2)
    # the 2nd largest is 2.0, and both 2.0s survive (transformers keeps ties at the edge)
    assert np.isneginf(out).tolist() == [False, True, False, False, True]
    p = sampling.reshape(logits, top_k=1)
    assert p.tolist() == [1.0, 0.0, 0.0, 0.0, 0.0]


def test_top_p_hand_computed():
    # probabilities 0.5, 0.25, 0.125, 0.0625, 0.0625 (exact in binary)
    logits = np.log([0.5, 0.25, 0.125, 0.0625, 0.0625])
    # top_p=0.6: 0.5 alone is not enough, 0.5+0.25 = 0.75 reaches it -> two tokens
    np.testing.assert_allclose(sampling.reshape(logits, top_p=0.6), [2 / 3, 1 / 3, 0, 0, 0])
    # top_p=0.5: the first token alone reaches 0.5 -> one token
    np.testing.assert_allclose(sampling.reshape(logits, top_p=0.5), [1, 0, 0, 0, 0])
    # top_p=0.8: needs the third token (0.875)
    np.testing.assert_allclose(sampling.reshape(logits, top_p=0.8), [4 / 7, 2 / 7, 1 / 7, 0, 0])
    # top_p tiny: still keeps one token (min_tokens_to_keep)
    assert (sampling.reshape(logits, top_p=0.01) > 0).sum() == 1
    for p in (0.5, 0.6, 0.8, 0.01):  # transformers agrees, boundary case 0.5 included
        ours = sampling.reshape(logits, top_p=p)
        np.testing.assert_allclose(ours, hf_probs(torch.tensor(logits), top_p=p), atol=1e-12)
    # top_p=0.9 needs one of the two tied 0.0625 tokens: exactly one is kept
    kept = sampling.reshape(logits, top_p=0.9) > 0
    assert kept[:3].all() and kept[3:].sum() == 1


def test_pipeline_order_temperature_before_top_p():
    # T=0.5 squares the weights: 0.5,0.25,0.125,0.125 -> 16,4,1,1 (/22); top_p=0.75 then needs
    # only the first token (16/22 = 0.727 < 0.75 -> two tokens). Order matters: check both.
    logits = np.log([0.5, 0.25, 0.125, 0.125])
    p = sampling.reshape(logits, temperature=0.5, top_p=0.75)
    np.testing.assert_allclose(p, [0.8, 0.2, 0, 0])
    np.testing.assert_allclose(p, hf_probs(torch.tensor(logits, dtype=torch.float64), 0.5, 0, 0.75))


# --- equality with transformers' own warpers ------------------------------------------------


@pytest.mark.parametrize(
    "temperature,top_k,top_p",
    [(1.0, 0, 1.0), (0.7, 20, 0.8), (1.0, 40, 1.0), (1.0, 20, 0.95), (0.3, 0, 0.9), (1.5, 5, 0.5),
     (2.0, 0, 0.99), (0.7, 1, 1.0)],
)
def test_matches_transformers_warpers(temperature, top_k, top_p):
    gen = torch.Generator().manual_seed(1234)
    for _ in range(5):
        logits = torch.randn(5000, generator=gen, dtype=torch.float64) * 3
        ours = sampling.reshape(logits, temperature, top_k, top_p)
        theirs = hf_probs(logits, temperature, top_k, top_p)
        assert ((ours > 0) == (theirs > 0)).all()
        np.testing.assert_allclose(ours, theirs, atol=1e-12)


def test_matches_transformers_on_float32_logits_with_ties():
    # coarse float32 logits have many exact ties: the kept sets must still agree
    gen = torch.Generator().manual_seed(7)
    logits = torch.randint(-8, 8, (3000,), generator=gen).float()
    for k in (1, 3, 50):
        assert ((sampling.reshape(logits, top_k=k) > 0) == (hf_probs(logits, top_k=k) > 0)).all()
    for p in (0.3, 0.5, 0.9):
        # which of several tied tokens survives at the edge depends on torch.sort's order for
        # equal values; the number kept and the resulting probabilities must agree
        ours, theirs = sampling.reshape(logits, top_p=p), hf_probs(logits, top_p=p)
        assert (ours > 0).sum() == (theirs > 0).sum()
        np.testing.assert_allclose(np.sort(ours), np.sort(theirs), atol=1e-12)


def test_entropy_hand_computed():
    assert sampling.entropy_bits(sampling.reshape(np.log([0.5, 0.25, 0.125, 0.125]))) == pytest.approx(1.75)
    assert sampling.entropy_bits([1.0, 0.0]) == 0.0


# --- diversity and repetition ---------------------------------------------------------------


def test_distinct_n_hand_computed():
    samples = ["a b a".split(), "a c".split()]  # unigrams a b a a c -> 3 unique of 5; bigrams ab ba ac -> 3/3
    assert sampling.distinct_n(samples, 1) == pytest.approx(3 / 5)
    assert sampling.distinct_n(samples, 2) == pytest.approx(1.0)
    assert sampling.distinct_n([[1, 1, 1, 1]], 1) == pytest.approx(1 / 4)
    assert sampling.distinct_n([["x"]], 2) == 0.0


def test_repetition_rate_hand_computed():
    # "a b c a b c a": 3-grams abc bca cab abc bca -> 2 of 5 repeat an earlier one
    assert sampling.repetition_rate("a b c a b c a".split(), 3) == pytest.approx(2 / 5)
    assert sampling.repetition_rate("one two three four".split(), 3) == 0.0
    assert sampling.repetition_rate([7] * 10, 2) == pytest.approx(8 / 9)
    assert sampling.ngrams([1, 2, 3], 2) == [(1, 2), (2, 3)]
    with pytest.raises(ValueError):
        sampling.ngrams([1], 0)


def test_finish_reason():
    assert sampling.finish_reason([5, 9, 2], [2, 3], 10) == "eos"
    assert sampling.finish_reason([5, 9, 2], 2, 3) == "eos"  # eos wins even at the limit
    assert sampling.finish_reason([5, 9, 7], [2], 3) == "length"
    assert sampling.finish_reason([5, 9], [2], 8, text="Hello.", stop_strings=["."]) == "stop string"
    assert sampling.finish_reason([5], None, 8, text="x") == "other"


# --- presence penalty (the lead's processor, checked where it meets sampling) ---------------


def test_presence_penalty_moves_distribution_as_expected():
    # Vocabulary of 3; token 2 was generated twice, token 0 is only in the prompt.
    proc = generation.PresencePenaltyLogitsProcessor(1.5, prompt_length=2)
    ids = torch.tensor([[0, 1, 2, 2]])
    scores = torch.zeros((1, 3))
    out = proc(ids, scores)
    assert out.tolist() == [[0.0, 0.0, -1.5]]  # flat, once per token, prompt ignored
    p = sampling.reshape(out[0])
    w = np.array([1.0, 1.0, math.exp(-1.5)])
    np.testing.assert_allclose(p, w / w.sum())


# --- the panel, headless --------------------------------------------------------------------


def test_panel_preset_fills_sliders_and_run_calls_generate():
    calls = []

    def fake_generate(**kw):
        calls.append(kw)
        return "answer"

    panel = views.build_panel(fake_generate, generation.PRESETS, preset="instruct-vision",
                                 max_new_tokens_cap=64)
    v = panel.values()
    assert (v["temperature"], v["top_p"], v["top_k"], v["presence_penalty"]) == (0.7, 0.8, 20, 1.5)
    assert v["max_new_tokens"] == 64  # 16384 capped
    panel.controls["preset"].value = "thinking-vision"
    v = panel.values()
    assert (v["temperature"], v["top_p"], v["presence_penalty"]) == (1.0, 0.95, 0.0)
    panel.controls["top_k"].value = 0
    assert panel.run() == "answer"
    assert calls[-1] == {"preset": "thinking-vision", "temperature": 1.0, "top_p": 0.95, "top_k": 0,
                         "presence_penalty": 0.0, "max_new_tokens": 64}
    assert panel.history[-1][1] == "answer"


def test_plot_marks_removed_tokens():
    import matplotlib

    matplotlib.use("Agg")
    logits = np.log([0.5, 0.25, 0.125, 0.125])
    dists = {"raw": sampling.reshape(logits), "top_k 2": sampling.reshape(logits, top_k=2)}
    fig = views.plot_distributions(dists, {0: "a", 1: "b", 2: "猫", 3: "d"}, top=4, title="t")
    titles = [ax.get_title(loc="left") for ax in fig.axes]
    assert titles[0].startswith("raw: 4 tokens kept, top p 0.500") and titles[1].startswith("top_k 2: 2 tokens")
    crosses = [line for line in fig.axes[1].lines if line.get_marker() == "x"]
    assert len(crosses) == 1 and list(crosses[0].get_xdata()) == [2, 3]
