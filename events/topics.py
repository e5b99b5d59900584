"""Topic names, in one place. A prefix (default ``batch.``) namespaces every topic."""

import re
from dataclasses import dataclass


@dataclass(frozen=True)
class Topics:
    prefix: str = "batch."

    @property
    def jobs(self) -> str:
        return f"{self.prefix}jobs"

    @property
    def outcomes(self) -> str:
        return f"{self.prefix}outcomes"

    @property
    def dlq(self) -> str:
        return f"{self.prefix}dlq"

    def items(self, job_type: str) -> str:
        return f"{self.prefix}items.{job_type}"

    def event_logs(self, job_types: list[str]) -> list[str]:
        """The topics that are the source of truth: kept forever, replayed to rebuild."""
        return [self.jobs, self.outcomes, *(self.items(t) for t in job_types)]

    def projected_pattern(self) -> str:
        """A regex matching every topic the projector folds (new job types included)."""
        p = re.escape(self.prefix)
        return rf"^{p}(jobs|outcomes|items\.[a-z][a-z0-9_]*)$"

    def job_type_of_items_topic(self, topic: str) -> str | None:
        head = f"{self.prefix}items."
        return topic[len(head) :] if topic.startswith(head) else None
