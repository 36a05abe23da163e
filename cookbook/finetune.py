"""Fine-tuning Qwen3-VL with TRL and PEFT: a grounding dataset in chat format, the collator that
trains only the answer, LoRA targets, memory before you start, and a scorer for before/after (13).

Every function here is written in a cell of ``13_fine_tuning.ipynb`` marked ``# saved in
cookbook/finetune.py``; the rules of memory come from ``cookbook.memory`` (03), the scorers and the
shape scenes from ``cookbook.grounding`` (08).
"""

from __future__ import annotations

import json
import re
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from cookbook.grounding import COLORS, SHAPES, _draw_shape, iou, parse, refcoco_accuracy
from cookbook.memory import GIB, _quantized_matrices, parameters, shape, weight_bytes
from cookbook.kit.show import Pretty

IGNORE_INDEX = -100  # the label PyTorch's cross-entropy (and so transformers' loss) skips

REFER = "Locate {ref}, output its bbox coordinates using JSON format."  # the 2d_grounding cookbook's wording


def grounding_example(image: Any, box: Sequence[float], ref: str, label: str) -> dict:
    """One example in TRL's vision format: ``images`` and ``messages`` (an image placeholder, the
    question, the answer as Qwen3-VL writes it: bbox_2d in 0-1000), plus the truth ``box`` in pixels
    and ``label`` (13)."""
    width, height = image.size
    rel = [round(v / (width if i % 2 == 0 else height) * 1000) for i, v in enumerate(box)]
    answer = json.dumps([{"bbox_2d": rel, "label": label}])
    return {"images": [image], "box": [float(v) for v in box], "label": label, "messages": [
        {"role": "user", "content": [{"type": "image"}, {"type": "text", "text": REFER.format(ref=ref)}]},
        {"role": "assistant", "content": [{"type": "text", "text": answer}]},
    ]}


def shapes_split(n: int, seed: int, size: int = 128, grid: int = 3, named: bool = True) -> list[dict]:
    """``n`` examples of one shape (08's colours and kinds) in one cell of a ``grid`` x ``grid``
    layout of a ``size``-pixel canvas, at a random size and offset; example i is drawn from seed
    ``seed + i``, so splits from other seeds share no image. The question names the shape, or with
    ``named=False`` asks for "the shape", so the label in the answer must be read from the image (13)."""
    import random

    from PIL import Image

    cell = 1000 // grid
    out = []
    for i in range(n):
        rng = random.Random(seed + i)
        col, row = rng.randrange(grid), rng.randrange(grid)
        w, h = rng.randint(cell * 2 // 3, cell - 6), rng.randint(cell * 2 // 3, cell - 6)
        x, y = col * cell + rng.randint(3, cell - 3 - w), row * cell + rng.randint(3, cell - 3 - h)
        color, kind = rng.choice(sorted(COLORS)), rng.choice(SHAPES)
        canvas = Image.new("RGB", (size, size), (246, 244, 238))
        box = [v * size / 1000 for v in (x, y, x + w, y + h)]
        _draw_shape(canvas, kind, box, COLORS[color])
        out.append(grounding_example(canvas, box, f"the {color} {kind}" if named else "the shape", f"{color} {kind}"))
    return out


def with_images(messages: list[dict], images: Sequence[Any]) -> list[dict]:
    """The messages with each ``{"type": "image"}`` placeholder holding the next image, in the
    layout ``processor.apply_chat_template`` reads (a new list; the input is not changed) (13)."""
    pending = list(images)
    out = []
    for message in messages:
        content = message["content"]
        if isinstance(content, list):
            content = [{k: v for k, v in part.items() if v is not None} for part in content]   # datasets adds None keys
            content = [dict(part, image=pending.pop(0)) if part["type"] == "image" and "image" not in part else part
                       for part in content]
        out.append({**message, "content": content})
    if pending:
        raise ValueError(f"{len(pending)} image(s) left over: the messages have fewer image placeholders")
    return out


def answer_mask(input_ids: Sequence[int], start: Sequence[int], end: int) -> list[bool]:
    """True at the tokens to train on: after each ``start`` run (``<|im_start|>assistant\\n``) up to
    and including the next ``end`` (``<|im_end|>``) and the one token after it, as the official
    qwen-vl-finetune data code does; everything else (system, user, image pads, padding) False (13)."""
    ids, n, keep = list(input_ids), len(start), [False] * len(input_ids)
    i = 0
    while i <= len(ids) - n:
        if ids[i:i + n] == list(start):
            j = i + n
            while j < len(ids) and ids[j] != end:
                keep[j] = True
                j += 1
            for k in (j, j + 1):            # <|im_end|> (the model must learn to stop) and its "\n"
                if k < len(ids):
                    keep[k] = True
            i = j
        i += 1
    return keep


class AnswerOnlyCollator:
    """Batches chat examples for SFTTrainer: one processor call (text, images, right padding), then
    labels = input_ids with everything but the assistant's answers set to -100 (13)."""

    def __init__(self, processor: Any, max_length: int | None = None) -> None:
        self.processor = processor
        self.max_length = max_length
        tok = processor.tokenizer
        self.start = tok("<|im_start|>assistant\n", add_special_tokens=False)["input_ids"]
        self.end = tok.convert_tokens_to_ids("<|im_end|>")
        self.pad = tok.pad_token_id

    def __call__(self, examples: list[dict]) -> dict:
        """The model's inputs for ``examples`` (each with ``messages``), plus ``labels``."""
        import torch

        batch = self.processor.apply_chat_template(
            [with_images(e["messages"], e.get("images") or []) for e in examples], tokenize=True, return_dict=True, return_tensors="pt",
            processor_kwargs={"padding": True, "padding_side": "right"})
        if self.max_length is not None and batch["input_ids"].shape[1] > self.max_length:
            raise ValueError(f"a batch of {batch['input_ids'].shape[1]} tokens is over max_length "
                             f"{self.max_length}: cutting it would cut image tokens; lower the image budget")
        keep = torch.tensor([answer_mask(row, self.start, self.end) for row in batch["input_ids"].tolist()])
        labels = batch["input_ids"].clone()
        labels[~keep | (batch["attention_mask"] == 0)] = IGNORE_INDEX
        batch["labels"] = labels
        return batch


def lora_targets(model: Any, parts: Sequence[str] = ("language",)) -> list[str]:
    """Names of the ``nn.Linear`` modules LoRA should wrap: the language model's attention and MLP
    projections (``language``), the vision-to-text ``merger``, the ``vision`` blocks (13)."""
    import torch

    where = {"language": r"\.language_model\.layers\.\d+\.(self_attn|mlp)\.",
             "merger": r"\.visual\.(merger|deepstack_merger_list)\b",
             "vision": r"\.visual\.blocks\.\d+\."}
    unknown = set(parts) - set(where)
    if unknown:
        raise ValueError(f"unknown parts {sorted(unknown)}; choose from {sorted(where)}")
    pattern = re.compile("|".join(where[p] for p in parts))
    return sorted(name for name, module in model.named_modules()
                  if isinstance(module, torch.nn.Linear) and pattern.search("." + name))


# ---- memory before you start: 03's weights, plus what training adds -----------------------------

TRAINED_BYTES = 16  # per trained parameter: weight 2 + gradient 2 + fp32 master 4 + AdamW moments 8 (ZeRO paper)
ADAPTER_BYTES = 16  # per LoRA parameter: PEFT keeps adapters in fp32: weight 4 + gradient 4 + moments 8
METHODS = {
    "full": "every weight trained in mixed precision: 16 bytes per parameter (ZeRO's 2 + 2 + 12)",
    "lora": "frozen bf16 weights (03's rule) + fp32 LoRA adapters on the language model: 16 bytes each",
    "qlora": "frozen 4-bit language-model linears (03's int4 rule, close to NF4 with double quantization) "
             "+ fp32 LoRA adapters",
}


def lora_parameters(config: Any, rank: int) -> int:
    """Parameters LoRA of ``rank`` adds to every language-model ``nn.Linear``: rank x (in + out) each.
    MoE experts are fused 3D weights in transformers 5, not ``nn.Linear``: they are left out (13)."""
    s = shape(config)
    matrices = _quantized_matrices(s)[: 3 + (2 if s.layers > s.n_moe_layers else 0)]   # attention, dense MLP
    return sum(rank * (rows + cols) * count for rows, cols, count in matrices)


def activation_bytes(config: Any, tokens: int, dtype_bytes: int = 2, checkpointing: bool = True,
                     train_vision: bool = False, visual_tokens: int = 0) -> int:
    """Activations kept for the backward pass over ``tokens`` (all sequences of the batch): per layer
    norms 4h, q/k/v before and after RoPE 2(q+2kv), attention out q, MLP 4i; with gradient
    checkpointing only each layer's input h plus one layer recomputed; logits vocab x (bytes + 12) (13)."""
    s = shape(config)
    q, kv = s.heads * s.head_dim, s.kv_heads * s.head_dim
    per_layer = 4 * s.hidden + 2 * (q + 2 * kv) + q + 4 * s.intermediate
    mlp_i = s.moe_intermediate * s.experts_per_token if s.moe else 0
    per_layer += 4 * mlp_i
    layers = s.hidden * s.layers + per_layer if checkpointing else per_layer * s.layers
    logits = s.vocab * (dtype_bytes + 12) / dtype_bytes  # logits; fp32 log-probabilities, gradients of both
    total = tokens * (layers + logits) * dtype_bytes
    if train_vision:                       # 4 patches per visual token, kept per vision block
        vh, vi = s.vision_hidden, s.vision_intermediate
        per_block = 6 * vh + 2 * vi
        blocks = vh * s.vision_depth + per_block if checkpointing else per_block * s.vision_depth
        total += 4 * visual_tokens * blocks * dtype_bytes
    return int(total)


@dataclass(frozen=True)
class TrainingEstimate(Pretty):
    """Peak memory of one training step: frozen and trained weights, gradients and optimizer
    states, activations (13)."""

    model: str
    method: str
    weights: int
    trainable_params: int
    states: int
    activations: int
    tokens: int
    overhead: int

    @property
    def total(self) -> int:
        """Bytes: weights + gradients and optimizer states + activations + overhead."""
        return self.weights + self.states + self.activations + self.overhead

    def __str__(self) -> str:
        return (f"{self.model}, {self.method}: {self.trainable_params / 1e6:,.1f}M trained parameters, "
                f"{self.tokens:,} tokens per step"
                f"\n  weights                {self.weights / GIB:8.2f} GiB"
                f"\n  gradients + optimizer  {self.states / GIB:8.2f} GiB"
                f"\n  activations + logits   {self.activations / GIB:8.2f} GiB"
                f"\n  overhead               {self.overhead / GIB:8.2f} GiB"
                f"\n  total                  {self.total / GIB:8.2f} GiB")


def training_memory(model: Any, method: str = "lora", image_tokens: int = 1024, text_tokens: int = 512,
                    batch: int = 1, rank: int = 16, checkpointing: bool = True, dtype: str = "bf16",
                    overhead_gib: float = 1.0) -> TrainingEstimate:
    """Peak memory to train ``model`` (size, hub id, config or Shape) with ``method`` (``METHODS``) on
    ``batch`` sequences of ``image_tokens`` + ``text_tokens``; weights by 03's rules (13)."""
    if method not in METHODS:
        raise ValueError(f"method must be one of {sorted(METHODS)}, got {method!r}")
    s = shape(model)
    bytes_ = 4 if dtype in ("fp32", "float32") else 2
    tokens = batch * (image_tokens + text_tokens)
    if method == "full":
        trainable = parameters(s).total
        weights = weight_bytes(s, dtype)
        states = trainable * (TRAINED_BYTES - bytes_ if bytes_ == 2 else 12)  # fp32: no master copy
    else:
        trainable = lora_parameters(s, rank)
        weights = weight_bytes(s, "int4" if method == "qlora" else dtype)
        states = trainable * ADAPTER_BYTES
    acts = activation_bytes(s, tokens, bytes_, checkpointing, train_vision=method == "full",
                            visual_tokens=batch * image_tokens)
    name = model if isinstance(model, str) else getattr(model, "name_or_path", None) or "model"
    return TrainingEstimate(model=str(name), method=method, weights=weights, trainable_params=trainable,
                            states=states, activations=acts, tokens=tokens, overhead=int(overhead_gib * GIB))


def peak_memory(step: Callable[[], Any], device: str = "cpu", every_s: float = 0.001) -> tuple[Any, int]:
    """Run ``step()`` and return (its result, the peak bytes above the start): CUDA's allocator
    statistics on a GPU, the process's resident memory sampled by a thread on a CPU (13)."""
    if device.startswith("cuda"):
        import torch

        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
        start = torch.cuda.memory_allocated()
        result = step()
        torch.cuda.synchronize()
        return result, torch.cuda.max_memory_allocated() - start
    import psutil

    process, peak, done = psutil.Process(), [0], threading.Event()
    start = process.memory_info().rss

    def watch() -> None:
        while not done.is_set():
            peak[0] = max(peak[0], process.memory_info().rss)
            time.sleep(every_s)

    watcher = threading.Thread(target=watch, daemon=True)
    watcher.start()
    try:
        result = step()
    finally:
        done.set()
        watcher.join()
    return result, max(0, max(peak[0], process.memory_info().rss) - start)


# ---- before and after: 08's scorer on a held-out split ------------------------------------------


def score_boxes(answers: Sequence[str], examples: Sequence[dict], threshold: float = 0.5) -> dict:
    """Mean IoU and RefCOCO's accuracy (IoU >= ``threshold``, 08's ``refcoco_accuracy``) of one answer
    per example against its ``box``; an answer with no box is a miss and IoU 0. ``label``: the share of
    first boxes whose label equals the example's, exactly (13)."""
    predicted, labels = [], []
    for answer, example in zip(answers, examples, strict=True):
        width, height = example["images"][0].size
        try:
            boxes = [it for it in parse(answer, width, height) if "box" in it]
        except ValueError:                  # ParseError: no JSON in the answer
            boxes = []
        predicted.append(boxes[0]["box"] if boxes else None)
        labels.append(bool(boxes) and boxes[0].get("label") == example["label"])
    truth = [e["box"] for e in examples]
    ious = [iou(p, t) if p is not None else 0.0 for p, t in zip(predicted, truth, strict=True)]
    return {"accuracy@0.5": refcoco_accuracy(predicted, truth, threshold),
            "mean_iou": sum(ious) / max(1, len(ious)), "label": sum(labels) / max(1, len(labels)),
            "with_box": sum(p is not None for p in predicted) / max(1, len(predicted)), "n": len(ious)}
