"""Finding secret values where they must never be: the suite-wide ledger and its helpers.

Every world (tests/conftest.py) hands over the secret values it knew — the simulator's, every
version Vault ever held on its paths, the Vault token — and every text it produced: database
dumps and CLI output. pytest's captured output and failure texts of every test are added by a
hook. At the end of the session everything is scanned for every value; one hit fails the run.

Under pytest-xdist each worker keeps its own ledger and hands it to the controller when it
finishes (``export``/``merge``); the controller, which also receives every test report, scans
the union, so a value one worker generated is looked for in every other worker's output too.
"""

from __future__ import annotations

import bisect
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

import hvac
import sqlalchemy as sa

from rotator import db

if TYPE_CHECKING:
    from tests.conftest import World

MIN_LENGTH = 8  # Vonage's minimum: shorter strings would match ordinary words
HIT = "<THE VALUE>"  # where a hit was, in what a LEAK line shows around it


def vault_versions(world: World, path: str) -> list[dict[str, Any]]:
    """Every version still readable at ``path`` (KV v2 keeps history)."""
    kv = world.vault_admin.secrets.kv.v2
    try:
        meta = kv.read_secret_metadata(path=path, mount_point="secret")
    except hvac.exceptions.InvalidPath:
        return []
    found = []
    for version in meta["data"]["versions"]:
        data = kv.read_secret_version(
            path=path, version=int(version), mount_point="secret", raise_on_deleted_version=True
        )
        if data["data"]["data"]:
            found.append(data["data"]["data"])
    return found


def world_secret_values(world: World) -> dict[str, str]:
    """Label -> value of every secret a world has known (labels never contain values)."""
    values = {"Vault root token": world.openbao.root_token.reveal()}
    for key in world.sim.accounts():
        for secret in world.sim.secrets(key):
            values[f"{key} secret {secret.id} on Vonage"] = secret.value
        for n, record in enumerate(vault_versions(world, f"{world.prefix}/vonage/{key}")):
            if isinstance(record.get("api_secret"), str):
                values[f"{key} current record v{n + 1}"] = record["api_secret"]
        for n, state in enumerate(vault_versions(world, f"{world.prefix}/rotator-state/{key}")):
            for slot in ("pending", "previous"):
                if isinstance(state.get(slot), dict):
                    values[f"{key} {slot} v{n + 1}"] = state[slot]["secret"]
    return values


def database_dump(database_url: str) -> dict[str, str | bytes]:
    """The SQLite files byte for byte, or every PostgreSQL row as text."""
    url = sa.make_url(database_url)
    if url.get_backend_name() == "sqlite":
        path = Path(str(url.database))
        files = [path, *path.parent.glob(path.name + "-*")]
        return {f"database file {p.name}": p.read_bytes() for p in files if p.exists()}
    engine = db.make_engine(database_url)
    try:
        with engine.connect() as conn:
            return {
                f"table {name}": "\n".join(
                    str(tuple(row))
                    for row in conn.execute(sa.text(f'SELECT * FROM "{name}"'))  # noqa: S608
                )
                for name in sa.inspect(conn).get_table_names()
            }
    finally:
        engine.dispose()


def find(values: Mapping[str, str], places: Mapping[str, str | bytes]) -> list[str]:
    """``"<value label> in <place>"`` for every value found in any place."""
    labels = list(places)
    blobs = [t.encode() if isinstance(t, str) else t for t in places.values()]
    starts, offset = [], 0
    for blob in blobs:
        starts.append(offset)
        offset += len(blob) + 1
    haystack = b"\0".join(blobs)
    found = []
    for label, value in values.items():
        if len(value) < MIN_LENGTH:
            continue
        at = haystack.find(value.encode())
        if at >= 0:
            n = bisect.bisect_right(starts, at) - 1
            blob = blobs[n]
            found.append(f"{label} in {labels[n]}: {_context(blob, at - starts[n], value, values)}")
    return found


def _context(blob: bytes, at: int, value: str, values: Mapping[str, str]) -> str:
    """80 characters either side of a hit, every known value masked: enough to tell who wrote
    it. Masked in a wider slice first, so no value cut by the window's edge shows a part."""
    margin = 80 + max(len(v) for v in values.values())
    wide = blob[max(0, at - margin) : at + len(value) + margin].decode(errors="replace")
    wide = wide.replace(value, HIT)
    for other in values.values():
        if len(other) >= MIN_LENGTH:
            wide = wide.replace(other, "<another value>")
    hit = wide.index(HIT)
    return repr(wide[max(0, hit - 80) : hit + len(HIT) + 80])


class SecretLedger:
    """Collects values and texts over the whole session; scans once at the end."""

    def __init__(self) -> None:
        self.values: dict[str, str] = {}
        self.places: dict[str, str | bytes] = {}
        self.hits: list[str] = []

    def add_values(self, values: Mapping[str, str], scope: str) -> None:
        for label, value in values.items():
            self.values.setdefault(value, f"{scope}: {label}")

    def add_place(self, where: str, text: str | bytes) -> None:
        if text:
            self.places[f"{where} #{len(self.places)}"] = text

    def check_now(self, values: Mapping[str, str], places: Mapping[str, str | bytes]) -> None:
        """Scan large texts (database files) at once instead of keeping them."""
        self.hits.extend(find(values, places))

    def export(self) -> dict[str, Any]:
        """Everything collected, as plain data a worker can send to the controller."""
        return {"values": dict(self.values), "places": dict(self.places), "hits": list(self.hits)}

    def merge(self, exported: Mapping[str, Any], source: str) -> None:
        """Take over another process's ``export()``."""
        for value, label in exported["values"].items():
            self.values.setdefault(value, label)
        for where, text in exported["places"].items():
            self.add_place(f"{source} {where}", text)
        self.hits.extend(exported["hits"])

    def scan(self) -> list[str]:
        by_label = {label: value for value, label in self.values.items()}
        return [*self.hits, *find(by_label, self.places)]
