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
from importlib import metadata
from pathlib import Path
from typing import Any

__all__ = ["CHAT_TEMPLATE", "CHAT_TEMPLATES", "FLAVOURS", "SPECIAL_TOKENS", "build", "default_root"]

FLAVOURS = ("instruct", "thinking")
_BUILD_LOCK = threading.Lock()  # threads share torch's global seed: build one at a time per process
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

# Same split rule as the Qwen2/Qwen3 tokenizers (and transformers' Qwen2Tokenizer), so a reload
# through AutoTokenizer tokenizes exactly as the trained object does.
_PRETOKENIZE_REGEX = (
    r"""(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}"""
    r"""| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+"""
)

# Training text for the tokenizer: our own sentences, in the shapes the notebooks produce
# (prose, Chinese, JSON boxes, tool calls, code, timestamps, HTML/Markdown documents).
_CORPUS = r"""
The cat sat on the warm windowsill and watched the rain. A small dog ran across the garden.
Describe this image. What is written on the sign? Count the apples on the table.
Locate every instance that belongs to the following categories: "cat, dog". Report bbox coordinates in JSON format.
```json
[{"bbox_2d": [120, 340, 560, 910], "label": "cat"}, {"bbox_2d": [600, 415, 980, 990], "label": "dog"}]
```
[{"point_2d": [512, 288], "label": "red button"}, {"point_2d": [77, 903], "label": "door handle"}]
{"bbox_3d": [0.42, -0.15, 3.8, 0.9, 1.2, 0.6, 0.0, 0.1, 1.57], "label": "chair"}
Coordinates are relative, from 0 to 1000: x = x1 / 1000 * width, y = y1 / 1000 * height.
<tool_call>
{"name": "mobile_use", "arguments": {"action": "click", "coordinate": [540, 1200]}}
</tool_call>
<tool_call>
{"name": "computer_use", "arguments": {"action": "type", "text": "hello world"}}
</tool_call>
<tool_response>
{"temperature": 21.5, "unit": "celsius", "city": "Hangzhou"}
</tool_response>
<think>
The user asks how many birds are in the picture. I can see three on the wire and one in the sky, so four.
</think>

There are four birds in the picture.
<0.5 seconds><2.5 seconds><4.5 seconds><10.0 seconds> The man opens the door at 00:03.50 and leaves at 00:12.00.
{"start": "00:01.20", "end": "00:04.80", "event": "a person picks up a red cup"}
def area(box: list[int]) -> int:
    x1, y1, x2, y2 = box
    return max(0, x2 - x1) * max(0, y2 - y1)

for i in range(10):
    print(f"frame {i}: {i / 2.0:.1f} s")
<div data-bbox="12 40 988 96"><h1>Quarterly report</h1></div><p data-bbox="12 110 988 300">Revenue grew by 12%.</p>
<!-- Table (40, 320, 960, 610) -->
| Name | Price | Qty |
|---|---|---|
| apple | 3.50 | 12 |
| 苹果 | 2.00 | 7 |
The quick brown fox jumps over the lazy dog. Numbers: 0 1 2 3 4 5 6 7 8 9 10 100 1000 3.14 2048 1e-6.
请描述这张图片。图片中有一只猫坐在窗台上，外面正在下雨。
请找出图中所有的猫和狗，并以JSON格式输出边界框坐标。
这段视频讲述了一个人在厨房里做饭的过程：先洗菜，然后切菜，最后炒菜。
图片中的文字是“欢迎光临”，写在一块红色的招牌上。
模型的回答是随机的，因为这是一个很小的测试模型，只用来检查代码能不能运行。
表格中有三列：名称、价格和数量。第一行是苹果，价格是三块五，数量是十二。
请用中文回答：这张发票的总金额是多少？日期是哪一天？
视觉定位使用相对坐标，范围是零到一千。视频每秒采样两帧。
Qwen3-VL can read documents, ground objects, understand long videos and operate phones and computers.
The assistant answered in Chinese and English: 你好，世界！Hello, world!
A vision-language model reads pixels and text together. The image is cut into patches of sixteen by
sixteen pixels, and every two by two group of patches is merged into one visual token, so one token
covers a square of thirty-two by thirty-two pixels. A video is sampled at two frames per second; each
pair of frames shares one temporal patch, and the processor writes the time of every pair before it.
When the answer is long, the model may repeat itself; a presence penalty makes repeated words less likely.
On a phone screen the agent taps, swipes, types text, presses the back button, waits, and finally answers.
The receipt shows a total of 86.40 yuan, paid by card on 2024-03-15 at 14:32. The store is on West Lake Road.
Please answer in one short sentence. Think step by step, then give the final answer after the reasoning.
Reading the answer: parse the JSON, scale the boxes to pixels, and draw them on the original image.
import json
from pathlib import Path
boxes = json.loads(text)
for box in boxes:
    x1, y1, x2, y2 = box["bbox_2d"]
    print(box["label"], round(x1 / 1000 * width), round(y1 / 1000 * height))
{"role": "user", "content": [{"type": "image", "image": "demo.jpg"}, {"type": "text", "text": "What is this?"}]}
{"role": "assistant", "content": "This is a photo of a street at night, with cars, lights and people."}
视觉语言模型同时阅读图像和文字。图像被切成十六乘十六像素的小块，每二乘二个小块合并成一个视觉词元。
视频按每秒两帧采样，处理器会在每一对帧前面写上时间，例如“第二点五秒”。
手机助手可以点击、滑动、输入文字、按返回键、等待，最后给出答案。
这张收据的总金额是八十六点四元，日期是二零二四年三月十五日，商店在西湖路上。
请先一步一步地思考，然后在思考之后给出最终答案。请用一句话回答。
解析答案：读取JSON，把坐标换算成像素，然后在原图上画出边界框。
"""


def _template(thinking: bool) -> str:
    """The Jinja chat template of one flavour: our own text, the official template's output."""
    flavour = "Thinking" if thinking else "Instruct"
    # Where the two official templates differ, the branch is chosen here in Python, so each
    # saved template stays a plain, readable Jinja file.
    first_system = (
        "{%- set sys_text = show(messages[0].content, false, false) %}"
        if thinking
        else "{%- set sys_text = show(messages[0].content, false, true) %}"
    )
    if thinking:
        turns = r"""
{#- Index of the last real user query: only assistant turns after it keep their reasoning. #}
{%- set query = namespace(index=messages|length - 1, searching=true) %}
{%- for message in messages|reverse %}
    {%- if query.searching and message.role == 'user' %}
        {%- set plain = show(message.content, false, false) %}
        {%- if not (plain.startswith('<tool_response>') and plain.endswith('</tool_response>')) %}
            {%- set query.searching = false %}
            {%- set query.index = messages|length - 1 - loop.index0 %}
        {%- endif %}
    {%- endif %}
{%- endfor %}
{%- for message in messages %}
    {%- set body = show(message.content, true, false) %}
    {%- if message.role == 'user' or (message.role == 'system' and not loop.first) %}
        {{- '<|im_start|>' ~ message.role ~ '\n' ~ body ~ '<|im_end|>\n' }}
    {%- elif message.role == 'assistant' %}
        {%- set reasoning = '' %}
        {%- if message.reasoning_content is string %}
            {%- set reasoning = message.reasoning_content %}
        {%- elif '</think>' in body %}
            {%- set before = body.split('</think>')[0] %}
            {%- set reasoning = before.rstrip('\n').split('<think>')|last %}
            {%- set reasoning = reasoning.lstrip('\n') %}
            {%- set body = (body.split('</think>')|last).lstrip('\n') %}
        {%- endif %}
        {{- '<|im_start|>assistant\n' }}
        {%- if loop.index0 > query.index and (loop.last or reasoning) %}
            {{- '<think>\n' ~ reasoning.strip('\n') ~ '\n</think>\n\n' ~ body.lstrip('\n') }}
        {%- else %}
            {{- body }}
        {%- endif %}
        {{- calls(message.tool_calls, body) }}
        {{- '<|im_end|>\n' }}
    {%- elif message.role == 'tool' %}
        {{- tool_turn(body, loop.first or messages[loop.index0 - 1].role != 'tool',
                      loop.last or messages[loop.index0 + 1].role != 'tool') }}
    {%- endif %}
{%- endfor %}
{%- if add_generation_prompt %}
    {{- '<|im_start|>assistant\n<think>\n' }}
{%- endif %}"""
    else:
        turns = r"""
{#- The Instruct format shows only the first system message and never rewrites assistant text. #}
{%- for message in messages %}
    {%- if message.role == 'user' %}
        {{- '<|im_start|>user\n' ~ show(message.content, true, false) ~ '<|im_end|>\n' }}
    {%- elif message.role == 'assistant' %}
        {{- '<|im_start|>assistant\n' ~ show(message.content, false, true) }}
        {{- calls(message.tool_calls, message.content) }}
        {{- '<|im_end|>\n' }}
    {%- elif message.role == 'tool' %}
        {{- tool_turn(show(message.content, true, false),
                      loop.first or messages[loop.index0 - 1].role != 'tool',
                      loop.last or messages[loop.index0 + 1].role != 'tool') }}
    {%- endif %}
{%- endfor %}
{%- if add_generation_prompt %}
    {{- '<|im_start|>assistant\n' }}
{%- endif %}"""
    head = r"""{#- Qwen3-VL __FLAVOUR__ chat format, written for the Qwen3-VL Cookbook's tiny model.
    It renders the same text as the official Qwen3-VL-*-__FLAVOUR__ template. -#}
{%- set seen = namespace(images=0, videos=0) %}
{#- show(): a message's content as text; images and videos become their placeholders. #}
{%- macro show(content, count, text_only) %}
    {%- if content is string %}
        {{- content }}
    {%- elif content is iterable and content is not mapping %}
        {%- for part in content %}
            {%- set is_image = part.type == 'image' or 'image' in part or 'image_url' in part %}
            {%- set is_video = part.type == 'video' or 'video' in part %}
            {%- if text_only %}
                {%- if 'text' in part %}{{- part.text }}{%- endif %}
            {%- elif is_image %}
                {%- if count %}{%- set seen.images = seen.images + 1 %}{%- endif %}
                {%- if add_vision_id %}{{- 'Picture ' ~ seen.images ~ ': ' }}{%- endif %}
                {{- '<|vision_start|><|image_pad|><|vision_end|>' }}
            {%- elif is_video %}
                {%- if count %}{%- set seen.videos = seen.videos + 1 %}{%- endif %}
                {%- if add_vision_id %}{{- 'Video ' ~ seen.videos ~ ': ' }}{%- endif %}
                {{- '<|vision_start|><|video_pad|><|vision_end|>' }}
            {%- elif 'text' in part %}
                {{- part.text }}
            {%- endif %}
        {%- endfor %}
    {%- endif %}
{%- endmacro %}
{#- calls(): an assistant's tool calls, one <tool_call> block each. #}
{%- macro calls(tool_calls, text) %}
    {%- for call in tool_calls or [] %}
        {%- if text or not loop.first %}{{- '\n' }}{%- endif %}
        {%- set fn = call.function if call.function else call %}
        {{- '<tool_call>\n{"name": "' ~ fn.name ~ '", "arguments": ' }}
        {%- if fn.arguments is string %}{{- fn.arguments }}{%- else %}{{- fn.arguments|tojson }}{%- endif %}
        {{- '}\n</tool_call>' }}
    {%- endfor %}
{%- endmacro %}
{#- tool_turn(): tool results go back to the model inside one user turn. #}
{%- macro tool_turn(body, opens, closes) %}
    {%- if opens %}{{- '<|im_start|>user' }}{%- endif %}
    {{- '\n<tool_response>\n' ~ body ~ '\n</tool_response>' }}
    {%- if closes %}{{- '<|im_end|>\n' }}{%- endif %}
{%- endmacro %}
{%- set has_system = messages and messages[0].role == 'system' %}
__FIRST_SYSTEM__
{%- if tools %}
    {{- '<|im_start|>system\n' }}
    {%- if has_system %}{{- sys_text ~ '\n\n' }}{%- endif %}
    {{- '# Tools\n\nYou may call one or more functions to assist with the user query.\n\n' }}
    {{- 'You are provided with function signatures within <tools></tools> XML tags:\n<tools>' }}
    {%- for tool in tools %}{{- '\n' ~ tool|tojson }}{%- endfor %}
    {{- '\n</tools>\n\nFor each function call, return a json object with function name and '
        'arguments within <tool_call></tool_call> XML tags:\n<tool_call>\n'
        '{"name": <function-name>, "arguments": <args-json-object>}\n</tool_call><|im_end|>\n' }}
{%- elif has_system %}
    {{- '<|im_start|>system\n' ~ sys_text ~ '<|im_end|>\n' }}
{%- endif %}"""
    head = head.replace("__FLAVOUR__", flavour)
    head = head.replace("__FIRST_SYSTEM__", "{%- if has_system %}" + first_system + "{%- endif %}")
    return head + turns + "\n"


CHAT_TEMPLATES: dict[str, str] = {"instruct": _template(False), "thinking": _template(True)}
CHAT_TEMPLATE: str = CHAT_TEMPLATES["instruct"]


def default_root() -> Path:
    """Where tiny checkpoints are cached: $COOKBOOK_CACHE or ~/.cache/qwen3-vl-cookbook (00)."""
    from cookbook.kit.assets import cookbook_cache_dir

    return cookbook_cache_dir()


def _recipe_hash(flavour: str) -> str:
    """Hash of everything that decides the folder's bytes: this file, the flavour, the libraries."""
    h = hashlib.sha256()
    h.update(Path(__file__).read_bytes())
    h.update(f"{RECIPE_VERSION}|{flavour}".encode())
    for dist in ("transformers", "tokenizers", "torch", "safetensors"):
        try:
            h.update(f"|{dist}={metadata.version(dist)}".encode())
        except metadata.PackageNotFoundError:
            h.update(f"|{dist}=none".encode())
    return h.hexdigest()[:12]


def _train_tokenizer():
    """Train a byte-level BPE on the built-in corpus and add the Qwen special tokens."""
    from tokenizers import (
        AddedToken,
        Regex,
        Tokenizer,
        decoders,
        models,
        normalizers,
        pre_tokenizers,
        trainers,
    )

    tok = Tokenizer(models.BPE(unk_token=None, fuse_unk=False, byte_fallback=False))
    tok.normalizer = normalizers.NFC()
    tok.pre_tokenizer = pre_tokenizers.Sequence(
        [
            pre_tokenizers.Split(Regex(_PRETOKENIZE_REGEX), behavior="isolated", invert=False),
            pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False),
        ]
    )
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=2048,
        min_frequency=2,
        show_progress=False,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        special_tokens=[],
    )
    tok.train_from_iterator(_CORPUS.strip().splitlines(), trainer=trainer)
    tok.add_tokens(
        [
            AddedToken(text, special=special, normalized=False, lstrip=False, rstrip=False)
            for text, special in SPECIAL_TOKENS
        ]
    )
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
            "tie_word_embeddings": True,
            "bos_token_id": ids["<|endoftext|>"],
            "eos_token_id": ids["<|im_end|>"],
            "pad_token_id": ids["<|endoftext|>"],
            "dtype": "float32",
        },
        vision_config={
            "depth": 3,
            "hidden_size": 32,
            "intermediate_size": 64,
            "num_heads": 4,
            "hidden_act": "gelu_pytorch_tanh",
            "in_channels": 3,
            "patch_size": 16,
            "spatial_merge_size": 2,
            "temporal_patch_size": 2,
            "out_hidden_size": 256,
            "num_position_embeddings": 2304,
            "deepstack_visual_indexes": [0, 1],  # fed into text layers 0 and 1
        },
        image_token_id=ids["<|image_pad|>"],
        video_token_id=ids["<|video_pad|>"],
        vision_start_token_id=ids["<|vision_start|>"],
        vision_end_token_id=ids["<|vision_end|>"],
        tie_word_embeddings=True,
        dtype="float32",
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
    final = root / f"qwen3-vl-tiny-{flavour}-{_recipe_hash(flavour)}"
    marker = final / "tiny_recipe.json"
    if marker.exists() and not force:
        return final

    with _BUILD_LOCK:
        if marker.exists() and not force:  # another thread finished it while we waited
            return final
        root.mkdir(parents=True, exist_ok=True)
        # Other processes (pytest-xdist, nbmake) may build the same folder at the same time: each
        # writes a private temp folder and renames it into place, which is atomic.
        tmp = root / f".{final.name}.tmp-{os.getpid()}-{uuid.uuid4().hex[:8]}"
        tmp.mkdir()
        try:
            _write_checkpoint(tmp, flavour)
            recipe = {"flavour": flavour, "recipe": final.name.rsplit("-", 1)[-1], "seed": SEED}
            (tmp / "tiny_recipe.json").write_text(json.dumps(recipe, indent=2) + "\n")
            if final.exists() and (force or not marker.exists()):  # replace, or repair a broken one
                trash = root / f".{final.name}.old-{uuid.uuid4().hex[:8]}"
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
