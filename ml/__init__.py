"""earmark ml: audio, features, models, training and analysis. Knows nothing of the store or the web."""
