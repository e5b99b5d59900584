"""Topic names, in one place. A prefix (default ``batch.``) namespaces every topic.

Items and outcomes travel in one of two lanes (``Lane``), each its own topics: ``bulk``
(``items.<type>``, ``outcomes``) and ``interactive`` (``items.<type>.interactive``,
``outcomes.interactive``). Workers serve the interactive lane first and the projector folds
it without holding it back for the bulk lane's backlog (README, "Fair share")."""

import re
from dataclasses import dataclass
from typing import Literal

Lane = Literal["bulk", "interactive"]
LANES: tuple[Lane, ...] = ("bulk", "interactive")
_INTERACTIVE = ".interactive"


@dataclass(frozen=True)
class Topics:
    prefix: str = "batch."

    @property
    def jobs(self) -> str:
        return f"{self.prefix}jobs"

    @property
    def outcomes(self) -> str:
        """The bulk lane's outcomes (``outcomes_of`` for either lane)."""
        return f"{self.prefix}outcomes"

    @property
    def notifications(self) -> str:
        """JobFinished events, for other services and the notifier (key: job id)."""
        return f"{self.prefix}notifications"

    def notifier_group(self) -> str:
        """The consumer group of the notifier (webhook deliveries)."""
        return f"{self.prefix}notifier"

    @property
    def dlq(self) -> str:
        return f"{self.prefix}dlq"

    def items(self, job_type: str, lane: Lane = "bulk") -> str:
        topic = f"{self.prefix}items.{job_type}"
        return topic + _INTERACTIVE if lane == "interactive" else topic

    def outcomes_of(self, lane: Lane) -> str:
        return self.outcomes + _INTERACTIVE if lane == "interactive" else self.outcomes

    def all_outcomes(self) -> list[str]:
        return [self.outcomes_of(lane) for lane in LANES]

    def items_of_every_lane(self, job_type: str) -> list[str]:
        return [self.items(job_type, lane) for lane in LANES]

    def worker_group(self, job_type: str) -> str:
        """The consumer group of a job type's workers."""
        return f"{self.prefix}workers.{job_type}"

    def projector_group(self, projection: str = "main") -> str:
        """The consumer group of a projection's projector (its positions are stored in
        PostgreSQL, not committed to Kafka)."""
        return f"{self.prefix}projector.{projection}"

    @staticmethod
    def lane_of(topic: str) -> Lane:
        """The lane of an items or outcomes topic."""
        return "interactive" if topic.endswith(_INTERACTIVE) else "bulk"

    def event_logs(self, job_types: list[str]) -> list[str]:
        """The topics that are the source of truth: kept forever, replayed to rebuild."""
        items = [topic for t in job_types for topic in self.items_of_every_lane(t)]
        return [self.jobs, *self.all_outcomes(), *items]

    def projected_pattern(self) -> str:
        """A regex matching every topic the projector folds (new job types included)."""
        p = re.escape(self.prefix)
        return rf"^{p}(jobs|(outcomes|items\.[a-z][a-z0-9_]*)(\.interactive)?)$"

    def is_outcomes_topic(self, topic: str) -> bool:
        return topic == self.outcomes or topic == self.outcomes + _INTERACTIVE

    def job_type_of_items_topic(self, topic: str) -> str | None:
        head = f"{self.prefix}items."
        if not topic.startswith(head):
            return None
        job_type = topic[len(head) :]
        return job_type.removesuffix(_INTERACTIVE) if job_type else None
