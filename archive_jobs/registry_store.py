"""The device and proof registry in PostgreSQL, one batch per call (see ``batching``).

Arbitration is the database's: a device or a content hash has one row, inserted with
``ON CONFLICT DO NOTHING``; whoever's row is there after the insert has won. A row names the
item that wrote it, so the same item handled again (a redelivery) recognises its own win.
Each batch is one transaction committed before any item is answered: an outcome is never
published for a win that could still be lost.
"""

from dataclasses import dataclass
from datetime import datetime
from typing import Any, TypeAlias
from uuid import UUID

import psycopg2
from sqlalchemy.engine import make_url

from storage.engine import normalise_url


@dataclass(frozen=True, slots=True)
class Enrollment:
    device_id: str
    public_key: bytes
    key_fingerprint: str
    platform: str | None
    label: str | None
    job_id: UUID
    item_index: int


@dataclass(frozen=True, slots=True)
class DeviceRow:
    device_id: str
    public_key: bytes
    key_fingerprint: str
    platform: str | None
    label: str | None
    enrolled_at: datetime
    job_id: UUID
    item_index: int
    proofs_count: int = 0


# A proof lock crosses a process boundary per item (``verified_locks``), so its request and
# its answer are plain tuples (a NamedTuple pickles four times slower), with text ids.
LockRequest: TypeAlias = tuple[bytes, bytes, str, str, str, datetime | None, str, int]
"""``(public_key, signature, content_hash, proof_id, device_id, captured_at, job_id,
item_index)``: ``signature`` by the device's ``public_key`` over the hash's 32 bytes."""

LockedProof: TypeAlias = tuple[str, str, str, datetime | None, datetime, str, int]
"""``(content_hash, proof_id, device_id, captured_at, locked_at, job_id, item_index)``: the
hash's row, written by this request or by whichever item locked the hash first."""


@dataclass(frozen=True, slots=True)
class ProofRow:
    content_hash: str
    proof_id: UUID
    device_id: str
    captured_at: datetime | None
    locked_at: datetime
    job_id: UUID
    item_index: int


@dataclass(frozen=True, slots=True)
class Lookup:
    """What a query item asks for: one of ``content_hash``, ``proof_id``, ``device_id``."""

    kind: str
    value: str


# Bytes travel as hex text (cheaper to adapt than bytea literals); rows this item wrote are
# answered from RETURNING and the request, without reading them back.
ENROLL = """
INSERT INTO devices (device_id, public_key, key_fingerprint, platform, label, enrolled_at,
                     job_id, item_index)
SELECT d, decode(k, 'hex'), f, p, l, now(), j, i
FROM unnest(%s::text[], %s::text[], %s::text[], %s::text[], %s::text[], %s::uuid[], %s::int[])
     AS t(d, k, f, p, l, j, i)
ON CONFLICT (device_id) DO NOTHING
RETURNING device_id, job_id::text, item_index, enrolled_at
"""
DEVICE_COLUMNS = (
    "device_id, public_key, key_fingerprint, platform, label, enrolled_at, job_id, item_index"
)
DEVICES = f"SELECT {DEVICE_COLUMNS} FROM devices WHERE device_id = ANY(%s)"
DEVICES_WITH_COUNTS = f"""
SELECT {DEVICE_COLUMNS},
       (SELECT count(*) FROM proofs p WHERE p.device_id = devices.device_id)
FROM devices WHERE device_id = ANY(%s)
"""
PUBLIC_KEYS = "SELECT device_id, public_key FROM devices WHERE device_id = ANY(%s)"
LOCK = """
INSERT INTO proofs (content_hash, proof_id, device_id, signature, captured_at, locked_at,
                    job_id, item_index)
SELECT h, pid, d, decode(s, 'hex'), c, now(), j, i
FROM unnest(%s::text[], %s::uuid[], %s::text[], %s::text[], %s::timestamptz[], %s::uuid[],
            %s::int[]) AS t(h, pid, d, s, c, j, i)
ON CONFLICT DO NOTHING
RETURNING content_hash, job_id::text, item_index, locked_at, captured_at
"""
PROOF_COLUMNS = "content_hash, proof_id, device_id, captured_at, locked_at, job_id, item_index"
PROOFS_BY_HASH = f"SELECT {PROOF_COLUMNS} FROM proofs WHERE content_hash = ANY(%s)"
# The rows of hashes locked by other items, as ``LockedProof`` has them (ids as text).
LOCKED_PROOFS = """
SELECT content_hash, proof_id::text, device_id, captured_at, locked_at, job_id::text, item_index
FROM proofs WHERE content_hash = ANY(%s)
"""
PROOFS_BY_ID = f"SELECT {PROOF_COLUMNS} FROM proofs WHERE proof_id = ANY(%s::uuid[])"


def _device(row: tuple[Any, ...]) -> DeviceRow:
    return DeviceRow(
        row[0],
        bytes(row[1]),
        row[2],
        row[3],
        row[4],
        row[5],
        UUID(str(row[6])),
        row[7],
        *(row[8:9] or ()),
    )


def _proof(row: tuple[Any, ...]) -> ProofRow:
    return ProofRow(row[0], UUID(str(row[1])), row[2], row[3], row[4], UUID(str(row[5])), row[6])


class RegistryStore:
    """One connection, used from one thread; reopened after a connection failure."""

    def __init__(self, database_url: str):
        url = make_url(normalise_url(database_url)).set(drivername="postgresql")
        self._dsn = url.render_as_string(hide_password=False)
        self._conn: Any = None

    def close(self) -> None:
        if self._conn is not None:
            self._conn.close()
            self._conn = None

    def _transaction(self, work):
        if self._conn is None or self._conn.closed:
            self._conn = psycopg2.connect(self._dsn, options="-c timezone=UTC")
        try:
            with self._conn.cursor() as cur:
                result = work(cur)
            self._conn.commit()
            return result
        except psycopg2.Error:
            self.close()  # rolled back with it; the next batch starts on a new connection
            raise
        except Exception:  # psycopg2 refused a value before sending it (a ValueError)
            self._conn.rollback()
            raise

    def enroll(self, requests: list[Enrollment]) -> list[DeviceRow]:
        """Insert what is new; answer each request with the device's row after the insert."""

        def work(cur: Any) -> list[DeviceRow]:
            cur.execute(
                ENROLL,
                (
                    [r.device_id for r in requests],
                    [r.public_key.hex() for r in requests],
                    [r.key_fingerprint for r in requests],
                    [r.platform for r in requests],
                    [r.label for r in requests],
                    [str(r.job_id) for r in requests],
                    [r.item_index for r in requests],
                ),
            )
            written = {row[0]: row[1:] for row in cur.fetchall()}
            answers: list[DeviceRow | None] = []
            for r in requests:
                row = written.get(r.device_id)
                if row is not None and (row[0], row[1]) == (str(r.job_id), r.item_index):
                    answers.append(
                        DeviceRow(
                            r.device_id,
                            r.public_key,
                            r.key_fingerprint,
                            r.platform,
                            r.label,
                            row[2],
                            r.job_id,
                            r.item_index,
                        )
                    )
                else:
                    answers.append(None)
            others = {r.device_id for r, a in zip(requests, answers, strict=True) if a is None}
            if others:
                cur.execute(DEVICES, (list(others),))
                rows = {row[0]: _device(row) for row in cur.fetchall()}
                answers = [a or rows[r.device_id] for r, a in zip(requests, answers, strict=True)]
            return answers  # type: ignore[return-value]

        result: list[DeviceRow] = self._transaction(work)
        return result

    def public_keys(self, device_ids: list[str]) -> list[bytes | None]:
        def work(cur: Any) -> list[bytes | None]:
            cur.execute(PUBLIC_KEYS, (list(set(device_ids)),))
            keys = {device_id: bytes(key) for device_id, key in cur.fetchall()}
            return [keys.get(device_id) for device_id in device_ids]

        result: list[bytes | None] = self._transaction(work)
        return result

    def lock(self, requests: list[LockRequest]) -> list[LockedProof]:
        """Insert the proofs not locked yet; answer each request with the hash's row. The
        requests' signatures must have been verified."""

        def work(cur: Any) -> list[LockedProof]:
            _, signatures, hashes, proof_ids, devices, captured, jobs, indexes = zip(
                *requests, strict=True
            )
            cur.execute(
                LOCK,
                (
                    list(hashes),
                    list(proof_ids),
                    list(devices),
                    [signature.hex() for signature in signatures],
                    list(captured),
                    list(jobs),
                    list(indexes),
                ),
            )
            written = {row[0]: row for row in cur.fetchall()}
            answers: list[LockedProof | None] = []
            for _, _, content_hash, proof_id, device_id, _, job, index in requests:
                row = written.get(content_hash)
                if row is not None and row[1] == job and row[2] == index:
                    # captured_at as stored (UTC), as a redelivery will read it back
                    answers.append((content_hash, proof_id, device_id, row[4], row[3], job, index))
                else:
                    answers.append(None)
            others = {r[2] for r, a in zip(requests, answers, strict=True) if a is None}
            if others:
                cur.execute(LOCKED_PROOFS, (list(others),))
                rows = {row[0]: row for row in cur.fetchall()}
                answers = [a or rows[r[2]] for r, a in zip(requests, answers, strict=True)]
            return answers  # type: ignore[return-value]

        if not requests:
            return []
        result: list[LockedProof] = self._transaction(work)
        return result

    def look_up(self, lookups: list[Lookup]) -> list[ProofRow | DeviceRow | None]:
        """Answer each lookup with the proof or device it names, or None."""

        def work(cur: Any) -> list[ProofRow | DeviceRow | None]:
            wanted: dict[str, list[str]] = {"content_hash": [], "proof_id": [], "device_id": []}
            for lookup in lookups:
                wanted[lookup.kind].append(lookup.value)
            found: dict[tuple[str, str], ProofRow | DeviceRow] = {}
            if wanted["content_hash"]:
                cur.execute(PROOFS_BY_HASH, (wanted["content_hash"],))
                found.update((("content_hash", row[0]), _proof(row)) for row in cur.fetchall())
            if wanted["proof_id"]:
                cur.execute(PROOFS_BY_ID, (wanted["proof_id"],))
                found.update((("proof_id", str(row[1])), _proof(row)) for row in cur.fetchall())
            if wanted["device_id"]:
                cur.execute(DEVICES_WITH_COUNTS, (wanted["device_id"],))
                found.update((("device_id", row[0]), _device(row)) for row in cur.fetchall())
            return [found.get((lookup.kind, lookup.value)) for lookup in lookups]

        result: list[ProofRow | DeviceRow | None] = self._transaction(work)
        return result
