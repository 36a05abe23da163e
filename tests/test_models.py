import pytest

import cookbook as cb
from cookbook.models import LINEUP, SEED_MIN_MEMORY_GB, LoadError, attention_for, checkpoint, set_image_budget

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


def test_attention_choice():
    assert attention_for(cb.Hardware("cuda", (A10,), flash_attn=True)) == "flash_attention_2"
    assert attention_for(cb.Hardware("cuda", (A10,), flash_attn=False)) == "sdpa"
    assert attention_for(cb.Hardware("cuda", (cb.GPU("T4", 15, (7, 5)),), flash_attn=True)) == "sdpa"
    assert attention_for(cb.Hardware("cpu", flash_attn=True)) == "sdpa"


def test_load_tiny(tiny):
    model, processor = tiny
    assert type(model).__name__ == "Qwen3VLForConditionalGeneration"
    assert model.config._attn_implementation == "sdpa" and not model.training
    assert processor.image_processor.patch_size == 16


def test_image_budget_is_set_on_the_processor(tiny, photo):
    _, processor = tiny
    before = dict(processor.image_processor.size)
    try:
        set_image_budget(processor, max_pixels=64 * 32 * 32, min_pixels=4 * 32 * 32)
        big = photo.resize((1600, 960))
        grid = processor.image_processor(images=[big], return_tensors="pt")["image_grid_thw"][0]
        assert int(grid.prod()) // 4 <= 64
        with pytest.raises(ValueError, match="above max_pixels"):
            set_image_budget(processor, max_pixels=1024, min_pixels=4096)
    finally:
        processor.image_processor.size = before


def test_load_errors_name_the_fix(monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(LoadError, match="COOKBOOK_MODEL=tiny"):
        cb.load("Qwen/Qwen3-VL-2B-Instruct", check_memory=False)
    if not cb.hardware().fp8:
        with pytest.raises(LoadError, match="8.9"):
            cb.load("Qwen/Qwen3-VL-8B-Instruct-FP8")
    if cb.hardware().ram_gb < 500 and not cb.hardware().cuda:
        with pytest.raises(LoadError, match="check_memory=False"):
            cb.load("Qwen/Qwen3-VL-235B-A22B-Instruct")


def test_old_transformers_is_named(monkeypatch):
    import cookbook.models as models

    monkeypatch.setattr(models, "version", lambda package: "4.56.2")
    with pytest.raises(LoadError, match="4.56.2 does not know Qwen3-VL.*pip install -U"):
        cb.load("tiny")


def test_modelscope_without_the_package(monkeypatch):
    import builtins

    real_import = builtins.__import__

    def no_modelscope(name, *args, **kwargs):
        if name == "modelscope":
            raise ImportError("No module named 'modelscope'")
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_modelscope)
    with pytest.raises(LoadError, match="pip install modelscope"):
        cb.models.download("Qwen/Qwen3-VL-2B-Instruct", hub="modelscope")


def test_fetch_resolves_tiny_and_local_folders(tmp_path):
    tiny_folder = cb.models.fetch("tiny")
    assert (tiny_folder / "config.json").is_file()
    assert cb.models.fetch(str(tmp_path)) == tmp_path


def test_checkpoint_from_folder_names():
    snapshot = "/data/hub/models--Qwen--Qwen3-VL-30B-A3B-Thinking-FP8/snapshots/0123abc"
    ck = checkpoint(snapshot)
    assert (ck.size, ck.variant, ck.fp8) == ("30B-A3B", "Thinking", True)
    assert checkpoint("./my-qwen3-vl-8b-instruct").id == "Qwen/Qwen3-VL-8B-Instruct"
    assert checkpoint("Qwen/Qwen2.5-VL-7B-Instruct") is None
