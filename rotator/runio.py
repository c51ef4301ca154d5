"""The I/O shell of one rotation run, and the frozen record its steps pass along.

Steps (``rotator.steps``) are functions from one ``RunRecord`` to the next. What changes *under*
a step while it runs lives in ``RunIO`` instead: the key's lease (renewed at every step, the
fencing token) and the primary's credentials (re-read when a concurrent rotation of the primary
replaced them). ``RunIO.checkpoint`` keeps the newest record a step reached, so recovery
(``rotator.recovery``) sees progress made before a failure inside a step: a pending write that
may have applied, a secret Vonage already created.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, TypeVar

import structlog

from rotator.audit import AuditLog, Run, RunStatus
from rotator.clock import parse, utcnow
from rotator.config import Config
from rotator.errors import RotationError, RotatorError, VonageAuthError, VonageError
from rotator.lease import Lease, Leases
from rotator.primary import PrimarySecret
from rotator.protocol import Observed, Step, created_candidates
from rotator.secret import Credentials, Secret
from rotator.vault import CurrentRecord, RotationState, VaultStore
from rotator.vonage import Reply, SecretInfo, VonageClient

log = structlog.get_logger("rotator.rotation")
T = TypeVar("T")


def no_boundary(name: str) -> None:
    """The production step boundary: nothing happens between steps."""


@dataclass(frozen=True, kw_only=True)
class Deps:
    """What a run talks to; one per ``Rotator``, shared by every run."""

    config: Config
    vault: VaultStore
    vonage: VonageClient
    audit: AuditLog
    leases: Leases
    sleep: Callable[[float], None] = time.sleep
    clock: Callable[[], float] = time.monotonic
    boundary: Callable[[str], None] = no_boundary  # called with before:<step> / after:<step>
    primary_secret: PrimarySecret | None = None  # shared by the runs (None: each reads Vault)

    @property
    def primary(self) -> str:
        return self.config.vonage.primary_api_key

    def admin(self, *, fresh: bool = False) -> Credentials:
        """The primary's credentials: the runs' shared copy, or (``fresh``) Vault's record."""
        if self.primary_secret is None:
            return self.vault.credentials(self.primary)
        return self.primary_secret.read() if fresh else self.primary_secret.get()


@dataclass(frozen=True, kw_only=True)
class RunRecord:
    """What one run knows so far; each step returns an updated copy (``dataclasses.replace``)."""

    run: Run
    api_key: str
    emergency: bool
    grace_period: timedelta
    listed: tuple[SecretInfo, ...] = ()
    record: CurrentRecord | None = None
    state: RotationState = field(default_factory=RotationState)
    old_id: str | None = None
    new_secret: Secret | None = None
    new_id: str | None = None
    staged: bool = False  # a pending secret of this run is (or may be) in Vault
    posted: bool = False  # a POST of this run may have created a secret (rollback looks)
    only_secret_left: bool = False  # rollback found the new secret is the key's last one
    revoke_after: datetime | None = None  # set when revocation was deferred (grace period)
    # Inspect did not list: the run relies on Vault's picture (the key holds the record's secret
    # alone, ``protocol.must_list``), which a definite 201 to its POST then proves.
    vault_picture: bool = False
    key_full: bool = False  # Vonage refused the POST of a run relying on Vault: list from now on

    def known_ids(self) -> tuple[str, ...]:
        """The key's secrets as this run knows them before its POST: what it listed, or the
        one Vault's record names when it relies on Vault (``vault_picture``)."""
        if self.vault_picture:
            return (self.old_id,) if self.old_id else ()
        return tuple(s.id for s in self.listed)

    @classmethod
    def begin(cls, config: Config, run: Run) -> RunRecord:
        """A run's record before its first step (an emergency revokes at once: no grace)."""
        return cls(
            run=run,
            api_key=run.api_key,
            emergency=run.emergency,
            grace_period=timedelta(0) if run.emergency else config.grace_period_for(run.api_key),
            old_id=run.old_secret_id,
            new_id=run.new_secret_id,
        )


@dataclass
class StepReport:
    """What one step reports to the audit log; filled in by the step's body."""

    secret_id: str | None = None
    request_id: str | None = None
    vault_version: int | None = None
    detail: dict[str, Any] = field(default_factory=dict)
    outcome: str = "ok"


def describe(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {exc}"


def authenticates(vonage: VonageClient, creds: Credentials) -> bool:
    try:
        vonage.get_balance(creds)
    except VonageAuthError:
        return False
    return True


def observe(
    vonage: VonageClient,
    api_key: str,
    listed: Sequence[SecretInfo],
    record: CurrentRecord | None,
    state: RotationState,
) -> Observed:
    """What rotator sees of one key, for ``plan`` and a real rotation alike.

    A Vault record whose id Vonage does not list is tried against Vonage (get-balance): a
    stale-but-working record and a dead one lead to different decisions.
    """
    ids = tuple(s.id for s in listed)
    works: bool | None = None
    if record is not None and record.secret_id not in ids:
        works = authenticates(vonage, Credentials(api_key, record.api_secret))
    return Observed(
        vonage_ids=ids,
        record_exists=record is not None,
        record_secret_id=record.secret_id if record else None,
        record_authenticates=works,
        previous_id=state.previous.secret_id if state.previous else None,
        adopted_id=state.adopted_id,
        previous_revoke_after=revoke_after_of(state),
    )


def revoke_after_of(state: RotationState) -> datetime | None:
    """When the previous secret's grace period ends (None: it has none, or there is none)."""
    previous = state.previous
    if previous is None or not previous.revoke_after:
        return None
    try:
        return parse(previous.revoke_after)
    except ValueError:
        return None


def promised_until(audit: AuditLog, api_key: str) -> datetime | None:
    """The latest ``revoke_after`` of the key's runs awaiting revocation of an old secret."""
    return promised_by(audit.awaiting_revoke(api_key))


def promised_by(awaiting: Sequence[Run]) -> datetime | None:
    """The latest ``revoke_after`` of ``awaiting`` (runs awaiting revocation of an old secret)."""
    promised = [
        run.revoke_after for run in awaiting if run.revoke_after is not None and run.old_secret_id
    ]
    return max(promised, default=None)


@dataclass(frozen=True, kw_only=True)
class Known:
    """What a rotation read under the key's lease just before its run started, so the run does
    not read it again: Vault's state record (None: not read) and the key's runs awaiting
    revocation. Under the lease nobody else changes either; every Vault write is still
    check-and-set against the state's version."""

    state: RotationState | None = None
    awaiting: Sequence[Run] | None = None


def supersede(deps: Deps, run: Run, why: str) -> Run:
    """Close a run awaiting revocation whose old secret something else already revoked."""
    log.info("run_superseded", superseded_run=run.id, why=why)
    deps.audit.record(
        run_id=run.id,
        api_key=run.api_key,
        step=Step.REVOKE,
        outcome="superseded",
        started_at=utcnow(),
        secret_id=run.old_secret_id,
        detail={"why": why},
    )
    return deps.audit.finish_run(run.id, RunStatus.SUCCEEDED)


def primary_refused(primary: str, exc: VonageAuthError) -> VonageAuthError:
    """Vault's secret of the primary no longer authenticates: nothing rotator can do alone (it
    manages every key as the primary), so the hint says exactly what the operator must do."""
    return VonageAuthError(
        f"{exc.args[0] if exc.args else exc}; Vault's secret of the primary {primary} "
        "no longer authenticates",
        status=exc.status,
        request_id=exc.request_id,
        hint=(
            f"in the Vonage dashboard, revoke any secret of {primary} you do not recognise and "
            f"create a new one; put its value in an environment variable VAR and run `rotator "
            f"adopt {primary} --secret-id ID --secret-env VAR`, then `rotator rotate "
            f"--emergency {primary}`"
        ),
    )


class RunIO:
    """One run's lease, the primary's credentials, and the audited frame around each step."""

    def __init__(
        self,
        deps: Deps,
        run: Run,
        lease: Lease,
        *,
        named: bool = False,
        known: Known | None = None,
        release: bool = False,
    ) -> None:
        """``named``: ``lease`` was just renewed naming ``run`` (the first step need not).
        ``known``: what the rotation read just before the run (``Known``). ``release``: the
        run's end releases the key's lease in its own transaction (``finish``)."""
        self.deps = deps
        known = known or Known()
        self._state = known.state  # for the first inspect only
        self._awaiting = None if known.awaiting is None else list(known.awaiting)
        self.run = run
        self.lease = lease
        self.admin = deps.admin()  # who manages the key's secrets
        self.latest: RunRecord | None = None
        self._named = named  # the lease names this run (else the first step's renewal does)
        self._run_changes: dict[str, str | None] = {}  # written with the step's audit event
        self._release = release
        self.released = False  # the lease went with the run's end (``finish``)

    def finish(self, status: RunStatus, *, revoke_after: datetime | None = None) -> Run:
        """End the run after its last step; with the key's lease when asked (``release``),
        in the same transaction, so the rotation need not release it in one of its own."""
        leases, lease = self.deps.leases, self.lease
        run = self.deps.audit.finish_run(
            self.run.id,
            status,
            revoke_after=revoke_after,
            within=(lambda conn: leases.release(lease, conn=conn)) if self._release else None,
        )
        self.released = self._release  # committed: the run's end and the release alike
        return run

    def note_run(self, **changes: str | None) -> None:
        """Set fields of the run's summary (``old_secret_id``, ``new_secret_id``) with the
        current step's audit event, in its transaction (``AuditLog.record``): the run row and
        the step's outcome never disagree, for one transaction instead of two. A crash inside
        the step leaves the row as before it; resume reads Vault and Vonage then
        (``protocol.resume``: the staged secret's id in Vault, else a listing)."""
        self._run_changes.update(changes)

    def checkpoint(self, record: RunRecord) -> RunRecord:
        """Remember ``record`` as the run's progress (what recovery starts from)."""
        self.latest = record
        return record

    def renew(self, *, run_id: str | None = None) -> None:
        """Renew the lease (fencing) unless this run renewed it so recently it cannot have
        lapsed (``Leases.fresh``): the first renewal names the run on the lease."""
        if self._named and self.deps.leases.fresh(self.lease):
            return
        self.lease = self.deps.leases.renew(self.lease, run_id=run_id)
        self._named = self._named or run_id is not None

    def refresh_admin(self) -> None:
        self.admin = self.deps.admin(fresh=True)

    def use_admin(self, creds: Credentials) -> None:
        """This run made ``creds`` the primary's current secret: every run uses it from now."""
        self.admin = creds
        if self.deps.primary_secret is not None:
            self.deps.primary_secret.use(creds)

    def as_admin(self, call: Callable[[Credentials], T]) -> T:
        """Call Vonage as the primary. If refused, re-read the primary's secret and retry once:
        a rotation of the primary running alongside may have replaced (and revoked) the one this
        run read at its start. A 401 means nothing was applied, so the retry is safe."""
        try:
            return call(self.admin)
        except VonageAuthError as exc:
            fresh = self.deps.admin(fresh=True)
            if fresh == self.admin:
                raise primary_refused(self.deps.primary, exc) from None
            log.info("primary_secret_changed", detail="retrying with the primary's new secret")
            self.admin = fresh
            return call(fresh)

    def list_secrets(self, api_key: str) -> tuple[list[SecretInfo], str | None]:
        reply = self.as_admin(lambda admin: self.deps.vonage.list_secrets(admin, api_key))
        return reply.secrets, reply.request_id

    def revoke(self, api_key: str, secret_id: str) -> str | None:
        """Revoke one secret as the primary; the request id for the audit log."""
        return self.revoke_reply(api_key, secret_id).request_id

    def revoke_reply(self, api_key: str, secret_id: str) -> Reply:
        """Revoke one secret as the primary; ``Reply.revoked``: did Vonage's 204 settle it."""

        def call(admin: Credentials) -> Reply:
            log.info("revoking_secret", secret_id=secret_id)
            return self.deps.vonage.revoke_secret(admin, api_key, secret_id)

        return self.as_admin(call)

    def find_created(self, record: RunRecord, before: set[str]) -> str | None:
        """The secret an ambiguous POST of this run created, if any (none known before it)."""
        listed, _ = self.list_secrets(record.api_key)
        candidates = created_candidates(
            [(s.id, s.created_at) for s in listed], before, record.run.started_at
        )
        if len(candidates) > 1:
            raise RotationError(
                f"{record.api_key} gained {len(candidates)} unknown secrets during the rotation; "
                "cannot tell which one rotator created",
                hint="run `rotator rotate --emergency` to revoke every secret rotator did not make",
            )
        return candidates[0] if candidates else None

    def state(self, api_key: str) -> RotationState:
        """The key's state record in Vault: read before the run started, the first time."""
        state, self._state = self._state, None
        return state if state is not None else self.deps.vault.read_state(api_key)

    def awaiting_revoke(self) -> list[Run]:
        """The run's key's runs awaiting revocation (read once; only this run, holding the
        key's lease, changes them: ``close_superseded``)."""
        if self._awaiting is None:
            self._awaiting = self.deps.audit.awaiting_revoke(self.run.api_key)
        return self._awaiting

    def close_superseded(self, record: RunRecord, on_vonage: set[str]) -> None:
        """Runs awaiting revocation whose old secret is gone now are done."""
        for waiting in self.awaiting_revoke():
            if waiting.id != record.run.id and waiting.old_secret_id not in on_vonage:
                self._awaiting = None  # read again next time
                supersede(self.deps, waiting, f"its old secret was revoked by run {record.run.id}")

    @contextmanager
    def step(self, step: Step) -> Iterator[StepReport]:
        """Run one step: renew the lease (fencing), bind logs, audit the outcome."""
        self.deps.boundary(f"before:{step}")
        self.renew(run_id=self.run.id)
        structlog.contextvars.bind_contextvars(step=str(step))
        started = utcnow()
        report = StepReport()
        self._run_changes = {}
        try:
            yield report
        except BaseException as exc:
            error = describe(exc) if isinstance(exc, Exception) else type(exc).__name__
            self._audit(step, "failed", started, report, error=error, exc=exc)
            raise
        else:
            self._audit(step, report.outcome, started, report)
        finally:
            structlog.contextvars.unbind_contextvars("step")
        self.deps.boundary(f"after:{step}")

    def _audit(
        self,
        step: Step,
        outcome: str,
        started: datetime,
        report: StepReport,
        *,
        error: str | None = None,
        exc: BaseException | None = None,
    ) -> None:
        if isinstance(exc, VonageError) and report.request_id is None:
            report.request_id = exc.request_id
        try:
            self.deps.audit.record(
                run_id=self.run.id,
                api_key=self.run.api_key,
                step=str(step),
                outcome=outcome,
                started_at=started,
                actor=self.run.actor,
                secret_id=report.secret_id,
                request_id=report.request_id,
                vault_version=report.vault_version,
                error=error,
                detail=report.detail or None,
                run_changes=self._run_changes,
            )
        except RotatorError as audit_exc:
            if exc is None:
                raise
            log.error("audit_write_failed", error=str(audit_exc))
        log.info("step", outcome=outcome, error=error)
