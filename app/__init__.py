"""earmark: error analysis for audio classifiers."""

__version__ = "0.1.0"
