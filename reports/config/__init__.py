"""Config: read config.yaml with positions, check it into typed models, and document it."""
