"""Block-wise FP8 (e4m3) quantization on CPU, as the official Qwen3-VL -FP8 checkpoints store it (03_fp8_and_memory).

Format (model cards of Qwen/Qwen3-VL-*-FP8: "fine-grained fp8 quantization with block size of 128"; their
config.json ``quantization_config``: ``quant_method: fp8``, ``fmt: e4m3``, ``weight_block_size: [128, 128]``,
``activation_scheme: dynamic``): each linear weight is cut into 128x128 blocks; a block is stored as
float8_e4m3fn values plus one ``weight_scale_inv = amax(|block|) / 448`` (448 is e4m3's largest value),
and ``weight = fp8 * weight_scale_inv``. Blocks at the right and bottom edges are smaller.

Which modules stay in bf16 follows those checkpoints' ``modules_to_not_convert`` / ``ignored_layers``:
``lm_head``, every linear of the vision tower (``model.visual.*``: blocks, merger, deepstack mergers), and
the MoE routers (``mlp.gate``). Embeddings and norms are not linear layers and are never converted.

Activations: ``activation_scheme: dynamic`` means the official checkpoints run W8A8: at run time each token's
input to an FP8 linear is cut into groups of 128 values, each group scaled by its own amax / 448 and
rounded to e4m3 (vLLM's per-token-group quantization for block-FP8 weights). ``add_activation_quantization``
simulates that on CPU; ``save_checkpoint`` writes a model in the official format.
"""

from __future__ import annotations

import copy
import json
import math
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from cookbook.kit.show import Pretty

FP8_MAX = 448.0  # torch.finfo(torch.float8_e4m3fn).max
BLOCK = (128, 128)
# e4m3: 3 mantissa bits. Rounding to nearest moves a normal value (|x| >= 2**-6 after scaling) by at
# most half a unit in the last place: 2**-4 of its magnitude. Below 2**-6 values are subnormal, spaced
# 2**-9 apart, so the error is at most 2**-10 in the scaled domain (times the block's scale).
REL_ERROR_NORMAL = 2.0**-4
ABS_ERROR_SUBNORMAL = 2.0**-10


def quantize(weight: Any, block: tuple[int, int] = BLOCK) -> tuple[Any, Any]:
    """Quantize the last two dims of ``weight`` to (float8_e4m3fn values, float32 scale_inv per block) (03)."""
    import torch
    import torch.nn.functional as F

    w = weight.detach().to(torch.float32)
    rows, cols = w.shape[-2:]
    nr, nc = math.ceil(rows / block[0]), math.ceil(cols / block[1])
    padded = F.pad(w, (0, nc * block[1] - cols, 0, nr * block[0] - rows))  # edge blocks: zeros
    tiles = padded.reshape(*w.shape[:-2], nr, block[0], nc, block[1])
    amax = tiles.abs().amax(dim=(-3, -1))
    scale_inv = torch.where(amax > 0, amax / FP8_MAX, torch.ones_like(amax))  # all-zero block: scale 1
    scaled = tiles / scale_inv[..., :, None, :, None]
    q = scaled.clamp(-FP8_MAX, FP8_MAX).to(torch.float8_e4m3fn)  # round to nearest e4m3 value
    return q.reshape(padded.shape)[..., :rows, :cols].contiguous(), scale_inv


def dequantize(q: Any, scale_inv: Any, block: tuple[int, int] = BLOCK, dtype: Any = None) -> Any:
    """Back to a real dtype (float32 by default): each block times its ``scale_inv`` (03)."""
    import torch

    rows, cols = q.shape[-2:]
    scale = scale_inv.to(torch.float32).repeat_interleave(block[0], dim=-2)[..., :rows, :]
    scale = scale.repeat_interleave(block[1], dim=-1)[..., :cols]
    return (q.to(torch.float32) * scale).to(dtype or torch.float32)


def quantize_activations(x: Any, group: int = BLOCK[1]) -> Any:
    """Dynamic per-token, per-group-of-128 FP8 round trip of an activation, as W8A8 kernels do (03)."""
    import torch

    *lead, k = x.shape
    pad = (-k) % group
    g = torch.nn.functional.pad(x.to(torch.float32), (0, pad)).reshape(*lead, -1, group)
    scale = (g.abs().amax(dim=-1, keepdim=True) / FP8_MAX).clamp(min=1e-12)
    q = (g / scale).clamp(-FP8_MAX, FP8_MAX).to(torch.float8_e4m3fn).to(torch.float32) * scale
    return q.reshape(*lead, k + pad)[..., :k].to(x.dtype)


def roundtrip(weight: Any, block: tuple[int, int] = BLOCK) -> Any:
    """Quantize then dequantize (fake quantization), returned in ``weight``'s dtype."""
    q, s = quantize(weight, block)
    return dequantize(q, s, block, weight.dtype)


def error_bound(weight: Any, block: tuple[int, int] = BLOCK) -> Any:
    """Largest error the e4m3 round trip may make per element: max(2**-4 |w|, 2**-10 * block scale)."""
    import torch

    _, s = quantize(weight, block)
    w = weight.detach().to(torch.float32).abs()
    per_element = dequantize(torch.ones_like(w).to(torch.float8_e4m3fn), s, block)  # each block's scale
    return torch.maximum(REL_ERROR_NORMAL * w, ABS_ERROR_SUBNORMAL * per_element)


@dataclass(frozen=True)
class WeightError:
    """How far the FP8 round trip moves one weight tensor."""

    name: str
    shape: tuple[int, ...]
    numel: int
    rel_fro: float  # ||w_hat - w||_F / ||w||_F
    max_abs: float
    sq_err: float = field(repr=False, default=0.0)
    sq_norm: float = field(repr=False, default=0.0)


def _error(name: str, weight: Any, approx: Any) -> WeightError:
    import torch

    w = weight.detach().to(torch.float32)
    d = approx.to(torch.float32) - w
    sq_err, sq_norm = float((d * d).sum()), float((w * w).sum())
    return WeightError(
        name=name, shape=tuple(w.shape), numel=w.numel(),
        rel_fro=math.sqrt(sq_err / sq_norm) if sq_norm else 0.0,
        max_abs=float(d.abs().max()) if d.numel() else 0.0, sq_err=sq_err, sq_norm=sq_norm,
    )


def weight_error(weight: Any, block: tuple[int, int] = BLOCK, name: str = "") -> WeightError:
    """Relative Frobenius error and max absolute error of the round trip of one tensor."""
    import torch

    w = weight.detach().to(torch.float32)
    return _error(name, w, roundtrip(w, block))


def skipped(name: str) -> bool:
    """True for parameters the official FP8 checkpoints keep in bf16 (lm_head, vision tower, MoE router)."""
    parts = name.split(".")
    return any(p in parts for p in ("lm_head", "visual")) or ".mlp.gate." in f".{name}."


def targets(model: Any) -> Iterator[tuple[str, Any]]:
    """(name, parameter) of every weight an official FP8 checkpoint stores in e4m3."""
    import torch

    for mod_name, module in model.named_modules():
        for p_name, p in module.named_parameters(recurse=False):
            name = f"{mod_name}.{p_name}" if mod_name else p_name
            if skipped(name):
                continue
            linear = isinstance(module, torch.nn.Linear) and p_name == "weight"
            experts = p.ndim == 3 and ".experts" in f".{mod_name}"  # fused MoE experts (E, out, in)
            if linear or experts:
                yield name, p


@dataclass(frozen=True)
class QuantizationSummary(Pretty):
    """What ``fake_quantize`` did: tensors and parameters converted, and the weight error over all of them."""

    tensors: int
    quantized_params: int
    total_params: int
    rel_fro: float
    max_abs: float
    worst: WeightError | None
    errors: tuple[WeightError, ...] = field(repr=False, default=())

    @property
    def fraction(self) -> float:
        """Share of the model's parameters that were converted."""
        return self.quantized_params / self.total_params if self.total_params else 0.0

    def __str__(self) -> str:
        worst = f"{self.worst.name} ({self.worst.rel_fro:.2%})" if self.worst else "-"
        return (
            f"{self.tensors} weight tensors in FP8 e4m3 (128x128 blocks): {self.quantized_params:,} of "
            f"{self.total_params:,} parameters ({self.fraction:.1%})\n"
            f"relative Frobenius error over them: {self.rel_fro:.3%}   max |error|: {self.max_abs:.3g}\n"
            f"worst tensor: {worst}"
        )


def fake_quantize(model: Any, block: tuple[int, int] = BLOCK, inplace: bool = False) -> tuple[Any, QuantizationSummary]:
    """A copy of ``model`` (or the model itself) whose FP8-target weights went through quantize->dequantize (03)."""
    import torch

    out = model if inplace else copy.deepcopy(model)
    errors = []
    with torch.no_grad():
        for name, p in list(targets(out)):
            deq = roundtrip(p.data, block)
            errors.append(_error(name, p.data, deq))
            p.data.copy_(deq)
    total = sum(p.numel() for p in out.parameters())
    sq_err, sq_norm = sum(e.sq_err for e in errors), sum(e.sq_norm for e in errors)
    report = QuantizationSummary(
        tensors=len(errors), quantized_params=sum(e.numel for e in errors), total_params=total,
        rel_fro=math.sqrt(sq_err / sq_norm) if sq_norm else 0.0,
        max_abs=max((e.max_abs for e in errors), default=0.0),
        worst=max(errors, key=lambda e: e.rel_fro, default=None), errors=tuple(errors),
    )
    return out, report


def add_activation_quantization(model: Any) -> list[Any]:
    """Round the inputs of every FP8-target layer to e4m3 per token and group of 128 (W8A8); returns hook handles (03).

    Fused MoE experts get their input (the hidden states) quantized; the expert-internal down-projection input
    is not, so for MoE models this understates the activation error a little.
    """
    owners = {name.rsplit(".", 1)[0] for name, _ in targets(model)}

    def hook(module: Any, args: tuple) -> tuple:
        return (quantize_activations(args[0]), *args[1:])

    return [m.register_forward_pre_hook(hook) for n, m in model.named_modules() if n in owners]


def save_checkpoint(model: Any, folder: str | Path, processor: Any = None) -> Path:
    """Write ``model`` as an official-format FP8 checkpoint: e4m3 weights + ``weight_scale_inv`` per 128x128 block,
    ``quantization_config`` (fp8, e4m3, dynamic, [128, 128], modules_to_not_convert); the rest bf16 (gpu_check)."""
    import torch
    from safetensors.torch import save_file

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    quantized = {name for name, p in targets(model) if p.ndim == 2}  # fused 3-D experts: written in bf16
    tensors = {}
    for name, p in model.state_dict().items():
        if name in quantized:
            q, scale_inv = quantize(p, BLOCK)
            tensors[name], tensors[name.removesuffix("weight") + "weight_scale_inv"] = q, scale_inv
        else:
            tensors[name] = p.detach().to(torch.bfloat16 if p.is_floating_point() else p.dtype).clone()
    tensors = {k: v.contiguous().cpu() for k, v in tensors.items()}
    save_file(tensors, str(folder / "model.safetensors"), metadata={"format": "pt"})
    keep = sorted(n for n, m in model.named_modules()
                  if isinstance(m, torch.nn.Linear) and f"{n}.weight" not in quantized)
    config = model.config.to_dict()
    config["torch_dtype"] = config["dtype"] = "bfloat16"
    config["quantization_config"] = {"quant_method": "fp8", "fmt": "e4m3", "activation_scheme": "dynamic",
                                     "weight_block_size": list(BLOCK), "modules_to_not_convert": keep}
    (folder / "config.json").write_text(json.dumps(config, indent=2))
    if processor is not None:
        processor.save_pretrained(folder)
    return folder


def compare_logits(reference: Any, other: Any) -> dict[str, float]:
    """KL(reference || other) per position (mean, max), top-1 agreement and max |logit difference|."""
    import torch

    a = reference.detach().to(torch.float32).reshape(-1, reference.shape[-1])
    b = other.detach().to(torch.float32).reshape(-1, other.shape[-1])
    la, lb = torch.log_softmax(a, -1), torch.log_softmax(b, -1)
    kl = (la.exp() * (la - lb)).sum(-1)
    return {
        "positions": a.shape[0],
        "kl_mean": float(kl.mean()),
        "kl_max": float(kl.max()),
        "top1_agreement": float((a.argmax(-1) == b.argmax(-1)).float().mean()),
        "max_abs_diff": float((a - b).abs().max()),
    }


def compare_tokens(reference: Any, other: Any) -> dict[str, Any]:
    """Token-by-token comparison of two generated id sequences: same prefix length, first divergence."""
    ra, rb = [int(t) for t in reference], [int(t) for t in other]
    same = 0
    for x, y in zip(ra, rb, strict=False):
        if x != y:
            break
        same += 1
    n = max(len(ra), len(rb))
    return {
        "reference_tokens": len(ra),
        "other_tokens": len(rb),
        "same_prefix": same,
        "identical": ra == rb,
        "first_divergence": None if ra == rb else same,
        "agreement": sum(x == y for x, y in zip(ra, rb, strict=False)) / n if n else 1.0,
    }
