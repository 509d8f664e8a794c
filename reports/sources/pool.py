"""The open connections of one run or command, one per source name, opened on first use."""

from __future__ import annotations

from reports.config.models import HeraldConfig
from reports.sources import Source, open_source


class Sources:
    """The run's open connections, one per source name, closed together."""

    def __init__(self, config: HeraldConfig) -> None:
        self._config = config
        self._open: dict[str, Source] = {}
        self.labels: dict[str, str] = {}  # who is asking, set per job

    def __getitem__(self, name: str) -> Source:
        if name not in self._open:
            self._open[name] = open_source(name, self._config.sources[name], self._config.base_dir)
        self._open[name].labels = self.labels
        return self._open[name]

    @property
    def queries(self) -> int:
        return sum(source.queries_run for source in self._open.values())

    def close(self) -> None:
        for source in self._open.values():
            source.close()
        self._open.clear()
