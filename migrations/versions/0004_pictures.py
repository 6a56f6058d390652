"""pictures: CLIP scores per image, candidates drawn per shown image, each job's quota cost, upscale jobs

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-01 13:00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0004"
down_revision: str | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("images") as batch:
        batch.add_column(sa.Column("score", sa.Float(), nullable=True))
    with op.batch_alter_table("spaces") as batch:
        batch.add_column(sa.Column("candidates_per_image", sa.Integer(), nullable=True))
    with op.batch_alter_table("jobs") as batch:
        batch.add_column(sa.Column("candidates", sa.Integer(), nullable=True))
        batch.add_column(sa.Column("quota_images", sa.Integer(), nullable=False, server_default="0"))
    # what existing jobs cost: every image they drew (one candidate each); a pick drew nothing
    op.execute("UPDATE jobs SET candidates = 1, quota_images = images WHERE kind != 'pick'")
    with op.batch_alter_table("jobs") as batch:
        batch.alter_column("quota_images", server_default=None)


def downgrade() -> None:
    op.execute("DELETE FROM jobs WHERE kind = 'upscale'")
    with op.batch_alter_table("jobs") as batch:
        batch.drop_column("quota_images")
        batch.drop_column("candidates")
    with op.batch_alter_table("spaces") as batch:
        batch.drop_column("candidates_per_image")
    with op.batch_alter_table("images") as batch:
        batch.drop_column("score")
