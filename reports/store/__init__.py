"""The store: the one place Herald remembers runs and deliveries (a SQLite file, or a PostgreSQL
database that Herald's processes on several machines share).

A run is identified by (job, scheduled_for) when the scheduler starts it, and claimed by one
process at a time with a lease it renews while it works; a lease that runs out lets another
process take the run over. A delivery is identified by (job, as-of date, channel, recipient):
its message is kept (on disk, or in PostgreSQL) before its first try, so a restarted Herald
sends exactly what the crashed one meant to, and one that already went out is not sent again.
"""

from __future__ import annotations

from reports.store.base import StoreError, holder_is_dead, now_utc, process_id
from reports.store.deliveries import Deliveries
from reports.store.runs import Runs
from reports.store.schema import DeliveryRow, Planned, RunRow


class Store(Runs, Deliveries):
    """Runs and deliveries in one database (see reports/store/schema.py for its tables)."""


__all__ = [
    "DeliveryRow",
    "Planned",
    "RunRow",
    "Store",
    "StoreError",
    "holder_is_dead",
    "now_utc",
    "process_id",
]
