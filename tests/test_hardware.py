"""cookbook.kit.hardware: the probe of this machine and what a described machine can do."""

import cookbook as cb
from cookbook.kit.hardware import parse_version

H100 = cb.GPU("NVIDIA H100 80GB HBM3", 80.0, (9, 0))
A100 = cb.GPU("NVIDIA A100-SXM4-80GB", 80.0, (8, 0))
T4 = cb.GPU("Tesla T4", 15.0, (7, 5))


def test_this_machine_is_described():
    hw = cb.hardware()
    assert hw.device in ("cpu", "cuda", "mps")
    assert hw.ram_gib > 1
    assert hw.versions["transformers"] != "not installed"
    assert hw.cuda == bool(hw.gpus)
    assert "RAM:" in str(hw) and "transformers:" in str(hw)


def test_capabilities_from_gpus():
    assert cb.Hardware("cuda", (H100, H100)).fp8
    assert not cb.Hardware("cuda", (A100,)).fp8 and cb.Hardware("cuda", (A100,)).bf16
    assert not cb.Hardware("cuda", (T4,)).bf16
    assert not cb.Hardware("cuda", (H100, A100)).fp8  # every GPU must have FP8
    assert cb.Hardware("cuda", (H100, H100)).gpu_memory_gib == 160
    assert not cb.Hardware("cpu").cuda and not cb.Hardware("cpu").fp8


def test_parse_version():
    assert parse_version("5.20.2") == (5, 20, 2)
    assert parse_version("4.57.0.dev0") == (4, 57, 0)
    assert parse_version("5.0.0rc1") == (5, 0, 0)
    assert parse_version("2.14.1+cu130") == (2, 14, 1)


def test_the_probe_reads_no_environment(monkeypatch):
    """hardware.py probes only: the cache location and the run's choices belong to settings."""
    import ast
    import importlib
    from pathlib import Path

    module = importlib.import_module("cookbook.kit.hardware")  # cb.hardware is the function
    tree = ast.parse(Path(module.__file__).read_text())
    names = {n.attr for n in ast.walk(tree) if isinstance(n, ast.Attribute)}
    assert not names & {"environ", "getenv"}
    imported = {a.name for n in ast.walk(tree) if isinstance(n, (ast.Import, ast.ImportFrom))
                for a in n.names} | {n.module for n in ast.walk(tree) if isinstance(n, ast.ImportFrom) and n.module}
    assert not any(str(name).startswith("cookbook") for name in imported)
