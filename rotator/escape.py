"""Text from outside (Vonage answers, config, the database, the command line) made inert for
where it is shown: a terminal, a rich table, a CSV cell opened in a spreadsheet, a Slack alert.

Each function is pure and total (any ``str`` in, a safe ``str`` out), so a key name like
``\\x1b]8;;http://evil\\x1b\\\\`` or ``[link=http://evil]x[/link]`` or ``=HYPERLINK(...)`` or
``<!channel>`` is shown as the characters it is made of and never acted on.
"""

from __future__ import annotations

import re
import unicodedata
from typing import Final

# Cc (C0, DEL, C1) and the bidirectional overrides/isolates, which reorder what a reader sees.
_BIDI: Final = frozenset("\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069\u200e\u200f")
_FORMULA_START: Final = ("=", "+", "-", "@", "\t", "\r")
# rich markup tags: what rich.markup.escape escapes, without importing rich for it
_MARKUP_TAG: Final = re.compile(r"(\\*)(\[[a-zA-Z#/@][^[]*?\])")
_SLACK_ENTITIES: Final = {"&": "&amp;", "<": "&lt;", ">": "&gt;"}
_SLACK_FORMAT: Final = frozenset("*_~`")
ZERO_WIDTH_SPACE: Final = "\u200b"


def _unsafe(char: str) -> bool:
    return unicodedata.category(char) == "Cc" or char in _BIDI


def terminal(text: object) -> str:
    """``text`` with every control character shown as a visible escape (``\\x1b``, ``\\n``)."""
    value = str(text)
    if not any(_unsafe(c) for c in value):
        return value
    return "".join(c.encode("unicode_escape").decode("ascii") if _unsafe(c) else c for c in value)


def markup(text: object) -> str:
    """``terminal(text)`` with rich markup escaped: for table cells and ``console.print``."""

    def escape_tag(match: re.Match[str]) -> str:
        backslashes, tag = match.groups()
        return f"{backslashes}{backslashes}\\{tag}"

    escaped = _MARKUP_TAG.sub(escape_tag, terminal(text))
    if escaped.endswith("\\") and not escaped.endswith("\\\\"):
        escaped += "\\"  # a trailing backslash would escape the markup that follows it
    return escaped


def csv_cell(value: object) -> object:
    """A CSV cell a spreadsheet will not evaluate: control characters shown, formulas quoted.

    Non-strings (numbers, booleans, None) pass unchanged: they cannot start a formula.
    """
    if not isinstance(value, str):
        return value
    text = terminal(value)
    if value.startswith(_FORMULA_START) or text.startswith(_FORMULA_START):
        return f"'{text}"
    return text


def slack(text: object) -> str:
    """Plain text for a Slack ``text`` field: no mentions, links or formatting can be formed.

    ``&``, ``<`` and ``>`` become the entities Slack documents; ``*``, ``_``, ``~`` and `````
    get a zero-width space in front, so they cannot open or close bold, italics, strike or code.
    """
    out = []
    for char in terminal(text):
        if char in _SLACK_ENTITIES:
            out.append(_SLACK_ENTITIES[char])
        elif char in _SLACK_FORMAT:
            out.append(ZERO_WIDTH_SPACE + char)
        else:
            out.append(char)
    return "".join(out)


__all__ = ["ZERO_WIDTH_SPACE", "csv_cell", "markup", "slack", "terminal"]
