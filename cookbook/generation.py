"""Generation settings from the Qwen3-VL model cards, and presence penalty for transformers (02).

transformers' ``generate`` has no ``presence_penalty`` (vLLM and OpenAI-style servers do), so the
model cards' settings need the logits processor below to be applied faithfully.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, replace
from typing import Any


@dataclass(frozen=True)
class Preset:
    """One row of the model cards' recommended settings, with where it comes from (02)."""

    temperature: float
    top_p: float
    top_k: int
    presence_penalty: float
    max_new_tokens: int
    repetition_penalty: float = 1.0
    source: str = ""


CARD = "Qwen3-VL model cards (Hugging Face), 'Generation Hyperparameters'"
# Qwen/Qwen3.5-35B-A3B model card, "Best Practices" (sampling table, output length of 32,768 tokens for
# most queries), as quoted verbatim by the anvil-serving model-settings page; the same rows serve 3.6.
CARD35 = "Qwen3.5 model cards (Hugging Face), 'Best Practices'"
PRESETS: dict[str, Preset] = {
    "instruct-vision": Preset(0.7, 0.8, 20, 1.5, 16384, source=CARD + ", Instruct VL"),
    "instruct-text": Preset(1.0, 1.0, 40, 2.0, 32768, source=CARD + ", Instruct text"),
    "thinking-vision": Preset(1.0, 0.95, 20, 0.0, 40960, source=CARD + ", Thinking VL"),
    "thinking-text": Preset(1.0, 0.95, 20, 1.5, 32768, source=CARD + ", Thinking text"),
    "thinking-stem": Preset(
        1.0, 0.95, 20, 1.5, 81920,
        source=CARD + ", Thinking text: the AIME, LiveCodeBench and GPQA setting (text-only; for pictures "
                      "use thinking-vision)",
    ),
    # The successors (14): one checkpoint, thinking on by default, switched off with enable_thinking=False.
    "qwen3.5-thinking": Preset(1.0, 0.95, 20, 1.5, 32768, source=CARD35 + ", thinking mode, general tasks"),
    "qwen3.5-thinking-coding": Preset(0.6, 0.95, 20, 0.0, 32768, source=CARD35 + ", thinking mode, precise coding"),
    "qwen3.5-instruct": Preset(0.7, 0.8, 20, 1.5, 32768, source=CARD35 + ", non-thinking mode, general tasks"),
    "qwen3.5-instruct-reasoning": Preset(1.0, 1.0, 40, 2.0, 32768,
                                         source=CARD35 + ", non-thinking mode, reasoning tasks"),
}


def preset(name_or_preset: str | Preset) -> Preset:
    """Look a preset up by name (a clear error lists the names) (02)."""
    if isinstance(name_or_preset, Preset):
        return name_or_preset
    try:
        return PRESETS[name_or_preset]
    except KeyError:
        raise KeyError(f"unknown preset {name_or_preset!r}; choose from {', '.join(PRESETS)}") from None


def default_preset(thinking: bool, vision: bool = True) -> str:
    """The preset name for a model flavour and task (02)."""
    return f"{'thinking' if thinking else 'instruct'}-{'vision' if vision else 'text'}"


class PresencePenaltyLogitsProcessor:
    """Subtract ``penalty`` once from the logit of every token already generated (not the prompt) (02).

    The same rule as vLLM's and OpenAI's ``presence_penalty``: a flat penalty for having appeared,
    however many times. Pass the prompt length so prompt tokens are not penalised.
    """

    def __init__(self, penalty: float, prompt_length: int) -> None:
        self.penalty = float(penalty)
        self.prompt_length = int(prompt_length)

    def __call__(self, input_ids: Any, scores: Any) -> Any:
        import torch

        generated = input_ids[:, self.prompt_length:]
        if self.penalty == 0.0 or generated.shape[1] == 0:
            return scores
        seen = torch.zeros_like(scores, dtype=torch.bool)
        seen.scatter_(1, generated, True)
        return scores - self.penalty * seen.to(scores.dtype)


def generation_kwargs(
    name_or_preset: str | Preset = "instruct-vision", prompt_length: int | None = None, **overrides: Any
) -> dict[str, Any]:
    """Keyword arguments for ``model.generate`` from a preset, with overrides (02).

    ``presence_penalty`` becomes a ``logits_processor`` (it needs ``prompt_length``);
    ``do_sample=False`` gives greedy decoding and drops the sampling knobs.
    """
    from transformers import LogitsProcessorList

    fields = asdict(preset(name_or_preset))
    fields.pop("source")
    unknown_fields = {k: v for k, v in overrides.items() if k not in fields}
    fields.update({k: v for k, v in overrides.items() if k in fields})
    penalty = fields.pop("presence_penalty")
    kwargs: dict[str, Any] = {**fields, "do_sample": True, **unknown_fields}
    if not kwargs["do_sample"]:
        for knob in ("temperature", "top_p", "top_k"):
            kwargs.pop(knob)
    if penalty:
        if prompt_length is None:
            raise ValueError("presence_penalty needs prompt_length (input_ids.shape[1]).")
        processors = LogitsProcessorList(kwargs.pop("logits_processor", None) or [])
        processors.append(PresencePenaltyLogitsProcessor(penalty, prompt_length))
        kwargs["logits_processor"] = processors
    return kwargs


def with_overrides(name_or_preset: str | Preset, **changes: Any) -> Preset:
    """A copy of a preset with some fields changed (02)."""
    return replace(preset(name_or_preset), **changes)

def split_thinking(text: str) -> tuple[str, str]:
    """Split a Thinking model's output into (reasoning, answer) (02).

    The generation prompt already opens ``<think>``, so the output usually holds only ``</think>``;
    with no ``</think>`` at all (Instruct models, or a budget cut mid-thought) the reasoning is empty.
    """
    if "</think>" not in text:
        return "", text.strip()
    reasoning, answer = text.split("</think>", 1)
    return reasoning.replace("<think>", "", 1).strip(), answer.strip()
