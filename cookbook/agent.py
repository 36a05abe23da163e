"""A GUI agent: Qwen3-VL operates a messenger in a real browser, and is scored (05_gui_agent).

The parts, in the order the notebook teaches them:

- the official action spaces as tool definitions: ``mobile_use`` (a 999x999 screen, as the Qwen3-VL
  mobile-agent cookbook declares) and ``computer_use`` (1000x1000, the computer-use cookbook);
- the prompt in the mobile-agent cookbook's format (system prompt, tools, ``Task progress`` history);
- ``parse_tool_calls``: the model's ``<tool_call>`` blocks as ``{"name", "arguments"}`` dicts;
- ``to_css``: the model's relative coordinates as the page's CSS pixels;
- ``execute``: each action as Playwright calls, behind an action whitelist and a confirmation hook
  that holds destructive actions;
- ``run_task``: screenshot, model, parse, execute, repeat, with a step bound; the trajectory on disk;
- scoring as the field does it: task success read from the app's state (AndroidWorld, OSWorld) and
  ScreenSpot-style grounding (a hit when the point falls inside the element's box from the DOM).

The sandbox app lives in ``cookbook/apps/messenger`` (HTML, CSS, JS; no network) and keeps all it
knows in ``window.appState``. ``reference_policy`` reads the DOM to act: it is a reference that
proves executor and scorers, not a model.
"""

from __future__ import annotations

import asyncio
import inspect
import json
import re
import time
from collections.abc import Awaitable, Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

APP = Path(__file__).resolve().parent / "apps" / "messenger"


# ---------------------------------------------------------------------------------------------
# Screens
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Screen:
    """A browser viewport in CSS pixels; ``scale`` device pixels per CSS pixel (screenshot size) (05)."""

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


# ---------------------------------------------------------------------------------------------
# The official action spaces, as tools
# ---------------------------------------------------------------------------------------------

MOBILE_ACTIONS = ("click", "long_press", "swipe", "type", "answer", "system_button", "wait", "terminate")
COMPUTER_ACTIONS = ("key", "type", "mouse_move", "left_click", "left_click_drag", "right_click", "middle_click",
                    "double_click", "triple_click", "scroll", "hscroll", "wait", "terminate", "answer")
SCALE = {"mobile_use": 999, "computer_use": 1000}  # the screen size each tool declares to the model


def mobile_use_tool(scale: int = 999) -> dict[str, Any]:
    """The ``mobile_use`` function (Qwen3-VL mobile-agent cookbook) as an OpenAI-style tool (05)."""
    actions = (
        "* `click`: tap the point (x, y) given by `coordinate`.\n"
        "* `long_press`: press the point `coordinate` for `time` seconds.\n"
        "* `swipe`: swipe from `coordinate` (x, y) to `coordinate2` (x2, y2).\n"
        "* `type`: input `text` into the focused input box.\n"
        "* `answer`: give `text` as the answer to the user.\n"
        "* `system_button`: press the system `button` (Back, Home, Menu or Enter).\n"
        "* `wait`: wait `time` seconds for the screen to change.\n"
        "* `terminate`: end the task and report its `status`."
    )
    return {"type": "function", "function": {
        "name": "mobile_use",
        "description": (
            "Use a touchscreen to interact with a mobile device, and take screenshots.\n"
            "* This is an interface to a mobile device with touchscreen. You can click, type, swipe and so on.\n"
            "* Some apps take time to respond: wait, and look at the next screenshot.\n"
            f"* The screen's resolution is {scale}x{scale}.\n"
            "* Click buttons, links and icons in their centre, not on their edges."
        ),
        "parameters": {"type": "object", "required": ["action"], "properties": {
            "action": {"type": "string", "enum": list(MOBILE_ACTIONS),
                       "description": "The action to perform. The available actions are:\n" + actions},
            "coordinate": {"type": "array", "description": "(x, y): pixels from the left and top edges. "
                           "Required by click, long_press and swipe."},
            "coordinate2": {"type": "array", "description": "(x, y): where a swipe ends. Required by swipe."},
            "text": {"type": "string", "description": "Required by type and answer."},
            "time": {"type": "number", "description": "Seconds. Required by long_press and wait."},
            "button": {"type": "string", "enum": ["Back", "Home", "Menu", "Enter"],
                       "description": "Back returns to the previous screen, Home to the desktop, Menu opens "
                                      "the app menu, Enter presses enter. Required by system_button."},
            "status": {"type": "string", "enum": ["success", "failure"],
                       "description": "The task's status. Required by terminate."},
        }},
    }}


def computer_use_tool(scale: int = 1000) -> dict[str, Any]:
    """The ``computer_use`` function (Qwen3-VL computer-use cookbook) as an OpenAI-style tool (05)."""
    actions = (
        "* `key`: press the `keys` together (for example [\"ctrl\", \"a\"]).\n"
        "* `type`: type `text` on the keyboard.\n"
        "* `mouse_move`: move the cursor to `coordinate`.\n"
        "* `left_click`, `right_click`, `middle_click`, `double_click`, `triple_click`: click at `coordinate`.\n"
        "* `left_click_drag`: press at the cursor, drag to `coordinate`, release.\n"
        "* `scroll`: scroll the wheel by `pixels` at `coordinate` (positive scrolls up).\n"
        "* `hscroll`: scroll sideways by `pixels` at `coordinate` (positive scrolls right).\n"
        "* `wait`: wait `time` seconds.\n"
        "* `terminate`: end the task and report its `status`.\n"
        "* `answer`: give `text` as the answer to the user."
    )
    return {"type": "function", "function": {
        "name": "computer_use",
        "description": (
            "Use a mouse and keyboard to interact with a computer, and take screenshots.\n"
            f"* The screen's resolution is {scale}x{scale}.\n"
            "* Click buttons, links and icons in their centre, not on their edges."
        ),
        "parameters": {"type": "object", "required": ["action"], "properties": {
            "action": {"type": "string", "enum": list(COMPUTER_ACTIONS),
                       "description": "The action to perform. The available actions are:\n" + actions},
            "keys": {"type": "array", "description": "Required by key."},
            "text": {"type": "string", "description": "Required by type and answer."},
            "coordinate": {"type": "array", "description": "(x, y): pixels from the left and top edges."},
            "pixels": {"type": "number", "description": "Required by scroll and hscroll."},
            "time": {"type": "number", "description": "Seconds. Required by wait."},
            "status": {"type": "string", "enum": ["success", "failure"],
                       "description": "The task's status. Required by terminate."},
        }},
    }}


def tool_for(space: str) -> dict[str, Any]:
    """The tool of an action space: ``"mobile_use"`` or ``"computer_use"`` (05)."""
    if space == "mobile_use":
        return mobile_use_tool(SCALE[space])
    if space == "computer_use":
        return computer_use_tool(SCALE[space])
    raise ValueError(f"space={space!r}: use 'mobile_use' or 'computer_use'.")


# ---------------------------------------------------------------------------------------------
# The prompt (the mobile-agent cookbook's format)
# ---------------------------------------------------------------------------------------------

SYSTEM_PROMPT = "You are a helpful assistant."


def task_prompt(instruction: str, history: list[str]) -> str:
    """The user turn's text: the query and the steps done so far, as the mobile-agent cookbook writes them (05)."""
    done = "".join(f"Step {i}: {step}; " for i, step in enumerate(history, 1))
    return (f"The user query: {instruction}\n"
            f"Task progress (You have done the following operation on the current device): {done}")


def agent_messages(instruction: str, history: list[str], screenshot: Any, image_tokens: int) -> list[dict[str, Any]]:
    """System prompt, then one user turn: query, history as text, and only the latest screenshot (05)."""
    from cookbook import messages

    return [messages.system(SYSTEM_PROMPT),
            messages.user(task_prompt(instruction, history), messages.image(screenshot, max_tokens=image_tokens))]


# ---------------------------------------------------------------------------------------------
# Parsing the model's tool calls
# ---------------------------------------------------------------------------------------------


class ParseError(ValueError):
    """The model's text holds no usable tool call; the message quotes the text (05)."""


def parse_tool_calls(text: str) -> list[dict]:
    """Every ``<tool_call>`` in a reply as ``{"name": ..., "arguments": {...}}``, in order (05).

    Tolerates a Thought/Action preamble, arguments given as a JSON string, and a last block whose
    ``</tool_call>`` was cut off by the token budget; raises ``ParseError`` when nothing is usable.
    """
    from json_repair import repair_json

    blocks = re.findall(r"<tool_call>(.*?)(?:</tool_call>|$)", text, flags=re.DOTALL)
    calls = []
    for block in blocks:
        block = block.strip()
        if not block:
            continue
        try:
            obj = json.loads(block)
        except json.JSONDecodeError:
            obj = json.loads(repair_json(block))  # a truncated or slightly broken object
        if not isinstance(obj, dict) or not isinstance(obj.get("name"), str):
            continue
        args = obj.get("arguments", {})
        if isinstance(args, str):  # some servers and fine-tunes send the arguments as a JSON string
            args = json.loads(repair_json(args)) if args.strip() else {}
        if isinstance(args, dict):
            calls.append({"name": obj["name"], "arguments": args})
    if not calls:
        raise ParseError(f"no usable <tool_call> in the model's text: {text[:300]!r}")
    return calls


def thought_of(text: str) -> str:
    """The words before the first ``<tool_call>`` (the model's Thought/Action lines), stripped (05)."""
    return text.split("<tool_call>", 1)[0].strip()


# ---------------------------------------------------------------------------------------------
# Coordinates
# ---------------------------------------------------------------------------------------------


def to_css(coordinate: list[float], screen: Screen, scale: int) -> tuple[float, float]:
    """A model point on its declared ``scale`` x ``scale`` screen as CSS pixels of ``screen`` (05).

    The point is relative to the whole screenshot, so neither the device scale nor the processor's
    resize changes it; Playwright's mouse and touch take CSS pixels, so that is where it lands.
    """
    if not (isinstance(coordinate, (list, tuple)) and len(coordinate) == 2):
        raise ValueError(f"coordinate {coordinate!r}: expected [x, y]")
    x, y = (float(v) for v in coordinate)
    if not (0 <= x <= scale and 0 <= y <= scale):
        raise ValueError(f"coordinate {coordinate!r} is off the {scale}x{scale} screen")
    return x / scale * screen.width, y / scale * screen.height


def from_css(x: float, y: float, screen: Screen, scale: int) -> list[int]:
    """CSS pixels as a point on the model's ``scale`` x ``scale`` screen: the inverse of ``to_css`` (05)."""
    return [round(x / screen.width * scale), round(y / screen.height * scale)]


# ---------------------------------------------------------------------------------------------
# The executor: actions as Playwright calls
# ---------------------------------------------------------------------------------------------

KEY_NAMES = {"ctrl": "Control", "control": "Control", "alt": "Alt", "shift": "Shift", "cmd": "Meta",
             "super": "Meta", "meta": "Meta", "win": "Meta", "enter": "Enter", "return": "Enter",
             "esc": "Escape", "escape": "Escape", "tab": "Tab", "backspace": "Backspace",
             "delete": "Delete", "space": " ", "up": "ArrowUp", "down": "ArrowDown", "left": "ArrowLeft",
             "right": "ArrowRight", "pageup": "PageUp", "pagedown": "PageDown", "home": "Home", "end": "End"}
DESTRUCTIVE = "[data-destructive]"  # what the confirmation hook guards, as a CSS selector
MAX_WAIT_S = 3.0


@dataclass
class Outcome:
    """What one executed call did: ``point`` in CSS pixels, ``held`` when confirmation was refused (05)."""

    ok: bool
    point: tuple[float, float] | None = None
    error: str = ""
    held: bool = False
    done: bool = False
    status: str = ""
    answer: str = ""


async def perform(page: Any, screen: Screen, space: str, args: dict, cursor: list[float]) -> None:
    """Carry out one action's arguments with Playwright's mouse, touchscreen and keyboard (05).

    ``cursor`` holds the mouse position in CSS pixels (``left_click_drag`` starts there); it is
    updated in place, as a real cursor would move.
    """
    action, scale = args["action"], SCALE[space]
    point = to_css(args["coordinate"], screen, scale) if "coordinate" in args else None
    if point and action not in ("scroll", "hscroll", "swipe", "left_click_drag"):
        await page.mouse.move(*point)
        cursor[:] = point
    if action == "click" and screen.mobile:
        await page.touchscreen.tap(*point)
    elif action in ("click", "left_click"):
        await page.mouse.click(*point)
    elif action in ("right_click", "middle_click"):
        await page.mouse.click(*point, button=action.split("_")[0])
    elif action in ("double_click", "triple_click"):
        await page.mouse.click(*point, click_count=2 if action == "double_click" else 3)
    elif action == "long_press":
        await page.mouse.down()
        await asyncio.sleep(min(float(args.get("time", 1.0)), MAX_WAIT_S))
        await page.mouse.up()
    elif action == "swipe":  # the content follows the finger: a swipe up scrolls down
        end = to_css(args["coordinate2"], screen, scale)
        await page.mouse.move(*point)
        await page.mouse.wheel(point[0] - end[0], point[1] - end[1])
    elif action in ("scroll", "hscroll"):
        if point:
            await page.mouse.move(*point)
        pixels = float(args["pixels"])
        await page.mouse.wheel(pixels if action == "hscroll" else 0, -pixels if action == "scroll" else 0)
    elif action == "mouse_move":
        pass  # moved above
    elif action == "left_click_drag":  # from where the cursor is to `coordinate`
        await page.mouse.move(*cursor)
        await page.mouse.down()
        await page.mouse.move(*point, steps=8)
        await page.mouse.up()
        cursor[:] = point
    elif action == "type":
        await page.keyboard.type(str(args["text"]))
    elif action == "key":
        await page.keyboard.press("+".join(KEY_NAMES.get(k.lower(), k) for k in args["keys"]))
    elif action == "system_button":
        button = args["button"]
        if button == "Back":  # pop an in-app entry (pushState); never leave the app for the page before it
            if not await page.evaluate("history.state !== null"):
                raise ValueError("system_button 'Back': already on the app's first screen")
            await page.go_back()
        elif button == "Enter":
            await page.keyboard.press("Enter")
        else:
            raise ValueError(f"system_button {button!r}: a browser sandbox has no {button} button")
    elif action == "wait":
        await asyncio.sleep(min(float(args.get("time", 1.0)), MAX_WAIT_S))
    else:
        raise ValueError(f"action {action!r} has no mapping here")


async def execute(page: Any, call: dict, screen: Screen, allowed: tuple[str, ...],
                  confirm: Callable[[dict, str], Any], cursor: list[float],
                  destructive: str = DESTRUCTIVE) -> Outcome:
    """Run one parsed call: check the tool and the whitelist, hold a target matching ``destructive``
    until ``confirm(call, element)`` says yes, then ``perform`` it; errors become outcomes (05)."""
    from playwright.async_api import Error as BrowserError

    space, args = call["name"], call["arguments"]
    action = args.get("action")
    if space not in SCALE:
        return Outcome(False, error=f"unknown tool {space!r}")
    if action not in allowed:
        return Outcome(False, error=f"action {action!r} is not allowed here (allowed: {', '.join(allowed)})")
    if action == "terminate":
        return Outcome(True, done=True, status=str(args.get("status", "")))
    if action == "answer":
        return Outcome(True, answer=str(args.get("text", "")))
    try:
        point = to_css(args["coordinate"], screen, SCALE[space]) if "coordinate" in args else None
        if point and action not in ("mouse_move", "scroll", "hscroll", "swipe"):
            target = await page.evaluate(
                "([x, y, sel]) => { const e = document.elementFromPoint(x, y);"
                " const d = e && e.closest(sel); return d ? (d.dataset.name || d.textContent.trim()) : null; }",
                [point[0], point[1], destructive])
            if target is not None:
                approved = confirm(call, target)
                if inspect.isawaitable(approved):
                    approved = await approved
                if not approved:
                    return Outcome(False, point, error=f"held: {target!r} is destructive and was not approved", held=True)
        await perform(page, screen, space, args, cursor)
        await page.wait_for_timeout(100)  # let the app re-render before the next screenshot
        return Outcome(True, point)
    except (KeyError, TypeError, ValueError, BrowserError) as err:
        return Outcome(False, error=f"{type(err).__name__}: {err}")


def deny(call: dict, element: str) -> bool:
    """The default confirmation hook: hold every destructive action (05)."""
    return False


def approve(call: dict, element: str) -> bool:
    """A confirmation hook that approves and says so (for scripted runs you watch) (05)."""
    print(f"  confirm: {element!r} approved")
    return True


# ---------------------------------------------------------------------------------------------
# Tasks, read from the app's state
# ---------------------------------------------------------------------------------------------


def chat_of(state: dict, cid: str) -> dict:
    """The chat with id ``cid`` in an app state (``appState.chats``) (05)."""
    return next(c for c in state["chats"] if c["id"] == cid)


def unchanged_except(state: dict, initial: dict, changed: str) -> bool:
    """True when every chat but ``changed`` kept its pinned/muted/deleted/draft/messages (05)."""
    keys = ("pinned", "muted", "deleted", "draft", "messages")
    return all(all(c[k] == chat_of(initial, c["id"])[k] for k in keys) for c in state["chats"] if c["id"] != changed)


@dataclass(frozen=True)
class Task:
    """A task: the instruction the model reads, its success predicate on (state, initial state),
    and the reference plan (target names are the app's ``data-name`` values) (05)."""

    id: str
    instruction: str
    check: Callable[[dict, dict], bool]
    plan: tuple[tuple[str, str], ...]


TASKS = (
    Task("unpin", "Find the pinned chat 'Tech Exchange Group' and unpin it.",
         lambda s, i: not chat_of(s, "tech")["pinned"] and unchanged_except(s, i, "tech"),
         (("long_press", "chat Tech Exchange Group"), ("click", "menu Unpin"))),
    Task("pin", "Pin the chat with Mom.",
         lambda s, i: chat_of(s, "mom")["pinned"] and unchanged_except(s, i, "mom"),
         (("long_press", "chat Mom"), ("click", "menu Pin"))),
    Task("send", "Send the message 'See you at 7' to Bob Li.",
         lambda s, i: chat_of(s, "bob")["messages"][-1] == {"from": "me", "text": "See you at 7"} and unchanged_except(s, i, "bob"),
         (("click", "chat Bob Li"), ("click", "message box"), ("type", "See you at 7"), ("click", "send button"))),
    Task("mute", "Mute the group 'Hiking Club'.",
         lambda s, i: chat_of(s, "hiking")["muted"] and unchanged_except(s, i, "hiking"),
         (("long_press", "chat Hiking Club"), ("click", "menu Mute"))),
    Task("search", "Search for Zhang Wei and open the chat.",
         lambda s, i: "zhang" in s["search"].lower() and s["open"] == "zhang" and unchanged_except(s, i, ""),
         (("click", "search box"), ("type", "Zhang"), ("click", "chat Zhang Wei"))),
    Task("draft", "Delete the unsent draft in the chat with Carol Wu.",
         lambda s, i: chat_of(s, "carol")["draft"] == "" and not chat_of(s, "carol")["deleted"]
         and chat_of(s, "carol")["messages"] == chat_of(i, "carol")["messages"] and unchanged_except(s, i, "carol"),
         (("click", "chat Carol Wu"), ("click", "discard draft button"))),
    Task("delete", "Delete the chat 'Spam Offers'.",
         lambda s, i: chat_of(s, "spam")["deleted"] and unchanged_except(s, i, "spam"),
         (("long_press", "chat Spam Offers"), ("click", "menu Delete"))),
)


def task(task_id: str) -> Task:
    """The task with this id (``unpin``, ``pin``, ``send``, ``mute``, ``search``, ``draft``, ``delete``) (05)."""
    for t in TASKS:
        if t.id == task_id:
            return t
    raise KeyError(f"no task {task_id!r}; tasks: {', '.join(t.id for t in TASKS)}")


async def app_state(page: Any) -> dict:
    """A copy of the sandbox app's ``window.appState`` (05)."""
    return await page.evaluate("window.appSnapshot()")


async def open_app(page: Any, base_url: str) -> dict:
    """Load the messenger fresh (initial state) and return that state (05)."""
    await page.goto(base_url.rstrip("/") + "/index.html")
    await page.wait_for_function("window.appState !== undefined")
    return await app_state(page)


# ---------------------------------------------------------------------------------------------
# Policies: the reference (reads the DOM) and models
# ---------------------------------------------------------------------------------------------


@dataclass
class Observation:
    """What a policy sees at one step: the task, the history lines, the screenshot (PIL) and,
    for the reference policy only, the page (05)."""

    instruction: str
    history: list[str]
    screenshot: Any
    screen: Screen
    space: str
    page: Any = None
    step: int = 0
    task: Task | None = None


Policy = Callable[[Observation], Awaitable[str]]

_BOX_JS = """(name) => {
  const el = [...document.querySelectorAll('[data-name]')].find(e => e.dataset.name === name);
  if (!el) return null;
  const r = el.getBoundingClientRect();
  const cx = r.left + r.width / 2, cy = r.top + r.height / 2;
  const top = document.elementFromPoint(cx, cy);
  const visible = r.width > 0 && r.height > 0 && !!top && (el === top || el.contains(top));
  return {box: [r.left, r.top, r.right, r.bottom], visible};
}"""


async def element_box(page: Any, name: str) -> dict | None:
    """``{"box": [x1, y1, x2, y2], "visible": bool}`` in CSS pixels for the element with this
    ``data-name``; ``visible`` when its centre is not covered or scrolled away. None if absent (05)."""
    return await page.evaluate(_BOX_JS, name)


def tool_call_text(name: str, arguments: dict, thought: str = "") -> str:
    """A reply in the model's format: an optional thought, then one ``<tool_call>`` block (05)."""
    call = json.dumps({"name": name, "arguments": arguments}, ensure_ascii=False)
    return (f"Thought: {thought}\n" if thought else "") + f"<tool_call>\n{call}\n</tool_call>"


_DESKTOP_ACTION = {"click": "left_click", "long_press": "right_click"}


async def reference_policy(obs: Observation) -> str:
    """A REFERENCE, not a model: follows the task's plan, reading element boxes from the DOM, and
    answers in the model's format. It proves the executor and the scorers reach 100% (05)."""
    plan, space, screen = obs.task.plan, obs.space, obs.screen
    scale = SCALE[space]
    done = sum(1 for line in obs.history if not re.search(r'"action": "(swipe|scroll)"', line))
    if done >= len(plan):
        return tool_call_text(space, {"action": "terminate", "status": "success"}, "The task is done.")
    action, target = plan[done]
    if action == "type":
        return tool_call_text(space, {"action": "type", "text": target}, f"Type {target!r}.")
    found = await element_box(obs.page, target)
    if found is None:
        return tool_call_text(space, {"action": "terminate", "status": "failure"}, f"No {target!r} on screen.")
    x1, y1, x2, y2 = found["box"]
    if not found["visible"]:  # scrolled out of the list: swipe (or scroll) inside the list towards it
        lx1, ly1, lx2, ly2 = (await element_box(obs.page, "chat list"))["box"]
        lx, ly = (lx1 + lx2) / 2, (ly1 + ly2) / 2
        dy = 250 if y1 > ly else -250
        if space == "mobile_use":
            args = {"action": "swipe", "coordinate": from_css(lx, ly, screen, scale),
                    "coordinate2": from_css(lx, ly - dy, screen, scale)}
        else:
            args = {"action": "scroll", "coordinate": from_css(lx, ly, screen, scale), "pixels": -dy}
        return tool_call_text(space, args, f"{target!r} is off screen; scroll towards it.")
    point = from_css((x1 + x2) / 2, (y1 + y2) / 2, screen, scale)
    name = action if space == "mobile_use" else _DESKTOP_ACTION.get(action, action)
    args = {"action": name, "coordinate": point}
    if name == "long_press":
        args["time"] = 0.8  # the app opens its menu after 0.5 s
    return tool_call_text(space, args, f"{action} {target!r}.")


def transformers_policy(model: Any, processor: Any, tool: dict, max_new_tokens: int, image_tokens: int) -> Policy:
    """A policy backed by a local transformers model: the tool goes through the chat template (05)."""
    import torch

    async def policy(obs: Observation) -> str:
        messages = agent_messages(obs.instruction, obs.history, obs.screenshot, image_tokens)
        inputs = processor.apply_chat_template(
            messages, tools=[tool], add_generation_prompt=True,
            tokenize=True, return_dict=True, return_tensors="pt",
        ).to(model.device)
        with torch.inference_mode():
            out = model.generate(**inputs, max_new_tokens=max_new_tokens, do_sample=False)
        new = out[0, inputs["input_ids"].shape[1]:]  # trim the prompt
        return processor.decode(new, skip_special_tokens=True)

    return policy


def openai_policy(client: Any, model: str, tool: dict, max_tokens: int, image_tokens: int) -> Policy:
    """A policy backed by any OpenAI-compatible server: the tool goes as OpenAI ``tools`` (05).

    A server started with a tool-call parser (vLLM: ``--tool-call-parser hermes``) returns
    ``message.tool_calls``; they are written back as ``<tool_call>`` blocks so one parser reads both.
    """
    from cookbook.messages import to_openai

    async def policy(obs: Observation) -> str:
        messages = agent_messages(obs.instruction, obs.history, obs.screenshot, image_tokens)
        response = client.chat.completions.create(
            model=model, messages=to_openai(messages), tools=[tool], max_tokens=max_tokens, temperature=0.0,
        )
        message = response.choices[0].message
        text = message.content or ""
        for call in message.tool_calls or []:  # arguments arrive as a JSON string; the parser decodes it
            block = json.dumps({"name": call.function.name, "arguments": call.function.arguments}, ensure_ascii=False)
            text += f"\n<tool_call>\n{block}\n</tool_call>"
        return text

    return policy


def history_line(text: str, calls: list[dict]) -> str:
    """One ``Task progress`` entry: the model's ``Action:`` line if it wrote one, else the call's JSON (05)."""
    m = re.search(r"Action:\s*(.+)", text)
    if m:
        return m.group(1).strip()
    return "; ".join(json.dumps(c["arguments"], ensure_ascii=False) for c in calls)


# ---------------------------------------------------------------------------------------------
# The loop and its trajectory
# ---------------------------------------------------------------------------------------------


@dataclass
class Step:
    """One step of a trajectory: screenshot file, the policy's text, its calls and what they did (05)."""

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
    """A run of one task: its steps, the final app state, and whether the task's predicate holds (05)."""

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
        data = asdict(self)
        path.write_text(json.dumps(data, indent=1, ensure_ascii=False))
        return path


def load_trajectory(folder: str | Path) -> Trajectory:
    """Read a trajectory written by ``Trajectory.save`` (05)."""
    data = json.loads((Path(folder) / "trajectory.json").read_text())
    steps = [Step(**s) for s in data.pop("steps")]
    return Trajectory(**data, steps=steps)


async def screenshot(page: Any, path: str | Path | None = None) -> Any:
    """The page as a PIL image in device pixels (what a phone's screenshot would be); the PNG is
    also written to ``path`` when one is given (05)."""
    import io

    from PIL import Image

    png = await page.screenshot()
    if path is not None:
        Path(path).write_bytes(png)
    return Image.open(io.BytesIO(png)).convert("RGB")


async def run_task(page: Any, base_url: str, the_task: Task, policy: Policy, out_dir: str | Path, *,
                   screen: Screen, space: str = "mobile_use", max_steps: int = 10,
                   allowed: tuple[str, ...] | None = None, confirm: Callable[[dict, str], Any] = deny,
                   destructive: str = DESTRUCTIVE, policy_name: str = "") -> Trajectory:
    """Screenshot, policy, parse, execute, repeat until ``terminate`` or ``max_steps``; every step
    (screenshot PNG and JSON) is written to ``out_dir``; success is read from the app's state (05)."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    initial = await open_app(page, base_url)
    allowed = allowed or (MOBILE_ACTIONS if space == "mobile_use" else COMPUTER_ACTIONS)
    traj = Trajectory(the_task.id, the_task.instruction, asdict(screen), space,
                      policy_name or getattr(policy, "__name__", type(policy).__name__), folder=str(out))
    history: list[str] = []
    cursor = [screen.width / 2, screen.height / 2]
    for i in range(max_steps):
        name = f"step_{i:02d}.png"
        shot = await screenshot(page, out / name)
        t0 = time.perf_counter()
        text = await policy(Observation(the_task.instruction, list(history), shot, screen, space, page, i, the_task))
        try:
            calls = parse_tool_calls(text)
        except ParseError as err:  # a failed step, not a crash: the model gets another turn
            traj.steps.append(Step(i, name, text, thought_of(text), [], None, False, str(err),
                                   seconds=time.perf_counter() - t0))
            history.append("(no valid action)")
            continue
        outcomes = []
        for call in calls:
            outcomes.append(await execute(page, call, screen, allowed, confirm, cursor, destructive))
            if outcomes[-1].done or not outcomes[-1].ok:
                break
        point = next((list(o.point) for o in outcomes if o.point), None)
        errors = "; ".join(o.error for o in outcomes if o.error)
        traj.steps.append(Step(i, name, text, thought_of(text), calls, point, all(o.ok for o in outcomes),
                               errors, any(o.held for o in outcomes), time.perf_counter() - t0))
        history.append(history_line(text, calls))
        if outcomes and outcomes[-1].done:
            traj.terminated = outcomes[-1].status
            break
    await screenshot(page, out / "final.png")
    traj.final_state = await app_state(page)
    traj.success = bool(the_task.check(traj.final_state, initial))
    traj.save(out)
    return traj


def success_rate(trajectories: list[Trajectory]) -> float:
    """The share of trajectories whose task predicate held at the end (AndroidWorld/OSWorld style) (05)."""
    return sum(t.success for t in trajectories) / len(trajectories) if trajectories else 0.0


# ---------------------------------------------------------------------------------------------
# ScreenSpot-style grounding
# ---------------------------------------------------------------------------------------------

_TARGETS_JS = """() => [...document.querySelectorAll('[data-name]')].map(el => {
  const r = el.getBoundingClientRect();
  const top = document.elementFromPoint(r.left + r.width / 2, r.top + r.height / 2);
  const visible = r.width > 0 && r.height > 0 && r.bottom <= innerHeight && r.right <= innerWidth
                  && !!top && (el === top || el.contains(top));
  return {name: el.dataset.name, box: [r.left, r.top, r.right, r.bottom], visible};
}).filter(t => t.visible)"""


async def grounding_targets(page: Any) -> list[dict]:
    """Every named element fully on screen and not covered: ``{"name", "box"}`` in CSS pixels (05)."""
    targets = await page.evaluate(_TARGETS_JS)
    return [{"name": t["name"], "box": t["box"]} for t in targets if t["name"] not in ("chat list",)]


def click_instruction(name: str) -> str:
    """The "click X" instruction for a target name (``chat Bob Li`` -> 'Click the chat with "Bob Li".') (05)."""
    if name.startswith("chat "):
        return f'Click the chat with "{name[5:]}".'
    if name.startswith("menu "):
        return f'Click "{name[5:]}" in the menu.'
    return f"Click the {name}."


def hit(point: tuple[float, float] | list[float] | None, box: list[float]) -> bool:
    """ScreenSpot's rule: a hit when the point lies inside the element's box (edges included) (05)."""
    if point is None:
        return False
    x, y = point
    x1, y1, x2, y2 = box
    return x1 <= x <= x2 and y1 <= y <= y2


def predicted_point(text: str, screen: Screen) -> tuple[float, float] | None:
    """The first call's ``coordinate`` in CSS pixels, or None (unparsable counts as a miss) (05)."""
    try:
        calls = parse_tool_calls(text)
        call = next(c for c in calls if "coordinate" in c["arguments"])
        return to_css(call["arguments"]["coordinate"], screen, SCALE.get(call["name"], 1000))
    except (ParseError, StopIteration, ValueError, TypeError):
        return None


def reference_locator(target: dict, screen: Screen, space: str) -> str:
    """A REFERENCE answer for a grounding target: the centre of its DOM box, as a tool call (05)."""
    x1, y1, x2, y2 = target["box"]
    action = "click" if space == "mobile_use" else "left_click"
    return tool_call_text(space, {"action": action, "coordinate": from_css((x1 + x2) / 2, (y1 + y2) / 2, screen, SCALE[space])})


async def grounding_eval(page: Any, screen: Screen, locate: Callable[[str, Any, dict], Any],
                         space: str = "mobile_use") -> dict:
    """Ask ``locate(instruction, screenshot, target)`` for each target on the current screen and score
    hits; returns ``{"accuracy", "rows"}``. ``locate`` may be sync or async and returns the text (05)."""
    shot = await screenshot(page)
    rows = []
    for target in await grounding_targets(page):
        instruction = click_instruction(target["name"])
        text = locate(instruction, shot, target)
        if inspect.isawaitable(text):
            text = await text
        point = predicted_point(text, screen)
        rows.append({"target": target["name"], "point": None if point is None else [round(v) for v in point],
                     "box": [round(v) for v in target["box"]], "hit": hit(point, target["box"])})
    return {"accuracy": sum(r["hit"] for r in rows) / len(rows) if rows else 0.0, "rows": rows}


# ---------------------------------------------------------------------------------------------
# Replay: annotated frames and a GIF
# ---------------------------------------------------------------------------------------------


def annotate(image: Any, step: Step, screen: Screen, width: int = 360, label: str | None = None) -> Any:
    """A screenshot scaled to ``width`` with the step's point (a red ring) and its action (or
    ``label``) written on top (05)."""
    from PIL import Image, ImageDraw, ImageFont

    img = image.convert("RGB")
    img = img.resize((width, round(img.height * width / img.width)), Image.Resampling.LANCZOS)
    draw = ImageDraw.Draw(img)
    k = width / screen.width  # CSS pixels -> frame pixels
    if step.point:
        x, y = step.point[0] * k, step.point[1] * k
        r = max(8, width // 30)
        draw.ellipse((x - r, y - r, x + r, y + r), outline=(230, 30, 30), width=3)
        draw.ellipse((x - 3, y - 3, x + 3, y + 3), fill=(230, 30, 30))
    args = step.calls[0]["arguments"] if step.calls else {}
    if label is None:
        label = f"{step.index}: " + (", ".join(f"{k2}={v}" for k2, v in args.items()) if args else "no valid action")
    if step.held:
        label += "  [HELD]"
    font = ImageFont.load_default(size=max(11, width // 28))
    box = draw.textbbox((6, 0), label, font=font)
    draw.rectangle((0, 0, img.width, box[3] + 8), fill=(0, 0, 0))
    draw.text((6, 4), label, fill=(255, 255, 255) if step.ok else (255, 120, 120), font=font)
    return img


def replay(trajectory: Trajectory, width: int = 360) -> list[Any]:
    """The trajectory's screenshots as annotated frames, plus the final screen (05)."""
    from PIL import Image

    folder, screen = Path(trajectory.folder), Screen(**trajectory.screen)
    frames = []
    for step in trajectory.steps:
        with Image.open(folder / step.screenshot) as img:
            frames.append(annotate(img, step, screen, width))
    with Image.open(folder / "final.png") as img:
        end = Step(len(trajectory.steps), "final.png", "", "", [], None, True)
        verdict = "success" if trajectory.success else "not done"
        frame = annotate(img, end, screen, width, label=f"end: {verdict} (read from the app's state)")
    frames.append(frame)
    return frames


def save_gif(frames: list[Any], path: str | Path, ms_per_frame: int = 900) -> Path:
    """Write frames as an animated GIF that loops (05)."""
    path = Path(path)
    frames[0].save(path, save_all=True, append_images=frames[1:], duration=ms_per_frame, loop=0)
    return path
