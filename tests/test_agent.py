"""The GUI agent (05): parser, coordinates, tools, and the executor and loop against the messenger
sandbox in a real headless Chromium (async Playwright, wrapped in asyncio.run)."""

from __future__ import annotations

import asyncio
import dataclasses
import json

import pytest

import cookbook as cb
from cookbook import agent as A
from cookbook.kit import gui_env as E
from cookbook.kit import gui_tools as T

needs_browser = pytest.mark.skipif(cb.kit.browser.chromium_executable() is None, reason=cb.kit.browser.INSTALL_HINT)
# The phone's CSS layout at device scale 1: the same page, smaller screenshots, a faster loop.
# The phone actions test runs at the real device scale 3.
PHONE_1X = dataclasses.replace(E.PHONE, scale=1.0)


def call(name: str, **arguments) -> dict:
    return {"name": name, "arguments": arguments}


async def _with_app(body, screen: E.Screen = E.PHONE):
    """Serve the app, open it in a fresh page of this screen's size, and run ``body(page, url)``."""
    with cb.kit.assets.serve(E.APP) as url:
        async with cb.kit.browser.launch() as browser:
            page = await cb.kit.browser.new_page(browser, width=screen.width, height=screen.height, scale=screen.scale,
                                             mobile=screen.mobile, allow=(url,))
            await E.open_app(page, url)
            return await body(page, url)


def with_app(body, screen: E.Screen = E.PHONE):
    return asyncio.run(_with_app(body, screen))


async def point_of(page, name: str, screen: E.Screen, space: str) -> list[int]:
    x1, y1, x2, y2 = (await E.element_box(page, name))["box"]
    return E.from_css((x1 + x2) / 2, (y1 + y2) / 2, screen, T.SCALE[space])


async def do(page, screen: E.Screen, c: dict, confirm=A.deny, allowed=None, cursor=None) -> A.Outcome:
    allowed = allowed or (T.MOBILE_ACTIONS if c["name"] == "mobile_use" else T.COMPUTER_ACTIONS)
    return await A.execute(page, c, screen, allowed, confirm, [0.0, 0.0] if cursor is None else cursor)


# --- parser -----------------------------------------------------------------------------------

def test_parse_one_call():
    text = '<tool_call>\n{"name": "mobile_use", "arguments": {"action": "click", "coordinate": [10, 20]}}\n</tool_call>'
    assert A.parse_tool_calls(text) == [call("mobile_use", action="click", coordinate=[10, 20])]


def test_parse_several_calls_after_a_thought():
    text = ('Thought: the chat is pinned.\nAction: long press it.\n'
            '<tool_call>\n{"name": "mobile_use", "arguments": {"action": "long_press", "coordinate": [5, 6], "time": 1}}\n</tool_call>\n'
            '<tool_call>\n{"name": "mobile_use", "arguments": {"action": "wait", "time": 1}}\n</tool_call>')
    calls = A.parse_tool_calls(text)
    assert [c["arguments"]["action"] for c in calls] == ["long_press", "wait"]
    assert A.thought_of(text) == "Thought: the chat is pinned.\nAction: long press it."
    assert A.history_line(text, calls) == "long press it."


def test_parse_arguments_as_a_json_string():
    text = '<tool_call>{"name": "computer_use", "arguments": "{\\"action\\": \\"type\\", \\"text\\": \\"hi\\"}"}</tool_call>'
    assert A.parse_tool_calls(text) == [call("computer_use", action="type", text="hi")]


def test_parse_closing_tag_and_braces_cut_off():
    text = '<tool_call>\n{"name": "mobile_use", "arguments": {"action": "terminate", "status": "success"}}\n'
    assert A.parse_tool_calls(text) == [call("mobile_use", action="terminate", status="success")]
    truncated = '<tool_call>\n{"name": "mobile_use", "arguments": {"action": "click", "coordinate": [1, 2]'
    assert A.parse_tool_calls(truncated) == [call("mobile_use", action="click", coordinate=[1, 2])]


@pytest.mark.parametrize("text", ["I would tap the chat.", "<tool_call>\n</tool_call>", "<tool_call>[1, 2]</tool_call>",
                                  '<tool_call>{"arguments": {"action": "click"}}</tool_call>', ""])
def test_parse_without_a_usable_call_raises_quoting_the_text(text):
    with pytest.raises(A.ParseError) as err:
        A.parse_tool_calls(text)
    assert isinstance(err.value, ValueError)
    assert repr(text[:300]) in str(err.value)


# --- coordinates and tools ---------------------------------------------------------------------

def test_coordinates_are_relative_to_the_declared_screen():
    assert A.to_css([0, 0], E.PHONE, 999) == (0.0, 0.0)
    assert A.to_css([999, 999], E.PHONE, 999) == (390.0, 844.0)
    assert A.to_css([500, 250], E.DESKTOP, 1000) == (640.0, 200.0)
    # the same point on the 999 and 1000 screens differs: dividing by the wrong one misses by a pixel or more
    assert A.to_css([999, 999], E.DESKTOP, 1000) != A.to_css([999, 999], E.DESKTOP, 999)
    for x, y in [(12.5, 700.0), (389.0, 1.0), (200.0, 422.0)]:
        back = A.to_css(E.from_css(x, y, E.PHONE, 999), E.PHONE, 999)
        assert abs(back[0] - x) <= 390 / 999 and abs(back[1] - y) <= 844 / 999
    assert E.PHONE.pixels == (1170, 2532)  # the screenshot; the point does not depend on it
    with pytest.raises(ValueError, match="off the 999x999"):
        A.to_css([1000, 5], E.PHONE, 999)
    with pytest.raises(ValueError, match=r"expected \[x, y\]"):
        A.to_css([5], E.PHONE, 999)


def test_tools_declare_the_official_screens_and_actions(tiny):
    _, processor = tiny
    mobile, computer = T.tool_for("mobile_use"), T.tool_for("computer_use")
    assert "999x999" in mobile["function"]["description"] and "1000x1000" in computer["function"]["description"]
    assert mobile["function"]["parameters"]["properties"]["action"]["enum"] == list(T.MOBILE_ACTIONS)
    assert {"left_click", "left_click_drag", "scroll", "key", "terminate"} <= set(T.COMPUTER_ACTIONS)
    with pytest.raises(ValueError):
        T.tool_for("phone")
    prompt = A.task_prompt("Unpin X.", ["a", "b"])
    assert prompt == ("The user query: Unpin X.\nTask progress (You have done the following operation on the "
                      "current device): Step 1: a; Step 2: b; ")
    from PIL import Image

    messages = A.agent_messages("Unpin X.", [], Image.new("RGB", (390, 844), "white"), 64, mobile)
    text = processor.apply_chat_template(messages, add_generation_prompt=True, tokenize=False)
    assert text.count("\n<tools>\n") == 1 and '"name": "mobile_use"' in text and "The user query: Unpin X." in text
    assert text.index("<tools>") < text.index("# Response format") < text.index("The user query")
    assert "You are a helpful assistant" not in text


# --- the executor against the app ----------------------------------------------------------------

@needs_browser
def test_phone_actions_tap_long_press_swipe_type_back():
    screen, space = E.PHONE, "mobile_use"

    async def body(page, url):
        got = {}
        out = await do(page, screen, call(space, action="click", coordinate=await point_of(page, "search box", screen, space)))
        assert out.ok and out.point
        await do(page, screen, call(space, action="type", text="Bob"))
        got["search"] = (await E.app_state(page))["search"]
        await page.fill("#search", "")
        await page.dispatch_event("#search", "input")
        await do(page, screen, call(space, action="long_press", coordinate=await point_of(page, "chat Bob Li", screen, space), time=1))
        got["menu"] = (await E.app_state(page))["menu"]
        await page.keyboard.press("Escape")
        list_top = await page.evaluate("document.querySelector('#chat-list').scrollTop")
        mid = E.from_css(195, 500, screen, 999)
        await do(page, screen, call(space, action="swipe", coordinate=mid, coordinate2=[mid[0], mid[1] - 300]))
        await page.wait_for_timeout(300)
        got["scrolled"] = await page.evaluate("document.querySelector('#chat-list').scrollTop") - list_top
        await do(page, screen, call(space, action="swipe", coordinate=[mid[0], mid[1] - 300], coordinate2=mid))
        await page.wait_for_timeout(300)
        got["back_up"] = await page.evaluate("document.querySelector('#chat-list').scrollTop")
        await do(page, screen, call(space, action="click", coordinate=await point_of(page, "chat Bob Li", screen, space)))
        got["open"] = (await E.app_state(page))["open"]
        await do(page, screen, call(space, action="click", coordinate=await point_of(page, "message box", screen, space)))
        await do(page, screen, call(space, action="type", text="On my way"))
        await do(page, screen, call(space, action="system_button", button="Enter"))
        got["sent"] = (await E.app_state(page))["chats"][2]["messages"][-1]
        out = await do(page, screen, call(space, action="system_button", button="Back"))
        got["back"] = (out.ok, (await E.app_state(page))["open"])
        again = await do(page, screen, call(space, action="system_button", button="Back"))  # at the root
        got["back_at_root"] = (again.ok, again.error, (await E.app_state(page))["chats"][2]["messages"][-1]["text"])
        got["home"] = await do(page, screen, call(space, action="system_button", button="Home"))
        return got

    got = with_app(body, screen)
    assert got["search"] == "Bob"
    assert got["menu"] == "bob"  # held 1 s: the app's 500 ms long press opened the menu, not the chat
    assert got["scrolled"] > 100 and got["back_up"] == 0  # a swipe up scrolls the list down, and back
    assert got["open"] == "bob"
    assert got["sent"] == {"from": "me", "text": "On my way"}
    assert got["back"] == (True, None)
    assert got["back_at_root"] == (False, "ValueError: system_button 'Back': already on the app's first screen",
                                   "On my way")  # the app (and its state) is still there
    assert not got["home"].ok and "no Home button" in got["home"].error


@needs_browser
def test_desktop_actions_right_click_scroll_key_and_the_whitelist():
    screen, space = E.DESKTOP, "computer_use"

    async def body(page, url):
        got = {}
        await do(page, screen, call(space, action="right_click", coordinate=await point_of(page, "chat Landlord", screen, space)))
        got["menu"] = (await E.app_state(page))["menu"]
        await page.keyboard.press("Escape")
        at = await point_of(page, "chat Bob Li", screen, space)
        await do(page, screen, call(space, action="scroll", coordinate=at, pixels=-200))
        await page.wait_for_timeout(300)
        got["scrolled"] = await page.evaluate("document.querySelector('#chat-list').scrollTop")
        await do(page, screen, call(space, action="left_click", coordinate=await point_of(page, "search box", screen, space)))
        await do(page, screen, call(space, action="type", text="Alice"))
        await do(page, screen, call(space, action="key", keys=["ctrl", "a"]))
        await do(page, screen, call(space, action="key", keys=["backspace"]))
        got["search"] = (await E.app_state(page))["search"]
        got["refused"] = await do(page, screen, call(space, action="left_click", coordinate=at), allowed=("type", "terminate"))
        got["unknown"] = await do(page, screen, call("phone_use", action="click", coordinate=at))
        got["bad"] = await do(page, screen, call(space, action="left_click", coordinate=[1200, 5]))
        got["state"] = await E.app_state(page)
        return got

    got = with_app(body, screen)
    assert got["menu"] == "landlord"
    assert got["scrolled"] >= 150
    assert got["search"] == ""  # ctrl+a then backspace cleared what was typed
    assert not got["refused"].ok and "not allowed" in got["refused"].error
    assert not got["unknown"].ok and "unknown tool" in got["unknown"].error
    assert not got["bad"].ok and "off the 1000x1000" in got["bad"].error
    assert got["state"]["open"] is None  # refused and failed calls did nothing


@needs_browser
def test_desktop_selection_actions_triple_click_drag_wait():
    screen, space = E.DESKTOP, "computer_use"

    async def body(page, url):
        got = {}
        box = await point_of(page, "search box", screen, space)
        await do(page, screen, call(space, action="left_click", coordinate=box))
        await do(page, screen, call(space, action="type", text="Alice Chen"))
        await do(page, screen, call(space, action="triple_click", coordinate=box))  # selects the whole value
        await do(page, screen, call(space, action="type", text="Zhang"))
        got["triple"] = (await E.app_state(page))["search"]
        x1, y1, x2, y2 = (await E.element_box(page, "search box"))["box"]
        end = E.from_css(x1 + 200, (y1 + y2) / 2, screen, 1000)     # right of the text
        start = E.from_css(x1 + 2, (y1 + y2) / 2, screen, 1000)     # before its first letter
        cursor = [0.0, 0.0]  # the executor's mouse position, kept between calls
        await do(page, screen, call(space, action="mouse_move", coordinate=end), cursor=cursor)
        await do(page, screen, call(space, action="left_click_drag", coordinate=start), cursor=cursor)  # select
        await do(page, screen, call(space, action="type", text="Mom"))
        got["drag"] = (await E.app_state(page))["search"]
        t0 = asyncio.get_running_loop().time()
        got["wait"] = await do(page, screen, call(space, action="wait", time=60))
        got["waited"] = asyncio.get_running_loop().time() - t0
        got["double"] = await do(page, screen, call(space, action="double_click", coordinate=box))
        got["hscroll"] = await do(page, screen, call(space, action="hscroll", coordinate=box, pixels=50))
        return got

    got = with_app(body, screen)
    assert got["triple"] == "Zhang"
    assert got["drag"] == "Mom"
    assert got["wait"].ok and A.MAX_WAIT_S <= got["waited"] < A.MAX_WAIT_S + 2  # capped, not 60 s
    assert got["double"].ok and got["hscroll"].ok


@needs_browser
def test_a_destructive_action_waits_for_confirmation():
    screen, space = E.PHONE, "mobile_use"
    asked = []

    async def body(page, url):
        async def approve_later(c, element):
            asked.append(element)
            await asyncio.sleep(0)
            return True

        await do(page, screen, call(space, action="long_press", coordinate=await point_of(page, "chat Landlord", screen, space)))
        delete = call(space, action="click", coordinate=await point_of(page, "menu Delete", screen, space))
        held = await do(page, screen, delete)  # default hook: deny
        still_there = not E.chat_of(await E.app_state(page), "landlord")["deleted"]
        pin = await do(page, screen, call(space, action="click", coordinate=await point_of(page, "menu Pin", screen, space)),
                       confirm=approve_later)  # not destructive: the hook is not asked
        await do(page, screen, call(space, action="long_press", coordinate=await point_of(page, "chat Landlord", screen, space)))
        approved = await do(page, screen, delete, confirm=approve_later)
        return held, still_there, pin, approved, await E.app_state(page)

    held, still_there, pin, approved, state = with_app(body, screen)
    assert held.held and not held.ok and "not approved" in held.error and still_there
    assert pin.ok and approved.ok and asked == ["menu Delete"]
    assert E.chat_of(state, "landlord")["deleted"]


@needs_browser
def test_requests_outside_the_sandbox_are_blocked():
    async def body(page, url):
        error = await page.evaluate("fetch('http://example.com/track').then(() => 'loaded', e => e.name)")
        await page.evaluate("(() => { const i = new Image(); i.src = 'https://cdn.example.org/a.png'; document.body.append(i); })()")
        await page.wait_for_timeout(300)
        return error, cb.kit.browser.blocked(page), url

    error, blocked, url = with_app(body)
    assert error == "TypeError"
    assert "http://example.com/track" in blocked and "https://cdn.example.org/a.png" in blocked
    assert not any(u.startswith(url) for u in blocked)  # the app's own files were served


# --- the loop, the reference policy, the scorers ---------------------------------------------------

@needs_browser
def test_reference_policy_solves_every_task(tmp_path):
    async def run(page, url, screen, space, tasks):
        out = []
        for t in tasks:
            out.append(await A.run_task(page, url, t, E.reference_policy, tmp_path / screen.name / t.id, screen=screen,
                                        space=space, max_steps=8, confirm=A.approve))
        initial = await E.open_app(page, url)
        return out, initial

    phone, initial = with_app(lambda page, url: run(page, url, PHONE_1X, "mobile_use", E.TASKS), PHONE_1X)
    desktop, _ = with_app(lambda page, url: run(page, url, E.DESKTOP, "computer_use", [E.task("pin"), E.task("mute")]),
                          E.DESKTOP)
    for traj in phone + desktop:
        assert traj.success and traj.terminated == "success", (traj.task, [s.error for s in traj.steps])
    assert A.success_rate(phone) == 1.0 and len(phone) == len(E.TASKS) >= 6
    assert any("swipe" in json.dumps(s.calls) for t in phone for s in t.steps)  # some targets needed scrolling
    assert any("scroll" in json.dumps(s.calls) for t in desktop for s in t.steps)
    assert not any(t.check(initial, initial) for t in E.TASKS)  # no predicate holds before acting


@needs_browser
def test_a_held_delete_fails_the_task(tmp_path):
    async def run(page, url):
        return await A.run_task(page, url, E.task("delete"), E.reference_policy, tmp_path, screen=PHONE_1X, max_steps=4)

    traj = with_app(run, PHONE_1X)
    assert not traj.success and any(s.held for s in traj.steps)


@needs_browser
def test_grounding_scorer(tmp_path):
    screen, space = E.PHONE, "mobile_use"

    async def run(page, url):
        ref = await A.grounding_eval(page, screen, lambda ins, shot, t: E.reference_locator(t, screen, space), space)
        corner = await A.grounding_eval(page, screen, lambda ins, shot, t: T.tool_call_text(space, {"action": "click", "coordinate": [0, 999]}), space)
        prose = await A.grounding_eval(page, screen, lambda ins, shot, t: "It is near the top.", space)
        return ref, corner, prose

    ref, corner, prose = with_app(run)
    assert ref["accuracy"] == 1.0 and len(ref["rows"]) >= 10
    assert {"search box", "chat Tech Exchange Group"} <= {r["target"] for r in ref["rows"]}
    assert corner["accuracy"] == 0.0 and prose["accuracy"] == 0.0
    assert A.hit((5, 5), [5, 5, 10, 10]) and not A.hit((10.5, 5), [5, 5, 10, 10]) and not A.hit(None, [0, 0, 1, 1])
    assert E.click_instruction("chat Bob Li") == 'Click the chat with "Bob Li".'


@needs_browser
def test_tiny_model_loop_stops_at_the_step_bound_and_writes_its_trajectory(tiny, tmp_path):
    model, processor = tiny
    policy = A.transformers_policy(model, processor, T.tool_for("mobile_use"), max_new_tokens=8, image_tokens=64)

    async def run(page, url):
        return await A.run_task(page, url, E.task("unpin"), policy, tmp_path, screen=PHONE_1X, max_steps=2)

    traj = with_app(run, PHONE_1X)
    assert len(traj.steps) == 2 and not traj.success and traj.terminated == ""
    for step in traj.steps:  # random weights: text, but no tool call; recorded as failed steps
        if not step.ok:
            assert step.calls == [] and "no usable <tool_call>" in step.error
        assert (tmp_path / step.screenshot).is_file()
    again = E.load_trajectory(tmp_path)
    assert again == traj
    frames = E.replay(again, width=120)
    assert len(frames) == 3 and frames[0].width == 120
    gif = E.save_gif(frames, tmp_path / "replay.gif")
    from PIL import Image

    with Image.open(gif) as img:
        assert img.n_frames == 3


def test_openai_policy_reads_tool_calls_from_a_server(tmp_path):
    """A real OpenAI SDK client against a loopback HTTP server answering as vLLM does with
    ``--tool-call-parser hermes``: the calls arrive in ``tool_calls``, the thought in ``content``."""
    import http.server
    import threading

    import openai
    from PIL import Image

    seen = {}
    answer = {"id": "x", "object": "chat.completion", "created": 0, "model": "m", "choices": [{
        "index": 0, "finish_reason": "tool_calls", "message": {
            "role": "assistant", "content": "Thought: the chat is pinned.",
            "tool_calls": [{"id": "c1", "type": "function", "function": {
                "name": "mobile_use", "arguments": '{"action": "long_press", "coordinate": [500, 169], "time": 1}'}}]}}]}

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_POST(self):
            seen["body"] = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
            data = json.dumps(answer).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def log_message(self, *args):
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        client = openai.OpenAI(base_url=f"http://127.0.0.1:{server.server_port}/v1", api_key="EMPTY")
        policy = A.openai_policy(client, "m", T.tool_for("mobile_use"), max_tokens=32, image_tokens=64)
        obs = E.Observation("Unpin X.", ["a"], Image.new("RGB", (390, 844), "white"), E.PHONE, "mobile_use")
        text = asyncio.run(policy(obs))
    finally:
        server.shutdown()
        server.server_close()
    assert A.parse_tool_calls(text) == [call("mobile_use", action="long_press", coordinate=[500, 169], time=1)]
    assert A.thought_of(text) == "Thought: the chat is pinned."
    body = seen["body"]
    assert "tools" not in body and body["max_tokens"] == 32          # the tool is in the official system prompt
    assert body["messages"][0]["content"].startswith("\n\n# Tools") and '"name": "mobile_use"' in body["messages"][0]["content"]
    user = body["messages"][1]["content"]
    assert user[0]["text"].startswith("The user query: Unpin X.") and user[1]["image_url"]["url"].startswith("data:image/png")
