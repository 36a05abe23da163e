"""What this machine can run: devices, GPUs, memory, disk, optional accelerators (00_setup)."""

from __future__ import annotations

import functools
import importlib.metadata
import importlib.util
import os
import re
import shutil
import sys
from dataclasses import dataclass, field
from pathlib import Path

MIN_TRANSFORMERS = (4, 57)  # first release with Qwen3-VL
TESTED_TRANSFORMERS = (5, 16)  # the cookbook's own floor (pyproject.toml): what vLLM 0.33 installs and newer


@dataclass(frozen=True)
class GPU:
    """One accelerator: name, memory in GB and CUDA compute capability (major, minor)."""

    name: str
    memory_gb: float
    capability: tuple[int, int] = (0, 0)

    @property
    def fp8(self) -> bool:
        """FP8 tensor cores: Ada (8.9) and Hopper (9.0) or newer."""
        return self.capability >= (8, 9)


@dataclass(frozen=True)
class Hardware:
    """A description of a machine. Build one by hand to ask "what if" (tests, 03/04 notebooks)."""

    device: str = "cpu"
    gpus: tuple[GPU, ...] = ()
    ram_gb: float = 0.0
    disk_free_gb: float = 0.0
    flash_attn: bool = False
    vllm: bool = False
    versions: dict[str, str] = field(default_factory=dict, compare=False)

    @property
    def cuda(self) -> bool:
        return self.device == "cuda" and bool(self.gpus)

    @property
    def mps(self) -> bool:
        return self.device == "mps"

    @property
    def gpu_memory_gb(self) -> float:
        """Total accelerator memory over all GPUs."""
        return sum(g.memory_gb for g in self.gpus)

    @property
    def bf16(self) -> bool:
        """bfloat16 compute: Ampere (8.0) or newer on CUDA; CPU and MPS emulate it (slowly on CPU)."""
        return all(g.capability >= (8, 0) for g in self.gpus) if self.cuda else True

    @property
    def fp8(self) -> bool:
        """Native FP8 on every GPU (compute capability 8.9+)."""
        return self.cuda and all(g.fp8 for g in self.gpus)

    def __str__(self) -> str:
        lines = [f"device: {self.device}"]
        for i, g in enumerate(self.gpus):
            lines.append(
                f"gpu {i}: {g.name}, {g.memory_gb:.1f} GB, compute capability "
                f"{g.capability[0]}.{g.capability[1]}, FP8 {'yes' if g.fp8 else 'no'}"
            )
        if not self.gpus:
            lines.append("gpu: none")
        lines += [
            f"bf16: {'yes' if self.bf16 else 'no'}   fp8: {'yes' if self.fp8 else 'no'}",
            f"RAM: {self.ram_gb:.1f} GB   free disk: {self.disk_free_gb:.1f} GB",
            f"flash-attn: {'importable' if self.flash_attn else 'not installed'}   "
            f"vLLM: {'importable' if self.vllm else 'not installed'}",
        ]
        lines += [f"{k}: {v}" for k, v in self.versions.items()]
        return "\n".join(lines)

    def _repr_pretty_(self, printer, cycle) -> None:
        printer.text(str(self))


def hf_cache_dir() -> Path:
    """Where downloaded weights go (HF_HUB_CACHE, HF_HOME/hub, or ~/.cache/huggingface/hub)."""
    if os.environ.get("HF_HUB_CACHE"):
        return Path(os.environ["HF_HUB_CACHE"])
    home = os.environ.get("HF_HOME") or os.path.join(os.path.expanduser("~"), ".cache", "huggingface")
    return Path(home) / "hub"


def version(package: str) -> str | None:
    """The installed version of a distribution, or None."""
    try:
        return importlib.metadata.version(package)
    except importlib.metadata.PackageNotFoundError:
        return None


def _ram_gb() -> float:
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 1e9
    except (ValueError, OSError, AttributeError):
        return 0.0


def _disk_free_gb(path: Path) -> float:
    while not path.exists() and path != path.parent:
        path = path.parent
    return shutil.disk_usage(path).free / 1e9


@functools.lru_cache(maxsize=1)
def hardware() -> Hardware:
    """Probe this machine once: CUDA/MPS/CPU, each GPU's memory and capability, RAM, disk, extras."""
    import torch

    gpus: tuple[GPU, ...] = ()
    if torch.cuda.is_available():
        device = "cuda"
        gpus = tuple(
            GPU(
                name=torch.cuda.get_device_name(i),
                memory_gb=torch.cuda.get_device_properties(i).total_memory / 1e9,
                capability=torch.cuda.get_device_capability(i),
            )
            for i in range(torch.cuda.device_count())
        )
    elif getattr(torch.backends, "mps", None) and torch.backends.mps.is_available():
        device = "mps"
    else:
        device = "cpu"
    versions = {
        name: version(name) or "not installed"
        for name in ("torch", "torchvision", "transformers", "qwen-vl-utils", "accelerate")
    }
    return Hardware(
        device=device,
        gpus=gpus,
        ram_gb=_ram_gb(),
        disk_free_gb=_disk_free_gb(hf_cache_dir()),
        flash_attn=importlib.util.find_spec("flash_attn") is not None,
        vllm=importlib.util.find_spec("vllm") is not None,
        versions=versions,
    )


@dataclass(frozen=True)
class Check:
    """One line of the doctor's report: what was checked, whether it is fine, and the fix."""

    name: str
    ok: bool
    detail: str
    fix: str = ""
    required: bool = True


@dataclass(frozen=True)
class Report:
    """The doctor's findings; ``ok`` is True when nothing required is missing."""

    checks: tuple[Check, ...]

    @property
    def ok(self) -> bool:
        return all(c.ok for c in self.checks if c.required)

    def __str__(self) -> str:
        lines = []
        for c in self.checks:
            mark = "ok " if c.ok else ("!! " if c.required else "-- ")
            lines.append(f"{mark} {c.name}: {c.detail}")
            if not c.ok and c.fix:
                lines.append(f"      fix: {c.fix}")
        lines.append("\nAll required checks pass." if self.ok else "\nSome required checks fail: see the fixes above.")
        return "\n".join(lines)

    def _repr_pretty_(self, printer, cycle) -> None:
        printer.text(str(self))


def parse_version(v: str) -> tuple[int, ...]:
    """``"5.20.2"`` -> ``(5, 20, 2)``: the leading numbers of the first three parts (``"5.0.0rc1"`` -> (5, 0, 0))."""
    out = []
    for part in v.split(".")[:3]:
        match = re.match(r"\d+", part)
        out.append(int(match.group()) if match else 0)
        if not part.isdigit():
            break
    return tuple(out)


def doctor(hw: Hardware | None = None, model: str | None = None) -> Report:
    """Check the environment for running ``model`` (default: this run's) and say how to fix each problem."""
    from cookbook.models import checkpoint

    hw = hw or hardware()
    checks = [
        Check("python", sys.version_info >= (3, 10), sys.version.split()[0], "Use Python 3.10 or newer."),
    ]
    tf = version("transformers")
    if tf and MIN_TRANSFORMERS <= parse_version(tf) < TESTED_TRANSFORMERS:
        fix = "Qwen3-VL loads, but the cookbook needs transformers 5.16.1+: pip install -U 'transformers>=5.16.1'."
    else:
        fix = ("pip install -U 'transformers>=5.16.1' (releases before 4.57 say 'does not recognize this "
               "architecture: qwen3_vl').")
    checks.append(Check("transformers", bool(tf) and parse_version(tf) >= TESTED_TRANSFORMERS, tf or "not installed", fix))
    tv = version("torchvision")
    checks.append(Check(
        "torchvision", tv is not None, tv or "not installed",
        "pip install torchvision (matching your torch): the Qwen3-VL video processor needs it.",
    ))
    for pkg, why in (("qwen-vl-utils", "reads videos and image URLs the way the Qwen team does"),
                     ("accelerate", "needed for device_map='auto'")):
        v = version(pkg)
        checks.append(Check(pkg, v is not None, v or "not installed", f"pip install {pkg} ({why})."))
    if hw.cuda:
        gpu_text = ", ".join(f"{g.name} {g.memory_gb:.0f} GB (cc {g.capability[0]}.{g.capability[1]})" for g in hw.gpus)
        checks.append(Check("gpu", True, gpu_text))
    else:
        checks.append(Check(
            "gpu", False, f"none ({hw.device})",
            "Real checkpoints run on CPU only slowly (2B/4B, minutes per answer). Use a CUDA GPU, "
            "or COOKBOOK_MODEL=tiny to run every notebook offline with a tiny random model.",
            required=False,
        ))
    checks.append(Check(
        "flash-attn", hw.flash_attn, "importable" if hw.flash_attn else "not installed (sdpa is used)",
        "Optional, CUDA only: pip install flash-attn --no-build-isolation" if hw.cuda else
        "Optional and CUDA-only; sdpa attention works everywhere.", required=False,
    ))
    checks.append(Check(
        "vllm", hw.vllm, "importable" if hw.vllm else "not installed",
        "Optional, for serving on a CUDA GPU: pip install -e '.[gpu]' (see 04_vllm_serving).",
        required=False,
    ))
    name = model
    if name is None:
        from cookbook.settings import settings

        name = settings().model
    ck = checkpoint(name)
    if ck is not None:
        need = ck.disk_gb
        checks.append(Check(
            "disk", hw.disk_free_gb >= need * 1.1,
            f"{hw.disk_free_gb:.0f} GB free in {hf_cache_dir()}; {ck.id} needs about {need:.0f} GB",
            "Free disk space or point HF_HUB_CACHE (or MODELSCOPE_CACHE) at a larger disk.",
        ))
        room = hw.gpu_memory_gb if hw.cuda else hw.ram_gb
        checks.append(Check(
            "memory", room >= ck.min_memory_gb,
            f"{room:.0f} GB {'GPU' if hw.cuda else 'RAM'}; {ck.id} needs at least {ck.min_memory_gb:.0f} GB",
            "Pick a smaller or FP8 checkpoint: cb.recommend_model() names one that fits.",
        ))
    return Report(tuple(checks))
