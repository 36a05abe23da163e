"""The install files agree with each other and with the README."""

from __future__ import annotations

import re
from pathlib import Path

import tomllib

ROOT = Path(__file__).parent.parent
PYPROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())


def _names(reqs: list[str]) -> set[str]:
    return {re.split(r"[<>=!\[; ]", r, maxsplit=1)[0].lower() for r in reqs}


def test_dependencies_the_issue_names():
    deps = _names(PYPROJECT["project"]["dependencies"])
    assert {"torch", "torchvision", "transformers", "accelerate", "qwen-vl-utils", "pillow", "av",
            "jupyterlab", "ipywidgets", "matplotlib", "tqdm"} <= deps
    extras = PYPROJECT["project"]["optional-dependencies"]
    assert {"flash-attn", "vllm", "bitsandbytes"} <= _names(extras["gpu"])
    assert {"pytest", "nbmake", "ruff"} <= _names(extras["dev"])


def test_no_newer_torch_is_pinned():
    torch_req = next(r for r in PYPROJECT["project"]["dependencies"] if r.startswith("torch>") or r == "torch")
    assert "==" not in torch_req and "<" not in torch_req


def test_transformers_range_admits_what_vllm_pins():
    from packaging.requirements import Requirement

    req = Requirement(next(r for r in PYPROJECT["project"]["dependencies"] if r.startswith("transformers")))
    # vLLM 0.33 pins transformers>=5.16.1,<5.21; the newest release when this was written is 5.23.0
    for version in ("5.16.1", "5.20.2", "5.23.0"):
        assert version in req.specifier, version
    assert "4.56.2" not in req.specifier  # no Qwen3-VL before 4.57


def test_environment_yml_installs_the_same_project():
    text = (ROOT / "environment.yml").read_text()
    python = re.search(r"^\s*-\s*python=(\d+)\.(\d+)", text, re.M)
    assert python, "environment.yml pins a python version"
    lowest = tuple(int(x) for x in re.findall(r"\d+", PYPROJECT["project"]["requires-python"])[:2])
    assert (int(python.group(1)), int(python.group(2))) >= lowest
    assert re.search(r"^\s*-\s*-e \.\[dev\]\s*$", text, re.M), "pip installs the project with its dev extra"


def test_readme_commands_exist_in_the_makefile():
    readme = (ROOT / "README.md").read_text()
    makefile = (ROOT / "Makefile").read_text()
    for target in ("lab", "test"):
        assert f"make {target}" in readme
        assert re.search(rf"^{target}:", makefile, re.M)
    assert "make test" in (ROOT / ".ci" / "run").read_text()
