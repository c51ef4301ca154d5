"""``rotator run``: keeps every key of the account rotated on schedule, unattended.

One APScheduler job per API key (job id = the key), each a one-shot check at the key's due time
that rotates if the audit log says the key is due, then schedules its own next check. Keys rotate
in parallel on a bounded pool and share one rate limiter. Everything the schedule depends on lives
in the database, so restarts and replicas agree on it; leases keep two processes off one key.

Start: migrate, resume runs a crash left unfinished, revoke old secrets whose grace period has
passed, discover the keys, schedule them. Stop (SIGTERM/SIGINT): start no new rotation, let each
one in flight run to its end (a run is never abandoned half-way; its slowest step, verify, is
bounded by rotation.verify_timeout), exit 0.

The parts: ``core`` (the ``Daemon``'s lifecycle and status snapshot), ``registry`` (the managed
keys), ``jobs`` (the only code that touches APScheduler), ``work`` (what the jobs do).
"""

from rotator.daemon.core import Daemon
from rotator.daemon.registry import KeyState
from rotator.snapshot import Phase

__all__ = ["Daemon", "KeyState", "Phase"]
