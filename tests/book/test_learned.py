"""What the book says about the tiny model trained in 13: the numbers its page shows are the run's
own (metrics.json in the cookbook's cache, beside the weights), the baselines are answers that ignore the image, and the verdict
it prints follows from those numbers, whichever way the run went.

Run by `make book`, after `make lab-test` ran 13 in JupyterLab: that run wrote
metrics.json and saved the executed notebook the book shows (build/executed/).
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from cookbook.kit.environment import cookbook_cache_dir

ROOT = Path(__file__).resolve().parents[2]
METRICS = cookbook_cache_dir() / "finetune" / "metrics.json"
EXECUTED = ROOT / "build" / "executed" / "13_fine_tuning.ipynb"


@pytest.fixture(scope="module")
def metrics() -> dict:
    if not METRICS.is_file() or not EXECUTED.is_file():
        pytest.fail(f"run `make lab-test` first: it runs 13, which writes {METRICS}")
    return json.loads(METRICS.read_text())


def _printed(marker: str) -> str:
    """The stdout of the executed cell of 13 whose source contains ``marker``."""
    for cell in json.loads(EXECUTED.read_text())["cells"]:
        if cell["cell_type"] == "code" and marker in "".join(cell["source"]):
            return "".join("".join(o.get("text", "")) for o in cell.get("outputs", []) if o.get("name") == "stdout")
    raise AssertionError(f"13 has no cell with {marker!r}")


def test_the_page_shows_the_numbers_the_run_wrote(metrics):
    text = _printed("metrics.json")
    assert json.loads(text[text.index("{"):]) == metrics


def test_the_run_is_a_tiny_model_on_held_out_images(metrics):
    assert metrics["model"].startswith("a tiny model trained here")
    assert metrics["held_out_size"] >= 40 and metrics["train_size"] == metrics["steps"] * 8
    rows = ("before", "after", "one_training_answer", "best_image_blind_answer")
    assert all(0 <= metrics[row][k] <= 1 for row in rows for k in ("label", "accuracy@0.5", "mean_iou"))
    curve = metrics["curve"]
    assert (curve[0]["step"], curve[-1]["step"]) == (0, metrics["steps"])
    assert {k: curve[-1][k] for k in metrics["after"]} == metrics["after"]


def test_each_verdict_follows_from_the_numbers(metrics):
    lines = [line for line in _printed("verdict").splitlines() if line.startswith("verdict")]
    for skill, key in (("what (label)", "label"), ("where (box)", "accuracy@0.5")):
        gain = metrics["after"][key] - metrics["best_image_blind_answer"][key]
        (line,) = [line for line in lines if line.startswith(f"verdict, {skill}:")]
        assert ("learned from the image" in line) == (gain >= 0.2) and f"{gain:+.3f}" in line, line
