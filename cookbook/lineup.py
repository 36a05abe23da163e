"""The Qwen3-VL line-up and which checkpoint fits a machine (00_setup, 03_fp8_and_memory, 04_vllm_serving)."""

from __future__ import annotations

import re
from dataclasses import dataclass

from cookbook.hardware import Hardware, hardware

# The seed article's "minimum memory" column (GB); 2B and 32B are not in it.
SEED_MIN_MEMORY_GB = {"4B": 8, "8B": 16, "30B-A3B": 48, "235B-A22B": 160}
HEADROOM = 1.2  # weights + ~20% for activations, KV cache of a few images and CUDA context


@dataclass(frozen=True)
class Checkpoint:
    """One published checkpoint: id, size, parameters (total and active for MoE), variant, FP8."""

    id: str
    size: str
    params_b: float
    active_params_b: float | None
    variant: str  # "Instruct" or "Thinking"
    fp8: bool
    disk_gb: float  # weights in GB (1e9 bytes): bf16, or FP8 linears + bf16 rest with block scales

    @property
    def moe(self) -> bool:
        """True for the mixture-of-experts checkpoints (30B-A3B, 235B-A22B)."""
        return self.active_params_b is not None

    @property
    def min_memory_gb(self) -> float:
        """Weights plus ~20% headroom; 03_fp8_and_memory estimates it properly for a context length."""
        return round(self.disk_gb * HEADROOM, 1)


def _lineup() -> tuple[Checkpoint, ...]:
    """Every published checkpoint, its sizes computed from its config's shape (cookbook.memory)."""
    from cookbook.memory import CHECKPOINTS, parameters, weight_bytes

    out = []
    for size, shape in CHECKPOINTS.items():
        params = parameters(shape)
        active = round(params.active / 1e9, 2) if shape.experts else None
        for variant in ("Instruct", "Thinking"):
            for fp8 in (False, True):
                cid = f"Qwen/Qwen3-VL-{size}-{variant}" + ("-FP8" if fp8 else "")
                disk = weight_bytes(shape, "fp8" if fp8 else "bf16") / 1e9
                out.append(Checkpoint(cid, size, round(params.total / 1e9, 2), active, variant, fp8, round(disk, 1)))
    return tuple(out)


LINEUP: tuple[Checkpoint, ...] = _lineup()
PREFERENCE = ("235B-A22B", "32B", "30B-A3B", "8B", "4B", "2B")  # strongest first


_ID = re.compile(r"Qwen3-VL-(?P<size>\d+B(?:-A\d+B)?)-(?P<variant>Instruct|Thinking)(?P<fp8>-FP8)?", re.IGNORECASE)


def checkpoint(model: str) -> Checkpoint | None:
    """The line-up entry a hub id or a folder name refers to (case-insensitive), or None (00_setup)."""
    m = _ID.search(str(model))
    if not m:
        return None
    size, variant, fp8 = m.group("size").upper(), m.group("variant").capitalize(), bool(m.group("fp8"))
    return next((c for c in LINEUP if (c.size.upper(), c.variant, c.fp8) == (size, variant, fp8)), None)


@dataclass(frozen=True)
class Recommendation:
    """The checkpoint picked for a machine, and why."""

    checkpoint: Checkpoint
    reason: str

    def __str__(self) -> str:
        return f"{self.checkpoint.id}\n  why: {self.reason}"

    def _repr_pretty_(self, printer, cycle) -> None:
        printer.text(str(self))


def _pick(size: str, variant: str, fp8: bool) -> Checkpoint:
    return next(c for c in LINEUP if c.size == size and c.variant == variant and c.fp8 == fp8)


def recommend_model(hw: Hardware | None = None, thinking: bool = False) -> Recommendation:
    """The strongest checkpoint whose weights fit this machine's GPUs, FP8 where the GPU has it (00_setup)."""
    hw = hw or hardware()
    variant = "Thinking" if thinking else "Instruct"
    if not hw.cuda:
        size = "4B" if hw.mps and hw.ram_gb >= 16 else "2B"
        ck = _pick(size, variant, fp8=False)
        return Recommendation(ck, (
            f"no CUDA GPU ({hw.device}, {hw.ram_gb:.0f} GB RAM): the {size} model in bf16 is the "
            f"largest that answers in reasonable time here; FP8 checkpoints need a CUDA GPU."
        ))
    room = hw.gpu_memory_gb
    for size in PREFERENCE:
        bf16 = _pick(size, variant, fp8=False)
        if bf16.min_memory_gb <= room:
            return Recommendation(bf16, (
                f"{room:.0f} GB of GPU memory holds {bf16.id} in bf16 "
                f"(about {bf16.min_memory_gb:.0f} GB with headroom)."
            ))
        fp8 = _pick(size, variant, fp8=True)
        if hw.fp8 and fp8.min_memory_gb <= room:
            return Recommendation(fp8, (
                f"{room:.0f} GB is too little for {size} in bf16 ({bf16.min_memory_gb:.0f} GB) but "
                f"enough for the FP8 checkpoint ({fp8.min_memory_gb:.0f} GB), and these GPUs run FP8."
            ))
    ck = _pick("2B", variant, fp8=False)
    return Recommendation(ck, f"only {room:.0f} GB of GPU memory: even the 2B model is tight.")
