"""``rotator simulate``: the Vonage API simulator, a development tool, as a command."""

from rotator.devtools.simulate import simulate

__all__ = ["simulate"]
