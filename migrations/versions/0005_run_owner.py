"""runs record their process and a heartbeat

``owner`` is the process that trains or infers a run (``{"host", "pid", "start"}``, see
``app.process``), ``heartbeat_at`` its last sign of life, and ``claim`` a counter that every
start or resume bumps with a compare-and-set, so two ``--resume`` processes cannot both take a run.
A run left 'training' or 'inferring' by a dead owner reads as interrupted.

Plain ADD/DROP COLUMN, never a batch rebuild of ``runs``: on SQLite a rebuild drops the table, and
with foreign keys on that cascades into every table that references a run (predictions, epochs...).

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-01 15:00:00
"""
import sqlalchemy as sa
from alembic import op

revision = '0005'
down_revision = '0004'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column('runs', sa.Column('owner', sa.JSON(), nullable=True))
    op.add_column('runs', sa.Column('heartbeat_at', sa.DateTime(timezone=True), nullable=True))
    op.add_column('runs', sa.Column('claim', sa.Integer(), nullable=False, server_default='0'))


def downgrade() -> None:
    op.drop_column('runs', 'claim')
    op.drop_column('runs', 'heartbeat_at')
    op.drop_column('runs', 'owner')
