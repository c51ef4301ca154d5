"""``VonageSimulator``: the test double's public face, knobs and test-only introspection.

Introspection (``secrets()``, ``calls``, ``sms_outbox``...) is Python-only on purpose: nothing in
the HTTP API can reveal more than Vonage's own API does, so code tested against the simulator
cannot come to depend on a backdoor.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterable, Mapping
from types import TracebackType
from typing import Any, Final, Self

from rotator.devtools.simulator.faults import Fault, FaultBook
from rotator.devtools.simulator.ratelimit import TokenBucket
from rotator.devtools.simulator.records import CallRecord, HostName, SmsMessage
from rotator.devtools.simulator.routes import Context
from rotator.devtools.simulator.server import HttpFront
from rotator.devtools.simulator.state import (
    InvalidSecretError,
    SimSecret,
    SimState,
    TooManySecretsError,
    UnknownAccountError,
)

EXCESS_SECRET_STATUSES: Final = (400, 403)
_SUBACCOUNT_FIELDS: Final = frozenset({"api_key", "secret", "name", "suspended"})


class _Core:
    """Everything the HTTP threads share, behind locks; implements ``server.Backend``."""

    def __init__(
        self,
        state: SimState,
        *,
        excess_secret_status: int,
        rate_limit: float | None,
        latency: float,
        seed: int | None,
    ) -> None:
        self._lock = threading.Lock()
        self.state = state
        self.faults = FaultBook(seed)
        self.bucket = TokenBucket(rate_limit, state.clock)
        self._stopping = threading.Event()
        self._calls: list[CallRecord] = []
        self._errors: list[BaseException] = []
        self.excess_secret_status = excess_secret_status
        self.latency = latency

    @property
    def stopping(self) -> threading.Event:
        return self._stopping

    @property
    def excess_secret_status(self) -> int:
        return self._excess_secret_status

    @excess_secret_status.setter
    def excess_secret_status(self, status: int) -> None:
        if status not in EXCESS_SECRET_STATUSES:
            raise ValueError(
                "excess_secret_status must be 400 (the spec) or 403 (the SDK fixtures)"
            )
        with self._lock:
            self._excess_secret_status = status

    @property
    def latency(self) -> float:
        return self._latency

    @latency.setter
    def latency(self, seconds: float) -> None:
        if not seconds >= 0:
            raise ValueError("latency must be >= 0 seconds")
        with self._lock:
            self._latency = float(seconds)

    def now(self) -> float:
        return self.state.clock()

    def context(self) -> Context:
        return Context(state=self.state, excess_secret_status=self._excess_secret_status)

    def admit(self) -> int | None:
        return self.bucket.acquire()

    def take_fault(self, method: str, host: HostName, path: str) -> Fault | None:
        return self.faults.take(method, host, path)

    def record(self, call: CallRecord) -> None:
        with self._lock:
            self._calls.append(call)

    def internal_error(self, error: BaseException) -> None:
        with self._lock:
            self._errors.append(error)

    def calls(self) -> list[CallRecord]:
        with self._lock:
            return list(self._calls)

    def reset_calls(self) -> None:
        with self._lock:
            self._calls.clear()

    def errors(self) -> list[BaseException]:
        with self._lock:
            return list(self._errors)


class VonageSimulator:
    """Vonage's account, subaccounts and SMS APIs on two loopback ports, for tests and dry runs.

    The "api" host serves secrets and subaccounts (HTTP Basic auth), the "rest" host serves the
    balance and SMS endpoints. Knobs (``propagation_delay``, ``rate_limit``, ``latency``,
    ``excess_secret_status``, ``clock``) can be changed at any time, from any thread.
    """

    def __init__(
        self,
        primary_api_key: str = "abcd1234",
        primary_secret: str = "Primary1Secret",  # nosec B107  # noqa: S107 - a simulator credential
        *,
        subaccounts: Iterable[Mapping[str, Any]] = (),
        excess_secret_status: int = 403,
        propagation_delay: float = 0.0,
        rate_limit: float | None = None,
        latency: float = 0.0,
        clock: Callable[[], float] = time.monotonic,
        seed: int | None = 0,
        host: str = "127.0.0.1",
        api_port: int = 0,
        rest_port: int = 0,
    ) -> None:
        state = SimState(
            primary_api_key=primary_api_key,
            primary_secret=primary_secret,
            clock=clock,
            propagation_delay=propagation_delay,
        )
        self._core = _Core(
            state,
            excess_secret_status=excess_secret_status,
            rate_limit=rate_limit,
            latency=latency,
            seed=seed,
        )
        for sub in subaccounts:
            unknown = set(sub) - _SUBACCOUNT_FIELDS
            if unknown or "api_key" not in sub or "secret" not in sub:
                raise ValueError(
                    "each subaccount needs 'api_key' and 'secret' (optional: 'name', 'suspended')"
                    + (f"; unknown fields: {sorted(unknown)}" if unknown else "")
                )
            self.add_subaccount(
                sub["api_key"],
                sub["secret"],
                name=sub.get("name"),
                suspended=bool(sub.get("suspended", False)),
            )
        self._host = host
        self._ports = (api_port, rest_port)
        self._front: HttpFront | None = None
        self._stopped = False
        self._lifecycle = threading.Lock()

    # -- lifecycle -------------------------------------------------------------------------------

    def start(self) -> Self:
        """Bind both ports and start serving; a stopped simulator cannot be restarted."""
        with self._lifecycle:
            if self._stopped:
                raise RuntimeError("this simulator was stopped; create a new one")
            if self._front is not None:
                raise RuntimeError("this simulator is already running")
            front = HttpFront(
                self._core, host=self._host, api_port=self._ports[0], rest_port=self._ports[1]
            )
            front.start()
            self._front = front
        return self

    def stop(self) -> None:
        """Stop promptly, even while a "timeout" fault holds a connection. Idempotent."""
        with self._lifecycle:
            self._stopped = True
            self._core.stopping.set()
            front, self._front = self._front, None
        if front is not None:
            front.stop()

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    @property
    def api_url(self) -> str:
        """Base URL of the "api" host (api.nexmo.com), without a trailing slash."""
        return self._running().url("api")

    @property
    def rest_url(self) -> str:
        """Base URL of the "rest" host (rest.nexmo.com), without a trailing slash."""
        return self._running().url("rest")

    def _running(self) -> HttpFront:
        front = self._front
        if front is None:
            raise RuntimeError("the simulator is not running: call start() or use `with`")
        return front

    # -- knobs -----------------------------------------------------------------------------------

    @property
    def excess_secret_status(self) -> int:
        """400 (as the OpenAPI spec says) or 403 ``#add-excess-secret`` (as the SDKs see)."""
        return self._core.excess_secret_status

    @excess_secret_status.setter
    def excess_secret_status(self, status: int) -> None:
        self._core.excess_secret_status = status

    @property
    def propagation_delay(self) -> float:
        """Seconds (of ``clock``) before a new secret authenticates; fixed when it is created."""
        return self._core.state.propagation_delay

    @propagation_delay.setter
    def propagation_delay(self, seconds: float) -> None:
        self._core.state.propagation_delay = seconds

    @property
    def rate_limit(self) -> float | None:
        """Requests per second across both hosts; excess calls get 429 with Retry-After."""
        return self._core.bucket.rate

    @rate_limit.setter
    def rate_limit(self, rate: float | None) -> None:
        self._core.bucket.configure(rate)

    @property
    def latency(self) -> float:
        """Seconds of real time added before every response."""
        return self._core.latency

    @latency.setter
    def latency(self, seconds: float) -> None:
        self._core.latency = seconds

    @property
    def clock(self) -> Callable[[], float]:
        """The time source for propagation, the rate limit and the call log."""
        return self._core.state.clock

    @clock.setter
    def clock(self, clock: Callable[[], float]) -> None:
        self._core.state.clock = clock
        self._core.bucket.configure(self._core.bucket.rate, clock)

    # -- faults ----------------------------------------------------------------------------------

    def inject(self, fault: Fault) -> Fault:
        """Arm ``fault``; counting for ``nth`` starts now. Returns it, for ``fault_hits``."""
        return self._core.faults.inject(fault)

    def clear_faults(self) -> None:
        self._core.faults.clear()

    def fault_hits(self, fault: Fault) -> int:
        """How many calls this (injected) fault affected so far."""
        return self._core.faults.hits(fault)

    # -- accounts and secrets (test-only) --------------------------------------------------------

    @property
    def primary_api_key(self) -> str:
        return self._core.state.primary_api_key

    def add_subaccount(
        self, api_key: str, secret: str, name: str | None = None, suspended: bool = False
    ) -> None:
        self._core.state.add_subaccount(api_key, secret, name=name, suspended=suspended)

    def set_suspended(self, api_key: str, suspended: bool) -> None:
        """A suspended subaccount does not authenticate at all."""
        try:
            self._core.state.set_suspended(api_key, suspended)
        except UnknownAccountError:
            raise KeyError(api_key) from None

    def add_secret(self, api_key: str, value: str, *, propagated: bool = False) -> str:
        """Add a secret as if made in the dashboard: no auth, same limits. Returns its id.

        Like any new secret it waits for ``propagation_delay`` unless ``propagated=True``.
        """
        try:
            return self._core.state.create_secret(api_key, value, propagated=propagated).id
        except UnknownAccountError:
            raise KeyError(api_key) from None
        except InvalidSecretError as exc:
            raise ValueError(f"invalid secret: {'; '.join(exc.reasons)}") from None
        except TooManySecretsError as exc:
            raise ValueError(str(exc)) from None

    def delete_secret(self, api_key: str, secret_id: str) -> None:
        """Revoke a secret as if in the dashboard (an attacker's move in tests); same limits."""
        try:
            self._core.state.delete_secret(api_key, secret_id)
        except UnknownAccountError:
            raise KeyError(api_key) from None

    def secrets(self, api_key: str) -> list[SimSecret]:
        """The account's secrets, oldest first (values included: this is the test's view)."""
        try:
            return self._core.state.secrets(api_key)
        except UnknownAccountError:
            raise KeyError(api_key) from None

    def secret_ids(self, api_key: str) -> list[str]:
        return [secret.id for secret in self.secrets(api_key)]

    def authenticates(self, api_key: str, value: str) -> bool:
        """The server's own rule: a current, propagated secret of an unsuspended account."""
        return self._core.state.authenticates(api_key, value)

    def accounts(self) -> list[str]:
        """Every API key, the primary first."""
        return self._core.state.accounts()

    # -- what happened (test-only) ---------------------------------------------------------------

    @property
    def calls(self) -> list[CallRecord]:
        """A copy of the call log, in completion order. Never holds secrets."""
        return self._core.calls()

    def reset_calls(self) -> None:
        self._core.reset_calls()

    @property
    def sms_outbox(self) -> list[SmsMessage]:
        """Every SMS accepted by ``POST /sms/json``, oldest first."""
        return self._core.state.outbox()

    @property
    def errors(self) -> list[BaseException]:
        """Exceptions raised inside the simulator (its own bugs); answered as 500s."""
        return self._core.errors()
