"""cookbook.runtime.doctor: a check per requirement, each failure with the fix that removes it."""

import importlib

import cookbook as cb
from cookbook.runtime.doctor import Checkup, doctor, free_disk_gib

H100 = cb.GPU("NVIDIA H100 80GB HBM3", 80.0, (9, 0))
T4 = cb.GPU("Tesla T4", 15.0, (7, 5))
CPU = cb.Hardware("cpu", ram_gib=16)


def test_doctor_flags_too_little_memory_and_disk():
    checkup = doctor(cb.Hardware("cuda", (T4,), ram_gib=32), model="Qwen/Qwen3-VL-8B-Instruct", disk_free_gib=5)
    assert isinstance(checkup, Checkup)
    assert not checkup["memory"].ok and "cb.recommend_model()" in checkup["memory"].fix
    assert not checkup["disk"].ok and "HF_HUB_CACHE" in checkup["disk"].fix
    assert not checkup.ok
    assert "fix:" in str(checkup)


def test_doctor_passes_where_it_fits():
    hw = cb.Hardware("cuda", (H100,), ram_gib=256, flash_attn=True)
    checkup = doctor(hw, model="Qwen/Qwen3-VL-8B-Instruct", disk_free_gib=500)
    assert checkup["memory"].ok and checkup["disk"].ok and checkup["gpu"].ok
    # an optional miss (no vLLM) does not fail the checkup
    assert not checkup["vllm"].ok and checkup.ok == all(c.ok for c in checkup.checks if c.required)


def test_disk_is_measured_where_the_cache_is(monkeypatch, tmp_path):
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "not-yet" / "hub"))
    checkup = doctor(CPU, model="Qwen/Qwen3-VL-2B-Instruct")
    assert str(tmp_path / "not-yet" / "hub") in checkup["disk"].detail
    assert free_disk_gib(tmp_path / "not-yet") > 0  # the nearest existing parent is measured


def test_no_gpu_is_optional_with_a_fix():
    gpu = doctor(CPU, model="Qwen/Qwen3-VL-2B-Instruct", disk_free_gib=100)["gpu"]
    assert not gpu.ok and not gpu.required and "COOKBOOK_MODEL=tiny" in gpu.fix


def test_doctor_names_the_transformers_floor(monkeypatch):
    module = importlib.import_module("cookbook.runtime.doctor")
    versions = {"transformers": "4.57.6"}
    monkeypatch.setattr(module, "version", lambda p: versions.get(p, "1.0"))
    check = doctor(CPU, model="Qwen/Qwen3-VL-2B-Instruct", disk_free_gib=100)["transformers"]
    assert not check.ok and "5.16.1" in check.fix and "Qwen3-VL loads" in check.fix
    versions["transformers"] = "4.49.0"
    check = doctor(CPU, model="Qwen/Qwen3-VL-2B-Instruct", disk_free_gib=100)["transformers"]
    assert not check.ok and "qwen3_vl" in check.fix
    versions["transformers"] = "5.20.2"
    assert doctor(CPU, model="Qwen/Qwen3-VL-2B-Instruct", disk_free_gib=100)["transformers"].ok


def test_fp8_without_fp8_tensor_cores_is_sized_as_bf16():
    from cookbook.lineup import checkpoint

    bf16_need = checkpoint("Qwen/Qwen3-VL-2B-Instruct").min_memory_gib
    check = doctor(cb.Hardware("cpu", ram_gib=64), model="Qwen/Qwen3-VL-2B-Instruct-FP8", disk_free_gib=100)["memory"]
    assert check.ok and f"at least {bf16_need:.0f} GiB" in check.detail and "bf16" in check.detail


def test_an_unknown_check_is_a_key_error_listing_the_names():
    import pytest

    with pytest.raises(KeyError, match="transformers"):
        doctor(CPU, model="Qwen/Qwen3-VL-2B-Instruct", disk_free_gib=100)["gpus"]
