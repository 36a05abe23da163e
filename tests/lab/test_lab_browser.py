"""The learner's path in a real browser: JupyterLab started the way ``make lab`` starts it, every
notebook opened in Chromium through Playwright and run with Run > Run All Cells, as a learner would.

Checks, per notebook: every code cell ran, no cell has an error output, and every widget output
(progress bars, 02's settings panel) was rendered by JupyterLab's widget manager as a widget, not
as its text fallback. Slow (each notebook's own run time): not part of the unit run; run it with

    COOKBOOK_MODEL=tiny HF_HUB_OFFLINE=1 .venv/bin/python -m pytest -q tests/lab --durations=0
"""

from __future__ import annotations

import asyncio
import json
import os
import secrets
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
NOTEBOOKS = sorted((ROOT / "notebooks").glob("[0-9][0-9]_*.ipynb"))
WIDGET = "application/vnd.jupyter.widget-view+json"
EXECUTED = ROOT / "build" / "executed"  # each notebook as JupyterLab saved it after a passing run
RUN_LIMIT_S = 1200  # one notebook; the slowest smoke run takes a few minutes


@dataclass(frozen=True)
class Lab:
    base: str
    token: str
    folder: Path  # the lab's root: copies of the notebooks (the browser saves into them)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _settings(folder: Path) -> None:
    """Lab settings for a test run: every cell rendered (no virtual scrolling, so the DOM holds all
    outputs), the kernel started without asking, no news or update checks."""
    def put(plugin: str, values: dict) -> None:
        path = folder / "@jupyterlab" / plugin.split(":")[0].split("/")[1]
        path.mkdir(parents=True, exist_ok=True)
        (path / f"{plugin.split(':')[1]}.jupyterlab-settings").write_text(json.dumps(values))

    put("@jupyterlab/notebook-extension:tracker", {"windowingMode": "none", "autoStartDefaultKernel": True})
    put("@jupyterlab/apputils-extension:notification", {"fetchNews": "false", "checkForUpdates": False})


@pytest.fixture(scope="module")
def lab(tmp_path_factory):
    """JupyterLab on 127.0.0.1 with a token, as ``make lab`` runs it (``--allow-root`` when root),
    serving copies of the notebooks, with this run's smoke-mode environment."""
    work = tmp_path_factory.mktemp("lab")
    folder = work / "notebooks"
    shutil.copytree(ROOT / "notebooks", folder)
    (work / "assets").symlink_to(ROOT / "assets")  # a notebook's relative ../assets still resolves
    _settings(work / "settings")
    port, token = _free_port(), secrets.token_hex(16)
    env = {**os.environ, "JUPYTERLAB_SETTINGS_DIR": str(work / "settings"),
           "JUPYTER_RUNTIME_DIR": str(work / "runtime"), "JUPYTER_CONFIG_DIR": str(work / "config")}
    env.setdefault("COOKBOOK_MODEL", "tiny")
    env.setdefault("HF_HUB_OFFLINE", "1")
    cmd = [str(Path(sys.executable).parent / "jupyter"), "lab", str(folder), "--no-browser", "--ip=127.0.0.1",
           f"--port={port}", f"--ServerApp.token={token}"]
    if os.getuid() == 0:
        cmd.append("--allow-root")
    log = (work / "lab.log").open("w")
    proc = subprocess.Popen(cmd, env=env, stdout=log, stderr=subprocess.STDOUT)
    base = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 120
    while True:
        try:
            urllib.request.urlopen(f"{base}/api/status?token={token}", timeout=2)
            break
        except OSError:
            if proc.poll() is not None or time.monotonic() > deadline:
                proc.kill()
                pytest.fail(f"JupyterLab did not start:\n{(work / 'lab.log').read_text()[-3000:]}")
            time.sleep(0.5)
    yield Lab(base, token, folder)
    proc.terminate()
    try:
        proc.wait(timeout=20)
    except subprocess.TimeoutExpired:
        proc.kill()
    log.close()


DONE = """() => {
  const status = document.querySelector('.jp-Notebook-ExecutionIndicator')?.dataset.status;
  const prompts = [...document.querySelectorAll('.jp-CodeCell .jp-InputPrompt')].map(p => p.textContent);
  return status === 'idle' && prompts.length > 0 && /\\d/.test(prompts[0]) && !prompts.some(t => t.includes('*'));
}"""

FACTS = """() => {
  const outputs = [...document.querySelectorAll('.jp-OutputArea-output')];
  const widgets = outputs.filter(o => o.querySelector(':scope > .jupyter-widgets'));
  return {
    widget_outputs: widgets.length,
    widget_errors: widgets.filter(o => /Error displaying widget|Loading widget|model not found/i.test(o.textContent))
                          .map(o => o.textContent.slice(0, 200)),
    controls: {
      sliders: document.querySelectorAll('.widget-slider').length,
      dropdowns: document.querySelectorAll('.widget-dropdown').length,
      buttons: document.querySelectorAll('.widget-button').length,
      progress: document.querySelectorAll('.widget-hprogress').length,
    },
    tracebacks: outputs.filter(o => o.textContent.includes('Traceback (most recent call last)')).length,
  };
}"""


STARTED = """() => [...document.querySelectorAll('.jp-CodeCell .jp-InputPrompt')]
  .some(p => /[*\\d]/.test(p.textContent))"""


def _sessions(lab: Lab) -> list[dict]:
    with urllib.request.urlopen(f"{lab.base}/api/sessions?token={lab.token}", timeout=5) as r:
        return json.load(r)


async def _wait_for_kernel(lab: Lab, name: str, timeout: float = 120) -> None:
    """Until the server's session for this notebook has a started, idle kernel. (Asynchronous: the
    page's requests pass through this event loop, so blocking it would stall the page.)"""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        sessions = await asyncio.to_thread(_sessions, lab)
        if any(s.get("path", "").endswith(name) and s.get("kernel", {}).get("execution_state") == "idle"
               for s in sessions):
            return
        await asyncio.sleep(0.5)
    raise TimeoutError(f"no idle kernel for {name} after {timeout} s")


async def _run_all(lab: Lab, name: str, screenshot: Path | None = None) -> dict:
    """Open a notebook in JupyterLab, Run > Run All Cells, wait until the kernel is idle, save.

    Returns what the page shows (widget outputs, controls, tracebacks) and the seconds it took."""
    from playwright.async_api import TimeoutError as PlaywrightTimeout

    from cookbook.kit import browser

    async with browser.launch() as chromium:
        page = await browser.new_page(chromium, width=1400, height=1000, allow=[lab.base])
        # ?reset: a fresh workspace, so the notebooks opened by earlier tests are not restored beside it
        await page.goto(f"{lab.base}/lab/tree/{name}?reset&token={lab.token}")
        await page.wait_for_selector(".jp-Notebook .jp-CodeCell", timeout=120_000)
        await page.wait_for_function(
            "() => document.querySelector('.jp-Notebook-ExecutionIndicator')?.dataset.status === 'idle'"
            " || document.querySelector('.jp-Dialog')", timeout=120_000)
        if await page.locator(".jp-Dialog .jp-mod-accept").count():  # "Select Kernel", if still asked
            await page.click(".jp-Dialog .jp-mod-accept")
            await page.wait_for_selector(".jp-Notebook-ExecutionIndicator[data-status='idle']", timeout=120_000)
        await _wait_for_kernel(lab, name)
        await page.wait_for_selector(".jp-Notebook-ExecutionIndicator[data-status='idle']", timeout=120_000)
        start = time.perf_counter()
        for _ in range(3):  # a click while the page is still connecting to the kernel is lost: retry
            await page.click(".lm-MenuBar-itemLabel:text-is('Run')")
            await page.click(".lm-Menu-itemLabel:text-is('Run All Cells')")
            try:
                await page.wait_for_function(STARTED, timeout=30_000)
                break
            except PlaywrightTimeout:
                continue
        await page.wait_for_function(DONE, timeout=RUN_LIMIT_S * 1000, polling=500)
        seconds = time.perf_counter() - start
        await page.wait_for_timeout(1000)  # late display updates (a progress bar's last refresh)
        facts = await page.evaluate(FACTS)
        await page.keyboard.press("Control+s")
        await page.wait_for_function(
            "() => !document.querySelector('.jp-Document.jp-mod-dirty, .lm-TabBar-tab.jp-mod-dirty')",
            timeout=60_000)
        if screenshot:
            await page.screenshot(path=str(screenshot), full_page=True)
        return {**facts, "seconds": seconds}


def _shut_down(lab: Lab) -> None:
    """Stop every kernel the lab started (each notebook's test frees its memory for the next)."""
    for session in _sessions(lab):
        request = urllib.request.Request(f"{lab.base}/api/sessions/{session['id']}?token={lab.token}", method="DELETE")
        urllib.request.urlopen(request, timeout=30).close()


def _saved(lab: Lab, name: str) -> dict:
    return json.loads((lab.folder / name).read_text(encoding="utf-8"))


def _errors(nb: dict) -> list[str]:
    return [f"cell {i}: {o.get('ename')}: {o.get('evalue')}" for i, c in enumerate(nb["cells"])
            if c["cell_type"] == "code" for o in c.get("outputs", []) if o["output_type"] == "error"]


def _not_run(nb: dict) -> list[int]:
    return [i for i, c in enumerate(nb["cells"])
            if c["cell_type"] == "code" and "".join(c["source"]).strip() and c.get("execution_count") is None]


def _widget_outputs(nb: dict) -> int:
    return sum(WIDGET in o.get("data", {}) for c in nb["cells"] if c["cell_type"] == "code"
               for o in c.get("outputs", []))


def test_the_checks_catch_a_failing_cell_and_see_widgets(lab):
    """The checker bites: an error output is found and later cells are reported as not run; a
    progress bar and a slider are seen as rendered widgets."""
    import nbformat
    from nbformat.v4 import new_code_cell, new_notebook

    nb = new_notebook(cells=[
        new_code_cell("from tqdm.auto import tqdm\nfor _ in tqdm(range(3)):\n    pass"),
        new_code_cell("import ipywidgets as w\nw.IntSlider(3)"),
        new_code_cell("1 / 0"),
        new_code_cell("print('never reached')"),
    ], metadata={"kernelspec": {"display_name": "Python 3", "language": "python", "name": "python3"}})
    nbformat.write(nb, lab.folder / "zz_check.ipynb")
    try:
        facts = asyncio.run(_run_all(lab, "zz_check.ipynb"))
    finally:
        _shut_down(lab)
    saved = _saved(lab, "zz_check.ipynb")
    assert _errors(saved) == ["cell 2: ZeroDivisionError: division by zero"]
    assert _not_run(saved) == [3]
    assert _widget_outputs(saved) == 2
    assert facts["widget_outputs"] == 2 and facts["widget_errors"] == [], facts
    assert facts["controls"]["sliders"] == 1 and facts["controls"]["progress"] == 1 and facts["tracebacks"] == 1


@pytest.mark.timeout(RUN_LIMIT_S + 300)
@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_notebook_runs_in_jupyterlab(lab, path, tmp_path):
    try:
        facts = asyncio.run(_run_all(lab, path.name, screenshot=tmp_path / f"{path.stem}.png"))
    finally:
        _shut_down(lab)
    saved = _saved(lab, path.name)
    print(f"{path.name}: {facts['seconds']:.1f} s in JupyterLab, {facts['widget_outputs']} widget outputs")
    assert _errors(saved) == [], f"{path.name}: error outputs (screenshot {tmp_path})"
    assert _not_run(saved) == [], f"{path.name}: cells that did not run"
    assert facts["tracebacks"] == 0
    assert facts["widget_errors"] == [], facts["widget_errors"]
    assert facts["widget_outputs"] == _widget_outputs(saved), "a widget output was not rendered as a widget"
    if path.name.startswith("02_"):  # the settings panel: a preset dropdown, five sliders, a Run button
        assert facts["controls"]["dropdowns"] >= 1 and facts["controls"]["sliders"] >= 5
        assert facts["controls"]["buttons"] >= 1
    # the run passed: keep it, outputs and widget state included, for `make book` (build/executed/)
    EXECUTED.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(lab.folder / path.name, EXECUTED / path.name)
