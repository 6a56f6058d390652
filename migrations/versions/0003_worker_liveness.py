"""workers: each generator's heartbeat interval (liveness judged by its own) and its busy-time drawing rate

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-01 12:00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("workers") as batch:
        # rows of running generators get the default interval until their next heartbeat writes theirs
        batch.add_column(sa.Column("heartbeat_seconds", sa.Float(), nullable=False, server_default="10"))
        batch.add_column(sa.Column("images_per_second", sa.Float(), nullable=True))
    with op.batch_alter_table("workers") as batch:
        batch.alter_column("heartbeat_seconds", server_default=None)


def downgrade() -> None:
    with op.batch_alter_table("workers") as batch:
        batch.drop_column("images_per_second")
        batch.drop_column("heartbeat_seconds")
