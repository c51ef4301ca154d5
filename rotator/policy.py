"""Vonage's secret rules, and a generator that always meets them. Pure: no I/O."""

from __future__ import annotations

import secrets as _csprng
import string

from rotator.secret import Secret

MIN_LENGTH = 8
MAX_LENGTH = 25
DEFAULT_LENGTH = 25

LOWER = string.ascii_lowercase
UPPER = string.ascii_uppercase
DIGITS = string.digits
# Letters and digits only: no character that needs escaping in a URL, a shell or a config file.
ALPHABET = LOWER + UPPER + DIGITS


def violations(value: str) -> list[str]:
    """The rules ``value`` breaks, in Vonage's words; empty when it is acceptable."""
    problems = []
    if len(value) < MIN_LENGTH:
        problems.append(f"must be at least {MIN_LENGTH} characters")
    if len(value) > MAX_LENGTH:
        problems.append(f"must be at most {MAX_LENGTH} characters")
    if not any(c in LOWER for c in value):
        problems.append("must contain a lower case letter")
    if not any(c in UPPER for c in value):
        problems.append("must contain an upper case letter")
    if not any(c in DIGITS for c in value):
        problems.append("must contain a digit")
    return problems


def is_valid(value: str) -> bool:
    return not violations(value)


def check_length(length: int) -> int:
    if not MIN_LENGTH <= length <= MAX_LENGTH:
        raise ValueError(
            f"secret length must be between {MIN_LENGTH} and {MAX_LENGTH}, not {length}"
        )
    return length


def generate(length: int = DEFAULT_LENGTH) -> Secret:
    """A uniformly random secret of ``length`` that satisfies every rule.

    Rejection sampling keeps the distribution uniform over valid strings (forcing one character of
    each class would bias positions); at length 8 about 3 in 4 draws are accepted.
    """
    check_length(length)
    while True:
        candidate = "".join(_csprng.choice(ALPHABET) for _ in range(length))
        if is_valid(candidate):
            return Secret(candidate)
