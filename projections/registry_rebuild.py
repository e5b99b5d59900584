"""Restore the device and proof registry from the log, through the projected items.

The enrollment and proof_lock workers write ``devices`` and ``proofs`` as they decide; every
decision is also in the log, as the winning item's input (``ItemSubmitted``) and output
(``ItemSucceeded`` with ``already_enrolled`` / ``already_locked`` false). After a replay has
rebuilt ``items`` from the log, these statements write back every winner's row exactly as
the worker wrote it. Rows are upserted, never deleted: a worker's win whose outcome is not
folded yet is kept.

One corner is not in the log: a worker that committed a win and died before publishing its
outcome, when the job is cancelled before the item is delivered again — the item ends
``cancelled`` and its row stays (and the hash stays locked by that device).
"""

from typing import Any

REBUILD_DEVICES = """
INSERT INTO devices (device_id, public_key, key_fingerprint, platform, label, enrolled_at,
                     job_id, item_index)
SELECT DISTINCT ON (i.output_data->>'device_id')
       i.output_data->>'device_id',
       decode(i.input_data->>'public_key', 'base64'),
       i.output_data->>'key_fingerprint',
       i.input_data->>'platform',
       i.input_data->>'label',
       (i.output_data->>'enrolled_at')::timestamptz,
       i.job_id,
       i.item_index
FROM items i JOIN jobs j ON j.id = i.job_id
WHERE j.job_type = 'enrollment' AND i.status = 'success'
  AND (i.output_data->>'already_enrolled')::boolean = false
ORDER BY i.output_data->>'device_id', (i.output_data->>'enrolled_at')::timestamptz,
         i.job_id, i.item_index
ON CONFLICT (device_id) DO UPDATE SET
    public_key = EXCLUDED.public_key, key_fingerprint = EXCLUDED.key_fingerprint,
    platform = EXCLUDED.platform, label = EXCLUDED.label, enrolled_at = EXCLUDED.enrolled_at,
    job_id = EXCLUDED.job_id, item_index = EXCLUDED.item_index
"""

REBUILD_PROOFS = """
INSERT INTO proofs (content_hash, proof_id, device_id, signature, captured_at, locked_at,
                    job_id, item_index)
SELECT DISTINCT ON (i.output_data->>'content_hash')
       i.output_data->>'content_hash',
       (i.output_data->>'proof_id')::uuid,
       i.output_data->>'device_id',
       decode(i.input_data->>'signature', 'base64'),
       (i.output_data->>'captured_at')::timestamptz,
       (i.output_data->>'locked_at')::timestamptz,
       i.job_id,
       i.item_index
FROM items i JOIN jobs j ON j.id = i.job_id
WHERE j.job_type = 'proof_lock' AND i.status = 'success'
  AND (i.output_data->>'already_locked')::boolean = false
ORDER BY i.output_data->>'content_hash', (i.output_data->>'locked_at')::timestamptz,
         i.job_id, i.item_index
ON CONFLICT (content_hash) DO UPDATE SET
    proof_id = EXCLUDED.proof_id, device_id = EXCLUDED.device_id,
    signature = EXCLUDED.signature, captured_at = EXCLUDED.captured_at,
    locked_at = EXCLUDED.locked_at, job_id = EXCLUDED.job_id, item_index = EXCLUDED.item_index
"""


def rebuild_registry(conn: Any) -> tuple[int, int]:
    """Upsert every winner's device and proof row from ``items`` and ``jobs`` as the
    connection's search path finds them; commit; return the rows written (devices, proofs)."""
    with conn.cursor() as cur:
        cur.execute(REBUILD_DEVICES)
        devices = cur.rowcount
        cur.execute(REBUILD_PROOFS)
        proofs = cur.rowcount
    conn.commit()
    return devices, proofs
