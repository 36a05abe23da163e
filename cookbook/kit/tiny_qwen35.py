"""A tiny random-weight Qwen3.5 checkpoint, built offline in seconds (``COOKBOOK_MODEL=tiny-qwen3.5``, 14).

Qwen3.5, 3.6 and 3.8 share one architecture, ``Qwen3_5ForConditionalGeneration`` in transformers
(``models/qwen3_5/``). The folder this writes has that real architecture: a hybrid text backbone
(``layer_types``: three Gated DeltaNet ``linear_attention`` layers to one gated ``full_attention``
layer, the default of ``Qwen3_5TextConfig``), a vision tower without DeepStack
(``Qwen3_5VisionModel`` deletes the DeepStack mergers), partial rotary embeddings (a quarter of
each head, interleaved MRoPE), the same image/video processors as Qwen3-VL (transformers'
``auto/*_auto.py`` map ``qwen3_5`` to ``Qwen3VLProcessor``, ``Qwen2VLImageProcessor`` and
``Qwen3VLVideoProcessor``), a ``Qwen3_5Tokenizer`` trained on the cookbook's corpus with the Qwen
special tokens, and a chat template that renders what the published Qwen3.5 template renders
(thinking on unless ``enable_thinking=False``; tool calls as XML). Weights are random: nonsense
answers, every code path.
"""

from __future__ import annotations

import json
from pathlib import Path

__all__ = ["CHAT_TEMPLATE", "LAYER_TYPES", "build"]

SEED = 20260216
RECIPE_VERSION = 1
# Three linear-attention layers, then one full-attention layer: what Qwen3_5TextConfig derives from
# its default full_attention_interval of 4 (configuration_qwen3_5.py), at the smallest depth.
LAYER_TYPES = ["linear_attention", "linear_attention", "linear_attention", "full_attention"]

# The Qwen3.5 chat format, written for this cookbook. It renders the same text as the template
# published with the Qwen3.5 checkpoints (Qwen/Qwen3.5-* chat_template): the tool block with
# "You have access to the following functions", XML tool calls
# (<tool_call>\n<function=NAME>\n<parameter=KEY>\nvalue\n</parameter>\n</function>\n</tool_call>),
# a <think> block on every assistant turn after the last user query, and a generation prompt
# that opens <think> (thinking on) or writes an empty one (enable_thinking=False).
CHAT_TEMPLATE = (Path(__file__).parent / "data" / "qwen3_5.jinja").read_text(encoding="utf-8")


def _tokenizer():
    """A ``Qwen3_5Tokenizer``: byte-level BPE trained on tiny.py's corpus, then the Qwen tokens."""
    from transformers import Qwen3_5Tokenizer
    from transformers.models.qwen3_5.tokenization_qwen3_5 import PRETOKENIZE_REGEX

    from cookbook.kit.tiny import SPECIAL_TOKENS, added_tokens, train_bpe

    bpe = train_bpe(split=PRETOKENIZE_REGEX)
    model = json.loads(bpe.to_str())["model"]
    merges = [tuple(m.split(" ")) if isinstance(m, str) else tuple(m) for m in model["merges"]]
    extra = [text for text, special in SPECIAL_TOKENS if special and text != "<|endoftext|>"]
    tokenizer = Qwen3_5Tokenizer(
        vocab=model["vocab"], merges=merges, eos_token=None, pad_token=None, unk_token=None,
        model_max_length=262144, clean_up_tokenization_spaces=False, split_special_tokens=False,
    )
    # Added in Qwen3's order, before eos/pad are named, so the offsets match Qwen3_5Config's
    # default ids (<|endoftext|> 248044, <|vision_start|> 248053, <|image_pad|> 248056, <|video_pad|> 248057).
    tokenizer.add_tokens(added_tokens())
    tokenizer.add_special_tokens(
        {"eos_token": "<|im_end|>", "pad_token": "<|endoftext|>", "additional_special_tokens": extra},
        replace_extra_special_tokens=False,
    )
    return tokenizer


def _write_checkpoint(folder: Path) -> None:
    """Write config, weights, tokenizer, processors and chat template into folder."""
    import torch
    from transformers import (
        Qwen3_5Config,
        Qwen3_5ForConditionalGeneration,
    )

    from cookbook.kit.tiny import SPECIAL_TOKENS, VISION, save_checkpoint, token_ids

    tokenizer = _tokenizer()
    ids = {text: tokenizer.convert_tokens_to_ids(text) for text, _ in SPECIAL_TOKENS}
    # Features: the released Qwen3.5 configs (hybrid layer_types, partial rotary 0.25, interleaved
    # MRoPE, gated DeltaNet heads of 128). Sizes: attention head_dim 64 as the tiny Qwen3-VL, hidden 256.
    config = Qwen3_5Config(
        text_config={
            "vocab_size": len(tokenizer),
            "hidden_size": 256,
            "intermediate_size": 512,
            "num_hidden_layers": len(LAYER_TYPES),
            "layer_types": LAYER_TYPES,
            "num_attention_heads": 4,
            "num_key_value_heads": 2,
            "head_dim": 64,
            "linear_conv_kernel_dim": 4,
            "linear_key_head_dim": 128,  # as released; vLLM's CPU DeltaNet kernel refuses 32
            "linear_value_head_dim": 128,  # ("Unexpected head dim size, 32", vLLM 0.32.0)
            "linear_num_key_heads": 2,
            "linear_num_value_heads": 4,
            "hidden_act": "silu",
            "max_position_embeddings": 262144,
            "rms_norm_eps": 1e-6,
            "rope_parameters": {
                "rope_type": "default",
                "rope_theta": 10_000_000.0,
                "partial_rotary_factor": 0.25,  # rotary on 16 of 64 dims, as on 64 of 256 released
                "mrope_section": [3, 3, 2],  # sums to 16 / 2, like [11, 11, 10] for 64 / 2
                "mrope_interleaved": True,
            },
            **token_ids(ids)["text"],
        },
        vision_config=VISION,  # no DeepStack
        **token_ids(ids)["model"],
    )
    with torch.random.fork_rng(devices=[]):  # fixed weights, caller's random state untouched
        torch.manual_seed(SEED)
        model = Qwen3_5ForConditionalGeneration(config).eval()
    save_checkpoint(folder, model, tokenizer, ids, CHAT_TEMPLATE)


def build(root: Path | None = None, force: bool = False) -> Path:
    """Build once (cached under ``root``) the tiny random Qwen3.5 checkpoint and return its folder (14)."""
    from cookbook.kit.tiny import build_folder, default_root, recipe_hash

    here = Path(__file__)
    root = Path(root).expanduser() if root is not None else default_root()
    final = root / f"qwen3.5-tiny-{recipe_hash(here, here.parent / 'tiny.py', tag=str(RECIPE_VERSION))}"
    if (final / "tiny_recipe.json").exists() and not force:
        return final
    return build_folder(final, _write_checkpoint, {"flavour": "qwen3.5", "seed": SEED}, force)
