"""clip metadata: typed per-clip columns, what was ingested, the split's leakage status

Manifests and file-name patterns bring metadata columns (gender, accent, take, ...). Each clip keeps
its values in ``clips.meta`` (column name -> value, NULL when it has none); the data set keeps the
columns' types in manifest order in ``datasets.meta_columns`` ({name: "number"|"text"|"boolean"}),
whether its split was checked for speaker leakage (``datasets.speaker_leakage``: checked | partial |
not_checked) and what was ingested (``datasets.source``: layout kind, manifest files, options, notes).
Data sets ingested before this revision read as having no metadata and an unchecked split.

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-01 14:40:00
"""
import sqlalchemy as sa
from alembic import op

revision = '0003'
down_revision = '0002'
branch_labels = None
depends_on = None


def upgrade() -> None:
    # plain ADD/DROP COLUMN (SQLite >= 3.35 has both): a batch copy of ``clips`` would drop the old
    # table, and with foreign keys on, SQLite would cascade that into every table referencing clips
    op.add_column('clips', sa.Column('meta', sa.JSON(), nullable=True))
    op.add_column('datasets', sa.Column('meta_columns', sa.JSON(), nullable=False, server_default='{}'))
    op.add_column('datasets', sa.Column('speaker_leakage', sa.String(length=20), nullable=False,
                                        server_default='not_checked'))
    op.add_column('datasets', sa.Column('source', sa.JSON(), nullable=False, server_default='{}'))


def downgrade() -> None:
    op.drop_column('datasets', 'source')
    op.drop_column('datasets', 'speaker_leakage')
    op.drop_column('datasets', 'meta_columns')
    op.drop_column('clips', 'meta')
