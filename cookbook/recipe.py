"""The plain transformers recipe, saved from 01_first_image_chat: one answer, and what an image costs."""

from __future__ import annotations

from typing import Any


def ask(model: Any, processor: Any, messages: list[dict], max_new_tokens: int) -> str:
    """The fixed recipe of 01 in one function: the answer to a conversation, without the prompt."""
    inputs = processor.apply_chat_template(
        messages, tokenize=True, add_generation_prompt=True,
        return_dict=True, return_tensors="pt",           # ids, mask, pixel_values, image_grid_thw
    ).to(model.device)                                    # the inputs go where the model is
    generated = model.generate(**inputs, max_new_tokens=max_new_tokens)
    answer_ids = generated[:, inputs["input_ids"].shape[1]:]   # generate returns the prompt too
    return processor.batch_decode(answer_ids, skip_special_tokens=True)[0]


def image_tokens(processor: Any, image: Any) -> int:
    """Visual tokens one image costs with this processor (01): its patch grid t x h x w over the 2x2 merge."""
    grid = processor.image_processor(images=[image], return_tensors="pt")["image_grid_thw"][0]
    return int(grid.prod()) // processor.image_processor.merge_size ** 2

def set_image_budget(processor: Any, max_pixels: int | None = None, min_pixels: int | None = None) -> None:
    """Cap the pixels (and so the visual tokens) per image of a loaded processor (01).

    One token covers 32x32 pixels. Sets ``processor.image_processor.size``, which works on every
    transformers release; ``from_pretrained(..., max_pixels=...)`` was ignored in 4.57 (transformers#41955).
    """
    size = dict(processor.image_processor.size)
    if max_pixels is not None:
        size["longest_edge"] = int(max_pixels)
    if min_pixels is not None:
        size["shortest_edge"] = int(min_pixels)
    if size.get("shortest_edge", 0) > size.get("longest_edge", float("inf")):
        raise ValueError(f"min_pixels {size['shortest_edge']} is above max_pixels {size['longest_edge']}.")
    processor.image_processor.size = size
