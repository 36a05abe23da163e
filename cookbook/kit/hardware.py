"""What this machine can run: devices, GPUs, memory, optional accelerators; probes only (00_setup)."""

from __future__ import annotations

import functools
import importlib.metadata
import importlib.util
import os
import re
import sys
from dataclasses import dataclass, field
from pathlib import Path

MIN_TRANSFORMERS = (4, 57)  # first release with Qwen3-VL
TESTED_TRANSFORMERS = (5, 16)  # the cookbook's own floor (pyproject.toml): what vLLM 0.33 installs and newer


@dataclass(frozen=True)
class GPU:
    """One accelerator: name, memory in GiB and CUDA compute capability (major, minor) (00)."""

    name: str
    memory_gib: float
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
    ram_gib: float = 0.0
    flash_attn: bool = False
    vllm: bool = False
    vllm_env: str | None = None  # a virtualenv whose Python runs vLLM: this one, or the project's .venv-vllm
    versions: dict[str, str] = field(default_factory=dict, compare=False)

    @property
    def cuda(self) -> bool:
        return self.device == "cuda" and bool(self.gpus)

    @property
    def mps(self) -> bool:
        return self.device == "mps"

    @property
    def gpu_memory_gib(self) -> float:
        """Total accelerator memory over all GPUs."""
        return sum(g.memory_gib for g in self.gpus)

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
                f"gpu {i}: {g.name}, {g.memory_gib:.1f} GiB, compute capability "
                f"{g.capability[0]}.{g.capability[1]}, FP8 {'yes' if g.fp8 else 'no'}"
            )
        if not self.gpus:
            lines.append("gpu: none")
        lines += [
            f"bf16: {'yes' if self.bf16 else 'no'}   fp8: {'yes' if self.fp8 else 'no'}",
            f"RAM: {self.ram_gib:.1f} GiB",
            f"flash-attn: {'importable' if self.flash_attn else 'not installed'}   "
            f"vLLM: {'importable' if self.vllm else 'not installed'}"
            + (f" (environment {self.vllm_env})" if self.vllm_env and not self.vllm else ""),
        ]
        lines += [f"{k}: {v}" for k, v in self.versions.items()]
        return "\n".join(lines)

    def _repr_pretty_(self, printer, cycle) -> None:
        printer.text(str(self))


def version(package: str) -> str | None:
    """The installed version of a distribution, or None (00)."""
    try:
        return importlib.metadata.version(package)
    except importlib.metadata.PackageNotFoundError:
        return None


def _ram_gib() -> float:
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30
    except (ValueError, OSError, AttributeError):
        return 0.0


@functools.lru_cache(maxsize=1)
def hardware() -> Hardware:
    """Probe this machine once: CUDA/MPS/CPU, each GPU's memory and capability, RAM, extras (00)."""
    import torch

    gpus: tuple[GPU, ...] = ()
    if torch.cuda.is_available():
        device = "cuda"
        gpus = tuple(
            GPU(
                name=torch.cuda.get_device_name(i),
                memory_gib=torch.cuda.get_device_properties(i).total_memory / 2**30,
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
        ram_gib=_ram_gib(),
        flash_attn=importlib.util.find_spec("flash_attn") is not None,
        vllm=importlib.util.find_spec("vllm") is not None,
        vllm_env=_vllm_env(),
        versions=versions,
    )


def _vllm_env() -> str | None:
    """The virtualenv that runs ``vllm``: this interpreter's when vLLM imports here, else the project's
    ``.venv-vllm`` (``make vllm``) when its ``vllm`` command exists, else None."""
    if importlib.util.find_spec("vllm") is not None:
        return sys.prefix
    env = Path(__file__).resolve().parents[2] / ".venv-vllm"
    return str(env) if (env / "bin" / "vllm").exists() else None


def parse_version(v: str) -> tuple[int, ...]:
    """``"5.20.2"`` -> ``(5, 20, 2)``: the leading numbers of the first three parts (``"5.0.0rc1"`` -> (5, 0, 0)) (00)."""
    out = []
    for part in v.split(".")[:3]:
        match = re.match(r"\d+", part)
        out.append(int(match.group()) if match else 0)
        if not part.isdigit():
            break
    return tuple(out)
