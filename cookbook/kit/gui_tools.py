"""The official Qwen3-VL action spaces of 05 as OpenAI-style tools, and the mobile-agent cookbook's
prompt texts, word for word (QwenLM/Qwen3-VL ``cookbooks/mobile_agent.ipynb``, commit 9e7b8cc, and
``cookbooks/utils/agent_function_call.py``, commit 0dcc180)."""

from __future__ import annotations

import json
from typing import Any

MOBILE_ACTIONS = ("click", "long_press", "swipe", "type", "answer", "system_button", "wait", "terminate")
COMPUTER_ACTIONS = ("key", "type", "mouse_move", "left_click", "left_click_drag", "right_click", "middle_click",
                    "double_click", "triple_click", "scroll", "hscroll", "wait", "terminate", "answer")
SCALE = {"mobile_use": 999, "computer_use": 1000}  # the screen size each tool declares to the model
POINT = ("(x, y): The x (pixels from the left edge) and y (pixels from the top edge) coordinates to move the "
         "mouse to.")
STATUS = {"description": "The status of the task. Required only by `action=terminate`.", "type": "string",
          "enum": ["success", "failure"]}
TEXT = {"description": "Required only by `action=type` and `action=answer`.", "type": "string"}
CLICK_CENTRE = "* Make sure to click any buttons, links, icons, etc with the cursor tip in the center of the element. "
WAIT_AND_SEE = ("* Some applications may take time to start or process actions, so you may need to wait and take "
                "successive screenshots to see the results of your actions.")


def mobile_use_tool(scale: int = 999) -> dict[str, Any]:
    """``mobile_use`` as the official mobile-agent cookbook declares it."""
    actions = (
        "* `click`: Click the point on the screen with coordinate (x, y).\n"
        "* `long_press`: Press the point on the screen with coordinate (x, y) for specified seconds.\n"
        "* `swipe`: Swipe from the starting point with coordinate (x, y) to the end point with coordinates2 (x2, y2).\n"
        "* `type`: Input the specified text into the activated input box.\n* `answer`: Output the answer.\n"
        "* `system_button`: Press the system button.\n* `wait`: Wait specified seconds for the change to happen.\n"
        "* `terminate`: Terminate the current task and report its completion status.")
    return {"type": "function", "function": {
        "name": "mobile_use",
        "description": (
            "Use a touchscreen to interact with a mobile device, and take screenshots.\n* This is an interface to a "
            "mobile device with touchscreen. You can perform actions like clicking, typing, swiping, etc.\n"
            f"{WAIT_AND_SEE}\n* The screen's resolution is {scale}x{scale}.\n{CLICK_CENTRE}Don't click boxes on "
            "their edges unless asked."),
        "parameters": {"properties": {
            "action": {"description": "The action to perform. The available actions are:\n" + actions,
                       "enum": list(MOBILE_ACTIONS), "type": "string"},
            "coordinate": {"description": POINT + " Required only by `action=click`, `action=long_press`, and "
                           "`action=swipe`.", "type": "array"},
            "coordinate2": {"description": POINT + " Required only by `action=swipe`.", "type": "array"},
            "text": TEXT,
            "time": {"description": "The seconds to wait. Required only by `action=long_press` and `action=wait`.",
                     "type": "number"},
            "button": {"description": "Back means returning to the previous interface, Home means returning to the "
                       "desktop, Menu means opening the application background menu, and Enter means pressing the "
                       "enter. Required only by `action=system_button`",
                       "enum": ["Back", "Home", "Menu", "Enter"], "type": "string"},
            "status": STATUS,
        }, "required": ["action"], "type": "object"},
    }}


def computer_use_tool(scale: int = 1000) -> dict[str, Any]:
    """``computer_use`` as the official ``ComputerUse`` declares it."""
    at = "at a specified (x, y) pixel coordinate on the screen"
    actions = (
        "* `key`: Performs key down presses on the arguments passed in order, then performs key releases in reverse "
        "order.\n* `type`: Type a string of text on the keyboard.\n"
        "* `mouse_move`: Move the cursor to a specified (x, y) pixel coordinate on the screen.\n"
        f"* `left_click`: Click the left mouse button {at}.\n"
        "* `left_click_drag`: Click and drag the cursor to a specified (x, y) pixel coordinate on the screen.\n"
        f"* `right_click`: Click the right mouse button {at}.\n* `middle_click`: Click the middle mouse button {at}.\n"
        f"* `double_click`: Double-click the left mouse button {at}.\n"
        f"* `triple_click`: Triple-click the left mouse button {at} (simulated as double-click since it's the "
        "closest action).\n* `scroll`: Performs a scroll of the mouse scroll wheel.\n"
        "* `hscroll`: Performs a horizontal scroll (mapped to regular scroll).\n"
        "* `wait`: Wait specified seconds for the change to happen.\n"
        "* `terminate`: Terminate the current task and report its completion status.\n* `answer`: Answer a question.")
    return {"type": "function", "function": {
        "name": "computer_use",
        "description": (
            "Use a mouse and keyboard to interact with a computer, and take screenshots.\n* This is an interface to a "
            "desktop GUI. You do not have access to a terminal or applications menu. You must click on desktop icons "
            f"to start applications.\n{WAIT_AND_SEE} E.g. if you click on Firefox and a window doesn't open, try wait "
            f"and taking another screenshot.\n* The screen's resolution is {scale}x{scale}.\n* Whenever you intend to "
            "move the cursor to click on an element like an icon, you should consult a screenshot to determine the "
            "coordinates of the element before moving the cursor.\n* If you tried clicking on a program or link but "
            "it failed to load, even after waiting, try adjusting your cursor position so that the tip of the cursor "
            f"visually falls on the element that you want to click.\n{CLICK_CENTRE}Don't click boxes on their edges."),
        "parameters": {"properties": {
            "action": {"description": "The action to perform. The available actions are:\n" + actions,
                       "enum": list(COMPUTER_ACTIONS), "type": "string"},
            "keys": {"description": "Required only by `action=key`.", "type": "array"},
            "text": TEXT,
            "coordinate": {"description": POINT, "type": "array"},
            "pixels": {"description": "The amount of scrolling to perform. Positive values scroll up, negative values "
                       "scroll down. Required only by `action=scroll` and `action=hscroll`.", "type": "number"},
            "time": {"description": "The seconds to wait. Required only by `action=wait`.", "type": "number"},
            "status": STATUS,
        }, "required": ["action"], "type": "object"},
    }}


def tool_for(space: str) -> dict[str, Any]:
    """The tool of an action space: ``"mobile_use"`` or ``"computer_use"``, on its declared screen."""
    tools = {"mobile_use": mobile_use_tool, "computer_use": computer_use_tool}
    if space not in tools:
        raise ValueError(f"space={space!r}: use 'mobile_use' or 'computer_use'.")
    return tools[space](SCALE[space])


# The mobile-agent cookbook's system prompt around the tool: no "You are a helpful assistant." line, the tool
# in <tools>, the <tool_call> format, then the "# Response format" block.
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


def tool_call_text(name: str, arguments: dict, thought: str = "") -> str:
    """A reply in the model's format: an optional thought, then one ``<tool_call>`` block."""
    call = json.dumps({"name": name, "arguments": arguments}, ensure_ascii=False)
    return (f"Thought: {thought}\n" if thought else "") + f"<tool_call>\n{call}\n</tool_call>"
