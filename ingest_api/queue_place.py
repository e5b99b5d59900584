"""Where a job stands in its lane, and how much a user has queued: read from the projected
tables (and the jobs the API accepted that the projector has not folded yet).

Lanes are served first come, first served, the interactive lane before the bulk lane
(README, "Fair share"), so the items ahead of a job are the unfinished items of its job type
in its lane submitted before it, and, for a bulk job, every unfinished interactive item of
its job type. The throughput is that of the job type's jobs that had outcomes in the last
``RECENT_S`` seconds, each at its rate since it started."""

from datetime import UTC, datetime

from sqlalchemy import text
from sqlalchemy.orm import Session

from ingest_api.progress import items_per_s
from ingest_api.schemas import JobView, QueueView
from ingest_api.statements import Statements

RECENT_S = 10

_AHEAD_AND_RATE = text(
    f"""
    SELECT
      COALESCE(sum(total_items - processed_items) FILTER (
        WHERE COALESCE(priority, 'bulk') = 'interactive' AND :lane = 'bulk'
           OR COALESCE(priority, 'bulk') = :lane AND (created_at, id) < (:created_at, :id)
      ), 0),
      COALESCE(sum(processed_items / GREATEST(
        extract(epoch FROM last_outcome_at - started_at), 0.5)) FILTER (
        WHERE status = 'processing' AND last_outcome_at > now() - interval '{RECENT_S} seconds'
      ), 0)
    FROM jobs
    WHERE status IN ('pending', 'processing') AND job_type = :job_type AND id <> :id
      AND total_items IS NOT NULL
    """
)

_QUEUED_BY_USER = """
    SELECT
      (SELECT COALESCE(sum(total_items - processed_items), 0) FROM jobs
        WHERE user_id = $1 AND status IN ('pending', 'processing')
          AND total_items IS NOT NULL)
      + (SELECT COALESCE(sum(a.total_items), 0) FROM accepted_jobs a
          WHERE a.user_id = $1 AND a.created_at > now() - interval '1 hour'
            AND a.published_at IS NOT NULL
            AND NOT EXISTS (SELECT 1 FROM jobs j WHERE j.id = a.job_id AND j.user_id IS NOT NULL))
    """


def place_in_queue(session: Session, job: JobView) -> QueueView | None:
    """The queue's view of an unfinished job (None for a finished one)."""
    if job.status not in ("pending", "processing") or job.job_type is None:
        return None
    lane = job.priority or "bulk"
    ahead, rate = session.execute(
        _AHEAD_AND_RATE,
        {
            "lane": lane,
            "created_at": job.created_at,
            "id": job.batch_job_id,
            "job_type": job.job_type,
        },
    ).one()
    rate = float(rate)
    if job.status == "processing":  # its own rate counts too: it shares the workers
        rate += items_per_s(job, datetime.now(UTC))
    remaining = max(0, (job.total_items or 0) - job.processed_items)
    return QueueView(
        lane=lane,
        items_ahead=int(ahead),
        items_per_s=round(rate, 1) if rate else None,
        eta_s=round((int(ahead) + remaining) / rate, 1) if rate > 0 else None,
    )


async def queued_items(statements: Statements, user_id: str) -> int:
    """The items a user has submitted that have no outcome yet (the jobs published in the
    last hour and not yet folded count whole; one whose publishing failed does not)."""
    return int(await statements.fetchval(_QUEUED_BY_USER, user_id))
