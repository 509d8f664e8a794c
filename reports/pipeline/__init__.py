"""The job pipeline: compute (query and evaluate), render, deliver, record."""
