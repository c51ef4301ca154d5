"""rotator.escape: hostile text (ANSI escapes, rich markup, spreadsheet formulas, Slack markup)
made inert for the terminal, a table, a CSV cell and an alert."""

from __future__ import annotations

import unicodedata

import pytest
from hypothesis import given
from hypothesis import strategies as st
from rich.text import Text

from rotator.escape import ZERO_WIDTH_SPACE, csv_cell, markup, slack, terminal

ANSI_LINK = "\x1b]8;;http://evil.example\x1b\\click\x1b]8;;\x1b\\"
HOSTILE = st.text(
    alphabet=st.characters(codec="utf-8", categories=["Cc", "Cf", "L", "N", "P", "S", "Zs"])
)


def raw_controls(text: str) -> list[str]:
    """The control and bidi characters a terminal would act on."""
    return [c for c in text if unicodedata.category(c) == "Cc" or c in "\u202a\u202e\u2066\u2069"]


def test_terminal_shows_an_escape_sequence_as_text() -> None:
    """An ANSI colour code or OSC 8 hyperlink becomes visible characters, not an action."""
    assert terminal("\x1b[31mred") == "\\x1b[31mred"
    assert "\x1b" not in terminal(ANSI_LINK)


def test_terminal_leaves_ordinary_text_alone() -> None:
    """Keys, ids and accented names pass unchanged."""
    assert terminal("sub00001 Département → ok") == "sub00001 Département → ok"


def test_terminal_neutralises_bidirectional_overrides() -> None:
    """A right-to-left override (which reorders what a reader sees) is shown as an escape."""
    assert terminal("abc\u202edcb") == "abc\\u202edcb"


def test_markup_is_printed_literally_by_rich() -> None:
    """A key named like rich markup renders as those characters, with no link or style."""
    hostile = "[link=http://evil.example]x[/link][bold red]y"
    rendered = Text.from_markup(markup(hostile))
    assert rendered.plain == hostile
    assert rendered.spans == []


@pytest.mark.parametrize("start", ["=", "+", "-", "@", "\t", "\r"])
def test_csv_cell_quotes_a_formula(start: str) -> None:
    """A cell starting with a formula character gets a leading apostrophe."""
    cell = csv_cell(f'{start}HYPERLINK("http://evil.example","x")')
    assert isinstance(cell, str)
    assert cell.startswith("'")


def test_csv_cell_keeps_plain_values_and_non_strings() -> None:
    """Ordinary text, numbers, booleans and None pass unchanged."""
    assert [csv_cell(v) for v in ("sub00001", 3, True, None)] == ["sub00001", 3, True, None]


def test_slack_escapes_mentions_and_links() -> None:
    """<!channel>, <http://x|y> and & become Slack's entities, so no mention or link forms."""
    assert slack("<!channel> <http://x|y> & co") == "&lt;!channel&gt; &lt;http://x|y&gt; &amp; co"


def test_slack_breaks_formatting_characters() -> None:
    """*, _, ~ and ` get a zero-width space in front, so they open no bold, italics or code."""
    assert slack("*bold* _it_ ~s~ `c`") == "".join(
        ZERO_WIDTH_SPACE + c if c in "*_~`" else c for c in "*bold* _it_ ~s~ `c`"
    )


@given(HOSTILE)
def test_no_terminal_output_contains_a_raw_control_character(text: str) -> None:
    """Whatever the input, terminal() and markup() return no control character."""
    assert raw_controls(terminal(text)) == []
    assert raw_controls(markup(text)) == []


@given(HOSTILE)
def test_rich_renders_escaped_markup_as_the_plain_text(text: str) -> None:
    """markup(x) between tags, as the CLI prints it, shows exactly terminal(x): no tag inside
    is interpreted and none around it is escaped away (a trailing backslash included)."""
    rendered = Text.from_markup(f"[bold]{markup(text)}[/bold]")
    assert rendered.plain == terminal(text)
    assert [span.style for span in rendered.spans] in ([], ["bold"])


@given(HOSTILE)
def test_no_csv_cell_starts_a_formula_or_holds_a_control(text: str) -> None:
    """csv_cell() never begins with =, +, -, @, tab or CR unquoted, and holds no control."""
    cell = csv_cell(text)
    assert isinstance(cell, str)
    assert raw_controls(cell) == []
    assert not cell.startswith(("=", "+", "-", "@", "\t", "\r"))


@given(HOSTILE)
def test_no_slack_text_holds_markup_or_a_control(text: str) -> None:
    """slack() output has no raw <, >, bare formatting character or control character."""
    out = slack(text)
    assert raw_controls(out) == []
    assert "<" not in out
    assert ">" not in out
    for index, char in enumerate(out):
        if char in "*_~`":
            assert out[index - 1] == ZERO_WIDTH_SPACE
