"""One training loop for every method; data sources are passed in, never imported."""
