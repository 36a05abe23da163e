"""What this run uses, read from the environment: model, hub, device, smoke mode, budgets.

``COOKBOOK_MODEL`` is the one switch: ``auto`` (default: the pick for this hardware), ``tiny`` or
``tiny-thinking`` (a tiny random-weight Qwen3-VL built locally, nonsense answers), ``tiny-qwen3.5``
(the same for the successor architecture, Qwen3.5/3.6/3.8), a hub id such as
``Qwen/Qwen3-VL-4B-Instruct``, or a local folder.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from cookbook.kit.environment import env, offline
from cookbook.kit.hardware import hardware
from cookbook.kit.show import Pretty
from cookbook.lineup import recommend_model

TINY_NAMES = {
    "tiny": "instruct", "tiny-instruct": "instruct", "tiny-thinking": "thinking",
    "tiny-qwen3.5": "qwen3.5",
}


@dataclass(frozen=True)
class Budget:
    """Sizes the notebooks use, so a smoke run stays small and a real run stays sensible (all notebooks)."""

    max_new_tokens: int
    image_max_tokens: int
    video_fps: float
    video_max_frames: int
    samples: int
    requests: int
    concurrency: tuple[int, ...]


SMOKE_BUDGET = Budget(
    max_new_tokens=16, image_max_tokens=256, video_fps=2.0, video_max_frames=8,
    samples=4, requests=8, concurrency=(1, 4),
)
REAL_BUDGET = Budget(
    max_new_tokens=1024, image_max_tokens=1280, video_fps=2.0, video_max_frames=128,
    samples=8, requests=64, concurrency=(1, 8, 32),
)


@dataclass(frozen=True)
class Settings(Pretty):
    """The run's choices, shown by the setup cell of every notebook."""

    requested: str
    model: str
    smoke: bool
    thinking: bool
    device: str
    hub: str
    endpoint: str
    offline: bool
    budget: Budget = field(repr=False)
    base_url: str | None = None  # COOKBOOK_BASE_URL: a workshop's OpenAI-compatible server (04)
    api_key: str = "EMPTY"  # COOKBOOK_API_KEY
    served_model: str | None = None  # COOKBOOK_SERVED_MODEL: the model name that server expects

    def __str__(self) -> str:
        rows = [
            ("model", self.model + ("" if self.model == self.requested else f"  (COOKBOOK_MODEL={self.requested})")),
            ("flavour", "Thinking" if self.thinking else "Instruct"),
            ("device", self.device),
            ("hub", f"{self.hub} ({self.endpoint})" + ("  offline" if self.offline else "")),
            ("max_new_tokens", str(self.budget.max_new_tokens)),
        ]
        if self.base_url:
            rows.append(("server", f"{self.base_url}  model {self.served_model or '(ask the server)'}"))
        text = "\n".join(f"{k:>15}: {v}" for k, v in rows)
        if self.smoke:
            text += (
                f"\n\nSMOKE RUN: a tiny random-weight {'Qwen3.5' if is_successor(self.model) else 'Qwen3-VL'}"
                " (real architecture, processor and chat"
                "\ntemplate) stands in for the real model. Every code path runs; every answer is"
                "\nnonsense. Set COOKBOOK_MODEL to a real checkpoint for real answers."
            )
        return text


def _requested_model() -> str:
    """The raw ``COOKBOOK_MODEL`` value (``auto`` when unset)."""
    return env("COOKBOOK_MODEL", "auto") or "auto"


def tiny_flavour(name: str) -> str | None:
    """``instruct``/``thinking`` when ``name`` selects the tiny model, else None (00)."""
    return TINY_NAMES.get(name.lower())


# The successor of each Qwen3-VL size that notebook 14 loads in a real run: the same size where
# Qwen3.5 has it, else the nearest published one (the cookbook's choice; sizes from QwenLM/Qwen3.8).
SUCCESSOR_OF = {"2B": "2B", "4B": "4B", "8B": "9B", "32B": "27B", "30B-A3B": "35B-A3B", "235B-A22B": "397B-A17B"}
SUCCESSOR_PREFIXES = ("qwen3.5", "qwen3.6", "qwen3.8")


def is_successor(name: str) -> bool:
    """Whether ``name`` is a Qwen3.5-architecture model (Qwen3.5, 3.6, 3.8: one hybrid checkpoint that
    thinks unless ``enable_thinking=False``), the tiny one included (14)."""
    return any(p in name.lower() for p in SUCCESSOR_PREFIXES)


def successor(name: str | None = None) -> str:
    """The Qwen3.5-architecture model notebook 14 loads: ``tiny-qwen3.5`` in a smoke run, the model itself
    when it already is a Qwen3.5/3.6/3.8, else ``Qwen/Qwen3.5-<size>`` of the nearest size (14)."""
    name = name or settings().model
    if tiny_flavour(name):
        return "tiny-qwen3.5"
    if is_successor(name):
        return name
    size = next((k for k in sorted(SUCCESSOR_OF, key=len, reverse=True) if f"-{k.lower()}" in name.lower()), "4B")
    return f"Qwen/Qwen3.5-{SUCCESSOR_OF[size]}"


def budget() -> Budget:
    """The sizes for this run: small in a smoke run (``COOKBOOK_MODEL=tiny``), teaching-size otherwise (all notebooks)."""
    return SMOKE_BUDGET if tiny_flavour(_requested_model()) else REAL_BUDGET



def settings() -> Settings:
    """What this run uses (model, device, hub, smoke mode); printed in every notebook's setup cell."""
    requested = _requested_model()
    flavour = tiny_flavour(requested)
    hub = (env("COOKBOOK_HUB", "huggingface") or "huggingface").lower()
    if hub not in ("huggingface", "modelscope"):
        raise ValueError(f"COOKBOOK_HUB={hub!r}: use 'huggingface' or 'modelscope'.")
    endpoint = (
        env("HF_ENDPOINT", "https://huggingface.co") if hub == "huggingface"
        else env("MODELSCOPE_DOMAIN", "www.modelscope.cn")
    )
    if flavour:
        model, device = f"tiny-{flavour}", "cpu"
        thinking = flavour == "thinking" or is_successor(model)
    elif requested == "auto":
        model = recommend_model().checkpoint.id
        thinking, device = "thinking" in model.lower(), hardware().device
    else:  # a Qwen3.5/3.6/3.8 is one hybrid checkpoint that thinks by default (14)
        model, device = requested, hardware().device
        thinking = "thinking" in requested.lower() or is_successor(requested)
    return Settings(
        requested=requested, model=model, smoke=bool(flavour), thinking=thinking, device=device,
        hub=hub, endpoint=endpoint, offline=offline(), budget=budget(),
        base_url=env("COOKBOOK_BASE_URL") or None, api_key=env("COOKBOOK_API_KEY") or "EMPTY",
        served_model=env("COOKBOOK_SERVED_MODEL") or None,
    )
