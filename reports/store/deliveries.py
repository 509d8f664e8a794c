"""Deliveries: recorded with their message before the first try, then sent, filed or failed."""

from __future__ import annotations

import json
import os
from pathlib import Path

from reports.store.backends import MESSAGE_PREFIX
from reports.store.base import Database, StoreError, _faults, _stamp
from reports.store.schema import DELIVERY_COLUMNS, DONE, DeliveryRow, Planned


class Deliveries(Database):
    def keep_message(self, content_hash: str, data: bytes) -> str:
        """Keep a rendered message durably before its first try; returns where it is kept, for
        `read_message`: a file beside a SQLite store, a row of a PostgreSQL one."""
        if self.messages is None:
            with self.transaction(lock=False) as db:  # by content: two writers write the same
                db.execute(
                    "INSERT INTO messages (content_hash, body) VALUES (?, ?) ON CONFLICT (content_hash) DO NOTHING",
                    (content_hash, data),
                )
            return MESSAGE_PREFIX + content_hash
        with _faults(self.messages):
            return self._keep(self.messages, content_hash, data)

    def read_message(self, kept: str) -> bytes:
        """A message kept by `keep_message` (on any machine, for a PostgreSQL store)."""
        if kept.startswith(MESSAGE_PREFIX):
            with self.transaction(lock=False) as db:
                row = db.execute(
                    "SELECT body FROM messages WHERE content_hash = ?", (kept.removeprefix(MESSAGE_PREFIX),)
                ).fetchone()
            if row is None:
                raise StoreError(
                    f"the store {self.where} lost the message {kept}",
                    "run the job again (`run.py run JOB --as-of DATE`): what went out is not sent twice",
                )
            return bytes(row[0])
        return Path(kept).read_bytes()

    @staticmethod
    def _keep(folder: Path, content_hash: str, data: bytes) -> str:
        folder.mkdir(parents=True, exist_ok=True)
        path = folder / f"{content_hash}.json"
        if not path.exists():
            partial = path.with_name(f"{path.name}.{os.getpid()}.partial")
            with open(partial, "wb") as file:
                file.write(data)
                file.flush()
                os.fsync(file.fileno())
            os.replace(partial, path)
        return str(path)

    def add_deliveries(
        self,
        run_id: int,
        job: str,
        as_of: str,
        planned: list[Planned],
        resend: bool = False,
        filing: frozenset[str] | set[str] = frozenset(),
    ) -> list[int | DeliveryRow]:
        """Record a run's deliveries before any is tried, in one transaction, so that two processes
        working on one (job, as-of) cannot both take the same delivery. For each planned delivery:
        its row id, or the row that holds it back — one that went out (sent; filed, where the outbox
        stands in for the channel), by this run or another, or one another unfinished run is
        sending. A delivery this run recorded and has not sent yet comes back as its id, to be
        tried again. `resend` skips none."""
        with self.transaction() as db:
            holding: dict[tuple[str, str], DeliveryRow] = {}
            if not resend:
                rows = db.execute(
                    f"SELECT {DELIVERY_COLUMNS} FROM deliveries d JOIN runs r ON r.id = d.run_id "
                    "WHERE r.job = ? AND r.as_of = ? AND d.run_id != ? AND (d.status IN ('sent', 'filed') "
                    "OR (r.status = 'running' AND d.status IN ('pending', 'retrying'))) ORDER BY d.id",
                    (job, as_of, run_id),
                ).fetchall()
                for row in (DeliveryRow(*r) for r in rows):
                    key = (row.channel, row.recipient)
                    if row.status == "filed" and row.channel not in filing:
                        continue  # a dry run's copy never holds back the real delivery
                    if key not in holding or row.status == "sent":
                        holding[key] = row
            results: list[int | DeliveryRow] = []
            for item in planned:
                held = holding.get((item.channel, item.recipient))
                if held is not None:
                    results.append(held)
                    continue
                db.execute(
                    "INSERT INTO deliveries (run_id, channel, recipient, status, content_hash, updated_at, "
                    "address, message, alerts) VALUES (?, ?, ?, 'pending', ?, ?, ?, ?, ?) "
                    "ON CONFLICT (run_id, channel, recipient) DO NOTHING",
                    (
                        run_id,
                        item.channel,
                        item.recipient,
                        item.content_hash,
                        _stamp(),
                        item.address,
                        item.message,
                        json.dumps(list(item.alerts)) if item.alerts else None,
                    ),
                )
                (row_id, status) = db.execute(
                    "SELECT id, status FROM deliveries WHERE run_id = ? AND channel = ? AND recipient = ?",
                    (run_id, item.channel, item.recipient),
                ).fetchone()
                if not resend and (status == "sent" or (status == "filed" and item.channel in filing)):
                    # this run recorded it before (a batch done twice): it went out, so it is held
                    row = db.execute(
                        f"SELECT {DELIVERY_COLUMNS} FROM deliveries d JOIN runs r ON r.id = d.run_id "
                        "WHERE d.id = ?",
                        (row_id,),
                    ).fetchone()
                    results.append(DeliveryRow(*row))
                    continue
                results.append(int(row_id))
            return results

    def update_delivery(
        self,
        delivery_id: int,
        status: str,
        *,
        attempts: int,
        error: str | None = None,
        provider_id: str | None = None,
    ) -> None:
        with self.transaction() as db:
            db.execute(
                "UPDATE deliveries SET status = ?, attempts = ?, last_error = ?, provider_id = ?, "
                "updated_at = ? WHERE id = ?",
                (status, attempts, error, provider_id, _stamp(), delivery_id),
            )

    def delivered(self, job: str, as_of: str) -> set[tuple[str, str]]:
        """(channel, recipient) of what went out for (job, as-of), from any run."""
        with self.transaction(lock=False) as db:
            rows = db.execute(
                "SELECT d.channel, d.recipient FROM deliveries d JOIN runs r ON r.id = d.run_id "
                f"WHERE r.job = ? AND r.as_of = ? AND d.status IN {DONE}",
                (job, as_of),
            ).fetchall()
        return {(channel, recipient) for channel, recipient in rows}

    def deliveries(
        self, run_ids: list[int] | None = None, statuses: tuple[str, ...] | None = None
    ) -> list[DeliveryRow]:
        if run_ids == []:
            return []  # `IN ()` is an error on PostgreSQL
        where, params = [], []
        if run_ids is not None:
            where.append(f"d.run_id IN ({','.join('?' * len(run_ids))})")
            params += run_ids
        if statuses:
            where.append(f"d.status IN ({','.join('?' * len(statuses))})")
            params += statuses
        clause = f"WHERE {' AND '.join(where)}" if where else ""
        with self.transaction(lock=False) as db:
            rows = db.execute(
                f"SELECT {DELIVERY_COLUMNS} FROM deliveries d JOIN runs r ON r.id = d.run_id "
                f"{clause} ORDER BY d.id",
                params,
            ).fetchall()
        return [DeliveryRow(*row) for row in rows]
