"""Accounts, secrets and Vonage's rules about them: pure state, no HTTP.

The HTTP layer asks questions ("does this key/secret authenticate?", "may this caller touch that
account?") and requests changes; every refusal is a ``StateError`` subclass that the HTTP layer
renders as the documented status and body. Keeping the rules here means the Python introspection
API (``VonageSimulator.authenticates``) and the server can never disagree.
"""

from __future__ import annotations

import hmac
import re
import string
import threading
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Final

from rotator.devtools.simulator.records import SmsMessage

MAX_SECRETS: Final = 2
SECRET_MIN_LENGTH: Final = 8
SECRET_MAX_LENGTH: Final = 25
DEFAULT_BALANCE: Final = 10.0
SMS_PRICE: Final = 0.0333
_MASK: Final = "********"
_API_KEY = re.compile(r"[A-Za-z0-9_-]{1,64}")


def secret_problems(value: str) -> list[str]:
    """Why Vonage would refuse ``value`` as a new secret; empty when it is acceptable."""
    problems = []
    if not SECRET_MIN_LENGTH <= len(value) <= SECRET_MAX_LENGTH:
        problems.append(
            f"must be between {SECRET_MIN_LENGTH} and {SECRET_MAX_LENGTH} characters long"
        )
    if not any(c in string.ascii_lowercase for c in value):
        problems.append("must contain at least 1 lower case character")
    if not any(c in string.ascii_uppercase for c in value):
        problems.append("must contain at least 1 upper case character")
    if not any(c in string.digits for c in value):
        problems.append("must contain at least 1 digit")
    return problems


def validate_api_key(api_key: str) -> None:
    """API keys appear in URL paths and before the colon of Basic auth, so keep them plain."""
    if not isinstance(api_key, str) or not _API_KEY.fullmatch(api_key):
        raise ValueError(f"invalid api_key {api_key!r}: use 1-64 letters, digits, '_' or '-'")


@dataclass(frozen=True, kw_only=True)
class SimSecret:
    """A secret as the simulator stores it. ``repr`` masks the value so test output stays clean.

    ``value`` is excluded from comparison so pytest's dataclass diff never prints it either.
    ``propagated_at`` is the clock reading from which the secret authenticates.
    """

    id: str
    value: str = field(compare=False)
    created_at: datetime
    propagated_at: float

    def __repr__(self) -> str:
        return (
            f"SimSecret(id={self.id!r}, value='{_MASK}', "
            f"created_at={self.created_at.isoformat()!r}, propagated_at={self.propagated_at!r})"
        )

    __str__ = __repr__


@dataclass(frozen=True, kw_only=True)
class AccountInfo:
    """A snapshot of an account's public attributes (what the subaccounts API shows)."""

    api_key: str
    name: str
    primary_api_key: str | None  # None for the primary itself
    suspended: bool
    created_at: datetime
    balance: float

    @property
    def is_primary(self) -> bool:
        return self.primary_api_key is None


@dataclass(kw_only=True)
class _Account:
    api_key: str
    name: str
    primary_api_key: str | None
    suspended: bool
    created_at: datetime
    balance: float
    secrets: list[SimSecret] = field(default_factory=list)

    def info(self) -> AccountInfo:
        return AccountInfo(
            api_key=self.api_key,
            name=self.name,
            primary_api_key=self.primary_api_key,
            suspended=self.suspended,
            created_at=self.created_at,
            balance=self.balance,
        )


class StateError(Exception):
    """A request Vonage would refuse. Messages never contain a secret value."""


class UnknownAccountError(StateError):
    def __init__(self, api_key: str) -> None:
        super().__init__(f"API key '{api_key}' not found")
        self.api_key = api_key


class UnknownSecretError(StateError):
    def __init__(self, secret_id: str) -> None:
        super().__init__(f"ID '{secret_id}' could not be found")
        self.secret_id = secret_id


class ForbiddenError(StateError):
    def __init__(self, caller: str, target: str) -> None:
        super().__init__(f"Account '{caller}' may not manage account '{target}'")
        self.caller = caller
        self.target = target


class InvalidSecretError(StateError):
    def __init__(self, reasons: list[str]) -> None:
        super().__init__("The request failed due to secret validation errors")
        self.reasons = reasons


class TooManySecretsError(StateError):
    def __init__(self) -> None:
        super().__init__(
            f"This account has reached maximum number of '{MAX_SECRETS}' allowed secrets"
        )


class LastSecretError(StateError):
    def __init__(self) -> None:
        super().__init__(
            "Can not delete the last secret. "
            "The account must always have at least 1 secret active at any time"
        )


class InsufficientBalanceError(StateError):
    def __init__(self) -> None:
        super().__init__("Partner Quota Violation")


def _now() -> datetime:
    return datetime.now(UTC).replace(microsecond=0)


class SimState:
    """One primary account, its subaccounts, their secrets, balances and the SMS outbox.

    Every method takes the one lock, so the HTTP threads and the test thread see a consistent
    world. ``clock`` decides propagation; ``propagation_delay`` is read when a secret is created.
    """

    def __init__(
        self,
        *,
        primary_api_key: str,
        primary_secret: str,
        clock: Callable[[], float],
        propagation_delay: float = 0.0,
    ) -> None:
        self._lock = threading.RLock()
        self._clock = clock
        self.propagation_delay = propagation_delay
        self._accounts: dict[str, _Account] = {}
        self._outbox: list[SmsMessage] = []
        self.primary_api_key = primary_api_key
        self._add_account(primary_api_key, primary_secret, name="Primary account", primary=None)

    # -- configuration -------------------------------------------------------------------------

    @property
    def clock(self) -> Callable[[], float]:
        return self._clock

    @clock.setter
    def clock(self, clock: Callable[[], float]) -> None:
        if not callable(clock):
            raise TypeError("clock must be a callable returning seconds as a float")
        with self._lock:
            self._clock = clock

    @property
    def propagation_delay(self) -> float:
        return self._propagation_delay

    @propagation_delay.setter
    def propagation_delay(self, delay: float) -> None:
        if delay < 0:
            raise ValueError("propagation_delay must be >= 0")
        with self._lock:
            self._propagation_delay = float(delay)

    # -- accounts ------------------------------------------------------------------------------

    def add_subaccount(
        self, api_key: str, secret: str, *, name: str | None = None, suspended: bool = False
    ) -> None:
        self._add_account(
            api_key,
            secret,
            name=name or f"Subaccount {api_key}",
            primary=self.primary_api_key,
            suspended=suspended,
        )

    def _add_account(
        self,
        api_key: str,
        secret: str,
        *,
        name: str,
        primary: str | None,
        suspended: bool = False,
    ) -> None:
        validate_api_key(api_key)
        problems = secret_problems(secret)
        if problems:
            raise ValueError(f"initial secret for {api_key} is invalid: {'; '.join(problems)}")
        with self._lock:
            if api_key in self._accounts:
                raise ValueError(f"account {api_key} already exists")
            account = _Account(
                api_key=api_key,
                name=name,
                primary_api_key=primary,
                suspended=suspended,
                created_at=_now(),
                balance=DEFAULT_BALANCE,
            )
            # Seeded secrets exist before the test starts, so they are already propagated.
            account.secrets.append(self._new_secret(secret, propagated=True))
            self._accounts[api_key] = account

    def set_suspended(self, api_key: str, suspended: bool) -> None:
        with self._lock:
            account = self._account(api_key)
            if account.primary_api_key is None:
                raise ValueError("the primary account cannot be suspended")
            account.suspended = suspended

    def accounts(self) -> list[str]:
        """Every API key, primary first (insertion order)."""
        with self._lock:
            return list(self._accounts)

    def info(self, api_key: str) -> AccountInfo:
        with self._lock:
            return self._account(api_key).info()

    def subaccounts(self) -> list[AccountInfo]:
        with self._lock:
            return [a.info() for a in self._accounts.values() if a.primary_api_key is not None]

    def _account(self, api_key: str) -> _Account:
        try:
            return self._accounts[api_key]
        except KeyError:
            raise UnknownAccountError(api_key) from None

    # -- authentication and authorisation ------------------------------------------------------

    def authenticates(self, api_key: str, secret: str) -> bool:
        """Whether ``api_key``/``secret`` would log in now: any propagated secret, not suspended."""
        with self._lock:
            account = self._accounts.get(api_key)
            if account is None or account.suspended:
                return False
            now = self._clock()
            matches = [
                s
                for s in account.secrets
                if hmac.compare_digest(s.value.encode(), secret.encode()) and now >= s.propagated_at
            ]
            return bool(matches)

    def authorize_secrets(self, caller: str, target: str) -> None:
        """A primary manages itself and its subaccounts; a subaccount manages only itself."""
        with self._lock:
            account = self._account(target)
            if caller != target and account.primary_api_key != caller:
                raise ForbiddenError(caller, target)

    def authorize_subaccounts(self, caller: str, target: str) -> None:
        """Only the primary, acting as itself, may look at the subaccount list."""
        with self._lock:
            account = self._account(target)
            if caller != target or account.primary_api_key is not None:
                raise ForbiddenError(caller, target)

    # -- secrets -------------------------------------------------------------------------------

    def secrets(self, api_key: str) -> list[SimSecret]:
        """The account's secrets, oldest first."""
        with self._lock:
            return list(self._account(api_key).secrets)

    def secret(self, api_key: str, secret_id: str) -> SimSecret:
        with self._lock:
            for secret in self._account(api_key).secrets:
                if secret.id == secret_id:
                    return secret
            raise UnknownSecretError(secret_id)

    def create_secret(self, api_key: str, value: str, *, propagated: bool = False) -> SimSecret:
        """Validate first, then the limit: a bad secret is a 400 even on a full account."""
        with self._lock:
            account = self._account(api_key)
            problems = secret_problems(value)
            if problems:
                raise InvalidSecretError(problems)
            if len(account.secrets) >= MAX_SECRETS:
                raise TooManySecretsError()
            secret = self._new_secret(value, propagated=propagated)
            account.secrets.append(secret)
            return secret

    def delete_secret(self, api_key: str, secret_id: str) -> None:
        with self._lock:
            account = self._account(api_key)
            secret = self.secret(api_key, secret_id)
            if len(account.secrets) <= 1:
                raise LastSecretError()
            account.secrets.remove(secret)

    def _new_secret(self, value: str, *, propagated: bool) -> SimSecret:
        now = self._clock()
        return SimSecret(
            id=str(uuid.uuid4()),
            value=value,
            created_at=_now(),
            propagated_at=now if propagated else now + self._propagation_delay,
        )

    # -- balance and SMS -----------------------------------------------------------------------

    def balance(self, api_key: str) -> float:
        with self._lock:
            return self._account(api_key).balance

    def send_sms(self, api_key: str, *, sender: str, to: str, text: str) -> float:
        """Charge the account and queue the message; returns the remaining balance."""
        with self._lock:
            account = self._account(api_key)
            if account.balance < SMS_PRICE:
                raise InsufficientBalanceError()
            account.balance = round(account.balance - SMS_PRICE, 8)
            self._outbox.append(SmsMessage(api_key=api_key, sender=sender, to=to, text=text))
            return account.balance

    def outbox(self) -> list[SmsMessage]:
        with self._lock:
            return list(self._outbox)
