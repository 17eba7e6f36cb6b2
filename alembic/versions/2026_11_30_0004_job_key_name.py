"""transcription_job.key_name: the API key (by name) that created a job

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-30
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0004"
down_revision: str | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    # batch mode: SQLite cannot ALTER a table in place beyond ADD COLUMN; PostgreSQL alters directly.
    with op.batch_alter_table("transcription_job") as batch:
        batch.add_column(sa.Column("key_name", sa.String(length=64), nullable=True))
        batch.create_index(batch.f("ix_transcription_job_key_name"), ["key_name"])


def downgrade() -> None:
    with op.batch_alter_table("transcription_job") as batch:
        batch.drop_index(batch.f("ix_transcription_job_key_name"))
        batch.drop_column("key_name")
