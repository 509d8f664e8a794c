"""Alerts: the lifecycle of what rules find, from run to run (pending, firing, resolved), and silences."""
