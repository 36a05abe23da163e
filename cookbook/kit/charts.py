"""Ground truth for 06's chart-to-code step: three deterministic matplotlib charts (bar, line, scatter) from
known data, each with the code that draws it; and the sandbox script that runs chart code (``SANDBOX``)."""

from __future__ import annotations

import random
from dataclasses import dataclass
from pathlib import Path

SANDBOX = Path(__file__).with_name("chart_sandbox.py")  # run as a script: python -I chart_sandbox.py OUT < codes
DPI = 100           # every chart is saved at this resolution
FIGSIZE = (6, 4)    # inches: 600x400 pixels


@dataclass(frozen=True)
class Chart:
    """A generated chart: its name, kind (bar, line or scatter), the code that draws it, and the plotted
    y values in drawing order (06)."""

    name: str
    kind: str
    code: str
    values: tuple[float, ...]


def _bar(rng: random.Random) -> Chart:
    days = ["Mon", "Tue", "Wed", "Thu", "Fri", "Sat"]
    visits = [float(rng.randrange(20, 95)) for _ in days]
    code = (
        "import matplotlib.pyplot as plt\n\n"
        f"days = {days!r}\nvisits = {visits!r}\n\n"
        f"fig, ax = plt.subplots(figsize={FIGSIZE!r})\n"
        'ax.bar(days, visits, color="#4C72B0")\n'
        'ax.set_title("Library visits per day")\nax.set_xlabel("Day")\nax.set_ylabel("Visits")\n'
        "fig.tight_layout()\n")
    return Chart("visits_bar", "bar", code, tuple(visits))


def _line(rng: random.Random) -> Chart:
    months = ["Jan", "Feb", "Mar", "Apr", "May", "Jun"]
    north = [round(rng.uniform(-5, 5) + 3 * i, 1) for i in range(6)]
    south = [round(rng.uniform(8, 14) + 2 * i, 1) for i in range(6)]
    code = (
        "import matplotlib.pyplot as plt\n\n"
        f"months = {months!r}\nnorth = {north!r}\nsouth = {south!r}\n\n"
        f"fig, ax = plt.subplots(figsize={FIGSIZE!r})\n"
        'ax.plot(months, north, marker="o", color="#DD8452", label="North")\n'
        'ax.plot(months, south, marker="s", color="#55A868", label="South")\n'
        'ax.set_title("Mean temperature")\nax.set_xlabel("Month")\nax.set_ylabel("Temperature (°C)")\n'
        "ax.legend()\nfig.tight_layout()\n")
    return Chart("temperature_line", "line", code, tuple(north + south))


def _scatter(rng: random.Random) -> Chart:
    hours = [round(rng.uniform(0.5, 9.5), 1) for _ in range(12)]
    scores = [round(min(100.0, 38 + 6 * h + rng.uniform(-8, 8)), 1) for h in hours]
    code = (
        "import matplotlib.pyplot as plt\n\n"
        f"hours = {hours!r}\nscores = {scores!r}\n\n"
        f"fig, ax = plt.subplots(figsize={FIGSIZE!r})\n"
        'ax.scatter(hours, scores, color="#C44E52")\n'
        'ax.set_title("Study time and test score")\nax.set_xlabel("Hours studied")\nax.set_ylabel("Score")\n'
        "fig.tight_layout()\n")
    return Chart("study_scatter", "scatter", code, tuple(scores))


def chart_set(seed: int = 0) -> list[Chart]:
    """The three charts of 06 (bar, line, scatter), the same for the same ``seed`` (06)."""
    rng = random.Random(seed)
    return [_bar(rng), _line(rng), _scatter(rng)]
