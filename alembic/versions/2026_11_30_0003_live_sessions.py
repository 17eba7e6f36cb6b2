"""transcription_job.live, transcription_job.ended_by: live sessions (WS /asr/live)

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-30
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("transcription_job") as batch:
        batch.add_column(
            sa.Column("live", sa.Boolean(), nullable=False, server_default=sa.false())
        )
        batch.add_column(sa.Column("ended_by", sa.String(length=16), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("transcription_job") as batch:
        batch.drop_column("ended_by")
        batch.drop_column("live")
