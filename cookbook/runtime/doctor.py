"""The doctor: check this environment for running a checkpoint and name a fix per problem (00_setup)."""

from __future__ import annotations

import shutil
import sys
from dataclasses import dataclass
from pathlib import Path

from cookbook.kit.environment import hf_cache_dir
from cookbook.kit.hardware import MIN_TRANSFORMERS, TESTED_TRANSFORMERS, Hardware, hardware, parse_version, version
from cookbook.kit.show import Pretty
from cookbook.lineup import checkpoint
from cookbook.runtime.loading import fits
from cookbook.runtime.settings import settings


@dataclass(frozen=True)
class Check:
    """One line of the checkup: what was checked, whether it is fine, and the fix (00)."""

    name: str
    ok: bool
    detail: str
    fix: str = ""
    required: bool = True


@dataclass(frozen=True)
class Checkup(Pretty):
    """The doctor's findings; ``ok`` is True when nothing required is missing (00)."""

    checks: tuple[Check, ...]

    @property
    def ok(self) -> bool:
        return all(c.ok for c in self.checks if c.required)

    def __getitem__(self, name: str) -> Check:
        found = [c for c in self.checks if c.name == name]
        if not found:
            raise KeyError(f"no check {name!r}; the checks are {', '.join(c.name for c in self.checks)}")
        return found[0]

    def __str__(self) -> str:
        lines = []
        for c in self.checks:
            mark = "ok " if c.ok else ("!! " if c.required else "-- ")
            lines.append(f"{mark} {c.name}: {c.detail}")
            if not c.ok and c.fix:
                lines.append(f"      fix: {c.fix}")
        lines.append("\nAll required checks pass." if self.ok else "\nSome required checks fail: see the fixes above.")
        return "\n".join(lines)


def free_disk_gib(path: Path) -> float:
    """Free space in GiB on the disk that holds ``path`` (or its nearest existing parent) (00)."""
    while not path.exists() and path != path.parent:
        path = path.parent
    return shutil.disk_usage(path).free / 2**30


def doctor(hw: Hardware | None = None, model: str | None = None, disk_free_gib: float | None = None) -> Checkup:
    """Check the environment for running ``model`` (default: this run's) and say how to fix each problem (00).

    ``disk_free_gib`` defaults to the free space where the Hugging Face cache lives.
    """
    hw = hw or hardware()
    checks = [Check("python", sys.version_info >= (3, 11), sys.version.split()[0], "Use Python 3.11 or newer.")]
    tf = version("transformers")
    if tf and MIN_TRANSFORMERS <= parse_version(tf) < TESTED_TRANSFORMERS:
        fix = "Qwen3-VL loads, but the cookbook needs transformers 5.16.1+: pip install -U 'transformers>=5.16.1'."
    else:
        fix = ("pip install -U 'transformers>=5.16.1' (releases before 4.57 say 'does not recognize this "
               "architecture: qwen3_vl').")
    checks.append(Check("transformers", bool(tf) and parse_version(tf) >= TESTED_TRANSFORMERS, tf or "not installed", fix))
    tv = version("torchvision")
    checks.append(Check("torchvision", tv is not None, tv or "not installed",
                        "pip install torchvision (matching your torch): the Qwen3-VL video processor needs it."))
    for pkg, why in (("qwen-vl-utils", "reads videos and image URLs the way the Qwen team does"),
                     ("accelerate", "needed for device_map='auto'")):
        v = version(pkg)
        checks.append(Check(pkg, v is not None, v or "not installed", f"pip install {pkg} ({why})."))
    from cookbook.kit import system  # here, so `python -m cookbook.kit.system` is not imported twice

    for piece in system.PIECES:  # the system packages `make setup` installs (fonts, FFmpeg, FriBiDi, Chromium)
        problem = piece.check()
        checks.append(Check(piece.name, problem is None, problem or f"found ({piece.why})", system.fix([piece])))
    if hw.cuda:
        gpu_text = ", ".join(f"{g.name} {g.memory_gib:.0f} GiB (cc {g.capability[0]}.{g.capability[1]})" for g in hw.gpus)
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
    checks.append(Check("vllm", hw.vllm, "importable" if hw.vllm else "not installed",
                        "Optional, for serving on a CUDA GPU: pip install -e '.[gpu]' (see 04_vllm_serving).",
                        required=False))
    ck = checkpoint(model or settings().model)
    if ck is not None:
        cache = hf_cache_dir()
        free = free_disk_gib(cache) if disk_free_gib is None else disk_free_gib
        checks.append(Check(
            "disk", free >= ck.weights_gib * 1.1,
            f"{free:.0f} GiB free in {cache}; {ck.id} needs about {ck.weights_gib:.0f} GiB",
            "Free disk space or point HF_HUB_CACHE (or MODELSCOPE_CACHE) at a larger disk.",
        ))
        room = hw.gpu_memory_gib if hw.cuda else hw.ram_gib
        as_bf16 = ck.fp8 and not hw.fp8  # transformers dequantizes FP8 without FP8 tensor cores
        need = checkpoint(ck.id.removesuffix("-FP8")) if as_bf16 else ck
        checks.append(Check(
            "memory", fits(ck, hw),
            f"{room:.0f} GiB {'GPU' if hw.cuda else 'RAM'}; {ck.id} needs at least {need.min_memory_gib:.0f} GiB"
            + (" (loaded as bf16: no FP8 tensor cores here)" if as_bf16 else ""),
            "Pick a smaller or FP8 checkpoint: cb.recommend_model() names one that fits.",
        ))
    return Checkup(tuple(checks))
