"""A tiny random-weight Qwen3-VL checkpoint, built offline in seconds (used by every smoke run).

The folder it writes has the real architecture (DeepStack, interleaved MRoPE, patch 16, merge 2),
a real byte-level BPE tokenizer with the Qwen special tokens, the real image/video processors and
a chat template that renders what the official Qwen3-VL templates render. The weights are random:
the model answers nonsense, but every code path (images, video, tools, thinking) runs.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import threading
import uuid
from collections.abc import Callable
from importlib import metadata
from pathlib import Path
from typing import Any

__all__ = ["CHAT_TEMPLATE", "CHAT_TEMPLATES", "FLAVOURS", "SPECIAL_TOKENS", "build", "default_root"]

FLAVOURS = ("instruct", "thinking")
_BUILD_LOCK = threading.RLock()  # one build at a time per process (threads share torch's seed); re-entrant: the
# retrieval stand-ins build the tiny Qwen3-VL they start from inside their own build
SEED = 20251027
RECIPE_VERSION = 1  # bump by hand when the output changes in a way the source hash would miss

# Added tokens in the order (and with the "special" flag) of the real Qwen3 / Qwen3-VL tokenizer:
# the <think>, <tool_call> and <tool_response> tags are ordinary added tokens there, so
# `skip_special_tokens=True` keeps them in decoded text.
SPECIAL_TOKENS: tuple[tuple[str, bool], ...] = (
    ("<|endoftext|>", True),
    ("<|im_start|>", True),
    ("<|im_end|>", True),
    ("<|object_ref_start|>", True),
    ("<|object_ref_end|>", True),
    ("<|box_start|>", True),
    ("<|box_end|>", True),
    ("<|quad_start|>", True),
    ("<|quad_end|>", True),
    ("<|vision_start|>", True),
    ("<|vision_end|>", True),
    ("<|vision_pad|>", True),
    ("<|image_pad|>", True),
    ("<|video_pad|>", True),
    ("<tool_call>", False),
    ("</tool_call>", False),
    ("<|fim_prefix|>", False),
    ("<|fim_middle|>", False),
    ("<|fim_suffix|>", False),
    ("<|fim_pad|>", False),
    ("<|repo_name|>", False),
    ("<|file_sep|>", False),
    ("<tool_response>", False),
    ("</tool_response>", False),
    ("<think>", False),
    ("</think>", False),
)

# The vision tower of both tiny models (the tiny Qwen3.5's has no DeepStack): patch 16, merge 2, as released.
VISION = {"depth": 3, "hidden_size": 32, "intermediate_size": 64, "num_heads": 4, "hidden_act": "gelu_pytorch_tanh",
          "in_channels": 3, "patch_size": 16, "spatial_merge_size": 2, "temporal_patch_size": 2,
          "out_hidden_size": 256, "num_position_embeddings": 2304}

# Same split rule as the Qwen2/Qwen3 tokenizers (and transformers' Qwen2Tokenizer), so a reload
# through AutoTokenizer tokenizes exactly as the trained object does.
_PRETOKENIZE_REGEX = (
    r"""(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}"""
    r"""| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+"""
)

# The tokenizer's training text (data/tiny_corpus.txt): our own sentences, in the shapes the notebooks
# produce (prose, Chinese, JSON boxes, tool calls, code, timestamps, HTML/Markdown documents).
DATA = Path(__file__).parent / "data"
CORPUS: list[str] = (DATA / "tiny_corpus.txt").read_text(encoding="utf-8").splitlines()


# Our own Jinja chat templates (data/qwen3_vl_*.jinja): they render the same text as the official Qwen3-VL ones.
CHAT_TEMPLATES: dict[str, str] = {f: (DATA / f"qwen3_vl_{f}.jinja").read_text(encoding="utf-8") for f in FLAVOURS}
CHAT_TEMPLATE: str = CHAT_TEMPLATES["instruct"]


def default_root() -> Path:
    """Where tiny checkpoints are cached: $COOKBOOK_CACHE or ~/.cache/qwen3-vl-cookbook (00)."""
    from cookbook.kit.environment import cookbook_cache_dir

    return cookbook_cache_dir()


def token_ids(ids: dict[str, int]) -> dict[str, dict[str, Any]]:
    """The special-token ids (and tied float32 weights) both tiny configs set: for the text config and the model."""
    same = {"tie_word_embeddings": True, "dtype": "float32"}
    return {"text": {"bos_token_id": ids["<|endoftext|>"], "eos_token_id": ids["<|im_end|>"],
                     "pad_token_id": ids["<|endoftext|>"], **same},
            "model": {"image_token_id": ids["<|image_pad|>"], "video_token_id": ids["<|video_pad|>"],
                      "vision_start_token_id": ids["<|vision_start|>"], "vision_end_token_id": ids["<|vision_end|>"],
                      **same}}


def recipe_hash(*sources: Path, tag: str = "") -> str:
    """Hash of what decides a tiny folder's bytes: the builder files, the data files, ``tag``, the libraries."""
    h = hashlib.sha256()
    for path in (*sources, *sorted(DATA.iterdir())):
        h.update(path.read_bytes())
    h.update(tag.encode())
    for dist in ("transformers", "tokenizers", "torch", "safetensors"):
        try:
            h.update(f"|{dist}={metadata.version(dist)}".encode())
        except metadata.PackageNotFoundError:
            h.update(f"|{dist}=none".encode())
    return h.hexdigest()[:12]


def train_bpe(lines: list[str] | None = None, split: str = _PRETOKENIZE_REGEX) -> Any:
    """A byte-level BPE (2,048 entries, NFC, the given split rule) trained on ``lines`` (default: the corpus),
    without special tokens; the tiny builders (here, tiny_qwen35, tiny_retrieval) add theirs."""
    from tokenizers import Regex, Tokenizer, decoders, models, normalizers, pre_tokenizers, trainers

    tok = Tokenizer(models.BPE(unk_token=None, fuse_unk=False, byte_fallback=False))
    tok.normalizer = normalizers.NFC()
    tok.pre_tokenizer = pre_tokenizers.Sequence([
        pre_tokenizers.Split(Regex(split), behavior="isolated", invert=False),
        pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False),
    ])
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=2048, min_frequency=2, show_progress=False,
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet(), special_tokens=[])
    tok.train_from_iterator(CORPUS if lines is None else lines, trainer=trainer)
    return tok


def added_tokens() -> list[Any]:
    """The Qwen special and added tokens, in Qwen3's order, as ``tokenizers.AddedToken`` objects."""
    from tokenizers import AddedToken

    return [AddedToken(text, special=special, normalized=False, lstrip=False, rstrip=False)
            for text, special in SPECIAL_TOKENS]


def _train_tokenizer() -> Any:
    """Train a byte-level BPE on the built-in corpus and add the Qwen special tokens."""
    tok = train_bpe()
    tok.add_tokens(added_tokens())
    return tok


def _write_checkpoint(folder: Path, flavour: str) -> None:
    """Write config, weights, tokenizer, processors and chat template of one flavour into folder."""
    import torch
    from transformers import (
        Qwen2Tokenizer,
        Qwen3VLConfig,
        Qwen3VLForConditionalGeneration,
    )

    extra = [text for text, special in SPECIAL_TOKENS if special and text != "<|endoftext|>"]
    tokenizer = Qwen2Tokenizer(
        tokenizer_object=_train_tokenizer(),
        eos_token="<|im_end|>",
        pad_token="<|endoftext|>",
        unk_token=None,
        bos_token=None,
        extra_special_tokens=extra,
        model_max_length=262144,
        clean_up_tokenization_spaces=False,
        errors="replace",
        split_special_tokens=False,
    )
    ids = {text: tokenizer.convert_tokens_to_ids(text) for text, _ in SPECIAL_TOKENS}

    # Features: the released 2B/4B configs. Sizes: as small as vLLM's CPU attention accepts (it
    # needs head_dim 64 or more; 8 gives "Unsupported CPU attention configuration"), so vLLM serves
    # the same tiny model as transformers (04): hidden 256 = 4 heads x 64, 1.7M parameters.
    config = Qwen3VLConfig(
        text_config={
            "vocab_size": len(tokenizer),
            "hidden_size": 256,
            "intermediate_size": 512,
            "num_hidden_layers": 2,
            "num_attention_heads": 4,
            "num_key_value_heads": 2,
            "head_dim": 64,
            "hidden_act": "silu",
            "max_position_embeddings": 262144,
            "rms_norm_eps": 1e-6,
            "rope_parameters": {
                "rope_type": "default",
                "rope_theta": 5_000_000.0,
                "mrope_section": [16, 8, 8],  # sums to head_dim / 2, like [24, 20, 20] for 128
                "mrope_interleaved": True,
            },
            **token_ids(ids)["text"],
        },
        vision_config={**VISION, "deepstack_visual_indexes": [0, 1]},  # DeepStack: fed into text layers 0 and 1
        **token_ids(ids)["model"],
    )

    with torch.random.fork_rng(devices=[]):  # fixed weights, caller's random state untouched
        torch.manual_seed(SEED)
        model = Qwen3VLForConditionalGeneration(config).eval()
    save_checkpoint(folder, model, tokenizer, ids, CHAT_TEMPLATES[flavour])
    # The tokenizer alone (AutoTokenizer) gets the same template, as in the released checkpoints.
    cfg_path = folder / "tokenizer_config.json"
    cfg = json.loads(cfg_path.read_text(encoding="utf-8"))
    if "chat_template" not in cfg and not (folder / "chat_template.jinja").exists():
        cfg["chat_template"] = CHAT_TEMPLATES[flavour]
        cfg_path.write_text(json.dumps(cfg, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")


def save_checkpoint(folder: Path, model: Any, tokenizer: Any, ids: dict[str, int], chat_template: str) -> None:
    """Write a tiny model's folder: the weights with a greedy generation config, and the Qwen3-VL
    processor (image and video processors at the released checkpoints' budgets) with ``chat_template``.
    Shared by this tiny Qwen3-VL and the tiny Qwen3.5 (tiny_qwen35.py), whose processors are the same classes."""
    from transformers import GenerationConfig, Qwen2VLImageProcessor, Qwen3VLProcessor, Qwen3VLVideoProcessor
    from transformers.utils import logging as hf_logging

    # Stop on <|im_end|> or <|endoftext|>, as the released checkpoints do. Unlike them (their
    # generation_config.json samples: temperature 0.7, top-p 0.8, top-k 20 for Instruct), a tiny
    # model decodes greedily by default, so servers and tests that pass no sampling settings get
    # the same tokens every run. cb.chat always passes a preset's settings explicitly.
    model.generation_config = GenerationConfig(
        bos_token_id=ids["<|endoftext|>"],
        pad_token_id=ids["<|endoftext|>"],
        eos_token_id=[ids["<|im_end|>"], ids["<|endoftext|>"]],
    )
    bars = hf_logging.is_progress_bar_enabled()
    hf_logging.disable_progress_bar()
    try:
        model.save_pretrained(folder)
    finally:
        if bars:
            hf_logging.enable_progress_bar()

    mean_std = {"image_mean": [0.5, 0.5, 0.5], "image_std": [0.5, 0.5, 0.5]}
    grid = {"patch_size": 16, "temporal_patch_size": 2, "merge_size": 2}
    processor = Qwen3VLProcessor(
        image_processor=Qwen2VLImageProcessor(
            size={"shortest_edge": 64 * 32 * 32, "longest_edge": 16384 * 32 * 32}, **grid, **mean_std
        ),
        tokenizer=tokenizer,
        video_processor=Qwen3VLVideoProcessor(
            size={"shortest_edge": 4 * 32 * 32, "longest_edge": 24576 * 32 * 32}, fps=2,
            min_frames=4, max_frames=768, do_sample_frames=True, **grid, **mean_std,
        ),
        chat_template=chat_template,
    )
    processor.save_pretrained(folder)


def build(flavour: str = "instruct", root: Path | None = None, force: bool = False) -> Path:
    """Build once (cached under `root`) the tiny random Qwen3-VL checkpoint and return its folder (00).

    `cb.load()` uses it in smoke mode (COOKBOOK_MODEL=tiny or tiny-thinking), so every notebook runs.
    The tiny successor (COOKBOOK_MODEL=tiny-qwen3.5) is built by cookbook/kit/tiny_qwen35.py.
    """
    if flavour not in FLAVOURS:
        raise ValueError(f"flavour must be one of {FLAVOURS}, got {flavour!r}")
    root = Path(root).expanduser() if root is not None else default_root()
    final = root / f"qwen3-vl-tiny-{flavour}-{recipe_hash(Path(__file__), tag=f'{RECIPE_VERSION}|{flavour}')}"
    if (final / "tiny_recipe.json").exists() and not force:
        return final
    return build_folder(final, lambda tmp: _write_checkpoint(tmp, flavour), {"flavour": flavour, "seed": SEED}, force)


def build_folder(final: Path, write: Callable[[Path], None], recipe: dict[str, Any], force: bool = False) -> Path:
    """Build ``final`` once: ``write`` fills a private temporary folder, renamed into place (atomic), so threads
    and other processes (pytest-xdist, nbmake) building the same folder see none or a complete one (00)."""
    marker = final / "tiny_recipe.json"
    with _BUILD_LOCK:
        if marker.exists() and not force:  # another thread finished it while we waited
            return final
        final.parent.mkdir(parents=True, exist_ok=True)
        tmp = final.parent / f".{final.name}.tmp-{os.getpid()}-{uuid.uuid4().hex[:8]}"
        tmp.mkdir()
        try:
            write(tmp)
            (tmp / "tiny_recipe.json").write_text(json.dumps({**recipe, "recipe": final.name.rsplit("-", 1)[-1]},
                                                             indent=2) + "\n")
            if final.exists() and (force or not marker.exists()):  # replace, or repair a broken one
                trash = final.parent / f".{final.name}.old-{uuid.uuid4().hex[:8]}"
                try:
                    os.rename(final, trash)
                    shutil.rmtree(trash, ignore_errors=True)
                except OSError:
                    pass  # someone else moved it first; the rename below settles it
            try:
                os.rename(tmp, final)  # readers see no folder or the complete folder
            except OSError:
                if not marker.exists():  # not a finished build by another process: a real error
                    raise
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
    return final
