"""Sampling made visible (02): how temperature, top-k and top-p reshape the next-token distribution,
how varied and how repetitive sampled answers are, why generation stopped, and a settings panel.

The transforms follow transformers' ``generate`` (same order, tie and boundary rules; checked against
its warpers in ``tests/test_sampling.py``), in float64 NumPy so the arithmetic is easy to read.
The transforms, the metrics and ``finish_reason`` are saved from notebook 02.
"""

from __future__ import annotations

from collections.abc import Callable, Hashable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

# --- saved from 02: distribution transforms (logits in, logits out; removed tokens get -inf) ---


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
    return np.where(x < kth_largest, -np.inf, x)


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
        row[order[drop]] = -np.inf
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


# --- saved from 02: diversity, repetition, why generation stopped ---


def ngrams(tokens: Sequence[Hashable], n: int) -> list[tuple]:
    """All contiguous n-grams of a token sequence, in order (02)."""
    if n < 1:
        raise ValueError("n must be >= 1")
    return [tuple(tokens[i : i + n]) for i in range(len(tokens) - n + 1)]


def distinct_n(samples: Iterable[Sequence[Hashable]], n: int) -> float:
    """Distinct-n (Li et al., 2016): unique n-grams / all n-grams, pooled over the samples (02).

    1.0: no n-gram occurs twice anywhere; near 0: the answers repeat each other. 0.0 if there are none.
    """
    grams = [g for s in samples for g in ngrams(s, n)]
    return len(set(grams)) / len(grams) if grams else 0.0


def repetition_rate(tokens: Sequence[Hashable], n: int = 3) -> float:
    """Share of one answer's n-grams that already occurred earlier in it: 0.0 none, near 1.0 a loop (02)."""
    grams = ngrams(tokens, n)
    return (len(grams) - len(set(grams))) / len(grams) if grams else 0.0


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


# --- plumbing: the plot and the settings panel (ipywidgets; works headless: panel.run()) ---


def plot_distributions(dists: Mapping[str, np.ndarray], labels: Mapping[int, str] | None = None,
                       top: int = 15, title: str = "") -> Any:
    """Bar charts of the ``top`` most likely tokens (ranked by the first distribution), one per
    setting; a red cross marks a token the setting removed; ``labels`` maps ids to text (02)."""
    import matplotlib.pyplot as plt

    first = next(iter(dists.values()))
    order = np.argsort(-first, kind="stable")[:top]
    fig, axes = plt.subplots(len(dists), 1, figsize=(9, 1.9 * len(dists)), sharex=True, squeeze=False)
    for ax, (label, probs) in zip(axes[:, 0], dists.items(), strict=True):
        values = probs[order]
        ax.bar(range(len(order)), values, color="tab:blue")
        removed = [k for k, v in enumerate(values) if v == 0]
        if removed:  # an empty unclipped line would sit at the figure's corner and upset the layout
            ax.plot(removed, [0] * len(removed), "x", color="tab:red", ms=6, clip_on=False)
        ax.set_ylabel("p")
        ax.set_ylim(0, max(1e-9, float(probs.max())) * 1.15)
        ax.set_title(f"{label}: {int((probs > 0).sum())} tokens kept, entropy {entropy_bits(probs):.2f} bits, "
                     f"top p {probs.max():.3f}", fontsize=9, loc="left")
    names = [labels[i] if labels is not None else str(i) for i in order]
    cjk = _cjk_font()
    if cjk is None:  # no font for Chinese tokens here: show them as \u escapes instead of boxes
        names = [n.encode("ascii", "backslashreplace").decode() for n in names]
    axes[-1, 0].set_xticks(range(len(order)), names, rotation=60, ha="right", fontsize=8)
    if cjk is not None:
        for label in axes[-1, 0].get_xticklabels():
            label.set_fontfamily([plt.rcParams["font.family"][0], cjk])
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    return fig


_CJK_FAMILIES = ("Noto Sans CJK SC", "Noto Sans SC", "Source Han Sans SC", "WenQuanYi Zen Hei",
                 "WenQuanYi Micro Hei", "Microsoft YaHei", "SimHei", "PingFang SC", "Heiti SC")


def _cjk_font() -> str | None:
    """The first installed font family that has Chinese glyphs, or None."""
    from matplotlib import font_manager

    installed = {f.name for f in font_manager.fontManager.ttflist}
    return next((name for name in _CJK_FAMILIES if name in installed), None)


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
