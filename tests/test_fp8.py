"""Block-wise FP8 (cookbook.fp8): scales, shapes, the e4m3 error bound, the module policy, logits drift."""

from __future__ import annotations

import math

import pytest
import torch

from cookbook import fp8, memory

# A small Qwen3-VL with widths above 128, so weights span several 128x128 blocks.
SMALL = memory.Shape(hidden=256, layers=2, heads=4, kv_heads=2, head_dim=64, intermediate=384, vocab=1000,
                     tie=False, vision_depth=2, vision_hidden=64, vision_intermediate=128, deepstack=2)
SMALL_MOE = memory.Shape(hidden=256, layers=2, heads=4, kv_heads=2, head_dim=64, intermediate=384, vocab=1000,
                         tie=False, experts=4, experts_per_token=2, moe_intermediate=128, vision_depth=1,
                         vision_hidden=64, vision_intermediate=128, deepstack=1)


def _model(shape, seed=0):
    torch.manual_seed(seed)
    return memory.instantiate(memory.to_config(shape), torch.float32).eval()


@pytest.fixture(scope="module")
def small():
    return _model(SMALL)


def _e4m3_grid():
    """Every finite float8_e4m3fn value, as float32."""
    vals = torch.arange(256, dtype=torch.uint8).view(torch.float8_e4m3fn).to(torch.float32)
    return vals[torch.isfinite(vals)]


def test_scale_is_block_amax_over_448_and_shapes_round_up():
    torch.manual_seed(1)
    w = torch.randn(300, 200)
    q, s = fp8.quantize(w)
    assert q.dtype == torch.float8_e4m3fn and q.shape == (300, 200)
    assert s.dtype == torch.float32 and s.shape == (3, 2)  # ceil(300/128), ceil(200/128)
    for i, (r0, r1) in enumerate([(0, 128), (128, 256), (256, 300)]):
        for j, (c0, c1) in enumerate([(0, 128), (128, 200)]):
            assert s[i, j] == w[r0:r1, c0:c1].abs().max() / 448
    # each block's largest element maps to +-448 exactly and so survives the round trip
    i, j = divmod(int(w[:128, :128].abs().argmax()), 128)
    assert abs(float(q[i, j].to(torch.float32))) == 448.0
    assert fp8.dequantize(q, s)[i, j] == w[i, j]


@pytest.mark.parametrize("shape,blocks", [((1, 1), (1, 1)), ((128, 128), (1, 1)), ((129, 257), (2, 3)),
                                          ((4, 256, 130), (2, 2))])
def test_block_grid_for_any_shape(shape, blocks):
    w = torch.randn(*shape)
    q, s = fp8.quantize(w)
    assert q.shape == w.shape and s.shape == (*shape[:-2], *blocks)
    assert fp8.dequantize(q, s).shape == w.shape


def test_stacked_experts_quantize_like_separate_matrices():
    torch.manual_seed(2)
    w = torch.randn(3, 256, 130)
    q, s = fp8.quantize(w)
    for e in range(3):
        qe, se = fp8.quantize(w[e])
        assert torch.equal(s[e], se) and torch.equal(q[e].view(torch.uint8), qe.view(torch.uint8))


def test_all_zero_block_has_scale_one_and_stays_zero():
    torch.manual_seed(3)
    w = torch.randn(256, 256)
    w[128:, :128] = 0
    q, s = fp8.quantize(w)
    assert s[1, 0] == 1.0
    assert not torch.isnan(q.to(torch.float32)).any()
    d = fp8.dequantize(q, s)
    assert torch.equal(d[128:, :128], torch.zeros(128, 128))
    # the other blocks are quantized exactly as they would be alone
    q2, s2 = fp8.quantize(w[:128, :128])
    assert s[0, 0] == s2[0, 0] and torch.equal(d[:128, :128], fp8.dequantize(q2, s2))


def test_values_on_the_e4m3_grid_round_trip_exactly():
    grid = _e4m3_grid()
    w = grid[torch.randint(0, grid.numel(), (128, 128), generator=torch.Generator().manual_seed(4))]
    w[0, 0] = 448.0  # amax 448: scale_inv 1, so the grid values are representable as they are
    assert torch.equal(fp8.roundtrip(w), w)
    assert torch.equal(fp8.roundtrip(w * 2.0**-20), w * 2.0**-20)  # a power-of-two scale changes nothing


@pytest.mark.parametrize("kind", ["gaussian", "heavy_tailed", "mixed_magnitudes"])
def test_round_trip_error_bound_per_element(kind):
    """|w_hat - w| <= max(2**-4 |w|, 2**-10 * scale): half an ulp of 3 mantissa bits, or of a subnormal step."""
    g = torch.Generator().manual_seed(5)
    if kind == "gaussian":
        w = 0.02 * torch.randn(384, 320, generator=g)
    elif kind == "heavy_tailed":
        w = torch.randn(384, 320, generator=g) / torch.rand(384, 320, generator=g).clamp_min(1e-3)
    else:  # values from 1e-7 to 1 in every block: many land in e4m3's subnormal range after scaling
        w = torch.randn(384, 320, generator=g) * 10.0 ** -torch.randint(0, 8, (384, 320), generator=g)
    err = (fp8.roundtrip(w) - w).abs()
    bound = fp8.error_bound(w)
    assert (err <= bound * (1 + 1e-6)).all()
    ratio = float((err / bound).max())
    assert ratio > 0.5  # the bound is tight: some element uses most of it


def test_relative_frobenius_error_of_gaussian_weights():
    """Uniform rounding over 3 mantissa bits: RMS relative error ~ 2**-4 / sqrt(3) * ln2-ish, about 2-3%."""
    w = 0.02 * torch.randn(512, 512, generator=torch.Generator().manual_seed(6))
    e = fp8.weight_error(w)
    assert 0.015 < e.rel_fro < 0.035
    assert e.max_abs <= 2.0**-4 * float(w.abs().max()) * (1 + 1e-6)
    assert e.numel == 512 * 512 and e.shape == (512, 512)


def test_round_trip_keeps_dtype():
    w = torch.randn(64, 200).to(torch.bfloat16)
    assert fp8.roundtrip(w).dtype == torch.bfloat16
    assert fp8.dequantize(*fp8.quantize(w)).dtype == torch.float32


def test_targets_follow_the_official_checkpoints(small):
    names = [n for n, _ in fp8.targets(small)]
    projections = ("q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj")
    expected = [f"model.language_model.layers.{i}.{part}.{p}.weight" for i in range(SMALL.layers)
                for part, p in [("self_attn", x) for x in projections[:4]] + [("mlp", x) for x in projections[4:]]]
    assert sorted(names) == sorted(expected)
    assert not any("visual" in n or "lm_head" in n or "embed" in n for n in names)
    assert fp8.skipped("model.visual.blocks.0.attn.qkv.weight") and fp8.skipped("lm_head.weight")
    assert fp8.skipped("model.language_model.layers.3.mlp.gate.weight")
    assert not fp8.skipped("model.language_model.layers.3.mlp.gate_proj.weight")


def test_targets_include_moe_experts_but_not_the_router():
    model = _model(SMALL_MOE)
    names = {n for n, _ in fp8.targets(model)}
    for i in range(SMALL_MOE.layers):
        assert f"model.language_model.layers.{i}.mlp.experts.gate_up_proj" in names
        assert f"model.language_model.layers.{i}.mlp.experts.down_proj" in names
        assert f"model.language_model.layers.{i}.mlp.gate.weight" not in names
    assert len(names) == SMALL_MOE.layers * 6


@pytest.mark.parametrize("size", ["8B", "30B-A3B"])
def test_fp8_storage_of_the_targets_equals_the_memory_estimate(size):
    """Count FP8 bytes over fp8.targets() of the full-size model (meta device) the way a checkpoint stores them."""
    model = memory.instantiate(memory.to_config(size), torch.bfloat16, device="meta")
    quantized = 0
    for _, p in fp8.targets(model):
        lead = math.prod(p.shape[:-2])
        blocks = lead * math.ceil(p.shape[-2] / 128) * math.ceil(p.shape[-1] / 128)
        quantized += p.numel() + 4 * blocks
    n_targets = sum(p.numel() for _, p in fp8.targets(model))
    rest = sum(p.numel() for p in model.parameters()) - n_targets
    assert quantized + 2 * rest == memory.weight_bytes(size, "fp8")


def test_fake_quantize_copies_and_touches_only_targets(small):
    before = {n: p.detach().clone() for n, p in small.named_parameters()}
    fq, report = fp8.fake_quantize(small)
    target_names = {n for n, _ in fp8.targets(small)}
    after = dict(fq.named_parameters())
    for n, p in small.named_parameters():
        assert torch.equal(p, before[n]), f"original changed: {n}"
        if n in target_names:
            assert torch.equal(after[n], fp8.roundtrip(before[n])) and not torch.equal(after[n], before[n])
        else:
            assert torch.equal(after[n], before[n]), f"{n} should stay unquantized"
    assert report.tensors == len(target_names) == 14
    assert report.quantized_params == sum(before[n].numel() for n in target_names)
    assert report.total_params == sum(p.numel() for p in small.parameters())
    assert 0.015 < report.rel_fro < 0.035 and report.worst.rel_fro >= report.rel_fro * 0.9
    assert "FP8 e4m3" in str(report) and f"{report.fraction:.1%}" in str(report)


def test_fake_quantize_in_place():
    model = _model(SMALL, seed=1)
    name, p = next(iter(fp8.targets(model)))
    original = p.detach().clone()
    out, report = fp8.fake_quantize(model, inplace=True)
    assert out is model and torch.equal(dict(model.named_parameters())[name], fp8.roundtrip(original))


def test_fake_quantization_moves_logits_a_little(small):
    """Measured on this random model: KL ~3e-4 nats per position, most argmaxes unchanged."""
    fq, _ = fp8.fake_quantize(small)
    ids = torch.randint(0, SMALL.vocab, (2, 48), generator=torch.Generator().manual_seed(7))
    with torch.no_grad():
        ref, new = small(input_ids=ids).logits, fq(input_ids=ids).logits
    drift = fp8.compare_logits(ref, new)
    assert drift["positions"] == 96
    assert 1e-5 < drift["kl_mean"] < 1e-2 and drift["kl_max"] < 5e-2
    assert drift["top1_agreement"] >= 0.75
    assert 0 < drift["max_abs_diff"] < 0.5
    same = fp8.compare_logits(ref, ref)
    assert same["kl_mean"] == pytest.approx(0.0, abs=1e-7) and same["top1_agreement"] == 1.0


def test_compare_logits_known_kl():
    a = torch.log(torch.tensor([[0.5, 0.5]]))
    b = torch.log(torch.tensor([[0.9, 0.1]]))
    expected = 0.5 * math.log(0.5 / 0.9) + 0.5 * math.log(0.5 / 0.1)
    out = fp8.compare_logits(a, b)
    assert out["kl_mean"] == pytest.approx(expected, rel=1e-5)
    assert out["top1_agreement"] == 1.0  # ties break to the first index in both


def test_compare_tokens():
    assert fp8.compare_tokens([1, 2, 3, 4], [1, 2, 9, 4]) == {
        "reference_tokens": 4, "other_tokens": 4, "same_prefix": 2, "identical": False,
        "first_divergence": 2, "agreement": 0.75,
    }
    same = fp8.compare_tokens(torch.tensor([5, 6]), [5, 6])
    assert same["identical"] and same["first_divergence"] is None and same["agreement"] == 1.0
    assert fp8.compare_tokens([1, 2, 3], [1, 2])["agreement"] == pytest.approx(2 / 3)


def test_fake_quantization_of_the_tiny_checkpoint_with_an_image(tiny, photo):
    """The project's tiny model and a real image prompt: vision tower untouched, logits move a little."""
    import cookbook as cb

    model, processor = tiny
    fq, report = fp8.fake_quantize(model)
    assert report.tensors == 7 * model.config.text_config.num_hidden_layers
    original = dict(model.named_parameters())
    for name, p in fq.named_parameters():
        if ".visual." in name or "embed_tokens" in name:
            assert torch.equal(p, original[name])
    encoded = cb.inputs(processor, [cb.messages.user(photo, "Describe this image.")])
    with torch.no_grad():
        drift = fp8.compare_logits(model(**encoded).logits, fq(**encoded).logits)
    assert drift["positions"] == encoded["input_ids"].shape[1]
    assert 1e-8 < drift["kl_mean"] < 1e-3 and drift["top1_agreement"] >= 0.9


def test_activation_groups_of_128_per_token():
    torch.manual_seed(3)
    x = torch.randn(2, 5, 300)
    x[0, 0, 7] = 50.0  # an outlier: only its own group of 128 gets a coarse scale
    q = fp8.quantize_activations(x)
    assert q.shape == x.shape and q.dtype == x.dtype
    assert q[0, 0, 7] == 50.0  # the group's amax maps to 448 exactly
    err = (q - x).abs()
    assert err[0, 0, 128:].max() < err[0, 0, :128].max()  # groups 2-3 keep their fine scale
    for t in range(5):  # each group within the e4m3 bound of its own scale
        for g0 in range(0, 300, 128):
            g = x[1, t, g0:g0 + 128]
            bound = torch.maximum(fp8.REL_ERROR_NORMAL * g.abs(), fp8.ABS_ERROR_SUBNORMAL * g.abs().max() / 448)
            assert ((q[1, t, g0:g0 + 128] - g).abs() <= bound + 1e-7).all()


def test_w8a8_moves_logits_more_than_weights_only(small):
    fq, _ = fp8.fake_quantize(small)
    ids = torch.randint(0, SMALL.vocab, (2, 48), generator=torch.Generator().manual_seed(7))
    with torch.no_grad():
        ref, weights_only = small(input_ids=ids).logits, fq(input_ids=ids).logits
        handles = fp8.add_activation_quantization(fq)
        assert len(handles) == 7 * SMALL.layers
        w8a8 = fq(input_ids=ids).logits
        for h in handles:
            h.remove()
        assert torch.equal(fq(input_ids=ids).logits, weights_only)  # hooks removed: weights-only again
    assert fp8.compare_logits(ref, w8a8)["kl_mean"] > fp8.compare_logits(ref, weights_only)["kl_mean"]


def test_save_checkpoint_in_the_official_format(small, tmp_path):
    import json

    from safetensors.torch import load_file

    folder = fp8.save_checkpoint(small, tmp_path / "fp8")
    cfg = json.loads((folder / "config.json").read_text())["quantization_config"]
    assert cfg["quant_method"] == "fp8" and cfg["weight_block_size"] == [128, 128]
    assert cfg["activation_scheme"] == "dynamic" and cfg["fmt"] == "e4m3"
    assert "lm_head" in cfg["modules_to_not_convert"]
    assert any(n.startswith("model.visual.") for n in cfg["modules_to_not_convert"])
    tensors = load_file(str(folder / "model.safetensors"))
    name = "model.language_model.layers.0.mlp.up_proj.weight"
    q, s = tensors[name], tensors[name.replace("weight", "weight_scale_inv")]
    assert q.dtype == torch.float8_e4m3fn and s.dtype == torch.float32 and s.shape == (3, 2)  # 384 x 256
    original = dict(small.named_parameters())[name]
    assert torch.equal(fp8.dequantize(q, s), fp8.roundtrip(original))  # reload gives the round trip
    assert tensors["lm_head.weight"].dtype == torch.bfloat16
    assert not any(k.startswith("model.visual.") and k.endswith("scale_inv") for k in tensors)
    n_scales = sum(k.endswith("weight_scale_inv") for k in tensors)
    assert n_scales == 7 * SMALL.layers
