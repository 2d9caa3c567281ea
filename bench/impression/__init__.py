"""Impressions (moods) of moments: the axes, per-window music and picture features, the
estimators that map features to axes, and mood queries mapped to target axis values."""
