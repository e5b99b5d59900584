"""lanes: a job's priority (its lane), and who may use the interactive lane

``jobs.priority`` and ``accepted_jobs.priority``: ``interactive`` or ``bulk`` (NULL on
``jobs`` until the JobSubmitted is folded; events from before lanes are ``bulk``).
``api_keys.interactive_max_items``: the largest job the key may submit as ``interactive``
(NULL: the API's ``API_INTERACTIVE_MAX_ITEMS``; 0: none).
Two indexes for the per-user queue quota: the unfinished jobs by user, the accepted jobs by
user and time.

Revision ID: 0007
Revises: 0006
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0007"
down_revision: str | None = "0006"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column("jobs", sa.Column("priority", sa.String(length=16), nullable=True))
    op.add_column(
        "accepted_jobs",
        sa.Column("priority", sa.String(length=16), server_default="bulk", nullable=False),
    )
    op.add_column("api_keys", sa.Column("interactive_max_items", sa.Integer(), nullable=True))
    op.create_index(
        "ix_jobs_unfinished_user_id",
        "jobs",
        ["user_id"],
        postgresql_where=sa.text("status IN ('pending', 'processing')"),
    )
    op.create_index(
        "ix_accepted_jobs_user_id_created_at", "accepted_jobs", ["user_id", "created_at"]
    )


def downgrade() -> None:
    op.drop_index("ix_accepted_jobs_user_id_created_at", table_name="accepted_jobs")
    op.drop_index("ix_jobs_unfinished_user_id", table_name="jobs")
    op.drop_column("api_keys", "interactive_max_items")
    op.drop_column("accepted_jobs", "priority")
    op.drop_column("jobs", "priority")
