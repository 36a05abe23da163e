"""The line-up (sizes from the configs), the one sizing rule and the recommendation (cookbook.lineup)."""

import pytest

import cookbook as cb
from cookbook.kit.checkpoints import CHECKPOINTS, SEED_MIN_MEMORY_GB
from cookbook.lineup import LINEUP, checkpoint, fit, gpu_gib, machine, recommend_model
from cookbook.memory import GIB, parameters, weight_bytes

MACHINES = {
    "RTX 4060 8 GB (Ada)": machine("RTX 4060", 8, (8, 9)),
    "RTX 3090 24 GB (Ampere)": machine("RTX 3090", 24, (8, 6)),
    "2 x RTX 3090 (Ampere)": machine("RTX 3090", 24, (8, 6), 2),
    "L4 24 GB (Ada)": machine("L4", 24, (8, 9)),
    "A100 80 GB (Ampere)": machine("A100", 80, (8, 0)),
    "H100 80 GB": machine("H100", 80, (9, 0)),
    "4 x L40S 48 GB": machine("L40S", 48, (8, 9), 4),
    "8 x A100 80 GB": machine("A100", 80, (8, 0), 8),
    "8 x H100 80 GB": machine("H100", 80, (9, 0), 8),
}


def test_lineup_covers_sizes_variants_and_fp8():
    assert len(LINEUP) == 6 * 2 * 2
    assert {c.size for c in LINEUP} == {"2B", "4B", "8B", "32B", "30B-A3B", "235B-A22B"}
    ck = checkpoint("qwen/qwen3-vl-8b-instruct-fp8")
    assert ck.fp8 and ck.size == "8B" and ck.params_b * 1e9 / GIB < ck.weights_gib < 2 * ck.params_b  # vision and embeddings stay bf16
    assert checkpoint("Qwen/Qwen3-VL-30B-A3B-Thinking").moe
    assert checkpoint("./my-qwen3-vl-8b-instruct").id == "Qwen/Qwen3-VL-8B-Instruct"
    assert checkpoint("gpt2") is None and checkpoint("Qwen/Qwen2.5-VL-7B-Instruct") is None


def test_sizes_come_from_the_configs_in_gib():
    for size, s in CHECKPOINTS.items():
        bf16 = checkpoint(f"Qwen/Qwen3-VL-{size}-Instruct")
        assert bf16.params_b == pytest.approx(parameters(s).total / 1e9, abs=0.01)
        assert bf16.weights_gib == pytest.approx(weight_bytes(s) / GIB, abs=0.01)
        fp8 = checkpoint(f"Qwen/Qwen3-VL-{size}-Instruct-FP8")
        assert 0.5 < fp8.weights_gib / bf16.weights_gib < 0.7  # FP8 roughly halves the weights
    assert checkpoint("Qwen/Qwen3-VL-30B-A3B-Instruct").active_params_b < 5


def test_seed_table_is_kept_for_comparison():
    assert SEED_MIN_MEMORY_GB == {"4B": 8, "8B": 16, "30B-A3B": 48, "235B-A22B": 160}


def test_machine_cards_are_gib():
    assert gpu_gib(machine("L4", 24, (8, 9))) == pytest.approx(24.0)
    assert machine("H100", 80, (9, 0), 8).gpu_memory_gib == pytest.approx(8 * 80)  # one unit: GiB everywhere


def test_fit_rule_adds_weights_overhead_and_kv_cache():
    ck = checkpoint("Qwen/Qwen3-VL-8B-Instruct")
    f = fit(ck, machine("L4", 24, (8, 9)))
    assert (f.tensor_parallel, f.replicas) == (1, 1)
    room = 24 * 0.9 - f.weights_gib - f.overhead_gib
    assert f.kv_tokens == pytest.approx(room * GIB / 147456, abs=200)  # 8B: 144 KiB per token
    fp8_kv = fit(ck, machine("L4", 24, (8, 9)), kv_dtype="fp8")
    assert fp8_kv.kv_tokens == pytest.approx(2 * f.kv_tokens, rel=0.01)  # --kv-cache-dtype fp8 doubles it
    assert fit(ck, machine("RTX 4060", 8, (8, 9))) is None
    assert fit(ck, cb.Hardware("cpu", ram_gib=64)) is None
    moe = fit(checkpoint("Qwen/Qwen3-VL-235B-A22B-Instruct-FP8"), MACHINES["8 x H100 80 GB"])
    assert (moe.tensor_parallel, moe.replicas) == (8, 1)  # experts spread over every GPU
    dense = fit(checkpoint("Qwen/Qwen3-VL-8B-Instruct"), MACHINES["8 x H100 80 GB"])
    assert (dense.tensor_parallel, dense.replicas) == (1, 8)  # replicas, not a split


@pytest.mark.parametrize("name", list(MACHINES))
def test_recommendation_is_the_strongest_fit_and_fp8_where_the_gpu_has_it(name):
    hw = MACHINES[name]
    rec = recommend_model(hw)
    assert fit(rec.checkpoint, hw) is not None and rec.reason
    assert rec.checkpoint.fp8 == hw.fp8  # official advice: FP8 checkpoints on FP8 GPUs; bf16 elsewhere
    stronger = [c for c in LINEUP if c.variant == "Instruct" and c.fp8 == hw.fp8
                and c.params_b > rec.checkpoint.params_b and fit(c, hw) is not None]
    assert stronger == [], f"{rec} skipped a stronger fit: {stronger}"


def test_recommendation_examples():
    pick = {name: recommend_model(hw).checkpoint.id for name, hw in MACHINES.items()}
    assert pick["H100 80 GB"] == "Qwen/Qwen3-VL-32B-Instruct-FP8"  # not bf16 32B: it does not fit with a KV cache
    assert pick["L4 24 GB (Ada)"] == "Qwen/Qwen3-VL-8B-Instruct-FP8"
    assert pick["RTX 3090 24 GB (Ampere)"] == "Qwen/Qwen3-VL-8B-Instruct"
    assert pick["8 x H100 80 GB"] == "Qwen/Qwen3-VL-235B-A22B-Instruct-FP8"
    assert recommend_model(cb.Hardware("cpu", ram_gib=16)).checkpoint.id == "Qwen/Qwen3-VL-2B-Instruct"
    assert recommend_model(MACHINES["H100 80 GB"], thinking=True).checkpoint.variant == "Thinking"
