"""Qwen3-VL's successors, Qwen3.5, 3.6 and 3.8: what changed, shown on the model's own code (14_successors).

The saved cells of notebook 14: a published shape, the hybrid layer map, the cache and parameter rules
of the hybrid backbone (checked against a real model's tensors), and the vLLM command. The family's
sizes live with the Qwen3-VL line-up (``cookbook.lineup.SUCCESSOR_FAMILY``).
"""

from __future__ import annotations

import shlex
from typing import Any

# Published shapes of the language model, as Qwen3_5TextConfig arguments. Qwen3.6-27B: its model card's
# "Model Overview" (hidden 5120, 64 layers as 16 x (3 Gated DeltaNet + 1 gated attention), DeltaNet
# heads 48 for V and 16 for QK of 128, attention heads 24 for Q and 4 for KV of 256, FFN 17408,
# 248,320 embeddings and a separate LM output).
TEXT_CONFIGS: dict[str, dict[str, Any]] = {
    "Qwen3.6-27B": dict(hidden_size=5120, num_hidden_layers=64, num_attention_heads=24, num_key_value_heads=4,
                        head_dim=256, linear_num_value_heads=48, linear_num_key_heads=16, linear_key_head_dim=128,
                        linear_value_head_dim=128, intermediate_size=17408, vocab_size=248320,
                        tie_word_embeddings=False),
}


def layer_map(config: Any) -> list[str]:
    """Each decoder layer's kind, from ``text_config.layer_types``: ``linear_attention`` (Gated DeltaNet)
    or ``full_attention`` (gated softmax attention) (14)."""
    text = getattr(config, "text_config", config)
    return list(text.layer_types)


def cache_bytes(config: Any, tokens: int, batch: int = 1, dtype_bytes: int = 2, state_bytes: int = 4) -> dict[str, int]:
    """The generation cache of a Qwen3.5 model by part, in bytes (14): keys and values only on the
    full-attention layers, growing with ``tokens``; on each linear-attention layer a convolution window
    (in the model's dtype) and a recurrent state (float32 in transformers' reference kernel), fixed."""
    text = getattr(config, "text_config", config)
    kinds = layer_map(config)
    full, linear = kinds.count("full_attention"), kinds.count("linear_attention")
    kv = full * 2 * text.num_key_value_heads * text.head_dim * tokens * batch * dtype_bytes
    key_dim = text.linear_num_key_heads * text.linear_key_head_dim
    value_dim = text.linear_num_value_heads * text.linear_value_head_dim
    conv = linear * batch * (2 * key_dim + value_dim) * text.linear_conv_kernel_dim * dtype_bytes
    recurrent = (linear * batch * text.linear_num_value_heads * text.linear_key_head_dim
                 * text.linear_value_head_dim * state_bytes)
    return {"kv": kv, "conv": conv, "recurrent": recurrent, "total": kv + conv + recurrent}


def measured_cache_bytes(cache: Any) -> dict[str, int]:
    """The same parts counted from a transformers cache after a forward pass (14): ``keys``/``values`` of
    attention layers, ``conv_states``/``recurrent_states`` of linear-attention layers."""
    out = {"kv": 0, "conv": 0, "recurrent": 0}
    for layer in cache.layers:
        parts = {"kv": [getattr(layer, "keys", None), getattr(layer, "values", None)],
                 "conv": list(getattr(layer, "conv_states", {}).values()),
                 "recurrent": list(getattr(layer, "recurrent_states", {}).values())}
        for part, tensors in parts.items():
            out[part] += sum(t.numel() * t.element_size() for t in tensors if t is not None)
    out["total"] = out["kv"] + out["conv"] + out["recurrent"]
    return out


def text_parameters(config: Any) -> dict[str, int]:
    """Parameters of a Qwen3.5 text backbone by part, from its config (14). A full-attention layer's
    ``q_proj`` is twice as wide (it also yields the output gate); a DeltaNet layer has ``in_proj_qkv``,
    ``in_proj_z``, ``in_proj_b``/``in_proj_a`` (one per value head), a depthwise ``conv1d``, ``A_log``,
    ``dt_bias``, a gated norm and ``out_proj`` (transformers' ``modeling_qwen3_5.py``)."""
    t = getattr(config, "text_config", config)
    tie = getattr(config, "tie_word_embeddings", t.tie_word_embeddings)
    kinds = layer_map(config)
    h, hd, heads = t.hidden_size, t.head_dim, t.linear_num_value_heads
    q, kv = t.num_attention_heads * hd, t.num_key_value_heads * hd
    bias = (2 * q + 2 * kv + h) if t.attention_bias else 0
    full = h * 2 * q + 2 * h * kv + q * h + 2 * hd + bias  # q (with gate), k, v, o; q/k norms
    key_dim, value_dim = t.linear_num_key_heads * t.linear_key_head_dim, heads * t.linear_value_head_dim
    conv_dim = 2 * key_dim + value_dim
    linear = (h * conv_dim + h * value_dim + 2 * h * heads + conv_dim * t.linear_conv_kernel_dim
              + 2 * heads + t.linear_value_head_dim + value_dim * h)
    parts = {
        "embeddings": t.vocab_size * h,
        "full_attention": kinds.count("full_attention") * full,
        "linear_attention": kinds.count("linear_attention") * linear,
        "mlp": len(kinds) * 3 * h * t.intermediate_size,
        "norms": len(kinds) * 2 * h + h,
        "lm_head": 0 if tie else t.vocab_size * h,
    }
    parts["total"] = sum(parts.values())
    return parts


def vllm_command(model: str, *, tools: bool = True, text_only: bool = False, mtp_tokens: int = 0,
                 extra: tuple[str, ...] = ()) -> str:
    """The ``vllm serve`` line for a Qwen3.5/3.6/3.8 checkpoint, with the flags of vLLM's Qwen3.5 recipe
    (14): the ``qwen3`` reasoning parser, the ``qwen3_coder`` parser for the XML tool calls,
    ``--language-model-only`` to skip the vision encoder, MTP speculative decoding."""
    args = ["vllm", "serve", model, "--reasoning-parser", "qwen3"]
    if tools:
        args += ["--enable-auto-tool-choice", "--tool-call-parser", "qwen3_coder"]
    if text_only:
        args += ["--language-model-only"]
    if mtp_tokens:
        args += ["--speculative-config", f'{{"method": "mtp", "num_speculative_tokens": {mtp_tokens}}}']
    return shlex.join(args + list(extra))
