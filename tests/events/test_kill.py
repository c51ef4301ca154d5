"""A deliverer process SIGKILLed in the middle of a delivery loses no event."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
from datetime import timedelta
from pathlib import Path

from sqlalchemy.engine import Engine

from rotator.clock import utcnow
from rotator.events.deliverer import Deliverer
from rotator.events.outbox import Outbox, enqueue
from rotator.events.types import EventType
from tests.conftest import LEDGER
from tests.events.conftest import WHSEC, Receiver, endpoint, rows

ROOT = Path(__file__).resolve().parents[2]
CHILD = """
import os
from rotator import db
from rotator.events.deliverer import Deliverer, Endpoint
from rotator.events.outbox import Outbox
from rotator.secret import Secret
engine = db.make_engine(os.environ["T_DB"])
hook = Endpoint("hooks", os.environ["T_URL"], Secret(os.environ["T_SECRET"]))
Deliverer(Outbox(engine, owner="doomed"), [hook]).run_once()
"""


def test_a_sigkilled_deliverer_leaves_every_event_for_the_next_process(
    engine: Engine, receiver: Receiver
) -> None:
    """Killed while its first POST is in flight: after the claim expires, all events arrive."""
    with engine.begin() as conn:
        for n in range(3):
            enqueue(conn, "hooks", EventType.SECRET_REVOKED, {"n": n}, at=utcnow())
    receiver.hold = threading.Event()
    env = {**os.environ, "T_DB": engine.url.render_as_string(hide_password=False),
           "T_URL": receiver.url, "T_SECRET": WHSEC}  # fmt: skip
    child = subprocess.Popen(
        [sys.executable, "-c", CHILD], cwd=ROOT, env=env,
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )  # fmt: skip
    try:
        assert receiver.arrived.wait(60), "the child never sent its first event"
        os.kill(child.pid, signal.SIGKILL)
        output, _ = child.communicate(timeout=30)
    finally:
        receiver.hold.set()
        if child.poll() is None:
            child.kill()
    LEDGER.add_place("killed deliverer output", output or "")
    assert child.returncode == -signal.SIGKILL
    assert [r["status"] for r in rows(engine)] == ["pending"] * 3
    later = Outbox(engine, owner="survivor", clock=lambda: utcnow() + timedelta(minutes=5))
    Deliverer(later, [endpoint(receiver)]).run_once()
    ids = [r["message_id"] for r in rows(engine)]
    assert [r["status"] for r in rows(engine)] == ["delivered"] * 3
    assert receiver.ids() == [ids[0], *ids]  # the first one twice: at least once
