"""A job's throughput over time, for the console's chart: items with an outcome per second,
in up to ``MAX_BARS`` equal steps from the job's first outcome to its last (or now), counted
from ``items.processed_at``, and drawn as an SVG that needs no script to show."""

import math
from dataclasses import dataclass
from datetime import UTC, datetime
from uuid import UUID

from sqlalchemy import text
from sqlalchemy.exc import OperationalError
from sqlalchemy.orm import Session

MAX_BARS = 120
MIN_SLOTS = 30
QUERY_TIMEOUT_MS = 3000  # a job of many millions of items: no chart rather than a slow page


@dataclass(frozen=True)
class Throughput:
    step_s: int  # each bar's width in seconds
    rates: list[float]  # items/s in each step, from the first outcome

    @property
    def peak(self) -> float:
        return max(self.rates, default=0.0)


def throughput(
    session: Session, *, job_id: UUID, started_at: datetime | None, until: datetime | None
) -> Throughput | None:
    """None before the first outcome, or when counting took longer than the page may."""
    if started_at is None:
        return None
    span_s = max(1.0, ((until or datetime.now(UTC)) - started_at).total_seconds())
    step = max(1, math.ceil(span_s / MAX_BARS))
    try:
        session.execute(text(f"SET LOCAL statement_timeout = {QUERY_TIMEOUT_MS}"))
        rows = session.execute(
            text(
                "SELECT floor(extract(epoch FROM processed_at - :start) / :step)::int AS bar,"
                " count(*) FROM items"
                " WHERE job_id = :job_id AND processed_at IS NOT NULL GROUP BY bar"
            ),
            {"start": started_at, "step": step, "job_id": job_id},
        ).all()
    except OperationalError:  # the statement timeout
        session.rollback()
        return None
    session.rollback()
    counts = {max(0, bar): n for bar, n in rows if bar is not None}
    bars = min(MAX_BARS, max(counts, default=0) + 1, math.ceil(span_s / step))
    for bar in [b for b in counts if b >= bars]:  # clock skew past the end: the last step
        counts[bars - 1] = counts.get(bars - 1, 0) + counts.pop(bar)
    return Throughput(step, [counts.get(bar, 0) / step for bar in range(max(1, bars))])


EMPTY_SVG = (
    '<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 720 180" width="720" height="180" '
    'role="img" aria-label="no outcomes yet"><style>text{font:13px system-ui,sans-serif;'
    'fill:#4a5568}</style><text x="360" y="95" text-anchor="middle">No outcomes yet, or too '
    "many items to count quickly</text></svg>"
)


def svg(chart: Throughput, *, width: int = 720, height: int = 180) -> str:
    """The chart as a standalone SVG (numbers only go into it: nothing to escape)."""
    left, bottom, top = 56, 24, 10
    inner_w, inner_h = width - left - 8, height - bottom - top
    peak = chart.peak or 1.0
    n = max(len(chart.rates), MIN_SLOTS)  # a short job's few bars stay bars, not a block
    bar_w = inner_w / n
    bars = "".join(
        f'<rect x="{left + i * bar_w:.1f}" y="{top + inner_h * (1 - rate / peak):.1f}" '
        f'width="{max(1.0, bar_w - 1):.1f}" height="{inner_h * rate / peak:.1f}"/>'
        for i, rate in enumerate(chart.rates)
        if rate > 0
    )
    span = len(chart.rates) * chart.step_s  # what was measured
    axis = n * chart.step_s  # what the axis shows
    return (
        f'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {width} {height}" '
        f'width="{width}" height="{height}" role="img" '
        f'aria-label="items per second over {span} seconds, peak {chart.peak:,.0f}">'
        "<style>text{font:11px system-ui,sans-serif;fill:#4a5568}"
        "rect{fill:#3b6ea8}line{stroke:#cbd5e0}</style>"
        f'<line x1="{left}" y1="{top}" x2="{width - 8}" y2="{top}"/>'
        f'<line x1="{left}" y1="{top + inner_h}" x2="{width - 8}" y2="{top + inner_h}"/>'
        f'<text x="{left - 6}" y="{top + 8}" text-anchor="end">{chart.peak:,.0f}/s</text>'
        f'<text x="{left - 6}" y="{top + inner_h}" text-anchor="end">0</text>'
        f"{bars}"
        f'<text x="{left}" y="{height - 6}">0 s</text>'
        f'<text x="{width - 8}" y="{height - 6}" text-anchor="end">{axis:,} s</text>'
        "</svg>"
    )
