"""clip audio-quality stats: clipping plateaus, DC offset, the band step of upsampled audio

Ingest measures three more numbers per clip with ``ml.analysis.quality.quality_stats`` (the peak is
already ``clips.peak``): ``plateau_share`` (share of samples in pairs at the clip's peak value),
``dc_offset`` (the mean sample value, full scale = 1) and ``band_step_db`` (power at 4.5-7.5 kHz
minus power at 2.8-3.8 kHz). Clips ingested before this revision read NULL: the audio-quality
findings that need them leave those clips out until the data set is ingested again.

Plain ADD/DROP COLUMN, never a batch rebuild of ``clips``: on SQLite a rebuild drops the table, and
with foreign keys on that cascades into every table that references a clip (predictions, flags...).

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-01 17:00:00
"""
import sqlalchemy as sa
from alembic import op

revision = '0006'
down_revision = '0005'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column('clips', sa.Column('plateau_share', sa.Float(), nullable=True))
    op.add_column('clips', sa.Column('dc_offset', sa.Float(), nullable=True))
    op.add_column('clips', sa.Column('band_step_db', sa.Float(), nullable=True))


def downgrade() -> None:
    op.drop_column('clips', 'band_step_db')
    op.drop_column('clips', 'dc_offset')
    op.drop_column('clips', 'plateau_share')
