"""Detectors and projections over predictions and embeddings (numpy, scikit-learn, umap, cleanlab)."""
