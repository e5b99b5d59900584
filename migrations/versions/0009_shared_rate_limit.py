"""shared rate limit: each API key's token bucket on its row

``api_keys.rate_tokens`` and ``api_keys.rate_at``: the key's tokens and when they were last
counted (NULL: a full bucket). Every API process takes its tokens from the same row, so the
per-key limit holds however many processes serve the key.

Revision ID: 0009
Revises: 0008
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0009"
down_revision: str | None = "0008"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column("api_keys", sa.Column("rate_tokens", sa.Float(), nullable=True))
    op.add_column(
        "api_keys", sa.Column("rate_at", postgresql.TIMESTAMP(timezone=True), nullable=True)
    )


def downgrade() -> None:
    op.drop_column("api_keys", "rate_at")
    op.drop_column("api_keys", "rate_tokens")
