"""One correct recipe for chatting with Qwen3-VL in transformers (01_first_image_chat).

The recipe the seed article got wrong: ``return_dict=True`` (or the images never reach the model),
inputs moved to the model's device, the prompt trimmed off before decoding.
"""

from __future__ import annotations

import inspect
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any, overload

from cookbook.generation import Preset, default_preset, generation_kwargs, split_thinking
from cookbook.generation import preset as get_preset
from cookbook.kit.messages import InputError, check

THINK_OPEN = "<think>"


@dataclass(frozen=True)
class Reply:
    """A model's answer: the decoded text and, for Thinking models, reasoning and answer apart (01)."""

    text: str
    reasoning: str
    answer: str
    prompt_tokens: int
    new_tokens: int
    seconds: float

    def __str__(self) -> str:
        return self.answer


def _is_batch(messages: Any) -> bool:
    return bool(messages) and isinstance(messages[0], (list, tuple))


def is_thinking(processor: Any) -> bool:
    """True when the chat template opens ``<think>`` in the generation prompt (a Thinking checkpoint) (02)."""
    prompt = processor.apply_chat_template(
        [{"role": "user", "content": [{"type": "text", "text": "hi"}]}],
        tokenize=False, add_generation_prompt=True,
    )
    return prompt.rstrip().endswith(THINK_OPEN)


def _decode_video(part: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    """A video part as frames already sampled and sized by 07's rules, with the metadata its timestamps need.

    A file goes through ``read_video``; a frame list taken at ``part["fps"]`` is resized with ``frame_size``.
    Either way the processor gets ``do_resize=False``: it must not resize them a second time.
    """
    import numpy as np

    from cookbook import video

    src = part["video"]
    if isinstance(src, (list, tuple)):  # frames sampled by the caller at part["fps"]
        first = np.asarray(src[0])
        height, width = video.frame_size(first.shape[0], first.shape[1], len(src))
        frames = np.stack([np.asarray(f.convert("RGB").resize((width, height), resample=3)) if hasattr(f, "convert")
                           else np.asarray(f) for f in src])
        if frames.shape[1:3] != (height, width):
            raise InputError(f"video frames are {frames.shape[2]}x{frames.shape[1]}: give PIL images (resized here "
                             f"to {width}x{height}) or arrays already of that size")
        metadata = {"fps": float(part["fps"]), "frames_indices": list(range(len(src))), "total_num_frames": len(src)}
    else:
        limits = {"max_frames": part["max_frames"]} if part.get("max_frames") else {}
        frames, metadata = video.read_video(src, fps=part.get("fps", 2.0), **limits)
    return {"type": "video", "video": frames}, metadata


def _with_decoded_videos(conversation: list[dict[str, Any]]) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    out, metadata = [], []
    for msg in conversation:
        content = msg.get("content")
        if isinstance(content, list) and any(p.get("type") == "video" for p in content):
            parts = []
            for part in content:
                if part.get("type") == "video":
                    part, meta = _decode_video(part)
                    metadata.append(meta)
                parts.append(part)
            msg = {**msg, "content": parts}
        out.append(msg)
    return out, metadata


def inputs(processor: Any, messages: Any, device: Any = None, **kwargs: Any) -> Any:
    """Tokenize a conversation (or a list of them, left-padded) with its images and videos, as tensors (01).

    This is the step the seed got wrong: ``return_dict=True`` returns ``pixel_values`` and
    ``image_grid_thw`` beside ``input_ids``; then everything moves to the model's device.
    Videos are decoded here with PyAV and passed with their metadata, so the ``<t seconds>``
    stamps are right (transformers alone would need torchcodec and FFmpeg to read a file).
    """
    batch = _is_batch(messages)
    conversations = [list(c) for c in messages] if batch else [list(messages)]
    for conversation in conversations:
        check(conversation)
    decoded = [_with_decoded_videos(c) for c in conversations]
    conversations = [c for c, _ in decoded]
    video_metadata = [m for _, metas in decoded for m in metas]
    options: dict[str, Any] = {}
    if batch:  # left padding: generation continues from each row's right end (the tokenizer is not changed)
        options.update(padding=True, padding_side="left")
    if video_metadata:  # frames already sampled and sized (07): the processor must do neither again
        options.update(video_metadata=video_metadata, do_sample_frames=False, do_resize=False)
    if options:
        # transformers 5.2x takes processor options as processor_kwargs; older releases as kwargs
        if "processor_kwargs" in inspect.signature(processor.apply_chat_template).parameters:
            kwargs["processor_kwargs"] = {**options, **kwargs.get("processor_kwargs", {})}
        else:
            kwargs = {**options, **kwargs}
    encoded = processor.apply_chat_template(
        conversations if batch else conversations[0],
        tokenize=True, add_generation_prompt=True, return_dict=True, return_tensors="pt", **kwargs,
    )
    return encoded.to(device) if device is not None else encoded


def _max_context(model: Any) -> int | None:
    cfg = getattr(model.config, "text_config", model.config)
    return getattr(cfg, "max_position_embeddings", None)


def _generate_kwargs(model: Any, processor: Any, encoded: Any, preset: str | Preset | None,
                     overrides: dict[str, Any]) -> dict[str, Any]:
    chosen = get_preset(preset or default_preset(is_thinking(processor)))
    prompt_length = encoded["input_ids"].shape[1]
    limit = _max_context(model)
    if limit and prompt_length >= limit:
        raise InputError(
            f"the prompt is {prompt_length} tokens, the model's context is {limit}: lower the image "
            "budget (cb.messages.image(..., max_tokens=...)) or send fewer frames."
        )
    kwargs = generation_kwargs(chosen, prompt_length=prompt_length, **overrides)
    tok = processor.tokenizer
    kwargs.setdefault("pad_token_id", tok.pad_token_id if tok.pad_token_id is not None else tok.eos_token_id)
    return kwargs


def _replies(processor: Any, sequences: Any, prompt_length: int, seconds: float, prompt_tokens: list[int]) -> list[Reply]:
    new_ids = sequences[:, prompt_length:]  # trim the prompt: generate returns it too
    texts = processor.batch_decode(new_ids, skip_special_tokens=True)
    out = []
    pad = processor.tokenizer.pad_token_id
    for row, text, n_prompt in zip(new_ids, texts, prompt_tokens, strict=True):
        reasoning, answer = split_thinking(text)
        new_tokens = int((row != pad).sum()) if pad is not None else int(row.numel())
        out.append(Reply(text, reasoning, answer, n_prompt, new_tokens, seconds))
    return out


def stream(model: Any, processor: Any, messages: list[dict[str, Any]], preset: str | Preset | None = None,
           seed: int | None = None, **overrides: Any) -> Iterator[str]:
    """Yield the answer's text piece by piece as it is generated (one conversation) (01)."""
    chunks, _, _ = _stream(model, processor, messages, preset, seed, overrides)
    yield from chunks


def _stream(model: Any, processor: Any, messages: Any, preset: str | Preset | None, seed: int | None,
            overrides: dict[str, Any]) -> tuple[Iterator[str], Any, dict[str, Any]]:
    """Start ``generate`` on a thread with a text streamer: (text chunks, inputs, result holder)."""
    import torch
    from transformers import TextIteratorStreamer

    if _is_batch(messages):
        raise InputError("streaming takes one conversation; use chat(..., batch) without stream.")
    encoded = inputs(processor, messages, device=model.device)
    kwargs = _generate_kwargs(model, processor, encoded, preset, overrides)
    streamer = TextIteratorStreamer(processor.tokenizer, skip_prompt=True, skip_special_tokens=True)
    result: dict[str, Any] = {}

    def run() -> None:
        if seed is not None:
            torch.manual_seed(seed)
        try:
            with torch.inference_mode():
                result["sequences"] = model.generate(**encoded, **kwargs, streamer=streamer)
        except BaseException as err:  # surfaced in the caller's thread below
            result["error"] = err
            streamer.on_finalized_text("", stream_end=True)

    worker = threading.Thread(target=run, daemon=True)

    def chunks() -> Iterator[str]:
        worker.start()
        yield from (chunk for chunk in streamer if chunk)
        worker.join()
        if "error" in result:
            raise result["error"]

    return chunks(), encoded, result


Conversation = list[dict[str, Any]]


@overload
def chat(model: Any, processor: Any, messages: Conversation, preset: str | Preset | None = None, *,
         on_text: Callable[[str], None] | None = None, seed: int | None = None, **overrides: Any) -> Reply: ...


@overload
def chat(model: Any, processor: Any, messages: list[Conversation], preset: str | Preset | None = None, *,
         on_text: Callable[[str], None] | None = None, seed: int | None = None, **overrides: Any) -> list[Reply]: ...


def chat(model: Any, processor: Any, messages: Conversation | list[Conversation], preset: str | Preset | None = None,
         *, on_text: Callable[[str], None] | None = None, seed: int | None = None,
         **overrides: Any) -> Reply | list[Reply]:
    """The ``Reply`` to one conversation, or the list of replies to a list of conversations (batched) (01).

    ``preset`` names a row of ``cb.PRESETS`` (default: the model card's vision setting for this
    flavour); keyword overrides (``temperature=0.2``, ``do_sample=False``, ``max_new_tokens=64``)
    win. ``on_text`` (one conversation) is called with each piece of text as it is generated, e.g.
    ``on_text=lambda s: print(s, end="")``; chat itself prints nothing. Reads no environment: pass ``max_new_tokens``.
    """
    import torch

    start = time.perf_counter()
    if on_text is not None:
        chunks, encoded, result = _stream(model, processor, messages, preset, seed, overrides)
        for chunk in chunks:
            on_text(chunk)
        sequences = result["sequences"]
    else:
        encoded = inputs(processor, messages, device=model.device)
        kwargs = _generate_kwargs(model, processor, encoded, preset, overrides)
        if seed is not None:
            torch.manual_seed(seed)
        with torch.inference_mode():
            sequences = model.generate(**encoded, **kwargs)
    prompt_tokens = [int(n) for n in encoded["attention_mask"].sum(dim=1)]
    replies = _replies(processor, sequences, encoded["input_ids"].shape[1], time.perf_counter() - start, prompt_tokens)
    return replies if _is_batch(messages) else replies[0]
