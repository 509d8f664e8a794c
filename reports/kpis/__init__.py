"""KPIs: one query per KPI for every entity, then periods, changes, series and roll-ups."""
