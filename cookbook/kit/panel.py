"""The views notebook 02 draws: next-token distributions as bar charts, and a panel of sliders to try
generation settings (ipywidgets; headless, ``panel.run()`` does what the Run button does)."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np


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
        ax.set_title(f"{label}: {int((probs > 0).sum())} tokens kept, top p {probs.max():.3f}", fontsize=9, loc="left")
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


def _cjk_font() -> str | None:
    """The Noto CJK family (the font `make setup` installs, found by kit.system), registered with matplotlib; or None."""
    from matplotlib import font_manager

    from cookbook.kit.system import SystemPieceMissing, font_file

    try:
        path = font_file("NotoSansCJK-Regular.ttc")
    except SystemPieceMissing:
        return None
    font_manager.fontManager.addfont(path)
    return font_manager.FontProperties(fname=path).get_name()


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
