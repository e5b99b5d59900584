"""items: index only the statuses worth finding (failed, cancelled)

Every item row used to enter an index on (job_id, status, item_index), on insert and again
on its status change: a large share of the projector's write cost. Paging a job's items by
index uses the primary key; finding its failed or cancelled items uses this partial index;
the other statuses are the bulk of a job and are paged through the primary key.

Revision ID: 0002
Revises: 0001
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.drop_index("ix_items_job_id_status_item_index", table_name="items")
    op.create_index(
        "ix_items_job_id_item_index_unsuccessful",
        "items",
        ["job_id", "item_index"],
        postgresql_where="status IN ('failed', 'cancelled')",
    )


def downgrade() -> None:
    op.drop_index("ix_items_job_id_item_index_unsuccessful", table_name="items")
    op.create_index(
        "ix_items_job_id_status_item_index", "items", ["job_id", "status", "item_index"]
    )
