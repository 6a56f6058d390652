"""jobs.delivery_failures: failed posts that came without the platform's retry-after, the exponent of the
delivery backoff (a rate-limited try says when to come back and no longer doubles the next wait)

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-01 16:00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0006"
down_revision: str | None = "0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("jobs") as batch:
        # jobs already waiting start their backoff afresh
        batch.add_column(sa.Column("delivery_failures", sa.Integer(), nullable=False, server_default="0"))
    with op.batch_alter_table("jobs") as batch:
        batch.alter_column("delivery_failures", server_default=None)


def downgrade() -> None:
    with op.batch_alter_table("jobs") as batch:
        batch.drop_column("delivery_failures")
