"""05's parser reads both tool-call formats: Qwen3-VL's JSON and Qwen3.5's XML (``agent.xml_call``)."""

from __future__ import annotations

import pytest

from cookbook import agent
from cookbook.kit import tiny_qwen35

GET_WEATHER = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "Get the weather of a city.",
        "parameters": {
            "type": "object",
            "properties": {"city": {"type": "string"}, "days": {"type": "integer"}, "zip": {"type": "string"}},
            "required": ["city"],
        },
    },
}

# The format the published Qwen3.5 chat template asks the model for, in its tool system block.
TEMPLATE_EXAMPLE = (
    "<tool_call>\n<function=example_function_name>\n<parameter=example_parameter_1>\nvalue_1\n"
    "</parameter>\n<parameter=example_parameter_2>\nThis is the value for the second parameter\n"
    "that can span\nmultiple lines\n</parameter>\n</function>\n</tool_call>"
)


def test_the_template_example_parses_with_multi_line_values():
    assert agent.parse_tool_calls(TEMPLATE_EXAMPLE, tools=[]) == [{
        "name": "example_function_name",
        "arguments": {
            "example_parameter_1": "value_1",
            "example_parameter_2": "This is the value for the second parameter\nthat can span\nmultiple lines",
        },
    }]


def test_xml_mobile_use_call_is_typed_by_the_tool_and_checked():
    text = (
        "Thought: the search bar is at the top.\nAction: tap it.\n<tool_call>\n<function=mobile_use>\n"
        "<parameter=action>\nclick\n</parameter>\n<parameter=coordinate>\n[447, 80]\n</parameter>\n"
        "</function>\n</tool_call>"
    )
    assert agent.parse_tool_calls(text) == [
        {"name": "mobile_use", "arguments": {"action": "click", "coordinate": [447, 80]}}
    ]
    assert agent.thought_of(text).endswith("Action: tap it.")
    typed = text.replace("click", "type").replace("coordinate>\n[447, 80]", "text>\n007")
    # `text` is a string in the tool's schema: "007" stays text, not the number 7
    assert agent.parse_tool_calls(typed)[0]["arguments"] == {"action": "type", "text": "007"}
    one_number = text.replace("[447, 80]", "[447]")
    with pytest.raises(agent.ParseError, match="coordinate"):
        agent.parse_tool_calls(one_number)


def test_both_formats_in_one_reply_keep_their_order():
    text = (
        '<tool_call>\n{"name": "get_weather", "arguments": {"city": "Paris"}}\n</tool_call>\n'
        "<tool_call>\n<function=get_weather>\n<parameter=city>\nHangzhou\n</parameter>\n"
        "<parameter=days>\n3\n</parameter>\n</function>\n</tool_call>"
    )
    assert agent.parse_tool_calls(text, tools=[GET_WEATHER]) == [
        {"name": "get_weather", "arguments": {"city": "Paris"}},
        {"name": "get_weather", "arguments": {"city": "Hangzhou", "days": 3}},
    ]


def test_an_xml_call_cut_off_by_the_budget_keeps_its_whole_parameters():
    text = "<tool_call>\n<function=get_weather>\n<parameter=city>\nHangzhou\n</parameter>\n<parameter=days>\n2"
    assert agent.parse_tool_calls(text, tools=[GET_WEATHER]) == [
        {"name": "get_weather", "arguments": {"city": "Hangzhou", "days": 2}}
    ]
    with pytest.raises(agent.ParseError):
        agent.parse_tool_calls("<tool_call>\n<function", tools=[GET_WEATHER])


def test_round_trip_through_the_qwen35_template():
    """What the tiny Qwen3.5's template renders for an assistant's call parses back to that call."""
    from transformers.utils.chat_template_utils import render_jinja_template

    arguments = {"city": "杭州", "days": 3, "zip": "310000"}
    messages = [
        {"role": "user", "content": "Weather?"},
        {"role": "assistant", "content": "", "tool_calls": [
            {"type": "function", "function": {"name": "get_weather", "arguments": arguments}}]},
    ]
    rendered, _ = render_jinja_template(
        conversations=[messages], tools=[GET_WEATHER], chat_template=tiny_qwen35.CHAT_TEMPLATE
    )
    reply = rendered[0].split("<|im_start|>assistant\n")[-1].removesuffix("<|im_end|>\n")
    assert "<parameter=zip>\n310000\n</parameter>" in reply
    assert agent.parse_tool_calls(reply, tools=[GET_WEATHER]) == [{"name": "get_weather", "arguments": arguments}]


def test_xml_call_without_a_function_tag_is_not_a_call():
    assert agent.xml_call("<parameter=a>\n1\n</parameter>", None) is None
