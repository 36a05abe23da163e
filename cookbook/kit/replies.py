"""What a parser of model output may assume about its input (05-10): a string of at most
``MAX_REPLY_CHARS`` characters whose brackets nest at most ``MAX_DEPTH`` deep. Checked in one linear
pass before parsing, so no regular expression, HTML parser or json-repair call ever meets more, and
a reply too deep for Python's recursion is refused with the parser's own error, not ``RecursionError``.
"""

from __future__ import annotations

import re

MAX_REPLY_CHARS = 1 << 20  # 40,960 tokens (the longest budget in the line-up) at 25 characters each
MAX_DEPTH = 100  # brackets open at once: answers nest 2 to 4 deep; json-repair recurses once per level
_BRACKETS = re.compile(r"[\[\]{}]")


def bounded(text: object, error: type[Exception] = ValueError, what: str = "reply") -> str:
    """``text`` when it is a string of at most ``MAX_REPLY_CHARS`` characters; else ``error`` saying
    why (05-10)."""
    if not isinstance(text, str):
        raise error(f"the {what} is {type(text).__name__}, not text")
    if len(text) > MAX_REPLY_CHARS:
        raise error(f"a {what} of {len(text):,} characters: longer than any model reply ({MAX_REPLY_CHARS:,})")
    return text


def depth(text: str, stop: int = MAX_DEPTH) -> int:
    """How many ``[`` and ``{`` are open at once at most in ``text`` (brackets inside strings
    counted too, which can only overstate), counted no further than ``stop + 1`` (05-10)."""
    level = deepest = 0
    for m in _BRACKETS.finditer(text):
        level = level + 1 if m.group() in "[{" else max(level - 1, 0)
        if level > deepest:
            deepest = level
            if deepest > stop:
                break
    return deepest


def json_ready(text: object, error: type[Exception] = ValueError, what: str = "reply") -> str:
    """``bounded`` and nested at most ``MAX_DEPTH`` deep, else ``error``: what may be given to
    ``json.loads`` or json-repair (05-10)."""
    text = bounded(text, error, what)
    if depth(text) > MAX_DEPTH:
        raise error(f"a {what} whose brackets nest more than {MAX_DEPTH} deep: {text[:80]!r}...")
    return text
