"""cookbook.kit.tiny_qwen35: the offline tiny Qwen3.5 (hybrid layers, no DeepStack, XML tools, thinking)."""

from __future__ import annotations

import json

import pytest

from cookbook.kit import tiny_qwen35
from cookbook.runtime.settings import tiny_flavour

IMG = "<|vision_start|><|image_pad|><|vision_end|>"
WEATHER_TOOL = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "Get the weather of a city.",
        "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]},
    },
}


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    """The tiny Qwen3.5 built into a fresh cache folder through tiny.build's dispatch."""
    return tiny_qwen35.build(root=tmp_path_factory.mktemp("tiny35"))


@pytest.fixture(scope="module")
def loaded(folder):
    """(model, processor) loaded the way cb.load does (Auto classes)."""
    from transformers import AutoModelForImageTextToText, AutoProcessor

    return AutoModelForImageTextToText.from_pretrained(folder).eval(), AutoProcessor.from_pretrained(folder)


def render(processor, messages, **kw) -> str:
    return processor.apply_chat_template(messages, tokenize=False, **kw)


def prompt_inputs(processor, messages, **processor_kwargs):
    return processor.apply_chat_template(
        messages, tokenize=True, add_generation_prompt=True, return_dict=True, return_tensors="pt",
        processor_kwargs=processor_kwargs,
    )


def test_switch_selects_it():
    assert tiny_flavour("tiny-qwen3.5") == "qwen3.5"
    assert tiny_flavour("Qwen/Qwen3.5-9B") is None


def test_builds_offline_with_the_real_classes(folder, loaded):
    model, processor = loaded
    assert type(model).__name__ == "Qwen3_5ForConditionalGeneration"
    assert type(processor).__name__ == "Qwen3VLProcessor"
    assert type(processor.tokenizer).__name__ == "Qwen3_5Tokenizer"
    assert type(processor.image_processor).__name__.startswith("Qwen2VLImageProcessor")
    assert type(processor.video_processor).__name__ == "Qwen3VLVideoProcessor"
    config = json.loads((folder / "config.json").read_text())
    assert config["model_type"] == "qwen3_5"
    assert tiny_qwen35.build(root=folder.parent) == folder  # cached: same folder, no rebuild


def test_layer_map_is_hybrid_three_to_one(loaded):
    model, _ = loaded
    text = model.config.text_config
    assert text.layer_types == ["linear_attention"] * 3 + ["full_attention"]
    layers = model.model.language_model.layers
    kinds = ["linear_attn" if hasattr(layer, "linear_attn") else "self_attn" for layer in layers]
    assert kinds == ["linear_attn", "linear_attn", "linear_attn", "self_attn"]
    assert type(layers[0].linear_attn).__name__ == "Qwen3_5GatedDeltaNet"
    assert text.head_dim == 64


def test_vision_tower_has_no_deepstack(loaded):
    model, _ = loaded
    visual = model.model.visual
    assert not hasattr(visual, "deepstack_merger_list")
    assert not any("deepstack" in name for name, _ in model.named_parameters())


def test_special_token_ids_keep_the_released_offsets(loaded):
    model, processor = loaded
    tok = processor.tokenizer
    base = tok.convert_tokens_to_ids("<|endoftext|>")
    # Qwen3_5Config defaults: <|endoftext|> 248044 -> vision_start 248053, image 248056, video 248057
    assert model.config.vision_start_token_id - base == 9
    assert model.config.image_token_id - base == 12
    assert model.config.video_token_id - base == 13
    for text in ("<tool_call>", "</tool_call>", "<think>", "</think>", "<|im_end|>"):
        assert len(tok(text).input_ids) == 1


def test_generates_for_an_image(loaded, photo):
    import torch

    model, processor = loaded
    messages = [{"role": "user", "content": [{"type": "image", "image": photo}, {"type": "text", "text": "Describe this image."}]}]
    inputs = prompt_inputs(processor, messages)
    assert inputs["image_grid_thw"].tolist() == [[1, 14, 22]]  # same processor rule as Qwen3-VL
    assert int((inputs["input_ids"] == model.config.image_token_id).sum()) == 77
    with torch.no_grad():
        out = model.generate(**inputs, max_new_tokens=4, do_sample=False)
    assert out.shape == (1, inputs["input_ids"].shape[1] + 4)


def test_generates_for_a_video_with_timestamps(loaded):
    import torch
    from PIL import Image
    from transformers.video_utils import VideoMetadata

    model, processor = loaded
    frames = [Image.new("RGB", (128, 96), (40 * i, 90, 200 - 40 * i)) for i in range(4)]
    meta = VideoMetadata(total_num_frames=4, fps=2.0, frames_indices=[0, 1, 2, 3])
    messages = [{"role": "user", "content": [{"type": "video", "video": frames}, {"type": "text", "text": "What happens?"}]}]
    inputs = prompt_inputs(processor, messages, video_metadata=[meta], do_sample_frames=False)
    assert inputs["video_grid_thw"].tolist() == [[2, 6, 8]]
    text = processor.decode(inputs["input_ids"][0]).replace("<|video_pad|>", "")
    assert "<0.2 seconds><|vision_start|><|vision_end|><1.2 seconds>" in text
    with torch.no_grad():
        out = model.generate(**inputs, max_new_tokens=3, do_sample=False)
    assert out.shape == (1, inputs["input_ids"].shape[1] + 3)


def test_cache_holds_kv_only_on_full_attention_layers(loaded):
    """KV grows with the prompt on the full-attention layer only; DeltaNet layers keep fixed states."""
    import torch

    model, processor = loaded
    shapes = []
    for text in ("hi", "Count the apples on the table, then the pears, then the plums, please."):
        inputs = processor.apply_chat_template(
            [{"role": "user", "content": text}],
            tokenize=True, add_generation_prompt=True, return_dict=True, return_tensors="pt",
        )
        with torch.no_grad():
            cache = model(**inputs, use_cache=True).past_key_values
        seq = inputs["input_ids"].shape[1]
        assert cache.layers[3].keys.shape == (1, 2, seq, 64)  # 2 KV heads x head_dim 64
        for layer in cache.layers[:3]:
            assert not hasattr(layer, "keys")
            # conv state: (batch, 2 x key dim + value dim, kernel); recurrent: (batch, v heads, k, v)
            shapes.append((tuple(layer.conv_states[0].shape), tuple(layer.recurrent_states[0].shape)))
    assert set(shapes) == {((1, 2 * 256 + 512, 4), (1, 4, 128, 128))}  # the same for both lengths


# --- the chat template: what the published Qwen3.5 template renders --------------------------


def test_thinking_is_on_by_default_and_enable_thinking_false_closes_it(loaded):
    _, processor = loaded
    msgs = [{"role": "user", "content": [{"type": "text", "text": "hi"}]}]
    assert render(processor, msgs, add_generation_prompt=True) == (
        "<|im_start|>user\nhi<|im_end|>\n<|im_start|>assistant\n<think>\n"
    )
    assert render(processor, msgs, add_generation_prompt=True, enable_thinking=False) == (
        "<|im_start|>user\nhi<|im_end|>\n<|im_start|>assistant\n<think>\n\n</think>\n\n"
    )


def test_system_and_image_are_rendered(loaded, photo):
    _, processor = loaded
    msgs = [
        {"role": "system", "content": "Be brief. "},
        {"role": "user", "content": [{"type": "image", "image": photo}, {"type": "text", "text": "What?"}]},
    ]
    assert render(processor, msgs, add_vision_id=True) == (
        "<|im_start|>system\nBe brief.<|im_end|>\n"
        f"<|im_start|>user\nPicture 1: {IMG}What?<|im_end|>\n"
    )


def test_xml_tool_call_round_trip(loaded):
    _, processor = loaded
    msgs = [
        {"role": "user", "content": "Weather in Hangzhou?"},
        {"role": "assistant", "content": "", "reasoning_content": "Need the tool.",
         "tool_calls": [{"type": "function", "function": {"name": "get_weather", "arguments": {"city": "杭州", "days": [1, 2]}}}]},
        {"role": "tool", "content": '{"temperature": 21}'},
    ]
    text = render(processor, msgs, tools=[WEATHER_TOOL], add_generation_prompt=True)
    assert text.startswith(
        "<|im_start|>system\n# Tools\n\nYou have access to the following functions:\n\n<tools>\n"
        + json.dumps(WEATHER_TOOL, ensure_ascii=False) + "\n</tools>\n\nIf you choose to call a function"
    )
    assert text.endswith(
        "<|im_start|>user\nWeather in Hangzhou?<|im_end|>\n"
        "<|im_start|>assistant\n<think>\nNeed the tool.\n</think>\n\n"
        "<tool_call>\n<function=get_weather>\n<parameter=city>\n杭州\n</parameter>\n"
        "<parameter=days>\n[1, 2]\n</parameter>\n</function>\n</tool_call><|im_end|>\n"
        '<|im_start|>user\n<tool_response>\n{"temperature": 21}\n</tool_response><|im_end|>\n'
        "<|im_start|>assistant\n<think>\n"
    )


def test_reasoning_of_turns_before_the_last_query_is_dropped(loaded):
    _, processor = loaded
    msgs = [
        {"role": "user", "content": "a"},
        {"role": "assistant", "content": "<think>\nold thought\n</think>\n\nfirst"},
        {"role": "user", "content": "b"},
        {"role": "assistant", "content": "<think>\nnew thought\n</think>\n\nsecond"},
    ]
    assert render(processor, msgs) == (
        "<|im_start|>user\na<|im_end|>\n<|im_start|>assistant\nfirst<|im_end|>\n"
        "<|im_start|>user\nb<|im_end|>\n"
        "<|im_start|>assistant\n<think>\nnew thought\n</think>\n\nsecond<|im_end|>\n"
    )


def test_template_constant_is_what_the_folder_carries(folder):
    assert (folder / "chat_template.jinja").read_text() == tiny_qwen35.CHAT_TEMPLATE
