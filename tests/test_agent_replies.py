"""The agent loop against every kind of broken model reply (05): each one becomes a recorded,
failed step, never an exception out of ``run_task``, and no duration makes an action hang."""

from __future__ import annotations

import asyncio
import dataclasses
import json
import time

import pytest

import cookbook as cb
from cookbook import agent as A
from cookbook.kit import gui_env as E
from cookbook.kit import gui_tools as T

needs_browser = pytest.mark.skipif(cb.kit.browser.chromium_executable() is None, reason=cb.kit.browser.INSTALL_HINT)
PHONE_1X = dataclasses.replace(E.PHONE, scale=1.0)


def reply(arguments: str, name: str = "mobile_use") -> str:
    """A reply with one call whose arguments are written as raw JSON text (NaN and all)."""
    return f'Thought: go.\n<tool_call>\n{{"name": "{name}", "arguments": {arguments}}}\n</tool_call>'


DEEP = "[" * 5000 + "]" * 5000
NESTED = "[" * 600 + "]" * 600  # parses (under the decoder's limit), too deep to save with asdict
# (label, the reply, a word its step's error must contain)
BROKEN_PHONE = [
    ("empty reply", "", "tool_call"),
    ("prose, no tags", "I would tap the first chat.", "tool_call"),
    ("prose inside the tags", "<tool_call>I will tap the first chat.</tool_call>", ""),
    ("prose inside an unclosed tag", "<tool_call>tap the chat at the top", ""),
    ("a JSON list", "<tool_call>[1, 2, 3]</tool_call>", ""),
    ("name not a string", '<tool_call>{"name": 5, "arguments": {"action": "wait"}}</tool_call>', ""),
    ("arguments not an object", reply("[1, 2]"), ""),
    ("unknown tool", reply('{"cmd": "rm -rf /"}', name="shell"), "shell"),
    ("no action", reply('{"coordinate": [500, 500]}'), "action"),
    ("action off the whitelist", reply('{"action": "open", "text": "Settings"}'), "open"),
    ("click without coordinate", reply('{"action": "click"}'), "coordinate"),
    ("coordinate NaN", reply('{"action": "click", "coordinate": [NaN, 500]}'), "coordinate"),
    ("coordinate infinite", reply('{"action": "click", "coordinate": [Infinity, 500]}'), "coordinate"),
    ("coordinate huge integer", reply('{"action": "click", "coordinate": [1' + "0" * 400 + ", 5]}"), "coordinate"),
    ("coordinate as words", reply('{"action": "click", "coordinate": ["left", "top"]}'), "coordinate"),
    ("coordinate of three", reply('{"action": "click", "coordinate": [1, 2, 3]}'), "coordinate"),
    ("coordinate negative", reply('{"action": "click", "coordinate": [-5, 100]}'), "coordinate"),
    ("wait NaN", reply('{"action": "wait", "time": NaN}'), "time"),
    ("wait infinite", reply('{"action": "wait", "time": Infinity}'), "time"),
    ("wait in words", reply('{"action": "wait", "time": "a while"}'), "time"),
    ("long_press NaN", reply('{"action": "long_press", "coordinate": [500, 130], "time": NaN}'), "time"),
    ("long_press -inf", reply('{"action": "long_press", "coordinate": [500, 130], "time": -Infinity}'), "time"),
    ("swipe without an end", reply('{"action": "swipe", "coordinate": [500, 500]}'), "coordinate2"),
    ("type without text", reply('{"action": "type"}'), "text"),
    ("type a megabyte", reply(json.dumps({"action": "type", "text": "x" * 1_000_000})), "text"),
    ("system button Home", reply('{"action": "system_button", "button": "Home"}'), "Home"),
    ("JSON nested 5000 deep", f"<tool_call>{DEEP}</tool_call>", ""),
    ("arguments nested 600 deep", reply('{"action": "wait", "time": 0, "x": ' + NESTED + "}"), "nest"),
    ("arguments nested 50 deep", reply('{"action": "wait", "time": 0, "x": ' + "[" * 50 + "]" * 50 + "}"), "nest"),
    ("arguments as a broken string", '<tool_call>{"name": "mobile_use", "arguments": "not json at all"}</tool_call>', ""),
]
BROKEN_DESKTOP = [
    ("keys not strings", reply('{"action": "key", "keys": [1, null]}', "computer_use"), "keys"),
    ("keys empty", reply('{"action": "key", "keys": []}', "computer_use"), "keys"),
    ("keys one string", reply('{"action": "key", "keys": "ctrl+a"}', "computer_use"), "keys"),
    ("unknown key", reply('{"action": "key", "keys": ["hyperdrive"]}', "computer_use"), ""),
    ("scroll NaN", reply('{"action": "scroll", "coordinate": [500, 500], "pixels": NaN}', "computer_use"), "pixels"),
    ("scroll without pixels", reply('{"action": "scroll", "coordinate": [500, 500]}', "computer_use"), "pixels"),
    ("drag without coordinate", reply('{"action": "left_click_drag"}', "computer_use"), "coordinate"),
    ("wait NaN", reply('{"action": "wait", "time": NaN}', "computer_use"), "time"),
]


def scripted(replies: list) -> E.Policy:
    """A policy that answers with the given replies in order."""
    queue = list(replies)

    async def policy(obs: E.Observation):
        return queue.pop(0)

    return policy


def run_broken(cases, screen, space, tmp_path):
    replies = [text for _, text, _ in cases] + [None, T.tool_call_text(space, {"action": "terminate", "status": "failure"})]

    async def body(page, url):
        start = time.perf_counter()
        async with asyncio.timeout(30 + 3 * len(replies)):  # a hanging wait fails the test, not the suite
            traj = await A.run_task(page, url, E.task("pin"), scripted(replies), tmp_path, screen=screen,
                                    space=space, max_steps=len(replies))
        return traj, time.perf_counter() - start

    with cb.kit.assets.serve(E.APP) as url:
        async def main():
            async with cb.kit.browser.launch() as browser:
                page = await cb.kit.browser.new_page(browser, width=screen.width, height=screen.height,
                                                 scale=screen.scale, mobile=screen.mobile, allow=(url,))
                return await body(page, url)

        return asyncio.run(main())


def check_run(traj, seconds, cases, tmp_path):
    steps = traj.steps
    assert len(steps) == len(cases) + 2, [s.error for s in steps]
    for (label, _, word), step in zip(cases, steps, strict=False):
        assert not step.ok, label
        assert step.error, label
        assert word in step.error, (label, step.error)
        assert (tmp_path / step.screenshot).is_file()
    assert not steps[-2].ok and "NoneType" in steps[-2].error  # a policy that returned no text
    assert steps[-1].ok and traj.terminated == "failure"  # the loop still takes a good reply at the end
    assert E.load_trajectory(tmp_path) == traj  # and writes a trajectory that reads back
    state = traj.final_state
    assert not E.chat_of(state, "mom")["pinned"] and state["menu"] is None  # nothing half-done
    assert seconds < 20 + 2 * len(steps), seconds  # no wait hung


@needs_browser
def test_phone_loop_survives_every_broken_reply(tmp_path):
    traj, seconds = run_broken(BROKEN_PHONE, PHONE_1X, "mobile_use", tmp_path)
    check_run(traj, seconds, BROKEN_PHONE, tmp_path)


@needs_browser
def test_desktop_loop_survives_every_broken_reply(tmp_path):
    traj, seconds = run_broken(BROKEN_DESKTOP, E.DESKTOP, "computer_use", tmp_path)
    check_run(traj, seconds, BROKEN_DESKTOP, tmp_path)


# --- the executor on its own: arguments the parser may let through --------------------------

def _call(name, **arguments):
    return {"name": name, "arguments": arguments}


EXECUTOR_CASES = [
    # (call, ok?, a word the error names)
    (_call("mobile_use", action="wait", time=float("nan")), False, "time"),
    (_call("mobile_use", action="wait", time=float("inf")), False, "time"),
    (_call("mobile_use", action="wait", time=-5), True, ""),           # negative: no wait at all
    (_call("mobile_use", action="wait", time=True), False, "time"),
    (_call("mobile_use", action="wait", time=10 ** 400), False, "time"),
    (_call("mobile_use", action="long_press", coordinate=[500, 130], time=float("nan")), False, "time"),
    (_call("mobile_use", action="long_press", time=0.1), False, "coordinate"),
    (_call("mobile_use", action="click", coordinate=[10 ** 400, 5]), False, "coordinate"),
    (_call("mobile_use", action="click", coordinate=None), False, "coordinate"),
    (_call("mobile_use", action="click", coordinate={"x": 1}), False, "coordinate"),
    (_call("mobile_use", action="swipe", coordinate=[500, 500], coordinate2="up"), False, "coordinate"),
    (_call("mobile_use", action="type", text="y" * (A.MAX_TEXT_CHARS + 1)), False, "text"),
    (_call("mobile_use", action=["click"]), False, "not allowed"),
    (_call("computer_use", action="key", keys=[{"k": "a"}]), False, "keys"),
    (_call("computer_use", action="scroll", coordinate=[500, 500], pixels=1e300), True, ""),  # capped
    (_call("computer_use", action="hscroll", coordinate=[500, 500], pixels="-inf"), False, "pixels"),
]


@needs_browser
def test_executor_turns_bad_arguments_into_failed_outcomes():
    async def body(page, url):
        got = []
        for c, _, _ in EXECUTOR_CASES:
            allowed = T.MOBILE_ACTIONS if c["name"] == "mobile_use" else T.COMPUTER_ACTIONS
            t0 = time.perf_counter()
            async with asyncio.timeout(10):
                outcome = await A.execute(page, c, PHONE_1X, allowed, A.deny, [0.0, 0.0])
            got.append((outcome, time.perf_counter() - t0))
        pressed = await page.evaluate("window.appSnapshot().menu")  # a failed long_press pressed nothing
        return got, pressed

    with cb.kit.assets.serve(E.APP) as url:
        async def main():
            async with cb.kit.browser.launch() as browser:
                page = await cb.kit.browser.new_page(browser, width=PHONE_1X.width, height=PHONE_1X.height,
                                                 mobile=True, allow=(url,))
                await E.open_app(page, url)
                return await body(page, url)

        got, pressed = asyncio.run(main())
    for (c, ok, word), (outcome, seconds) in zip(EXECUTOR_CASES, got, strict=True):
        assert outcome.ok is ok, (c["arguments"], outcome.error)
        assert word in outcome.error, (c["arguments"], outcome.error)
        assert seconds < 2, (c["arguments"], seconds)
    assert pressed is None


def test_number_caps_and_names_the_argument():
    assert A.number({"time": 99}, "time", 1.0, 0.0, 3.0) == 3.0
    assert A.number({"time": -1}, "time", 1.0, 0.0, 3.0) == 0.0
    assert A.number({}, "time", 1.0, 0.0, 3.0) == 1.0
    assert A.number({"time": "2.5"}, "time", 1.0, 0.0, 3.0) == 2.5
    for bad in (float("nan"), float("inf"), "soon", None, [1], True, 10 ** 400):
        with pytest.raises(ValueError, match="^time="):
            A.number({"time": bad}, "time", 1.0, 0.0, 3.0)
    with pytest.raises(ValueError, match="^pixels=None"):
        A.number({}, "pixels", None, -1.0, 1.0)


def test_nesting_is_counted_without_recursion():
    assert A.nesting([{"name": "m", "arguments": {"action": "click", "coordinate": [1, 2]}}], 8) == 4
    assert A.nesting("text", 8) == 0
    deep = []
    for _ in range(100_000):  # far past the interpreter's recursion limit
        deep = [deep]
    assert A.nesting(deep, 8) == 9


def test_predicted_point_is_a_miss_for_any_reply_without_a_usable_point():
    pointless = [text for label, text, _ in BROKEN_PHONE
                 if label.startswith(("empty", "prose", "a JSON", "name", "arguments", "click", "coordinate", "JSON"))]
    assert len(pointless) == 18
    for text in pointless:
        assert A.predicted_point(text, PHONE_1X) is None
