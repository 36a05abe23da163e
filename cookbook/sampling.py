"""Sampling made visible (notebook 02): how temperature, top-k and top-p reshape the next-token
distribution, how varied and how repetitive sampled answers are, and a small settings panel.

The transforms follow transformers' ``generate`` exactly (same order, same tie and boundary
rules) and are checked against ``TemperatureLogitsWarper``/``TopKLogitsWarper``/``TopPLogitsWarper``
in ``tests/test_sampling.py``. They work in float64 NumPy so the arithmetic is easy to read.
"""

from __future__ import annotations

import math
import re
from collections import Counter
from collections.abc import Callable, Hashable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

NEG_INF = -math.inf

# ---------------------------------------------------------------------------------------------
# Distribution transforms (logits in, logits out; removed tokens get -inf)
# ---------------------------------------------------------------------------------------------


def as_logits(scores: Any) -> np.ndarray:
    """A float64 NumPy copy of logits given as a torch tensor, array or list (02)."""
    if hasattr(scores, "detach"):  # torch tensor, without importing torch here
        scores = scores.detach().to("cpu").double().numpy()
    return np.array(scores, dtype=np.float64, copy=True)


def probabilities(logits: Any) -> np.ndarray:
    """Softmax over the last axis; tokens at -inf get probability exactly 0 (02)."""
    x = as_logits(logits)
    top = np.max(x, axis=-1, keepdims=True)
    weights = np.exp(x - top)  # exp(-inf) == 0
    return weights / weights.sum(axis=-1, keepdims=True)


def apply_temperature(logits: Any, temperature: float) -> np.ndarray:
    """Divide logits by ``temperature`` (> 0): below 1 sharpens, above 1 flattens (02)."""
    if not temperature > 0:
        raise ValueError("temperature must be > 0; for greedy decoding use do_sample=False (or top_k=1)")
    return as_logits(logits) / float(temperature)


def apply_top_k(logits: Any, top_k: int, min_tokens_to_keep: int = 1) -> np.ndarray:
    """Keep every token whose logit is at least the k-th largest (ties at the edge survive) (02)."""
    x = as_logits(logits)
    k = min(max(int(top_k), min_tokens_to_keep), x.shape[-1])
    if k <= 0:
        raise ValueError("top_k must be a positive integer (0 means 'off': skip the call)")
    kth_largest = -np.sort(-x, axis=-1)[..., k - 1 : k]
    return np.where(x < kth_largest, NEG_INF, x)


def apply_top_p(logits: Any, top_p: float, min_tokens_to_keep: int = 1) -> np.ndarray:
    """Nucleus sampling: walk the tokens from most to least likely and keep a token while the mass
    of the tokens ranked above it is still below ``top_p`` (the smallest set reaching top_p) (02)."""
    if not 0.0 <= top_p <= 1.0:
        raise ValueError("top_p must be within [0, 1]")
    x = as_logits(logits)
    flat = x.reshape(-1, x.shape[-1])
    out = flat.copy()
    for row, scores in zip(out, flat, strict=True):
        p = probabilities(scores)
        # Most likely first. Equal probabilities: the higher token id ranks first, which is the
        # order transformers gets by reversing its ascending sort.
        order = np.argsort(p, kind="stable")[::-1]
        mass_before = np.concatenate(([0.0], np.cumsum(p[order])[:-1]))
        drop = mass_before >= top_p
        drop[:min_tokens_to_keep] = False
        row[order[drop]] = NEG_INF
    return out.reshape(x.shape)


def reshape(logits: Any, temperature: float = 1.0, top_k: int = 0, top_p: float = 1.0) -> np.ndarray:
    """The sampling distribution ``generate(do_sample=True, ...)`` draws from: temperature, then
    top-k, then top-p, each skipped at its neutral value (1.0, 0, 1.0) as transformers does (02)."""
    x = as_logits(logits)
    if temperature != 1.0:
        x = apply_temperature(x, temperature)
    if top_k:
        x = apply_top_k(x, top_k)
    if top_p < 1.0:
        x = apply_top_p(x, top_p)
    return probabilities(x)


def entropy_bits(probs: Any) -> float:
    """Shannon entropy of a distribution in bits (0 for a sure thing) (02)."""
    p = np.asarray(probs, dtype=np.float64).ravel()
    p = p[p > 0]
    return float(-(p * np.log2(p)).sum())


@dataclass(frozen=True)
class Setting:
    """One sampling setting to compare: a label and the three knobs (02)."""

    label: str
    temperature: float = 1.0
    top_k: int = 0
    top_p: float = 1.0


@dataclass
class Shaped:
    """A setting applied to one set of logits: the probabilities and two summary numbers (02)."""

    setting: Setting
    probs: np.ndarray
    kept: int
    entropy: float
    top_prob: float


def compare_settings(logits: Any, settings: Iterable[Setting]) -> list[Shaped]:
    """Apply each setting to the same logits; report kept tokens, entropy and the top probability (02)."""
    rows = []
    for s in settings:
        p = reshape(logits, s.temperature, s.top_k, s.top_p)
        rows.append(Shaped(s, p, int((p > 0).sum()), entropy_bits(p), float(p.max())))
    return rows


def plot_distributions(
    shaped: Sequence[Shaped], labels: Sequence[str] | None = None, top: int = 15, title: str = ""
) -> Any:
    """Bar charts of the ``top`` most likely tokens (ranked by the first setting) per setting;
    a red cross marks a token the setting removed (02).

    ``labels`` maps token ids to printable strings (e.g. from ``tokenizer.convert_ids_to_tokens``).
    """
    import matplotlib.pyplot as plt

    order = np.argsort(-shaped[0].probs, kind="stable")[:top]
    fig, axes = plt.subplots(
        len(shaped), 1, figsize=(9, 1.9 * len(shaped)), sharex=True, squeeze=False
    )
    for ax, row in zip(axes[:, 0], shaped, strict=True):
        values = row.probs[order]
        ax.bar(range(len(order)), values, color="tab:blue")
        removed = [k for k, v in enumerate(values) if v == 0]
        if removed:  # an empty unclipped line would sit at the figure's corner and upset the layout
            ax.plot(removed, [0] * len(removed), "x", color="tab:red", ms=6, clip_on=False)
        ax.set_ylabel("p")
        ax.set_ylim(0, max(1e-9, float(row.probs.max())) * 1.15)
        ax.set_title(
            f"{row.setting.label}: {row.kept} tokens kept, entropy {row.entropy:.2f} bits, "
            f"top p {row.top_prob:.3f}",
            fontsize=9, loc="left",
        )
    names = [labels[i] if labels is not None else str(i) for i in order]
    cjk = cjk_font()
    if cjk is None:  # no font for Chinese tokens here: show them as \u escapes instead of boxes
        names = [n.encode("ascii", "backslashreplace").decode() for n in names]
    ticks = axes[-1, 0].set_xticks(range(len(order)), names, rotation=60, ha="right", fontsize=8)
    if cjk is not None:
        for tick in ticks:
            tick.set_fontfamily([plt.rcParams["font.family"][0], cjk])
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    return fig


_CJK_FAMILIES = ("Noto Sans CJK SC", "Noto Sans SC", "Source Han Sans SC", "WenQuanYi Zen Hei",
                 "WenQuanYi Micro Hei", "Microsoft YaHei", "SimHei", "PingFang SC", "Heiti SC")


def cjk_font() -> str | None:
    """The first installed font family that has Chinese glyphs, or None (02)."""
    from matplotlib import font_manager

    installed = {f.name for f in font_manager.fontManager.ttflist}
    return next((name for name in _CJK_FAMILIES if name in installed), None)


# ---------------------------------------------------------------------------------------------
# Diversity and repetition of sampled answers
# ---------------------------------------------------------------------------------------------

_WORD = re.compile(r"[\u3400-\u4dbf\u4e00-\u9fff\u3040-\u30ff\uac00-\ud7af]|\w+|[^\w\s]")


def words(text: str) -> list[str]:
    """Split text into units for n-gram counting: each CJK character, each word, each punctuation
    mark (so Chinese and English answers are measured alike) (02)."""
    return _WORD.findall(text)


def _units(sample: str | Sequence[Hashable]) -> list[Hashable]:
    return words(sample) if isinstance(sample, str) else list(sample)


def ngrams(tokens: Sequence[Hashable], n: int) -> list[tuple]:
    """All contiguous n-grams of a token sequence, in order (02)."""
    if n < 1:
        raise ValueError("n must be >= 1")
    return [tuple(tokens[i : i + n]) for i in range(len(tokens) - n + 1)]


def distinct_n(samples: Iterable[str | Sequence[Hashable]], n: int) -> float:
    """Distinct-n (Li et al., 2016): unique n-grams / all n-grams, pooled over the samples.

    1.0 means no n-gram occurs twice anywhere; near 0 means the answers repeat each other.
    Strings are split with ``words``; token-id lists are used as they are. 0.0 if there are none (02).
    """
    grams = [g for s in samples for g in ngrams(_units(s), n)]
    return len(set(grams)) / len(grams) if grams else 0.0


def repetition_rate(sample: str | Sequence[Hashable], n: int = 3) -> float:
    """Share of a single answer's n-grams that already occurred earlier in the same answer.

    0.0 for no repetition; close to 1.0 for a loop such as "the the the ..." (02).
    """
    grams = ngrams(_units(sample), n)
    return (len(grams) - len(set(grams))) / len(grams) if grams else 0.0


def most_repeated(sample: str | Sequence[Hashable], n: int = 3) -> tuple[tuple, int]:
    """The n-gram occurring most often in one answer and its count (((), 0) if none) (02)."""
    counts = Counter(ngrams(_units(sample), n))
    return counts.most_common(1)[0] if counts else ((), 0)


@dataclass
class SampleStats:
    """Diversity and repetition of the answers sampled for one setting (02)."""

    label: str
    answers: int
    unique_answers: int
    mean_units: float
    distinct_1: float
    distinct_2: float
    repetition_3: float

    def row(self) -> dict[str, Any]:
        """A dict for a table row (rounded)."""
        return {
            "setting": self.label, "answers": self.answers, "unique": self.unique_answers,
            "mean length": round(self.mean_units, 1), "distinct-1": round(self.distinct_1, 3),
            "distinct-2": round(self.distinct_2, 3), "repeated 3-grams": round(self.repetition_3, 3),
        }


def sample_stats(label: str, samples: Sequence[str | Sequence[Hashable]]) -> SampleStats:
    """Measure a setting's sampled answers: distinct-1/2 across them, mean 3-gram repetition within (02)."""
    units = [_units(s) for s in samples]
    return SampleStats(
        label=label,
        answers=len(units),
        unique_answers=len({tuple(u) for u in units}),
        mean_units=float(np.mean([len(u) for u in units])) if units else 0.0,
        distinct_1=distinct_n(units, 1),
        distinct_2=distinct_n(units, 2),
        repetition_3=float(np.mean([repetition_rate(u, 3) for u in units])) if units else 0.0,
    )


def table(rows: Iterable[Mapping[str, Any]]) -> str:
    """Render dict rows as a fixed-width text table (keys of the first row are the columns) (02)."""
    rows = list(rows)
    if not rows:
        return "(no rows)"
    cols = list(rows[0])
    cells = [[str(r.get(c, "")) for c in cols] for r in rows]
    widths = [max(len(c), *(len(r[i]) for r in cells)) for i, c in enumerate(cols)]
    line = lambda vals: "  ".join(v.ljust(w) for v, w in zip(vals, widths, strict=True))  # noqa: E731
    return "\n".join([line(cols), line(["-" * w for w in widths]), *(line(r) for r in cells)])


def finish_reason(
    new_ids: Sequence[int], eos_token_id: int | Sequence[int] | None, max_new_tokens: int,
    text: str | None = None, stop_strings: Sequence[str] = (),
) -> str:
    """Why generation ended: ``"eos"`` (an end-of-turn id came last), ``"stop string"`` (``text``
    ends with one of ``stop_strings``), ``"length"`` (``max_new_tokens`` used up) or ``"other"`` (02).

    Pass the decoded *whole* sequence as ``text``: transformers matches stop strings across the
    prompt/answer boundary, so a match may begin in the prompt."""
    eos = {eos_token_id} if isinstance(eos_token_id, int) else set(eos_token_id or ())
    ids = list(new_ids)
    if ids and ids[-1] in eos:
        return "eos"
    if text is not None and any(text.endswith(s) for s in stop_strings):
        return "stop string"
    if len(ids) >= max_new_tokens:
        return "length"
    return "other"


# ---------------------------------------------------------------------------------------------
# The settings panel (ipywidgets); works headless: call panel.run() from code
# ---------------------------------------------------------------------------------------------

KNOBS = ("temperature", "top_p", "top_k", "presence_penalty", "max_new_tokens")


@dataclass
class Panel:
    """Widgets to try generation settings; ``run()`` generates with the current values (02)."""

    widget: Any
    controls: dict[str, Any]
    output: Any
    generate: Callable[..., Any]
    history: list[tuple[dict[str, Any], Any]] = field(default_factory=list)

    def values(self) -> dict[str, Any]:
        """The preset name and the knob values currently set in the widgets."""
        return {name: w.value for name, w in self.controls.items()}

    def run(self, *_: Any) -> Any:
        """Generate once with the widgets' values, show the answer in the panel and return it."""
        values = self.values()
        preset = values.pop("preset")
        reply = self.generate(preset=preset, **values)
        self.history.append(({"preset": preset, **values}, reply))
        self.output.clear_output()
        with self.output:
            knobs = ", ".join(f"{k}={v}" for k, v in values.items())
            print(f"[{preset}] {knobs}")
            print(getattr(reply, "text", reply))
        return reply

    def _ipython_display_(self) -> None:
        from IPython.display import display

        display(self.widget)


def build_panel(
    generate: Callable[..., Any],
    presets: Mapping[str, Any],
    preset: str | None = None,
    max_new_tokens_cap: int = 512,
) -> Panel:
    """Sliders for temperature/top_p/top_k/presence_penalty/max_new_tokens, a preset dropdown that
    fills them in, and a Run button that calls ``generate(preset=name, **knobs)`` (02).

    ``max_new_tokens_cap`` bounds the slider (the presets' 16k-80k budgets are for real GPUs).
    """
    import ipywidgets as w

    names = list(presets)
    start = preset or names[0]
    style = {"description_width": "130px"}
    layout = w.Layout(width="420px")
    controls: dict[str, Any] = {
        "preset": w.Dropdown(options=names, value=start, description="preset", style=style),
        "temperature": w.FloatSlider(
            min=0.05, max=2.0, step=0.05, description="temperature", style=style, layout=layout
        ),
        "top_p": w.FloatSlider(min=0.05, max=1.0, step=0.05, description="top_p", style=style, layout=layout),
        "top_k": w.IntSlider(min=0, max=100, step=1, description="top_k (0 = off)", style=style, layout=layout),
        "presence_penalty": w.FloatSlider(
            min=0.0, max=2.0, step=0.1, description="presence_penalty", style=style, layout=layout
        ),
        "max_new_tokens": w.IntSlider(
            min=1, max=max_new_tokens_cap, step=1, description="max_new_tokens", style=style, layout=layout
        ),
    }

    def fill(name: str) -> None:
        chosen = presets[name]
        for knob in KNOBS:
            value = getattr(chosen, knob)
            if knob == "max_new_tokens":
                value = min(value, max_new_tokens_cap)
            controls[knob].value = value

    fill(start)
    controls["preset"].observe(lambda change: fill(change["new"]), names="value")
    button = w.Button(description="Run", button_style="primary", icon="play")
    output = w.Output(layout=w.Layout(border="1px solid #ddd", min_height="3em"))
    widget = w.VBox([*controls.values(), button, output])
    panel = Panel(widget=widget, controls=controls, output=output, generate=generate)
    button.on_click(panel.run)
    return panel
