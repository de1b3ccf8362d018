"""neighbour lists get their own table

Each clip's nearest clips were two JSON columns of ``clip_scores`` (``neighbors``,
``neighbor_sims``), written by ``earmark project`` and then read back and rewritten by
``earmark analyze``. They move to ``neighbor_lists`` (one row per run and clip), whose only writer is
``earmark project``; the stored lists are copied over, then the two columns are dropped.
The downgrade copies them back (adding a default score row where a clip had none).

Revision ID: 0002
Revises: 0001
Create Date: 2026-12-01 14:20:00
"""
from alembic import op
import sqlalchemy as sa


revision = '0002'
down_revision = '0001'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('neighbor_lists',
    sa.Column('run_id', sa.Integer(), nullable=False),
    sa.Column('clip_id', sa.Integer(), nullable=False),
    sa.Column('neighbor_ids', sa.JSON(), nullable=False),
    sa.Column('similarities', sa.JSON(), nullable=False),
    sa.ForeignKeyConstraint(['clip_id'], ['clips.id'], ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['run_id'], ['runs.id'], ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('run_id', 'clip_id')
    )
    op.execute(
        "INSERT INTO neighbor_lists (run_id, clip_id, neighbor_ids, similarities) "
        "SELECT run_id, clip_id, neighbors, neighbor_sims FROM clip_scores "
        "WHERE neighbors IS NOT NULL AND neighbor_sims IS NOT NULL"
    )
    with op.batch_alter_table('clip_scores', schema=None) as batch_op:
        batch_op.drop_column('neighbor_sims')
        batch_op.drop_column('neighbors')


def downgrade() -> None:
    with op.batch_alter_table('clip_scores', schema=None) as batch_op:
        batch_op.add_column(sa.Column('neighbors', sa.JSON(), nullable=True))
        batch_op.add_column(sa.Column('neighbor_sims', sa.JSON(), nullable=True))
    op.execute(
        "INSERT INTO clip_scores (run_id, clip_id, cutoff_score, label_issue) "
        "SELECT n.run_id, n.clip_id, 0.0, false FROM neighbor_lists n WHERE NOT EXISTS "
        "(SELECT 1 FROM clip_scores c WHERE c.run_id = n.run_id AND c.clip_id = n.clip_id)"
    )
    op.execute(
        "UPDATE clip_scores SET "
        "neighbors = (SELECT n.neighbor_ids FROM neighbor_lists n "
        "WHERE n.run_id = clip_scores.run_id AND n.clip_id = clip_scores.clip_id), "
        "neighbor_sims = (SELECT n.similarities FROM neighbor_lists n "
        "WHERE n.run_id = clip_scores.run_id AND n.clip_id = clip_scores.clip_id)"
    )
    op.drop_table('neighbor_lists')
