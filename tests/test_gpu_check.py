"""scripts/gpu_check.py: exits 0 with its reason without CUDA; every step runs here on CPU with only the packages
the GPU machine has (the CUDA memory counters stubbed); the FP8 checkpoint it writes is read back by transformers."""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

ROOT = Path(__file__).parent.parent
SCRIPT = ROOT / "scripts" / "gpu_check.py"
ABSENT_ON_THE_GPU_MACHINE = ("av", "openai", "qwen_vl_utils", "decord", "torchcodec", "scipy", "skimage", "rapidfuzz",
                             "json_repair", "pydantic", "pypdfium2", "supervision", "pycocotools", "math_verify",
                             "apted", "pandas", "matplotlib", "ipywidgets", "playwright")


def _script():
    spec = importlib.util.spec_from_file_location("gpu_check", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_without_cuda_it_says_why_and_exits_0(tmp_path):
    env = dict(os.environ, PYTHONPATH=str(ROOT), CUDA_VISIBLE_DEVICES="")
    out = subprocess.run([sys.executable, str(SCRIPT), "--out", str(tmp_path)], capture_output=True, text=True,
                         env=env, cwd=ROOT, timeout=300)
    assert out.returncode == 0, out.stderr[-2000:]
    assert "no CUDA GPU" in out.stdout
    result = json.loads((tmp_path / "gpu_check.json").read_text())
    assert result["cuda"] is False and result["ok"] is True and "no CUDA GPU" in result["reason"]


STEPS_ON_CPU = f"""
import importlib.machinery, sys, tempfile, json
from pathlib import Path

class Absent(importlib.machinery.PathFinder):  # these packages cannot be found, as on the GPU machine
    @classmethod
    def find_spec(cls, name, path=None, target=None):
        if name.split(".")[0] in {ABSENT_ON_THE_GPU_MACHINE!r}:
            return None
        return super().find_spec(name, path, target)
sys.meta_path = [Absent if f is importlib.machinery.PathFinder else f for f in sys.meta_path]

import torch
torch.cuda.reset_peak_memory_stats = lambda *a, **k: None
torch.cuda.memory_allocated = lambda *a, **k: 0
torch.cuda.max_memory_allocated = lambda *a, **k: 1
torch.cuda.get_device_capability = lambda *a, **k: (8, 0)
import importlib.util
spec = importlib.util.spec_from_file_location("gpu_check", {str(SCRIPT)!r})
gc = importlib.util.module_from_spec(spec); spec.loader.exec_module(gc)
with tempfile.TemporaryDirectory() as work:
    steps = gc.run_checks(Path(work))
print(json.dumps(steps, default=str))
print(json.dumps(sorted(m for m in sys.modules if m.split(".")[0] in {ABSENT_ON_THE_GPU_MACHINE!r})))
"""


def test_every_step_runs_with_only_the_gpu_machines_packages():
    env = dict(os.environ, PYTHONPATH=str(ROOT), CUDA_VISIBLE_DEVICES="")
    out = subprocess.run([sys.executable, "-c", STEPS_ON_CPU], capture_output=True, text=True, env=env, cwd=ROOT,
                         timeout=600)
    assert out.returncode == 0, out.stderr[-3000:]
    *_, line, leaked = out.stdout.strip().splitlines()
    steps = json.loads(line)
    assert json.loads(leaked) == []
    failed = {k: v.get("error") for k, v in steps.items() if not v["ok"]}
    assert failed == {}
    load = steps["load_bf16_device_map_auto"]
    assert load["weight_bytes_measured"] == load["weight_bytes_estimated"]  # cb.memory's weight term, exactly
    assert steps["chat_batched"]["replies"] == 2 and steps["stream"]["pieces"] > 0
    assert steps["write_fp8_checkpoint"]["quantization_config"]["weight_block_size"] == [128, 128]
    assert "skipped" in steps["load_fp8_with_transformers"]  # compute capability 8.0 here


@pytest.mark.filterwarnings("ignore")
def test_transformers_reads_the_fp8_checkpoint_the_cookbook_writes(tmp_path):
    """On CPU transformers dequantizes FP8 checkpoints to bf16 while loading: its weights must equal our round trip."""
    from transformers import AutoModelForImageTextToText

    from cookbook import fp8

    gc = _script()
    model = AutoModelForImageTextToText.from_pretrained(gc.build_fp8_sized_tiny(tmp_path / "bf16"), dtype=torch.bfloat16)
    folder = fp8.save_checkpoint(model, tmp_path / "fp8")
    config = json.loads((folder / "config.json").read_text())
    assert config["quantization_config"]["quant_method"] == "fp8"
    loaded = AutoModelForImageTextToText.from_pretrained(folder)
    names = [n for n, _ in fp8.targets(model)]
    assert len(names) == 7 * model.config.text_config.num_hidden_layers
    mine, theirs = dict(model.named_parameters()), dict(loaded.named_parameters())
    for name in names:
        assert torch.equal(theirs[name].to(torch.bfloat16), fp8.roundtrip(mine[name])), name
    assert torch.equal(theirs["model.visual.merger.linear_fc1.weight"], mine["model.visual.merger.linear_fc1.weight"])
    # the explicit form the GPU check uses below compute capability 8.9: its logits are the cookbook's weight-only ones
    from transformers import FineGrainedFP8Config

    dequantized = AutoModelForImageTextToText.from_pretrained(
        folder, quantization_config=FineGrainedFP8Config(dequantize=True)).eval()
    fake, _ = fp8.fake_quantize(model)
    ids = torch.randint(0, model.config.text_config.vocab_size, (1, 24), generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        drift = fp8.compare_logits(fake(input_ids=ids).logits, dequantized(input_ids=ids).logits)
    assert drift["max_abs_diff"] == 0.0 and drift["top1_agreement"] == 1.0
