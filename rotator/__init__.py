"""rotator: rotates Vonage API secrets through Vault, crash-safe and audited."""

from rotator.errors import RotatorError
from rotator.secret import Secret

__version__ = "0.1.0"

__all__ = ["RotatorError", "Secret", "__version__"]
