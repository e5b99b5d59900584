"""projection_state: the epoch of the projected tables

A shadow replay builds new tables beside the live ones and swaps them in; it bumps this
epoch in the same transaction, so that a running projector sees the swap in its next write
transaction and resumes from the new tables' positions.

Revision ID: 0003
Revises: 0002
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "projection_state",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("epoch", sa.BigInteger(), server_default="0", nullable=False),
        sa.CheckConstraint("id = 1", name=op.f("ck_projection_state_single_row")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_projection_state")),
    )
    op.execute("INSERT INTO projection_state (id, epoch) VALUES (1, 0)")


def downgrade() -> None:
    op.drop_table("projection_state")
