"""Vonage's secret rules, checked against an independent statement of them."""

from __future__ import annotations

import re

from hypothesis import given
from hypothesis import strategies as st

from rotator.devtools.simulator import secret_problems

ORACLE = re.compile(r"(?=.*[a-z])(?=.*[A-Z])(?=.*[0-9]).{8,25}", re.DOTALL)
ALPHABET = st.sampled_from("aZ9_-!é ")


@given(st.text(alphabet=ALPHABET, max_size=30))
def test_secret_rule_matches_the_documented_rule(value):
    """A secret is accepted exactly when it is 8-25 chars with a lower, an upper and a digit."""
    assert (secret_problems(value) == []) == bool(ORACLE.fullmatch(value))


@given(st.text(max_size=40))
def test_every_refusal_has_a_reason_without_the_value(value):
    """Reasons describe the rule broken, never the value itself."""
    for reason in secret_problems(value):
        assert reason
        if len(value) >= 3:
            assert value not in reason
