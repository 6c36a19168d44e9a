"""Idempotency-Key: a retried POST /api/generate returns the generation it already created.

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-25
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("generations") as batch:
        batch.add_column(sa.Column("idempotency_key", sa.String(128), nullable=True))
        batch.create_unique_constraint("uq_generations_user_idempotency", ["user_name", "idempotency_key"])


def downgrade() -> None:
    with op.batch_alter_table("generations") as batch:
        batch.drop_constraint("uq_generations_user_idempotency", type_="unique")
        batch.drop_column("idempotency_key")
