import importlib

import cookbook as cb
from cookbook.hardware import Report, doctor

H100 = cb.GPU("NVIDIA H100 80GB HBM3", 80.0, (9, 0))
A100 = cb.GPU("NVIDIA A100-SXM4-80GB", 80.0, (8, 0))
T4 = cb.GPU("Tesla T4", 15.0, (7, 5))


def test_this_machine_is_described():
    hw = cb.hardware()
    assert hw.device in ("cpu", "cuda", "mps")
    assert hw.ram_gb > 1 and hw.disk_free_gb >= 0
    assert hw.versions["transformers"] != "not installed"
    assert hw.cuda == bool(hw.gpus)


def test_capabilities_from_gpus():
    assert cb.Hardware("cuda", (H100, H100)).fp8
    assert not cb.Hardware("cuda", (A100,)).fp8 and cb.Hardware("cuda", (A100,)).bf16
    assert not cb.Hardware("cuda", (T4,)).bf16
    assert not cb.Hardware("cuda", (H100, A100)).fp8  # every GPU must have FP8
    assert cb.Hardware("cuda", (H100, H100)).gpu_memory_gb == 160
    assert not cb.Hardware("cpu").cuda and not cb.Hardware("cpu").fp8


def _check(report: Report, name: str):
    return next(c for c in report.checks if c.name == name)


def test_doctor_flags_too_little_memory_and_disk():
    hw = cb.Hardware("cuda", (T4,), ram_gb=32, disk_free_gb=5)
    report = doctor(hw, model="Qwen/Qwen3-VL-8B-Instruct")
    assert not _check(report, "memory").ok and "cb.recommend_model()" in _check(report, "memory").fix
    assert not _check(report, "disk").ok and "HF_HUB_CACHE" in _check(report, "disk").fix
    assert not report.ok
    assert "fix:" in str(report)


def test_doctor_passes_where_it_fits():
    hw = cb.Hardware("cuda", (H100,), ram_gb=256, disk_free_gb=500, flash_attn=True)
    report = doctor(hw, model="Qwen/Qwen3-VL-8B-Instruct")
    assert _check(report, "memory").ok and _check(report, "disk").ok and _check(report, "gpu").ok
    # an optional miss (no vLLM) does not fail the report
    assert not _check(report, "vllm").ok and report.ok == all(
        c.ok for c in report.checks if c.required)


def test_no_gpu_is_optional_with_a_fix():
    gpu = _check(doctor(cb.Hardware("cpu", ram_gb=16, disk_free_gb=100), model="Qwen/Qwen3-VL-2B-Instruct"), "gpu")
    assert not gpu.ok and not gpu.required and "COOKBOOK_MODEL=tiny" in gpu.fix


def test_doctor_names_the_transformers_floor(monkeypatch):
    hardware_module = importlib.import_module("cookbook.hardware")  # cb.hardware is the function

    versions = {"transformers": "4.57.6"}
    monkeypatch.setattr(hardware_module, "version", lambda p: versions.get(p, "1.0"))
    check = _check(doctor(cb.Hardware("cpu", ram_gb=16, disk_free_gb=100), model="Qwen/Qwen3-VL-2B-Instruct"), "transformers")
    assert not check.ok and "5.16.1" in check.fix and "Qwen3-VL loads" in check.fix
    versions["transformers"] = "4.49.0"
    check = _check(doctor(cb.Hardware("cpu", ram_gb=16, disk_free_gb=100), model="Qwen/Qwen3-VL-2B-Instruct"), "transformers")
    assert not check.ok and "qwen3_vl" in check.fix
    versions["transformers"] = "5.20.2"
    check = _check(doctor(cb.Hardware("cpu", ram_gb=16, disk_free_gb=100), model="Qwen/Qwen3-VL-2B-Instruct"), "transformers")
    assert check.ok


def test_parse_version():
    from cookbook.hardware import parse_version

    assert parse_version("5.20.2") == (5, 20, 2)
    assert parse_version("4.57.0.dev0") == (4, 57, 0)
    assert parse_version("5.0.0rc1") == (5, 0, 0)
    assert parse_version("2.14.1+cu130") == (2, 14, 1)
