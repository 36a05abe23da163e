"""cookbook.kit.tiny: the offline tiny Qwen3-VL checkpoint (architecture, tokenizer, processor, template)."""

from __future__ import annotations

import inspect
import json
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from cookbook.kit import tiny

IMG = "<|vision_start|><|image_pad|><|vision_end|>"
VID = "<|vision_start|><|video_pad|><|vision_end|>"
TOOLS_HEAD = (
    "# Tools\n\nYou may call one or more functions to assist with the user query.\n\n"
    "You are provided with function signatures within <tools></tools> XML tags:\n<tools>\n"
)
TOOLS_TAIL = (
    "\n</tools>\n\nFor each function call, return a json object with function name and arguments "
    "within <tool_call></tool_call> XML tags:\n<tool_call>\n"
    '{"name": <function-name>, "arguments": <args-json-object>}\n</tool_call><|im_end|>\n'
)
WEATHER_TOOL = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "Get the weather of a city.",
        "parameters": {
            "type": "object",
            "properties": {"city": {"type": "string"}},
            "required": ["city"],
        },
    },
}
WEATHER_TOOL_JSON = (
    '{"type": "function", "function": {"name": "get_weather", "description": "Get the weather of '
    'a city.", "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, '
    '"required": ["city"]}}}'
)
CALL = {"type": "function", "function": {"name": "get_weather", "arguments": {"city": "杭州"}}}
CALL_TEXT = '<tool_call>\n{"name": "get_weather", "arguments": {"city": "杭州"}}\n</tool_call>'


@pytest.fixture(scope="module")
def built(tmp_path_factory) -> dict:
    """Both flavours built into a fresh cache folder, with the time the first build took (torch and transformers
    already imported: importing them alone takes 8-9 s on 2 cores, and every notebook pays that anyway)."""
    from transformers import Qwen3VLForConditionalGeneration, Qwen3VLProcessor  # noqa: F401

    root = tmp_path_factory.mktemp("tiny-cache")
    start = time.perf_counter()
    instruct = tiny.build("instruct", root=root)
    seconds = time.perf_counter() - start
    thinking = tiny.build("thinking", root=root)
    return {"root": root, "instruct": instruct, "thinking": thinking, "seconds": seconds}


@pytest.fixture(scope="module")
def loaded(built) -> tuple:
    """(model, processor) of the tiny Instruct folder, loaded the way a reader would."""
    from transformers import AutoProcessor, Qwen3VLForConditionalGeneration

    processor = AutoProcessor.from_pretrained(built["instruct"])
    model = Qwen3VLForConditionalGeneration.from_pretrained(built["instruct"]).eval()
    return model, processor


@pytest.fixture(scope="module")
def processors(built) -> dict:
    """AutoProcessor of each flavour."""
    from transformers import AutoProcessor

    return {f: AutoProcessor.from_pretrained(built[f]) for f in tiny.FLAVOURS}


def render(processor, messages, **kw) -> str:
    """The prompt text the saved chat template produces."""
    return processor.apply_chat_template(messages, tokenize=False, **kw)


def prompt_inputs(processor, messages, **processor_kwargs):
    """Tokenized prompt with pixels; processor options go where this transformers expects them."""
    kw = {
        "tokenize": True,
        "add_generation_prompt": True,
        "return_dict": True,
        "return_tensors": "pt",
    }
    if "processor_kwargs" in inspect.signature(processor.apply_chat_template).parameters:
        kw["processor_kwargs"] = processor_kwargs  # transformers >= 5
    else:
        kw.update(processor_kwargs)
    return processor.apply_chat_template(messages, **kw)


# --- the folder ------------------------------------------------------------------------------


def test_build_is_fast_small_and_named_by_flavour_and_recipe(built):
    assert built["seconds"] < 10
    for flavour in tiny.FLAVOURS:
        folder = built[flavour]
        assert folder.parent == built["root"]
        assert folder.name.startswith(f"qwen3-vl-tiny-{flavour}-")
        size = sum(f.stat().st_size for f in folder.iterdir())
        assert size < 8 * 1024 * 1024  # 1.7M float32 parameters (head_dim 64, as vLLM's CPU attention needs)
        names = {f.name for f in folder.iterdir()}
        assert {
            "config.json",
            "model.safetensors",
            "generation_config.json",
            "tokenizer.json",
            "processor_config.json",
            "tiny_recipe.json",
        } <= names
    assert built["instruct"] != built["thinking"]
    # nothing half-written is left next to the finished folders
    assert sorted(p.name for p in built["root"].iterdir()) == sorted(
        [built["instruct"].name, built["thinking"].name]
    )


def test_unknown_flavour_is_refused(tmp_path):
    with pytest.raises(ValueError, match="flavour"):
        tiny.build("base", root=tmp_path)


def test_second_build_reuses_the_cache(built):
    weights = built["instruct"] / "model.safetensors"
    before = weights.stat().st_mtime_ns
    start = time.perf_counter()
    again = tiny.build("instruct", root=built["root"])
    assert again == built["instruct"]
    assert time.perf_counter() - start < 0.5
    assert weights.stat().st_mtime_ns == before


def test_default_root_follows_cookbook_cache(monkeypatch, tmp_path):
    monkeypatch.setenv("COOKBOOK_CACHE", str(tmp_path / "c"))
    assert tiny.default_root() == tmp_path / "c"
    monkeypatch.delenv("COOKBOOK_CACHE")
    assert tiny.default_root() == Path.home() / ".cache" / "qwen3-vl-cookbook"


def test_builds_are_byte_identical_and_a_recipe_change_rebuilds(built, tmp_path, monkeypatch):
    other = tiny.build("instruct", root=tmp_path)
    assert other.name == built["instruct"].name
    for name in ("model.safetensors", "tokenizer.json", "config.json", "processor_config.json"):
        assert (other / name).read_bytes() == (built["instruct"] / name).read_bytes(), name
    # same seed and sizes: the two flavours share weights, only the template differs
    assert (built["thinking"] / "model.safetensors").read_bytes() == (
        other / "model.safetensors"
    ).read_bytes()

    monkeypatch.setattr(tiny, "RECIPE_VERSION", tiny.RECIPE_VERSION + 1)
    changed = tiny.build("instruct", root=tmp_path)
    assert changed != other and changed.parent == tmp_path
    assert (changed / "model.safetensors").read_bytes() == (
        other / "model.safetensors"
    ).read_bytes()


def test_force_rebuilds_in_place(tmp_path):
    folder = tiny.build("instruct", root=tmp_path)
    before = (folder / "model.safetensors").stat().st_mtime_ns
    time.sleep(0.01)
    assert tiny.build("instruct", root=tmp_path, force=True) == folder
    assert (folder / "model.safetensors").stat().st_mtime_ns != before
    assert [p.name for p in tmp_path.iterdir()] == [folder.name]


def test_two_processes_building_at_once_agree(built, tmp_path):
    # what pytest-xdist or two nbmake kernels do on a cold cache
    code = "import sys; from cookbook.kit import tiny; print(tiny.build('thinking', root=sys.argv[1]))"
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", code, str(tmp_path)], stdout=subprocess.PIPE, text=True
        )
        for _ in range(2)
    ]
    outs = [p.communicate(timeout=120)[0].strip() for p in procs]
    assert [p.returncode for p in procs] == [0, 0]
    assert outs[0] == outs[1] == str(tmp_path / built["thinking"].name)
    assert [p.name for p in tmp_path.iterdir()] == [built["thinking"].name]
    folder = Path(outs[0])
    assert (folder / "model.safetensors").read_bytes() == (
        built["thinking"] / "model.safetensors"
    ).read_bytes()
    assert json.loads((folder / "tiny_recipe.json").read_text())["flavour"] == "thinking"


def test_threads_building_at_once_agree(tmp_path):
    with ThreadPoolExecutor(2) as pool:
        paths = list(pool.map(lambda _: tiny.build("instruct", root=tmp_path), range(2)))
    assert paths[0] == paths[1]
    assert [p.name for p in tmp_path.iterdir()] == [paths[0].name]


# --- config, tokenizer, processor -------------------------------------------------------------


def test_config_has_the_real_architecture_features(loaded):
    model, _ = loaded
    config = model.config
    text, vision = config.text_config, config.vision_config
    rope = text.rope_parameters
    assert rope["mrope_interleaved"] is True
    assert rope["mrope_section"] == [16, 8, 8] and sum(rope["mrope_section"]) == text.head_dim // 2
    # head_dim 64: the smallest vLLM's CPU attention serves (04 runs vLLM on this same model)
    assert (text.num_hidden_layers, text.head_dim) == (2, 64)
    assert (text.num_attention_heads, text.num_key_value_heads) == (4, 2)
    assert vision.patch_size == 16 and vision.spatial_merge_size == 2
    assert vision.temporal_patch_size == 2
    assert len(vision.deepstack_visual_indexes) > 1
    assert max(vision.deepstack_visual_indexes) < vision.depth
    assert vision.out_hidden_size == text.hidden_size
    # deepstack mergers exist in the model, one per index; embeddings are tied
    assert len(model.model.visual.deepstack_merger_list) == len(vision.deepstack_visual_indexes)
    assert config.tie_word_embeddings
    assert (
        model.lm_head.weight.data_ptr() == model.model.language_model.embed_tokens.weight.data_ptr()
    )
    assert model.dtype.is_floating_point and str(model.dtype) == "torch.float32"


def test_tokenizer_ids_match_the_config(loaded, built):
    model, processor = loaded
    tok, config = processor.tokenizer, model.config
    ids = tok.convert_tokens_to_ids
    assert config.image_token_id == ids("<|image_pad|>") == processor.image_token_id
    assert config.video_token_id == ids("<|video_pad|>") == processor.video_token_id
    assert config.vision_start_token_id == ids("<|vision_start|>")
    assert config.vision_end_token_id == ids("<|vision_end|>")
    assert config.text_config.vocab_size == len(tok) <= 4096
    assert (tok.eos_token, tok.pad_token) == ("<|im_end|>", "<|endoftext|>")
    gen = json.loads((built["instruct"] / "generation_config.json").read_text())
    assert gen["eos_token_id"] == [ids("<|im_end|>"), ids("<|endoftext|>")]
    assert model.generation_config.eos_token_id == [ids("<|im_end|>"), ids("<|endoftext|>")]
    assert gen["pad_token_id"] == ids("<|endoftext|>")


def test_special_tokens_are_single_ids_and_flagged_like_qwen(loaded):
    _, processor = loaded
    tok = processor.tokenizer
    for text, _special in tiny.SPECIAL_TOKENS:
        assert len(tok(text, add_special_tokens=False)["input_ids"]) == 1, text
    ids = tok(
        "<|im_start|>assistant\n<think>\nhm\n</think>\n\n<tool_call>\n{}\n</tool_call><|im_end|>"
    )["input_ids"]
    # <think>/<tool_call> are ordinary added tokens in Qwen3: skip_special_tokens keeps them
    assert tok.decode(ids, skip_special_tokens=True) == (
        "assistant\n<think>\nhm\n</think>\n\n<tool_call>\n{}\n</tool_call>"
    )
    text = '中文和English混合: {"bbox_2d": [12, 40, 988, 96]}'
    assert tok.decode(tok(text)["input_ids"]) == text


def test_processors_match_the_released_checkpoint(loaded):
    _, processor = loaded
    image, video = processor.image_processor, processor.video_processor
    assert type(processor).__name__ == "Qwen3VLProcessor"
    assert (image.patch_size, image.merge_size, image.temporal_patch_size) == (16, 2, 2)
    assert dict(image.size) == {"shortest_edge": 64 * 32 * 32, "longest_edge": 16384 * 32 * 32}
    assert list(image.image_mean) == [0.5] * 3 and list(image.image_std) == [0.5] * 3
    assert type(video).__name__ == "Qwen3VLVideoProcessor"
    assert (video.patch_size, video.merge_size, video.temporal_patch_size) == (16, 2, 2)
    assert (video.fps, video.min_frames, video.max_frames) == (2, 4, 768)
    assert dict(video.size) == {"shortest_edge": 4 * 32 * 32, "longest_edge": 24576 * 32 * 32}


# --- generation ------------------------------------------------------------------------------


def test_generates_for_an_image(loaded, photo):
    import torch

    model, processor = loaded
    messages = [
        {
            "role": "user",
            "content": [
                {"type": "image", "image": photo},
                {"type": "text", "text": "Describe this image."},
            ],
        }
    ]
    inputs = prompt_inputs(processor, messages)
    grid = inputs["image_grid_thw"]
    # 200x120 is below the 64-token minimum: upscaled to a multiple of 32 on both sides
    assert grid.tolist() == [[1, 14, 22]]
    n_pad = int((inputs["input_ids"] == model.config.image_token_id).sum())
    assert n_pad == int(grid.prod()) // 4 == 77
    assert int((inputs["mm_token_type_ids"] == 1).sum()) == n_pad
    assert inputs["pixel_values"].shape == (int(grid.prod()), 3 * 2 * 16 * 16)
    with torch.no_grad():
        out = model.generate(**inputs, max_new_tokens=4, do_sample=False)
    assert out.shape == (1, inputs["input_ids"].shape[1] + 4)
    assert torch.equal(out[0, : inputs["input_ids"].shape[1]], inputs["input_ids"][0])


def test_generates_for_a_video_with_timestamps_from_metadata(loaded):
    import torch
    from PIL import Image
    from transformers.video_utils import VideoMetadata

    model, processor = loaded
    frames = [Image.new("RGB", (128, 96), (40 * i, 90, 200 - 40 * i)) for i in range(4)]
    meta = VideoMetadata(total_num_frames=4, fps=2.0, frames_indices=[0, 1, 2, 3])
    messages = [
        {
            "role": "user",
            "content": [
                {"type": "video", "video": frames},
                {"type": "text", "text": "What happens?"},
            ],
        }
    ]
    inputs = prompt_inputs(
        processor,
        messages,
        video_metadata=[meta],
        do_sample_frames=False,
        cap_pixels_per_frame=False,
    )
    grid = inputs["video_grid_thw"]
    assert grid.tolist() == [[2, 6, 8]]
    n_pad = int((inputs["input_ids"] == model.config.video_token_id).sum())
    assert n_pad == int(grid.prod()) // 4 == 24
    assert int((inputs["mm_token_type_ids"] == 2).sum()) == n_pad
    text = processor.decode(inputs["input_ids"][0]).replace("<|video_pad|>", "")
    # frames at 0, 0.5, 1.0, 1.5 s: each pair is stamped with its mean time
    assert "<0.2 seconds><|vision_start|><|vision_end|><1.2 seconds>" in text
    with torch.no_grad():
        out = model.generate(**inputs, max_new_tokens=3, do_sample=False)
    assert out.shape == (1, inputs["input_ids"].shape[1] + 3)


# --- chat template: exact renderings ---------------------------------------------------------


def test_both_templates_are_saved_and_reach_the_tokenizer(built, processors):
    from transformers import AutoTokenizer

    for flavour in tiny.FLAVOURS:
        assert processors[flavour].chat_template == tiny.CHAT_TEMPLATES[flavour]
        assert (
            AutoTokenizer.from_pretrained(built[flavour]).chat_template
            == tiny.CHAT_TEMPLATES[flavour]
        )
    assert tiny.CHAT_TEMPLATE == tiny.CHAT_TEMPLATES["instruct"]


def test_plain_text_prompt(processors):
    messages = [{"role": "user", "content": "Hello"}]
    assert render(processors["instruct"], messages, add_generation_prompt=True) == (
        "<|im_start|>user\nHello<|im_end|>\n<|im_start|>assistant\n"
    )
    assert render(processors["thinking"], messages, add_generation_prompt=True) == (
        "<|im_start|>user\nHello<|im_end|>\n<|im_start|>assistant\n<think>\n"
    )
    assert render(processors["instruct"], messages) == "<|im_start|>user\nHello<|im_end|>\n"


def test_system_image_and_text(processors, photo):
    messages = [
        {"role": "system", "content": "You are a helpful assistant."},
        {
            "role": "user",
            "content": [
                {"type": "image", "image": photo},
                {"type": "text", "text": "Describe this image."},
            ],
        },
    ]
    expected = (
        "<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n"
        f"<|im_start|>user\n{IMG}Describe this image.<|im_end|>\n<|im_start|>assistant\n"
    )
    for flavour in tiny.FLAVOURS:
        suffix = "<think>\n" if flavour == "thinking" else ""
        assert (
            render(processors[flavour], messages, add_generation_prompt=True) == expected + suffix
        )


def test_multi_turn_with_vision_ids(processors):
    messages = [
        {
            "role": "user",
            "content": [
                {"type": "image", "image": "a.png"},
                {"type": "image_url", "image_url": {"url": "b.png"}},
                {"type": "text", "text": "Compare."},
            ],
        },
        {"role": "assistant", "content": "The left one is red."},
        {
            "role": "user",
            "content": [{"type": "video", "video": "c.mp4"}, {"type": "text", "text": "And this?"}],
        },
    ]
    body = (
        f"<|im_start|>user\nPicture 1: {IMG}Picture 2: {IMG}Compare.<|im_end|>\n"
        "<|im_start|>assistant\nThe left one is red.<|im_end|>\n"
        f"<|im_start|>user\nVideo 1: {VID}And this?<|im_end|>\n"
    )
    assert render(processors["instruct"], messages, add_vision_id=True) == body
    assert render(processors["thinking"], messages, add_vision_id=True) == body
    assert render(processors["instruct"], messages) == body.replace("Picture 1: ", "").replace(
        "Picture 2: ", ""
    ).replace("Video 1: ", "")


def test_tools_tool_call_and_tool_responses(processors):
    messages = [
        {"role": "system", "content": "You are a weather bot."},
        {"role": "user", "content": "Weather in Hangzhou and Beijing?"},
        {
            "role": "assistant",
            "content": "",
            "tool_calls": [
                CALL,
                {
                    "type": "function",
                    "function": {"name": "get_weather", "arguments": '{"city": "北京"}'},
                },
            ],
        },
        {"role": "tool", "content": '{"temp": 21}'},
        {"role": "tool", "content": '{"temp": 9}'},
    ]
    expected = (
        "<|im_start|>system\nYou are a weather bot.\n\n"
        + TOOLS_HEAD
        + WEATHER_TOOL_JSON
        + TOOLS_TAIL
        + "<|im_start|>user\nWeather in Hangzhou and Beijing?<|im_end|>\n"
        "<|im_start|>assistant\n"
        + CALL_TEXT
        + '\n<tool_call>\n{"name": "get_weather", "arguments": {"city": "北京"}}\n</tool_call>'
        "<|im_end|>\n"
        '<|im_start|>user\n<tool_response>\n{"temp": 21}\n</tool_response>'
        '\n<tool_response>\n{"temp": 9}\n</tool_response><|im_end|>\n'
        "<|im_start|>assistant\n"
    )
    for flavour in tiny.FLAVOURS:
        suffix = "<think>\n" if flavour == "thinking" else ""
        got = render(
            processors[flavour], messages, tools=[WEATHER_TOOL], add_generation_prompt=True
        )
        assert got == expected + suffix, flavour
    # without a system message the tools block opens the prompt on its own
    got = render(processors["instruct"], messages[1:2], tools=[WEATHER_TOOL])
    assert got == "<|im_start|>system\n" + TOOLS_HEAD + WEATHER_TOOL_JSON + TOOLS_TAIL + (
        "<|im_start|>user\nWeather in Hangzhou and Beijing?<|im_end|>\n"
    )


def test_reasoning_in_history(processors):
    messages = [
        {"role": "user", "content": "What is 2+2?"},
        {"role": "assistant", "content": "4", "reasoning_content": "Two plus two is four."},
        {"role": "user", "content": "And 3+3?"},
        {"role": "assistant", "content": "<think>\nThree plus three.\n</think>\n\n6"},
    ]
    # Thinking: reasoning before the last user query is dropped, after it kept (re-wrapped)
    assert render(processors["thinking"], messages) == (
        "<|im_start|>user\nWhat is 2+2?<|im_end|>\n<|im_start|>assistant\n4<|im_end|>\n"
        "<|im_start|>user\nAnd 3+3?<|im_end|>\n"
        "<|im_start|>assistant\n<think>\nThree plus three.\n</think>\n\n6<|im_end|>\n"
    )
    assert render(processors["thinking"], messages[:3], add_generation_prompt=True) == (
        "<|im_start|>user\nWhat is 2+2?<|im_end|>\n<|im_start|>assistant\n4<|im_end|>\n"
        "<|im_start|>user\nAnd 3+3?<|im_end|>\n<|im_start|>assistant\n<think>\n"
    )
    # Instruct never rewrites assistant text and ignores reasoning_content
    assert render(processors["instruct"], messages) == (
        "<|im_start|>user\nWhat is 2+2?<|im_end|>\n<|im_start|>assistant\n4<|im_end|>\n"
        "<|im_start|>user\nAnd 3+3?<|im_end|>\n"
        "<|im_start|>assistant\n<think>\nThree plus three.\n</think>\n\n6<|im_end|>\n"
    )


def test_thinking_tool_loop_keeps_reasoning_after_the_query(processors):
    messages = [
        {"role": "user", "content": "Weather in Hangzhou?"},
        {
            "role": "assistant",
            "content": "I will call the tool.",
            "reasoning_content": "Need live data.",
            "tool_calls": [CALL],
        },
        {"role": "tool", "content": "sunny"},
    ]
    tail = (
        "I will call the tool.\n" + CALL_TEXT + "<|im_end|>\n"
        "<|im_start|>user\n<tool_response>\nsunny\n</tool_response><|im_end|>\n<|im_start|>assistant\n"
    )
    head = "<|im_start|>user\nWeather in Hangzhou?<|im_end|>\n<|im_start|>assistant\n"
    assert render(processors["thinking"], messages, add_generation_prompt=True) == (
        head + "<think>\nNeed live data.\n</think>\n\n" + tail + "<think>\n"
    )
    assert render(processors["instruct"], messages, add_generation_prompt=True) == head + tail


def test_late_system_message(processors):
    messages = [
        {"role": "user", "content": "Hi"},
        {"role": "system", "content": "Be brief."},
        {"role": "assistant", "content": [{"type": "text", "text": "Hello!"}]},
    ]
    # the official Instruct template drops a system message that is not first; Thinking keeps it
    assert render(processors["instruct"], messages) == (
        "<|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\nHello!<|im_end|>\n"
    )
    assert render(processors["thinking"], messages) == (
        "<|im_start|>user\nHi<|im_end|>\n<|im_start|>system\nBe brief.<|im_end|>\n"
        "<|im_start|>assistant\n<think>\n\n</think>\n\nHello!<|im_end|>\n"
    )


@pytest.mark.timeout(300)
def test_a_build_inside_a_build_does_not_wait_for_itself(tmp_path, monkeypatch):
    """The retrieval stand-ins (15) build the tiny Qwen3-VL inside their own build; with an empty cache a plain
    lock would wait for itself forever."""
    from cookbook.kit import tiny_retrieval

    monkeypatch.setenv("COOKBOOK_CACHE", str(tmp_path))  # an empty cache: the tiny Qwen3-VL is not built yet
    folder = tiny_retrieval.build("embedding")
    assert folder.parent == tmp_path and (folder / "tiny_recipe.json").exists()
    assert any(p.name.startswith("qwen3-vl-tiny-instruct-") for p in tmp_path.iterdir())
