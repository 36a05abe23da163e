"""The line-up (sizes from the configs) and the recommendation for a machine (cookbook.lineup)."""

import pytest

import cookbook as cb
from cookbook.lineup import LINEUP, SEED_MIN_MEMORY_GB, checkpoint

H100 = cb.GPU("H100", 80.0, (9, 0))
L4 = cb.GPU("L4", 24.0, (8, 9))
A10 = cb.GPU("A10", 24.0, (8, 6))
RTX = cb.GPU("RTX 4060", 8.0, (8, 9))


def test_lineup_covers_sizes_variants_and_fp8():
    assert len(LINEUP) == 6 * 2 * 2
    assert {c.size for c in LINEUP} == {"2B", "4B", "8B", "32B", "30B-A3B", "235B-A22B"}
    ck = checkpoint("qwen/qwen3-vl-8b-instruct-fp8")
    assert ck.fp8 and ck.size == "8B" and ck.params_b < ck.disk_gb < 2 * ck.params_b  # vision and embeddings stay bf16
    assert checkpoint("Qwen/Qwen3-VL-30B-A3B-Thinking").moe
    assert checkpoint("gpt2") is None


def test_sizes_come_from_the_configs():
    from cookbook.memory import CHECKPOINTS, parameters, weight_bytes

    for size, shape in CHECKPOINTS.items():
        bf16 = checkpoint(f"Qwen/Qwen3-VL-{size}-Instruct")
        assert bf16.params_b == pytest.approx(parameters(shape).total / 1e9, abs=0.01)
        assert bf16.disk_gb == pytest.approx(2 * parameters(shape).total / 1e9, abs=0.1)
        fp8 = checkpoint(f"Qwen/Qwen3-VL-{size}-Instruct-FP8")
        assert fp8.disk_gb == pytest.approx(weight_bytes(shape, "fp8") / 1e9, abs=0.1)
        assert 0.5 < fp8.disk_gb / bf16.disk_gb < 0.7  # FP8 roughly halves the weights
        assert fp8.min_memory_gb == pytest.approx(fp8.disk_gb * 1.2, abs=0.1)
    assert checkpoint("Qwen/Qwen3-VL-30B-A3B-Instruct").active_params_b < 5


def test_seed_table_is_kept_for_comparison():
    assert SEED_MIN_MEMORY_GB == {"4B": 8, "8B": 16, "30B-A3B": 48, "235B-A22B": 160}


@pytest.mark.parametrize("hw", [
    cb.Hardware("cuda", (RTX,)), cb.Hardware("cuda", (L4,)), cb.Hardware("cuda", (A10,)),
    cb.Hardware("cuda", (H100,)), cb.Hardware("cuda", (H100,) * 8),
])
def test_recommendation_is_the_strongest_fit(hw):
    rec = cb.recommend_model(hw)
    room = hw.gpu_memory_gb
    assert rec.checkpoint.min_memory_gb <= room and rec.reason
    assert hw.fp8 or not rec.checkpoint.fp8
    stronger = [c for c in LINEUP if c.variant == "Instruct" and c.params_b > rec.checkpoint.params_b
                and c.min_memory_gb <= room and (hw.fp8 or not c.fp8)]
    assert stronger == [], f"{rec} skipped a stronger fit: {stronger}"


def test_recommendation_examples():
    assert cb.recommend_model(cb.Hardware("cpu", ram_gb=16)).checkpoint.id == "Qwen/Qwen3-VL-2B-Instruct"
    assert cb.recommend_model(cb.Hardware("cuda", (L4,))).checkpoint.id == "Qwen/Qwen3-VL-8B-Instruct"
    assert cb.recommend_model(cb.Hardware("cuda", (H100,))).checkpoint.size == "32B"
    assert cb.recommend_model(cb.Hardware("cuda", (A10,))).checkpoint.id == "Qwen/Qwen3-VL-8B-Instruct"
    assert cb.recommend_model(cb.Hardware("cuda", (RTX,))).checkpoint.id == "Qwen/Qwen3-VL-4B-Instruct-FP8"
    assert cb.recommend_model(cb.Hardware("cuda", (H100,) * 8)).checkpoint.id == "Qwen/Qwen3-VL-235B-A22B-Instruct"
    assert cb.recommend_model(cb.Hardware("cuda", (H100,) * 8), thinking=True).checkpoint.variant == "Thinking"
