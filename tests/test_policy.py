"""Vonage's secret rules: generated secrets always meet them, for every allowed length."""

from __future__ import annotations

import string

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from rotator import policy
from rotator.devtools.simulator import secret_problems

ALLOWED = st.integers(min_value=policy.MIN_LENGTH, max_value=policy.MAX_LENGTH)


def acceptable(value: str) -> bool:
    """Reference predicate, written from Vonage's documentation: 8-25 characters with at least one
    ASCII lower case letter, one upper case letter and one digit."""
    return (
        8 <= len(value) <= 25
        and any("a" <= c <= "z" for c in value)
        and any("A" <= c <= "Z" for c in value)
        and any("0" <= c <= "9" for c in value)
    )


@settings(max_examples=300)
@given(length=ALLOWED)
def test_generated_secret_meets_every_rule(length: int) -> None:
    """generate(length) has exactly that length and breaks none of Vonage's rules."""
    value = policy.generate(length).reveal()
    assert len(value) == length
    assert policy.violations(value) == []
    assert acceptable(value)
    assert secret_problems(value) == [], "the simulator (Vonage's contract) accepts it too"


@settings(max_examples=100)
@given(length=ALLOWED)
def test_generated_secret_uses_only_plain_letters_and_digits(length: int) -> None:
    """No character that needs escaping in a URL, a shell or a config file."""
    value = policy.generate(length).reveal()
    assert set(value) <= set(string.ascii_letters + string.digits)


def test_every_allowed_length_is_generated() -> None:
    """Each length from 8 to 25 is accepted and produces a valid secret."""
    for length in range(policy.MIN_LENGTH, policy.MAX_LENGTH + 1):
        assert policy.is_valid(policy.generate(length).reveal())


def test_default_length_is_the_maximum() -> None:
    """Without an argument the secret is 25 characters, the strongest Vonage allows."""
    assert len(policy.generate().reveal()) == 25


@given(length=st.one_of(st.integers(max_value=7), st.integers(min_value=26)))
def test_lengths_outside_the_rules_are_refused(length: int) -> None:
    """A length below 8 or above 25 raises instead of producing a secret Vonage would refuse."""
    with pytest.raises(ValueError, match="between 8 and 25"):
        policy.generate(length)


@settings(max_examples=500)
@given(value=st.text(max_size=40))
def test_violations_agree_with_the_reference_predicate(value: str) -> None:
    """violations() is empty exactly when the reference predicate accepts, for any text."""
    assert (policy.violations(value) == []) == acceptable(value)


@settings(max_examples=300)
@given(
    value=st.text(
        alphabet=st.sampled_from(string.ascii_letters + string.digits + "Éé٣Ａ_-"),
        min_size=6,
        max_size=27,
    )
)
def test_violations_agree_near_the_boundaries(value: str) -> None:
    """Near the length limits and with look-alike characters, both still agree."""
    assert (policy.violations(value) == []) == acceptable(value)


def test_violations_name_each_broken_rule() -> None:
    """Each broken rule is reported in words an operator understands."""
    assert policy.violations("short") == [
        "must be at least 8 characters",
        "must contain an upper case letter",
        "must contain a digit",
    ]
    assert policy.violations("A" * 26) == [
        "must be at most 25 characters",
        "must contain a lower case letter",
        "must contain a digit",
    ]


def test_secrets_differ_between_draws() -> None:
    """A CSPRNG never repeats itself over a few hundred short draws."""
    drawn = {policy.generate(8).reveal() for _ in range(300)}
    assert len(drawn) == 300
