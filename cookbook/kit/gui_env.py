"""The sandbox of 05: the messenger app (``cookbook/kit/apps/messenger``, all it knows in ``window.appState``),
screens, tasks read from the app's state, a REFERENCE policy that reads the DOM (it proves executor and
scorers, it is not a model), trajectories on disk and their replay as a GIF."""

from __future__ import annotations

import json
import re
from collections.abc import Awaitable, Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from cookbook.kit.gui_tools import SCALE, tool_call_text

APP = Path(__file__).resolve().parent / "apps" / "messenger"


@dataclass(frozen=True)
class Screen:
    """A browser viewport in CSS pixels; ``scale`` device pixels per CSS pixel (screenshot size)."""

    name: str
    width: int
    height: int
    scale: float = 1.0
    mobile: bool = False

    @property
    def pixels(self) -> tuple[int, int]:
        """The screenshot's size in device pixels."""
        return round(self.width * self.scale), round(self.height * self.scale)


PHONE = Screen("phone", 390, 844, 3.0, True)  # an iPhone-14-sized viewport: 1170x2532 screenshots
DESKTOP = Screen("desktop", 1280, 800, 1.0, False)


def from_css(x: float, y: float, screen: Screen, scale: int) -> list[int]:
    """CSS pixels as a point on the model's ``scale`` x ``scale`` screen (the inverse of ``cb.agent.to_css``)."""
    return [round(x / screen.width * scale), round(y / screen.height * scale)]


def chat_of(state: dict, cid: str) -> dict:
    """The chat with id ``cid`` in an app state (``appState.chats``)."""
    return next(c for c in state["chats"] if c["id"] == cid)


def unchanged_except(state: dict, initial: dict, changed: str) -> bool:
    """True when every chat but ``changed`` kept its pinned/muted/deleted/draft/messages."""
    keys = ("pinned", "muted", "deleted", "draft", "messages")
    return all(all(c[k] == chat_of(initial, c["id"])[k] for k in keys) for c in state["chats"] if c["id"] != changed)


@dataclass(frozen=True)
class Task:
    """An instruction, its success predicate on (state, initial state), and the reference plan of
    (action, ``data-name``) steps."""

    id: str
    instruction: str
    check: Callable[[dict, dict], bool]
    plan: tuple[tuple[str, str], ...]


def _only(cid: str, holds: Callable[[dict, dict], bool]) -> Callable[[dict, dict], bool]:
    return lambda s, i: bool(holds(chat_of(s, cid), chat_of(i, cid))) and unchanged_except(s, i, cid)


TASKS = (
    Task("unpin", "Find the pinned chat 'Tech Exchange Group' and unpin it.", _only("tech", lambda c, _: not c["pinned"]),
         (("long_press", "chat Tech Exchange Group"), ("click", "menu Unpin"))),
    Task("pin", "Pin the chat with Mom.", _only("mom", lambda c, _: c["pinned"]),
         (("long_press", "chat Mom"), ("click", "menu Pin"))),
    Task("send", "Send the message 'See you at 7' to Bob Li.",
         _only("bob", lambda c, _: c["messages"][-1] == {"from": "me", "text": "See you at 7"}),
         (("click", "chat Bob Li"), ("click", "message box"), ("type", "See you at 7"), ("click", "send button"))),
    Task("mute", "Mute the group 'Hiking Club'.", _only("hiking", lambda c, _: c["muted"]),
         (("long_press", "chat Hiking Club"), ("click", "menu Mute"))),
    Task("search", "Search for Zhang Wei and open the chat.",
         lambda s, i: "zhang" in s["search"].lower() and s["open"] == "zhang" and unchanged_except(s, i, ""),
         (("click", "search box"), ("type", "Zhang"), ("click", "chat Zhang Wei"))),
    Task("draft", "Delete the unsent draft in the chat with Carol Wu.",
         _only("carol", lambda c, i: c["draft"] == "" and not c["deleted"] and c["messages"] == i["messages"]),
         (("click", "chat Carol Wu"), ("click", "discard draft button"))),
    Task("delete", "Delete the chat 'Spam Offers'.", _only("spam", lambda c, _: c["deleted"]),
         (("long_press", "chat Spam Offers"), ("click", "menu Delete"))),
)


def task(task_id: str) -> Task:
    """The task with this id (``unpin``, ``pin``, ``send``, ``mute``, ``search``, ``draft``, ``delete``)."""
    for t in TASKS:
        if t.id == task_id:
            return t
    raise KeyError(f"no task {task_id!r}; tasks: {', '.join(t.id for t in TASKS)}")


async def app_state(page: Any) -> dict:
    """A copy of the sandbox app's ``window.appState``."""
    return await page.evaluate("window.appSnapshot()")


async def open_app(page: Any, base_url: str) -> dict:
    """Load the messenger fresh (initial state) and return that state."""
    await page.goto(base_url.rstrip("/") + "/index.html")
    await page.wait_for_function("window.appState !== undefined")
    return await app_state(page)


async def screenshot(page: Any, path: str | Path | None = None) -> Any:
    """The page as a PIL image in device pixels (a phone's screenshot); the PNG also to ``path`` if given."""
    import io

    from PIL import Image

    png = await page.screenshot()
    if path is not None:
        Path(path).write_bytes(png)
    return Image.open(io.BytesIO(png)).convert("RGB")


@dataclass
class Observation:
    """What a policy sees at one step: task, history lines, screenshot (PIL) and, for the reference only, the page."""

    instruction: str
    history: list[str]
    screenshot: Any
    screen: Screen
    space: str
    page: Any = None
    step: int = 0
    task: Task | None = None


Policy = Callable[[Observation], Awaitable[str]]

_BOXES_JS = """() => [...document.querySelectorAll('[data-name]')].map(el => {
  const r = el.getBoundingClientRect();
  const top = document.elementFromPoint(r.left + r.width / 2, r.top + r.height / 2);
  const visible = r.width > 0 && r.height > 0 && !!top && (el === top || el.contains(top));
  return {name: el.dataset.name, box: [r.left, r.top, r.right, r.bottom], visible,
          whole: visible && r.bottom <= innerHeight && r.right <= innerWidth};
})"""


async def element_box(page: Any, name: str) -> dict | None:
    """``{"box": [x1, y1, x2, y2], "visible"}`` in CSS pixels of the element with this ``data-name``
    (``visible`` when its centre is not covered or scrolled away); None if absent."""
    found = next((b for b in await page.evaluate(_BOXES_JS) if b["name"] == name), None)
    return None if found is None else {"box": found["box"], "visible": found["visible"]}


async def grounding_targets(page: Any) -> list[dict]:
    """Every named element wholly on screen and not covered: ``{"name", "box"}`` in CSS pixels."""
    return [{"name": b["name"], "box": b["box"]} for b in await page.evaluate(_BOXES_JS)
            if b["whole"] and b["name"] != "chat list"]


def click_instruction(name: str) -> str:
    """The "click X" instruction for a target name (``chat Bob Li`` -> 'Click the chat with "Bob Li".')."""
    if name.startswith("chat "):
        return f'Click the chat with "{name[5:]}".'
    if name.startswith("menu "):
        return f'Click "{name[5:]}" in the menu.'
    return f"Click the {name}."


def _centre(box: list[float], screen: Screen, scale: int) -> list[int]:
    return from_css((box[0] + box[2]) / 2, (box[1] + box[3]) / 2, screen, scale)


def reference_locator(target: dict, screen: Screen, space: str) -> str:
    """A REFERENCE answer for a grounding target: the centre of its DOM box, as a tool call."""
    action = "click" if space == "mobile_use" else "left_click"
    return tool_call_text(space, {"action": action, "coordinate": _centre(target["box"], screen, SCALE[space])})


async def reference_policy(obs: Observation) -> str:
    """A REFERENCE, not a model: follows the task's plan with element boxes read from the DOM, answering
    in the model's format, so the executor and the scorers must reach 100% with it."""
    plan, space, screen, scale = obs.task.plan, obs.space, obs.screen, SCALE[obs.space]
    done = sum(1 for line in obs.history if not re.search(r'"action": "(swipe|scroll)"', line))
    if done >= len(plan):
        return tool_call_text(space, {"action": "terminate", "status": "success"}, "The task is done.")
    action, target = plan[done]
    if action == "type":
        return tool_call_text(space, {"action": "type", "text": target}, f"Type {target!r}.")
    found = await element_box(obs.page, target)
    if found is None:
        return tool_call_text(space, {"action": "terminate", "status": "failure"}, f"No {target!r} on screen.")
    if not found["visible"]:  # scrolled out of the list: swipe (or scroll) inside the list towards it
        lx1, ly1, lx2, ly2 = (await element_box(obs.page, "chat list"))["box"]
        lx, ly = (lx1 + lx2) / 2, (ly1 + ly2) / 2
        dy = 250 if found["box"][1] > ly else -250
        start = from_css(lx, ly, screen, scale)
        args = ({"action": "swipe", "coordinate": start, "coordinate2": from_css(lx, ly - dy, screen, scale)}
                if space == "mobile_use" else {"action": "scroll", "coordinate": start, "pixels": -dy})
        return tool_call_text(space, args, f"{target!r} is off screen; scroll towards it.")
    name = action if space == "mobile_use" else {"click": "left_click", "long_press": "right_click"}.get(action, action)
    args = {"action": name, "coordinate": _centre(found["box"], screen, scale)}
    if name == "long_press":
        args["time"] = 0.8  # the app opens its menu after 0.5 s
    return tool_call_text(space, args, f"{action} {target!r}.")


@dataclass
class Step:
    """One step of a trajectory: screenshot file, the policy's text, its calls and what they did."""

    index: int
    screenshot: str
    text: str
    thought: str
    calls: list[dict]
    point: list[float] | None
    ok: bool
    error: str = ""
    held: bool = False
    seconds: float = 0.0


@dataclass
class Trajectory:
    """A run of one task: its steps, the final app state, and whether the task's predicate holds."""

    task: str
    instruction: str
    screen: dict
    space: str
    policy: str
    steps: list[Step] = field(default_factory=list)
    success: bool = False
    terminated: str = ""
    final_state: dict = field(default_factory=dict)
    folder: str = ""

    def save(self, folder: str | Path) -> Path:
        """Write ``trajectory.json`` beside the screenshots in ``folder``; returns its path."""
        path = Path(folder) / "trajectory.json"
        path.write_text(json.dumps(asdict(self), indent=1, ensure_ascii=False))
        return path


def load_trajectory(folder: str | Path) -> Trajectory:
    """Read a trajectory written by ``Trajectory.save``."""
    data = json.loads((Path(folder) / "trajectory.json").read_text())
    return Trajectory(**data | {"steps": [Step(**s) for s in data["steps"]]})


def annotate(image: Any, step: Step, screen: Screen, width: int = 360, label: str | None = None) -> Any:
    """A screenshot scaled to ``width`` with the step's point (a red ring) and its action (or ``label``) on top."""
    from PIL import Image, ImageDraw, ImageFont

    img = image.convert("RGB")
    img = img.resize((width, round(img.height * width / img.width)), Image.Resampling.LANCZOS)
    draw = ImageDraw.Draw(img)
    if step.point:
        x, y = (v * width / screen.width for v in step.point)  # CSS pixels -> frame pixels
        r = max(8, width // 30)
        draw.ellipse((x - r, y - r, x + r, y + r), outline=(230, 30, 30), width=3)
        draw.ellipse((x - 3, y - 3, x + 3, y + 3), fill=(230, 30, 30))
    args = step.calls[0]["arguments"] if step.calls else {}
    if label is None:
        label = f"{step.index}: " + (", ".join(f"{k}={v}" for k, v in args.items()) if args else "no valid action")
    label += "  [HELD]" if step.held else ""
    font = ImageFont.load_default(size=max(11, width // 28))
    draw.rectangle((0, 0, img.width, draw.textbbox((6, 0), label, font=font)[3] + 8), fill=(0, 0, 0))
    draw.text((6, 4), label, fill=(255, 255, 255) if step.ok else (255, 120, 120), font=font)
    return img


def replay(trajectory: Trajectory, width: int = 360) -> list[Any]:
    """The trajectory's screenshots as annotated frames, plus the final screen."""
    from PIL import Image

    folder, screen = Path(trajectory.folder), Screen(**trajectory.screen)
    end = Step(len(trajectory.steps), "final.png", "", "", [], None, True)
    verdict = "success" if trajectory.success else "not done"
    frames = []
    for step, label in [(s, None) for s in trajectory.steps] + [(end, f"end: {verdict} (read from the app's state)")]:
        with Image.open(folder / step.screenshot) as img:
            frames.append(annotate(img, step, screen, width, label))
    return frames


def save_gif(frames: list[Any], path: str | Path, ms_per_frame: int = 900) -> Path:
    """Write frames as an animated GIF that loops."""
    path = Path(path)
    frames[0].save(path, save_all=True, append_images=frames[1:], duration=ms_per_frame, loop=0)
    return path
