"""Herald: scheduled KPI reports and alerts from a warehouse."""

__version__ = "0.1.0"
