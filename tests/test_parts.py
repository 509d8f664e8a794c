"""Every registered part (source, condition, renderer, channel) is exercised by some test.

Importing this module (at collection, before any test runs) wraps each part's working method so
that calls are recorded; the check runs last (see `conftest.pytest_collection_modifyitems`) and
only when the whole suite ran, so a new part registered without a test fails `make test`.
"""

from __future__ import annotations

import functools
from collections import defaultdict
from pathlib import Path

import pytest

from notifiers import NOTIFIERS
from reports.registry import Registry
from reports.render import RENDERERS
from reports.rules import CONDITIONS
from reports.sources import SOURCES

EXERCISED: dict[str, set[str]] = defaultdict(set)
WATCHED = {
    "source": (SOURCES, ("_run",)),
    "condition": (CONDITIONS, ("evaluate",)),
    "renderer": (RENDERERS, ("render", "write")),
    "channel": (NOTIFIERS, ("send",)),
}


def _name_of(kind: str, part: object, registered: str) -> str:
    if kind == "condition":  # one class may serve several `when:` keys: record the one in use
        return next((k for k in part.kinds if getattr(part, k, None) is not None), registered)
    return registered


def _watch(kind: str, registry: Registry, methods: tuple[str, ...]) -> None:
    for name, cls in registry.items():
        for method in methods:
            original = getattr(cls, method, None)
            if original is None:
                continue
            original = getattr(original, "__wrapped__", original)  # inherited from a watched class

            @functools.wraps(original)
            def watched(self, *args, __original=original, __name=name, **kwargs):
                EXERCISED[kind].add(_name_of(kind, self, __name))
                return __original(self, *args, **kwargs)

            setattr(cls, method, watched)


for _kind, (_registry, _methods) in WATCHED.items():
    _watch(_kind, _registry, _methods)


def test_every_registered_part_is_exercised_by_a_test(request: pytest.FixtureRequest):
    ran = {Path(str(item.fspath)).name for item in request.session.items}
    every = {p.name for p in Path(__file__).parent.glob("test_*.py")}
    if ran != every:
        pytest.skip("checked only when the whole suite runs")
    untested = {kind: sorted(set(registry) - EXERCISED[kind]) for kind, (registry, _) in WATCHED.items()}
    untested = {kind: names for kind, names in untested.items() if names}
    assert not untested, f"registered but exercised by no test: {untested} — add a test that uses each"
