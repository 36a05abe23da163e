"""The Qwen3-VL line-up, the one sizing rule, and which checkpoint fits a machine (00_setup, 04_vllm_serving).

Units: GiB (2**30 bytes) everywhere. ``GPU.memory_gb`` is what the driver reports, in GB (1e9 bytes);
a card sold as "24 GB" has 24 GiB of memory, of which the driver reports a little less.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, replace

from cookbook.kit.hardware import GPU, Hardware, hardware
from cookbook.memory import (
    CHECKPOINTS,
    GIB,
    OVERHEAD_FRACTION,
    OVERHEAD_GIB,
    kv_cache_bytes,
    parameters,
    shape,
    weight_bytes,
)
from cookbook.kit.show import Pretty

# The seed article's "minimum memory" column (GB); 2B and 32B are not in it.
SEED_MIN_MEMORY_GB = {"4B": 8, "8B": 16, "30B-A3B": 48, "235B-A22B": 160}
PREFERENCE = ("235B-A22B", "32B", "30B-A3B", "8B", "4B", "2B")  # strongest first
MIN_KV_TOKENS = 2 * 8192  # a machine "runs" a checkpoint when two 8K-token requests fit beside the weights
UTILIZATION = 0.9  # share of each GPU the server may take (vLLM's --gpu-memory-utilization default)


@dataclass(frozen=True)
class Checkpoint:
    """One published checkpoint: id, size, parameters (total and active for MoE), variant, FP8, weights in GiB."""

    id: str
    size: str
    params_b: float
    active_params_b: float | None
    variant: str  # "Instruct" or "Thinking"
    fp8: bool
    weights_gib: float  # bf16, or FP8 linears + bf16 rest with block scales (cookbook.memory.weight_bytes)

    @property
    def moe(self) -> bool:
        """True for the mixture-of-experts checkpoints (30B-A3B, 235B-A22B)."""
        return self.active_params_b is not None

    @property
    def min_memory_gib(self) -> float:
        """One GPU's need by the sizing rule (``fit``): weights, overhead and two 8K-token KV caches, / utilization."""
        s = shape(self.size)
        kv = kv_cache_bytes(s, MIN_KV_TOKENS) / GIB
        return round((self.weights_gib * (1 + OVERHEAD_FRACTION) + OVERHEAD_GIB + kv) / UTILIZATION, 1)

    @property
    def min_memory_gb(self) -> float:
        """``min_memory_gib`` in GB (1e9 bytes), to compare with ``GPU.memory_gb`` (the doctor in 00)."""
        return round(self.min_memory_gib * GIB / 1e9, 1)

    @property
    def disk_gb(self) -> float:
        """The download size in GB (1e9 bytes), as the hub shows it."""
        return round(self.weights_gib * GIB / 1e9, 1)


def _lineup() -> tuple[Checkpoint, ...]:
    """Every published checkpoint, its sizes computed from its config's shape (cookbook.memory)."""
    out = []
    for size, s in CHECKPOINTS.items():
        params = parameters(s)
        active = round(params.active / 1e9, 2) if s.experts else None
        for variant in ("Instruct", "Thinking"):
            for fp8 in (False, True):
                cid = f"Qwen/Qwen3-VL-{size}-{variant}" + ("-FP8" if fp8 else "")
                gib = weight_bytes(s, "fp8" if fp8 else "bf16") / GIB
                out.append(Checkpoint(cid, size, round(params.total / 1e9, 2), active, variant, fp8, round(gib, 2)))
    return tuple(out)


LINEUP: tuple[Checkpoint, ...] = _lineup()
_ID = re.compile(r"Qwen3-VL-(?P<size>\d+B(?:-A\d+B)?)-(?P<variant>Instruct|Thinking)(?P<fp8>-FP8)?", re.IGNORECASE)


def checkpoint(model: str) -> Checkpoint | None:
    """The line-up entry a hub id or a folder name refers to (case-insensitive), or None (00_setup)."""
    m = _ID.search(str(model))
    if not m:
        return None
    size, variant, fp8 = m.group("size").upper(), m.group("variant").capitalize(), bool(m.group("fp8"))
    return next((c for c in LINEUP if (c.size.upper(), c.variant, c.fp8) == (size, variant, fp8)), None)


def machine(name: str, advertised_gb: float, capability: tuple[int, int], count: int = 1) -> Hardware:
    """A CUDA machine described by hand: ``count`` cards sold as ``advertised_gb`` GB (= GiB) (00, 04)."""
    return Hardware("cuda", (GPU(name, advertised_gb * GIB / 1e9, capability),) * count)


def gpu_gib(hw: Hardware) -> float:
    """Memory of the smallest GPU of ``hw`` in GiB (what a tensor-parallel split is sized by)."""
    return min(g.memory_gb for g in hw.gpus) * 1e9 / GIB


@dataclass(frozen=True)
class Fit(Pretty):
    """How a checkpoint fits a machine: the split, and the KV cache left per replica."""

    tensor_parallel: int
    replicas: int
    weights_gib: float  # per GPU
    overhead_gib: float  # per GPU
    kv_tokens: int  # per replica

    def __str__(self) -> str:
        return (f"{self.tensor_parallel} GPU(s) per replica x {self.replicas} replica(s): {self.weights_gib:.1f} GiB "
                f"weights + {self.overhead_gib:.1f} GiB overhead per GPU, KV cache for {self.kv_tokens:,} tokens")


def fit(ck: Checkpoint, hw: Hardware, utilization: float = UTILIZATION, min_tokens: int = MIN_KV_TOKENS,
        kv_dtype: str = "auto") -> Fit | None:
    """The one sizing rule (recommendation and vLLM plan): the smallest tensor-parallel split (MoE: the
    widest) whose GPUs hold weights + overhead + a KV cache of ``min_tokens``; None if none does (04)."""
    if not hw.cuda:
        return None
    s = shape(ck.size)
    n, room = len(hw.gpus), gpu_gib(hw) * utilization
    weights = ck.weights_gib
    vision = parameters(s).vision * 2 / GIB  # bf16 in every checkpoint
    splits = [tp for tp in range(1, n + 1) if n % tp == 0 and s.heads % tp == 0]
    for tp in reversed(splits) if s.moe else splits:  # MoE: experts spread over every GPU
        per_gpu = weights / tp + vision * (1 - 1 / tp)  # --mm-encoder-tp-mode data: a whole encoder per GPU
        overhead = OVERHEAD_GIB + OVERHEAD_FRACTION * per_gpu  # the rule of cookbook.memory.estimate
        per_token = kv_cache_bytes(replace(s, kv_heads=max(1, s.kv_heads // tp)), 1, kv_dtype=kv_dtype)
        tokens = int((room - per_gpu - overhead) * GIB // per_token)
        if tokens >= min_tokens:
            return Fit(tp, 1 if s.moe else n // tp, round(per_gpu, 2), round(overhead, 2), tokens)
    return None


# Qwen3-VL's successors (14): every published size (QwenLM/Qwen3.8 README; the vLLM recipes). One hybrid
# checkpoint per size, thinking switched with enable_thinking. "A" sizes are mixture-of-experts.
SUCCESSOR_FAMILY: dict[str, dict[str, object]] = {
    "Qwen3.5": {"released": "2026-02/03",
                "sizes": ("0.8B", "2B", "4B", "9B", "27B", "35B-A3B", "122B-A10B", "397B-A17B"),
                "thinking": "enable_thinking (on by default)"},
    "Qwen3.6": {"released": "2026-04", "sizes": ("27B", "35B-A3B"),
                "thinking": "enable_thinking, preserve_thinking (keep earlier turns' reasoning)"},
    "Qwen3.8": {"released": "2026-08", "sizes": ("27B", "2.4T-A95B"),
                "thinking": "enable_thinking, reasoning_effort (low, medium, xhigh)"},
}
# Cache allowance of the successors' sizing rule: two 8K-token requests of Qwen3.6-27B take 1.3 GiB by
# 14's cache_bytes (KV on its 16 full-attention layers + the fixed DeltaNet states); a Qwen3-VL of that
# size needs 4 GiB. Their shapes are not all published, so one allowance serves every size.
SUCCESSOR_CACHE_GIB = 1.5
_SIZE = re.compile(r"(?P<total>[\d.]+)(?P<unit>[BT])(?:-A(?P<active>[\d.]+)B)?")


@dataclass(frozen=True)
class Successor:
    """One published Qwen3.5/3.6/3.8 checkpoint: id, family, size, parameters (total, active for MoE) (14)."""

    id: str
    family: str
    size: str
    params_b: float
    active_params_b: float | None

    @property
    def weights_gib(self) -> float:
        """bf16 weights by the published parameter count (2 bytes each)."""
        return round(self.params_b * 1e9 * 2 / GIB, 1)

    @property
    def min_memory_gib(self) -> float:
        """What the machine needs: weights, the overhead rule, the cache allowance, / utilization."""
        return round((self.weights_gib * (1 + OVERHEAD_FRACTION) + OVERHEAD_GIB + SUCCESSOR_CACHE_GIB)
                     / UTILIZATION, 1)


def _successors() -> tuple[Successor, ...]:
    out = []
    for family, row in SUCCESSOR_FAMILY.items():
        for size in row["sizes"]:
            m = _SIZE.fullmatch(size)
            total = float(m.group("total")) * (1000 if m.group("unit") == "T" else 1)
            active = float(m.group("active")) if m.group("active") else None
            out.append(Successor(f"Qwen/{family}-{size}", family, size, total, active))
    return tuple(out)


SUCCESSORS: tuple[Successor, ...] = _successors()


def recommend_successor(hw: Hardware | None = None) -> tuple[Successor, str]:
    """The largest successor this machine holds in bf16 (newest family first at equal size), and why (14).

    On CUDA the weights may be split over every GPU (tensor parallel), as lineup.fit does for MoE."""
    hw = hw or hardware()
    order = sorted(SUCCESSORS, key=lambda c: (c.params_b, c.family), reverse=True)
    if not hw.cuda:
        size = "4B" if hw.mps and hw.ram_gb >= 16 else "2B"
        pick = next(c for c in order if c.size == size)
        return pick, f"no CUDA GPU: the {size} size, as for Qwen3-VL."
    room = gpu_gib(hw) * len(hw.gpus)
    for c in order:
        if c.min_memory_gib <= room:
            return c, (f"{c.weights_gib:.1f} GiB of bf16 weights + overhead + a {SUCCESSOR_CACHE_GIB} GiB "
                       f"cache allowance fit {len(hw.gpus)} x {gpu_gib(hw):.1f} GiB; Qwen's cards say "
                       "Qwen3.5 outperforms Qwen3-VL, visual benchmarks included.")
    return order[-1], f"only {gpu_gib(hw):.1f} GiB per GPU: the smallest successor."


@dataclass(frozen=True)
class Recommendation(Pretty):
    """The checkpoint picked for a machine, and why; with the successor to consider today (14)."""

    checkpoint: Checkpoint
    reason: str
    successor: Successor | None = None
    successor_reason: str = ""

    def __str__(self) -> str:
        text = f"{self.checkpoint.id}\n  why: {self.reason}"
        if self.successor is not None:
            text += f"\n  or its successor: {self.successor.id} ({self.successor_reason})"
        return text


def _pick(size: str, variant: str, fp8: bool) -> Checkpoint:
    return next(c for c in LINEUP if c.size == size and c.variant == variant and c.fp8 == fp8)


def recommend_model(hw: Hardware | None = None, thinking: bool = False) -> Recommendation:
    """The strongest checkpoint this machine serves by ``fit``: FP8 on FP8 GPUs, as the model cards advise (00)."""
    hw = hw or hardware()
    variant = "Thinking" if thinking else "Instruct"
    if not hw.cuda:
        size = "4B" if hw.mps and hw.ram_gb >= 16 else "2B"
        return Recommendation(_pick(size, variant, fp8=False), (
            f"no CUDA GPU ({hw.device}, {hw.ram_gb:.0f} GB RAM): the {size} model in bf16 is the largest that "
            "answers in reasonable time here; FP8 checkpoints need a CUDA GPU."), *recommend_successor(hw))
    kind = "FP8 (these GPUs have FP8 tensor cores)" if hw.fp8 else "bf16 (no FP8 tensor cores: transformers would dequantize FP8)"
    for size in PREFERENCE:
        ck = _pick(size, variant, fp8=hw.fp8)
        f = fit(ck, hw)
        if f is not None:
            return Recommendation(ck, (
                f"the strongest size whose {kind} weights fit {len(hw.gpus)} x {gpu_gib(hw):.1f} GiB: {f}."),
                *recommend_successor(hw))
    ck = _pick("2B", variant, fp8=hw.fp8)
    return Recommendation(ck, f"only {gpu_gib(hw):.1f} GiB per GPU: even the 2B model leaves little room for context.",
                          *recommend_successor(hw))
