"""The report model and its builder: one neutral model per recipient, rendered by every format."""
