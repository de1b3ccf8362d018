"""imported runs: a prediction may have no loss and no probabilities

A run imported from another model's outputs may carry only each clip's predicted class and its
confidence (a "reduced" run). Its predictions have no probability vector and so no loss: both
columns become nullable. What an imported run lacks, where it came from and its coverage are kept
in ``runs.config`` (no new columns). The downgrade deletes the reduced runs' predictions (they
cannot satisfy NOT NULL) before restoring the constraints.

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-01 14:50:00
"""
import sqlalchemy as sa
from alembic import op

revision = '0004'
down_revision = '0003'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('predictions', schema=None) as batch_op:
        batch_op.alter_column('loss', existing_type=sa.Float(), nullable=True)
        batch_op.alter_column('probs', existing_type=sa.LargeBinary(), nullable=True)


def downgrade() -> None:
    op.execute("DELETE FROM predictions WHERE probs IS NULL OR loss IS NULL")
    with op.batch_alter_table('predictions', schema=None) as batch_op:
        batch_op.alter_column('probs', existing_type=sa.LargeBinary(), nullable=False)
        batch_op.alter_column('loss', existing_type=sa.Float(), nullable=False)
