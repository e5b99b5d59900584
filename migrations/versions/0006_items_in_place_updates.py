"""items: an item's outcome is written in place (a HOT update), not as a new row version

An item is inserted pending, then updated once to its terminal status. That update used to
cost PostgreSQL about twice the insert: the new row version went to another page, and into
every index again, because the page was full and because ``status``, which it changes, was
in the predicate of the partial index on failed and cancelled items. Now:

- the pages of ``items`` are filled to half (``fillfactor``), leaving room beside each
  pending row for its terminal version;
- the partial index has a predicate on ``unsuccessful`` (true for failed and cancelled
  items, NULL otherwise), which a successful outcome, the bulk, leaves as it is.

With both, a successful outcome is a heap-only-tuple update: no index is touched.

Revision ID: 0006
Revises: 0005
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0006"
down_revision: str | None = "0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column("items", sa.Column("unsuccessful", sa.Boolean(), nullable=True))
    op.execute("UPDATE items SET unsuccessful = true WHERE status IN ('failed', 'cancelled')")
    op.drop_index("ix_items_job_id_item_index_unsuccessful", table_name="items")
    op.create_index(
        "ix_items_job_id_item_index_unsuccessful",
        "items",
        ["job_id", "item_index"],
        postgresql_where="unsuccessful",
    )
    op.execute("ALTER TABLE items SET (fillfactor = 50)")


def downgrade() -> None:
    op.execute("ALTER TABLE items RESET (fillfactor)")
    op.drop_index("ix_items_job_id_item_index_unsuccessful", table_name="items")
    op.create_index(
        "ix_items_job_id_item_index_unsuccessful",
        "items",
        ["job_id", "item_index"],
        postgresql_where="status IN ('failed', 'cancelled')",
    )
    op.drop_column("items", "unsuccessful")
