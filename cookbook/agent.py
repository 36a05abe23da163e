"""A GUI agent: Qwen3-VL operates a messenger in a real browser, and is scored (05_gui_agent).

The parts, in the order the notebook teaches them:

- the official action spaces as tool definitions: ``mobile_use`` (a 999x999 screen, as the Qwen3-VL
  mobile-agent cookbook declares) and ``computer_use`` (1000x1000, the computer-use cookbook);
- the prompt in the mobile-agent cookbook's format (system prompt, tools, ``Task progress`` history);
- ``parse_tool_calls``: the model's ``<tool_call>`` blocks (Qwen3-VL's JSON or Qwen3.5's XML) as
  ``{"name", "arguments"}`` dicts;
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
import math
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
    """The ``mobile_use`` function as an OpenAI-style tool, word for word as the official mobile-agent
    cookbook declares it (QwenLM/Qwen3-VL ``cookbooks/mobile_agent.ipynb``, commit 9e7b8cc) (05)."""
    required = "Required only by `action={}`."
    return {"type": "function", "function": {
        "name": "mobile_use",
        "description": (
            "Use a touchscreen to interact with a mobile device, and take screenshots.\n"
            "* This is an interface to a mobile device with touchscreen. You can perform actions like clicking, "
            "typing, swiping, etc.\n"
            "* Some applications may take time to start or process actions, so you may need to wait and take "
            "successive screenshots to see the results of your actions.\n"
            f"* The screen's resolution is {scale}x{scale}.\n"
            "* Make sure to click any buttons, links, icons, etc with the cursor tip in the center of the element. "
            "Don't click boxes on their edges unless asked."),
        "parameters": {"properties": {
            "action": {"description": (
                "The action to perform. The available actions are:\n"
                "* `click`: Click the point on the screen with coordinate (x, y).\n"
                "* `long_press`: Press the point on the screen with coordinate (x, y) for specified seconds.\n"
                "* `swipe`: Swipe from the starting point with coordinate (x, y) to the end point with "
                "coordinates2 (x2, y2).\n"
                "* `type`: Input the specified text into the activated input box.\n"
                "* `answer`: Output the answer.\n"
                "* `system_button`: Press the system button.\n"
                "* `wait`: Wait specified seconds for the change to happen.\n"
                "* `terminate`: Terminate the current task and report its completion status."),
                "enum": list(MOBILE_ACTIONS), "type": "string"},
            "coordinate": {"description": "(x, y): The x (pixels from the left edge) and y (pixels from the top "
                           "edge) coordinates to move the mouse to. Required only by `action=click`, "
                           "`action=long_press`, and `action=swipe`.", "type": "array"},
            "coordinate2": {"description": "(x, y): The x (pixels from the left edge) and y (pixels from the top "
                            "edge) coordinates to move the mouse to. " + required.format("swipe"), "type": "array"},
            "text": {"description": "Required only by `action=type` and `action=answer`.", "type": "string"},
            "time": {"description": "The seconds to wait. Required only by `action=long_press` and `action=wait`.",
                     "type": "number"},
            "button": {"description": "Back means returning to the previous interface, Home means returning to the "
                       "desktop, Menu means opening the application background menu, and Enter means pressing the "
                       "enter. Required only by `action=system_button`",
                       "enum": ["Back", "Home", "Menu", "Enter"], "type": "string"},
            "status": {"description": "The status of the task. " + required.format("terminate"), "type": "string",
                       "enum": ["success", "failure"]},
        }, "required": ["action"], "type": "object"},
    }}


def computer_use_tool(scale: int = 1000) -> dict[str, Any]:
    """The ``computer_use`` function as an OpenAI-style tool, its texts word for word as the official
    ``ComputerUse`` (QwenLM/Qwen3-VL ``cookbooks/utils/agent_function_call.py``, commit 0dcc180) (05)."""
    actions = (
        "* `key`: Performs key down presses on the arguments passed in order, then performs key releases in "
        "reverse order.\n"
        "* `type`: Type a string of text on the keyboard.\n"
        "* `mouse_move`: Move the cursor to a specified (x, y) pixel coordinate on the screen.\n"
        "* `left_click`: Click the left mouse button at a specified (x, y) pixel coordinate on the screen.\n"
        "* `left_click_drag`: Click and drag the cursor to a specified (x, y) pixel coordinate on the screen.\n"
        "* `right_click`: Click the right mouse button at a specified (x, y) pixel coordinate on the screen.\n"
        "* `middle_click`: Click the middle mouse button at a specified (x, y) pixel coordinate on the screen.\n"
        "* `double_click`: Double-click the left mouse button at a specified (x, y) pixel coordinate on the "
        "screen.\n"
        "* `triple_click`: Triple-click the left mouse button at a specified (x, y) pixel coordinate on the "
        "screen (simulated as double-click since it's the closest action).\n"
        "* `scroll`: Performs a scroll of the mouse scroll wheel.\n"
        "* `hscroll`: Performs a horizontal scroll (mapped to regular scroll).\n"
        "* `wait`: Wait specified seconds for the change to happen.\n"
        "* `terminate`: Terminate the current task and report its completion status.\n"
        "* `answer`: Answer a question."
    )
    return {"type": "function", "function": {
        "name": "computer_use",
        "description": (
            "Use a mouse and keyboard to interact with a computer, and take screenshots.\n"
            "* This is an interface to a desktop GUI. You do not have access to a terminal or applications menu. "
            "You must click on desktop icons to start applications.\n"
            "* Some applications may take time to start or process actions, so you may need to wait and take "
            "successive screenshots to see the results of your actions. E.g. if you click on Firefox and a window "
            "doesn't open, try wait and taking another screenshot.\n"
            f"* The screen's resolution is {scale}x{scale}.\n"
            "* Whenever you intend to move the cursor to click on an element like an icon, you should consult a "
            "screenshot to determine the coordinates of the element before moving the cursor.\n"
            "* If you tried clicking on a program or link but it failed to load, even after waiting, try adjusting "
            "your cursor position so that the tip of the cursor visually falls on the element that you want to "
            "click.\n"
            "* Make sure to click any buttons, links, icons, etc with the cursor tip in the center of the element. "
            "Don't click boxes on their edges."),
        "parameters": {"properties": {
            "action": {"description": "The action to perform. The available actions are:\n" + actions,
                       "enum": list(COMPUTER_ACTIONS), "type": "string"},
            "keys": {"description": "Required only by `action=key`.", "type": "array"},
            "text": {"description": "Required only by `action=type` and `action=answer`.", "type": "string"},
            "coordinate": {"description": "(x, y): The x (pixels from the left edge) and y (pixels from the top "
                           "edge) coordinates to move the mouse to.", "type": "array"},
            "pixels": {"description": "The amount of scrolling to perform. Positive values scroll up, negative "
                       "values scroll down. Required only by `action=scroll` and `action=hscroll`.", "type": "number"},
            "time": {"description": "The seconds to wait. Required only by `action=wait`.", "type": "number"},
            "status": {"description": "The status of the task. Required only by `action=terminate`.",
                       "type": "string", "enum": ["success", "failure"]},
        }, "required": ["action"], "type": "object"},
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

# The mobile-agent cookbook's system prompt around the tool, word for word (QwenLM/Qwen3-VL
# cookbooks/mobile_agent.ipynb, commit 9e7b8cc): no "You are a helpful assistant." line, the tool in
# <tools>, the <tool_call> format, then the "# Response format" block.
TOOLS_PROMPT = ("\n\n# Tools\n\nYou may call one or more functions to assist with the user query.\n\n"
                "You are provided with function signatures within <tools></tools> XML tags:\n<tools>\n")
CALL_FORMAT = ("\n</tools>\n\nFor each function call, return a json object with function name and arguments "
               "within <tool_call></tool_call> XML tags:\n<tool_call>\n"
               '{"name": <function-name>, "arguments": <args-json-object>}\n</tool_call>')
RESPONSE_FORMAT = (
    "\n\n# Response format\n\nResponse format for every step:\n"
    "1) Thought: one concise sentence explaining the next move (no multi-step reasoning).\n"
    "2) Action: a short imperative describing what to do in the UI.\n"
    "3) A single <tool_call>...</tool_call> block containing only the JSON: "
    '{"name": <function-name>, "arguments": <args-json-object>}.\n\n'
    "Rules:\n- Output exactly in the order: Thought, Action, <tool_call>.\n"
    "- Be brief: one sentence for Thought, one for Action.\n"
    "- Do not output anything else outside those three parts.\n"
    "- If finishing, use action=terminate in the tool call.")


def task_prompt(instruction: str, history: list[str]) -> str:
    """The user turn's text: the query and the steps done so far, as the mobile-agent cookbook writes
    them (each step with its newlines and double quotes removed, as that cookbook does) (05)."""
    done = "".join(f"Step {i}: {step.replace(chr(10), '').replace(chr(34), '')}; " for i, step in enumerate(history, 1))
    return (f"The user query: {instruction}\n"
            f"Task progress (You have done the following operation on the current device): {done}")


def system_prompt(tool: dict[str, Any]) -> str:
    """The official mobile-agent system prompt for ``tool``: the tool as JSON in ``<tools>``, the
    ``<tool_call>`` format and the "# Response format" block (Thought, Action, one call) (05)."""
    return TOOLS_PROMPT + json.dumps(tool) + CALL_FORMAT + RESPONSE_FORMAT


def agent_messages(instruction: str, history: list[str], screenshot: Any, image_tokens: int,
                   tool: dict[str, Any]) -> list[dict[str, Any]]:
    """The official system prompt for ``tool``, then one user turn: query, history as text, and only
    the latest screenshot (05). The tool is in the system text: pass no ``tools=`` besides."""
    from cookbook.kit import messages

    return [messages.system(system_prompt(tool)),
            messages.user(task_prompt(instruction, history), messages.image(screenshot, max_tokens=image_tokens))]


# ---------------------------------------------------------------------------------------------
# Parsing the model's tool calls
# ---------------------------------------------------------------------------------------------


class ParseError(ValueError):
    """The model's text holds no usable tool call; the message quotes the text (05)."""


def misfit(arguments: dict, tool: dict[str, Any]) -> str | None:
    """Why ``arguments`` do not fit ``tool``'s parameters, or None (05): a missing or unknown
    ``action``, a parameter its description says the action requires ("Required only by
    `action=click`"), a wrong JSON type or enum value, an "(x, y)" point that is not two numbers."""
    params = tool["function"]["parameters"]
    props = params.get("properties", {})
    for key in params.get("required", []):
        if key not in arguments:
            return f"`{key}` is missing"
    action = arguments.get("action")
    kinds = {"array": list, "string": str, "number": (int, float), "integer": int, "object": dict}
    for key, spec in props.items():
        desc = spec.get("description", "")
        if key not in arguments:
            if action in re.findall(r"`action=(\w+)`", desc.split("Required", 1)[-1]) and "Required" in desc:
                return f"`{key}` is required by action={action}"
            continue
        value = arguments[key]
        kind = kinds.get(spec.get("type"))
        if kind and (not isinstance(value, kind) or isinstance(value, bool)):
            return f"`{key}` should be a JSON {spec['type']}, got {value!r}"
        if "enum" in spec and value not in spec["enum"]:
            return f"`{key}` is {value!r}, not one of {spec['enum']}"
        if desc.startswith("(x, y)") and not (len(value) == 2 and all(
                isinstance(v, (int, float)) and not isinstance(v, bool) for v in value)):
            return f"`{key}` should be two numbers (x, y), got {value!r}"
    return None


def xml_call(block: str, tool: dict[str, Any] | None) -> dict | None:
    """One Qwen3.5-style call, ``<function=NAME><parameter=KEY>value</parameter>...</function>``, as
    ``{"name", "arguments"}`` (05, 14). A value is text; where the tool does not declare it a string,
    JSON text becomes its JSON value (``[540, 1200]`` a list), as vLLM's ``qwen3_coder`` parser does."""
    head = re.match(r"<function=([^>\n]+)>", block)
    if head is None:
        return None
    props = (tool or {}).get("function", {}).get("parameters", {}).get("properties", {})
    args: dict[str, Any] = {}
    for key, value in re.findall(
            r"<parameter=([^>\n]+)>\n?(.*?)\n?(?:</parameter>|(?=<parameter=)|</function>|$)",
            block[head.end():], flags=re.DOTALL):
        key = key.strip()
        if props.get(key, {}).get("type") != "string":
            try:
                value = json.loads(value)
            except json.JSONDecodeError:
                pass  # plain text stays text
        args[key] = value
    return {"name": head.group(1).strip(), "arguments": args}


def parse_tool_calls(text: str, tools: list[dict[str, Any]] | None = None) -> list[dict]:
    """Every ``<tool_call>`` in a reply as ``{"name": ..., "arguments": {...}}``, in order (05): after a
    Thought/Action preamble, several per reply, arguments as a JSON string, the last one cut off by the
    budget (json-repair), or in Qwen3.5's XML (``xml_call``). Each call must fit its tool's schema
    (``tools``; by default the official ``mobile_use`` and ``computer_use``, other names unchecked): a
    misfit such as a repaired ``"coordinate": [500]``, or no usable call, raises ``ParseError`` quoting the text."""
    from json_repair import repair_json

    from cookbook.kit.replies import json_ready

    text = json_ready(text, ParseError)  # a string, bounded, nested shallowly enough to decode
    by_name = {t["function"]["name"]: t for t in tools} if tools is not None else \
        {name: tool_for(name) for name in SCALE}
    blocks = re.findall(r"<tool_call>(.*?)(?:</tool_call>|$)", text, flags=re.DOTALL)
    calls = []
    for block in blocks:
        block = block.strip()
        if not block:
            continue
        if block.startswith("<function="):  # Qwen3.5, 3.6, 3.8: XML, not JSON
            name = re.match(r"<function=([^>\n]*)", block).group(1).strip()
            call = xml_call(block, by_name.get(name))
            if call is not None:
                calls.append(call)
            continue
        try:
            obj = json.loads(block)
        except json.JSONDecodeError:  # a truncated or slightly broken object; prose repairs to ""
            try:
                obj = repair_json(block, return_objects=True)
            except (ValueError, RecursionError):  # json-repair recurses on runs of "/" as well
                continue
        if not isinstance(obj, dict) or not isinstance(obj.get("name"), str):
            continue
        args = obj.get("arguments", {})
        if isinstance(args, str):  # some servers and fine-tunes send the arguments as a JSON string
            try:
                args = repair_json(args, return_objects=True) if args.strip() else {}
            except (ValueError, RecursionError):
                continue
        if isinstance(args, dict):
            calls.append({"name": obj["name"], "arguments": args})
    if not calls:
        raise ParseError(f"no usable <tool_call> in the model's text: {text[:300]!r}")
    for call in calls:
        problem = misfit(call["arguments"], by_name[call["name"]]) if call["name"] in by_name else None
        if problem:
            raise ParseError(f"a {call['name']} call that does not fit the tool ({problem}): {text[:300]!r}")
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
    try:
        x, y = (float(v) for v in coordinate)
    except (TypeError, ValueError, OverflowError) as err:  # text, null, an integer too big for a float
        raise ValueError(f"coordinate {coordinate!r:.80}: expected two numbers ({err})") from err
    if not (0 <= x <= scale and 0 <= y <= scale):  # NaN fails this test too
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
MAX_SCROLL_PX = 5000.0  # one scroll or hscroll moves the wheel at most this far
MAX_TEXT_CHARS = 2000  # one type action types at most this many characters


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


def number(args: dict, key: str, default: float | None, low: float, high: float) -> float:
    """The model's ``args[key]`` (``default`` when absent) as a float capped to [low, high]; a
    ``ValueError`` naming the key for NaN, infinity or anything that is not a number (05)."""
    value = args.get(key, default)
    try:
        x = math.nan if isinstance(value, bool) else float(value)
    except (TypeError, ValueError, OverflowError):
        x = math.nan
    if not math.isfinite(x):  # asyncio.sleep(nan) never returns
        raise ValueError(f"{key}={value!r:.60}: expected a finite number")
    return min(max(x, low), high)


async def perform(page: Any, screen: Screen, space: str, args: dict, cursor: list[float]) -> None:
    """Carry out one action's arguments with Playwright's mouse, touchscreen and keyboard (05).

    ``cursor`` holds the mouse position in CSS pixels (``left_click_drag`` starts there); it is
    updated in place, as a real cursor would move.
    """
    action, scale = args["action"], SCALE[space]
    point = to_css(args["coordinate"], screen, scale) if "coordinate" in args else None
    if point is None and action in ("click", "left_click", "right_click", "middle_click", "double_click",
                                    "triple_click", "long_press", "swipe", "mouse_move", "left_click_drag"):
        raise ValueError(f"{action} needs `coordinate` [x, y]")
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
        hold = number(args, "time", 1.0, 0.0, MAX_WAIT_S)  # checked before the button goes down
        await page.mouse.down()
        await asyncio.sleep(hold)
        await page.mouse.up()
    elif action == "swipe":  # the content follows the finger: a swipe up scrolls down
        if "coordinate2" not in args:
            raise ValueError("swipe needs `coordinate2` [x2, y2], where the finger lifts")
        end = to_css(args["coordinate2"], screen, scale)
        await page.mouse.move(*point)
        await page.mouse.wheel(point[0] - end[0], point[1] - end[1])
    elif action in ("scroll", "hscroll"):
        if point:
            await page.mouse.move(*point)
        pixels = number(args, "pixels", None, -MAX_SCROLL_PX, MAX_SCROLL_PX)
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
        if "text" not in args:
            raise ValueError("type needs `text`")
        text = str(args["text"])
        if len(text) > MAX_TEXT_CHARS:  # typed a key at a time, a megabyte would take hours
            raise ValueError(f"text of {len(text)} characters: at most {MAX_TEXT_CHARS} per type action")
        await page.keyboard.type(text)
    elif action == "key":
        keys = args.get("keys")
        if not (isinstance(keys, list) and keys and all(isinstance(k, str) and k for k in keys)):
            raise ValueError(f"keys={keys!r:.60}: expected a list of key names, such as [\"ctrl\", \"a\"]")
        await page.keyboard.press("+".join(KEY_NAMES.get(k.lower(), k) for k in keys))
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
        await asyncio.sleep(number(args, "time", 1.0, 0.0, MAX_WAIT_S))
    else:
        raise ValueError(f"action {action!r} has no mapping here")


async def execute(page: Any, call: dict, screen: Screen, allowed: tuple[str, ...],
                  confirm: Callable[[dict, str], Any], cursor: list[float],
                  destructive: str = DESTRUCTIVE) -> Outcome:
    """Run one parsed call: check the tool and the whitelist, hold a target matching ``destructive``
    until ``confirm(call, element)`` says yes, then ``perform`` it; every error becomes an outcome (05)."""
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
    except Exception as err:  # noqa: BLE001 - whatever a reply breaks fails this call, never the loop
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
    """A policy backed by a local transformers model: the tool goes in the official system prompt (05)."""
    import torch

    async def policy(obs: Observation) -> str:
        messages = agent_messages(obs.instruction, obs.history, obs.screenshot, image_tokens, tool)
        inputs = processor.apply_chat_template(
            messages, add_generation_prompt=True, tokenize=True, return_dict=True, return_tensors="pt",
        ).to(model.device)
        with torch.inference_mode():
            out = model.generate(**inputs, max_new_tokens=max_new_tokens, do_sample=False)
        new = out[0, inputs["input_ids"].shape[1]:]  # trim the prompt
        return processor.decode(new, skip_special_tokens=True)

    return policy


def openai_policy(client: Any, model: str, tool: dict, max_tokens: int, image_tokens: int) -> Policy:
    """A policy backed by any OpenAI-compatible server: the tool goes in the official system prompt,
    as the mobile-agent cookbook sends it, and the calls come back as ``<tool_call>`` text (05).

    Should a server return ``message.tool_calls`` anyway, they are written back as ``<tool_call>``
    blocks, so one parser reads both.
    """
    from cookbook.kit.messages import to_openai

    async def policy(obs: Observation) -> str:
        messages = agent_messages(obs.instruction, obs.history, obs.screenshot, image_tokens, tool)
        response = client.chat.completions.create(
            model=model, messages=to_openai(messages), max_tokens=max_tokens, temperature=0.0,
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


MAX_NESTING = 8  # a real reply nests 4 deep: [{"arguments": {"coordinate": [x, y]}}]


def nesting(value: Any, limit: int) -> int:
    """How deep lists and dicts nest in ``value``, counted level by level without recursion, and
    no further than ``limit + 1`` (05)."""
    depth, level = 0, [value]
    while depth <= limit:
        containers = [item for item in level if isinstance(item, (list, dict))]
        if not containers:
            break
        depth += 1
        level = [v for c in containers for v in (c.values() if isinstance(c, dict) else c)]
    return depth


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
            if not isinstance(text, str):
                raise TypeError(f"the policy returned {type(text).__name__}, not the reply's text")
            calls = parse_tool_calls(text)
            if nesting(calls, MAX_NESTING) > MAX_NESTING:  # too deep to save (RecursionError in asdict)
                raise ValueError(f"a tool call nested more than {MAX_NESTING} levels deep")
        except Exception as err:  # noqa: BLE001 - any unusable reply is a failed step, never a crash
            text = text if isinstance(text, str) else repr(text)
            error = str(err) if isinstance(err, ParseError) else f"{type(err).__name__}: {str(err)[:300]}"
            traj.steps.append(Step(i, name, text, thought_of(text), [], None, False, error,
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
    except Exception:  # noqa: BLE001 - any reply that gives no point is a miss
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
