"""transcription_job table: jobs of the resource API that survive restarts

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-30
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "transcription_job",
        sa.Column("id", sa.String(length=64), nullable=False),
        sa.Column("document_id", sa.Uuid(), nullable=False),
        sa.Column("name", sa.String(length=512), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("runs_unwatched", sa.Boolean(), nullable=False),
        sa.Column("spool_path", sa.String(length=4096), nullable=True),
        sa.Column("total_seconds", sa.Float(), nullable=False),
        sa.Column("current_seconds", sa.Float(), nullable=False),
        sa.Column("epoch", sa.Integer(), nullable=False),
        sa.Column("terminal_event_id", sa.BigInteger(), nullable=True),
        sa.Column("error_code", sa.String(length=64), nullable=True),
        sa.Column("error_detail", sa.String(length=2048), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_transcription_job")),
    )
    op.create_index(
        op.f("ix_transcription_job_document_id"), "transcription_job", ["document_id"]
    )
    op.create_index(op.f("ix_transcription_job_status"), "transcription_job", ["status"])
    op.create_index(op.f("ix_transcription_job_created_at"), "transcription_job", ["created_at"])


def downgrade() -> None:
    op.drop_index(op.f("ix_transcription_job_created_at"), table_name="transcription_job")
    op.drop_index(op.f("ix_transcription_job_status"), table_name="transcription_job")
    op.drop_index(op.f("ix_transcription_job_document_id"), table_name="transcription_job")
    op.drop_table("transcription_job")
