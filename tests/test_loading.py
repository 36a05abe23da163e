"""cookbook.runtime.loading: fetch, download, load, the image budget, and errors that name the fix."""

import pytest

import cookbook as cb
from cookbook.recipe import set_image_budget
from cookbook.runtime.loading import LoadError, attention_for, download, fetch, fits

A10 = cb.GPU("A10", 24.0, (8, 6))


def test_attention_choice():
    assert attention_for(cb.Hardware("cuda", (A10,), flash_attn=True)) == "flash_attention_2"
    assert attention_for(cb.Hardware("cuda", (A10,), flash_attn=False)) == "sdpa"
    assert attention_for(cb.Hardware("cuda", (cb.GPU("T4", 15, (7, 5)),), flash_attn=True)) == "sdpa"
    assert attention_for(cb.Hardware("cpu", flash_attn=True)) == "sdpa"


def test_fits_uses_the_one_sizing_rule():
    from cookbook.lineup import checkpoint, fit, machine

    l4, a10 = machine("L4", 24, (8, 9)), machine("A10", 24, (8, 6))
    ck8 = checkpoint("Qwen/Qwen3-VL-8B-Instruct-FP8")
    assert fits(ck8, l4) == (fit(ck8, l4) is not None)
    # without FP8 tensor cores transformers dequantizes to bf16: the bf16 size decides
    ck32 = checkpoint("Qwen/Qwen3-VL-32B-Instruct-FP8")
    assert fits(ck32, machine("H100", 80, (9, 0))) and not fits(ck32, machine("A100", 80, (8, 0)))
    assert not fits(ck8, a10) or fit(checkpoint("Qwen/Qwen3-VL-8B-Instruct"), a10) is not None
    assert fits(checkpoint("Qwen/Qwen3-VL-2B-Instruct"), cb.Hardware("cpu", ram_gib=16))
    assert not fits(checkpoint("Qwen/Qwen3-VL-2B-Instruct-FP8"), cb.Hardware("cpu", ram_gib=4))


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
    if not cb.hardware().fp8:  # transformers dequantizes FP8 here: not refused for FP8, only for its bf16 size
        with pytest.raises(LoadError, match="COOKBOOK_MODEL=tiny|check_memory=False"):
            cb.load("Qwen/Qwen3-VL-2B-Instruct-FP8")
    if cb.hardware().ram_gib < 500 and not cb.hardware().cuda:
        with pytest.raises(LoadError, match="check_memory=False"):
            cb.load("Qwen/Qwen3-VL-235B-A22B-Instruct")


def test_old_transformers_is_named(monkeypatch):
    import cookbook.runtime.loading as loading

    monkeypatch.setattr(loading, "version", lambda package: "4.56.2")
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
        download("Qwen/Qwen3-VL-2B-Instruct", hub="modelscope")


def test_fetch_resolves_tiny_and_local_folders(tmp_path):
    tiny_folder = fetch("tiny")
    assert (tiny_folder / "config.json").is_file()
    assert fetch(str(tmp_path)) == tmp_path
