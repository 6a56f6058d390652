"""top_k may be NULL: off, the same convention as top_p

Revision ID: 0002
Revises: 0001
Create Date: 2026-12-01 10:00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

CODEBOOK_SIZE = 16384  # what "off" meant before: every code of the VQGAN codebook


def upgrade() -> None:
    with op.batch_alter_table("jobs") as batch:
        batch.alter_column("top_k", existing_type=sa.Integer(), nullable=True)


def downgrade() -> None:
    op.execute(f"UPDATE jobs SET top_k = {CODEBOOK_SIZE} WHERE top_k IS NULL")
    with op.batch_alter_table("jobs") as batch:
        batch.alter_column("top_k", existing_type=sa.Integer(), nullable=False)
