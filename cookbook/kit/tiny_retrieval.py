"""Tiny random-weight stand-ins for Qwen3-VL-Embedding and Qwen3-VL-Reranker, built offline in seconds (15).

Both released families are Qwen3-VL checkpoints (QwenLM/Qwen3-VL-Embedding, README "Model Architecture"
and ``src/models/``): the embedder runs the ``Qwen3VLModel`` backbone and pools the last token's
hidden state; the reranker loads ``Qwen3VLForConditionalGeneration`` and scores with the ``yes`` and
``no`` rows of its LM head. So a stand-in is the tiny Qwen3-VL of ``tiny.py`` (same config, processor
and chat template) with its own random weights, and a tokenizer trained on the same corpus plus a
few lines that make ``yes`` and ``no`` single tokens, as they are in the real Qwen tokenizer.
The weights are random: similarities and relevance scores are noise, only the code paths are real.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

__all__ = ["CHECKPOINTS", "KINDS", "build", "resolve"]

KINDS = ("embedding", "reranker")
SEEDS = {"embedding": 20260108, "reranker": 20260109}  # one random model each
RECIPE_VERSION = 1
# The released checkpoints (Hugging Face collections Qwen/qwen3-vl-embedding and Qwen/qwen3-vl-reranker).
CHECKPOINTS = {
    "embedding": ("Qwen/Qwen3-VL-Embedding-2B", "Qwen/Qwen3-VL-Embedding-8B"),
    "reranker": ("Qwen/Qwen3-VL-Reranker-2B", "Qwen/Qwen3-VL-Reranker-8B"),
}
# Extra tokenizer training lines: the reranker's judge prompt and its two answers, so that the BPE
# learns ``yes`` and ``no`` as whole tokens (the real reranker reads ``get_vocab()["yes"]``).
_EXTRA_LINES = ['Note that the answer can only be "yes" or "no".'] * 8 + ["yes", "no"] * 40


def _tokenizer() -> Any:
    """A ``Qwen2Tokenizer``: byte-level BPE trained on tiny.py's corpus and _EXTRA_LINES, then the Qwen tokens."""
    from transformers import Qwen2Tokenizer

    from cookbook.kit.tiny import CORPUS, SPECIAL_TOKENS, added_tokens, train_bpe

    bpe = train_bpe(CORPUS + _EXTRA_LINES)
    bpe.add_tokens(added_tokens())
    extra = [text for text, special in SPECIAL_TOKENS if special and text != "<|endoftext|>"]
    return Qwen2Tokenizer(tokenizer_object=bpe, eos_token="<|im_end|>", pad_token="<|endoftext|>", unk_token=None,
                          bos_token=None, extra_special_tokens=extra, model_max_length=262144,
                          clean_up_tokenization_spaces=False, errors="replace", split_special_tokens=False)


def _write_checkpoint(folder: Path, kind: str) -> None:
    """Config of the tiny Qwen3-VL (vocabulary resized), fresh random weights, tokenizer, processor, template."""
    import torch
    from transformers import Qwen3VLConfig, Qwen3VLForConditionalGeneration

    from cookbook.kit.tiny import CHAT_TEMPLATE, SPECIAL_TOKENS, save_checkpoint, token_ids
    from cookbook.kit.tiny import build as build_chat

    tokenizer = _tokenizer()
    ids = {text: tokenizer.convert_tokens_to_ids(text) for text, _ in SPECIAL_TOKENS}
    config = Qwen3VLConfig.from_pretrained(build_chat("instruct"))
    config.text_config.vocab_size = len(tokenizer)
    for key, value in token_ids(ids)["text"].items():
        setattr(config.text_config, key, value)
    for key, value in token_ids(ids)["model"].items():
        setattr(config, key, value)
    with torch.random.fork_rng(devices=[]):  # fixed weights, caller's random state untouched
        torch.manual_seed(SEEDS[kind])
        model = Qwen3VLForConditionalGeneration(config).eval()
    save_checkpoint(folder, model, tokenizer, ids, CHAT_TEMPLATE)


def build(kind: str = "embedding", root: Path | None = None, force: bool = False) -> Path:
    """Build once (cached under ``root``) the tiny stand-in of Qwen3-VL-Embedding or -Reranker; its folder (15)."""
    from cookbook.kit.tiny import build_folder, default_root, recipe_hash

    if kind not in KINDS:
        raise ValueError(f"kind must be one of {KINDS}, got {kind!r}")
    here = Path(__file__)
    root = Path(root).expanduser() if root is not None else default_root()
    tag = f"{RECIPE_VERSION}|{kind}"
    final = root / f"qwen3-vl-{kind}-tiny-{recipe_hash(here, here.parent / 'tiny.py', tag=tag)}"
    if (final / "tiny_recipe.json").exists() and not force:
        return final
    return build_folder(final, lambda tmp: _write_checkpoint(tmp, kind), {"kind": kind, "seed": SEEDS[kind]}, force)


def resolve(checkpoint: str, chat_model: str) -> str:
    """What to load for ``checkpoint`` (a Qwen3-VL-Embedding/-Reranker hub id) in a run whose chat model is
    ``chat_model``: the tiny stand-in's folder when that is a tiny model (a smoke run), else the hub id (15)."""
    kind = next((k for k, ids in CHECKPOINTS.items() if checkpoint in ids), None)
    if kind is None:
        raise ValueError(f"{checkpoint!r} is not one of {[c for ids in CHECKPOINTS.values() for c in ids]}")
    return str(build(kind)) if chat_model.lower().startswith("tiny") else checkpoint
