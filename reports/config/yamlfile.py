"""Read YAML while remembering where each key and value stands, for `file:line:col` errors."""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from reports.errors import ConfigError, ConfigIssue

Path_ = tuple[str | int, ...]
_ENV = re.compile(r"\$\{(?P<name>[A-Za-z_][A-Za-z0-9_]*)(?::-(?P<default>[^}]*))?\}")


@dataclass
class Located:
    """Parsed YAML data plus the line and column of every key and value in it."""

    file: str
    data: Any
    values: dict[Path_, tuple[int, int]] = field(default_factory=dict)
    keys: dict[Path_, tuple[int, int]] = field(default_factory=dict)
    issues: list[ConfigIssue] = field(default_factory=list)  # duplicate keys, unset variables

    def position(self, path: Path_, *, key: bool = False) -> tuple[int, int]:
        """The closest known position to `path`: the key itself, else its nearest parent."""
        path = tuple(path)
        while True:
            table = self.keys if key and path in self.keys else self.values
            if path in table:
                return table[path]
            if not path:
                return (1, 1)
            path = path[:-1]

    def issue(self, path: Path_, message: str, hint: str = "", *, key: bool = False) -> ConfigIssue:
        line, column = self.position(path, key=key)
        return ConfigIssue(self.file, line, column, message, hint)


def load(path: Path, environ: dict[str, str] | None = None) -> Located:
    """Parse `path`, interpolating `${VAR}` and `${VAR:-default}` from the environment."""
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(
            [
                ConfigIssue(
                    str(path),
                    1,
                    1,
                    f"cannot read the config: {exc.strerror}",
                    "pass the right file with --config PATH",
                )
            ]
        ) from None
    return parse(text, path.name if path.parent == Path() else str(path), environ)


def parse(text: str, file: str, environ: dict[str, str] | None = None) -> Located:
    environ = dict(os.environ) if environ is None else environ
    loader = yaml.SafeLoader(text)
    try:
        node = loader.get_single_node()
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line, col = (mark.line + 1, mark.column + 1) if mark else (1, 1)
        raise ConfigError(
            [
                ConfigIssue(
                    file,
                    line,
                    col,
                    f"not valid YAML: {exc.problem}",
                    "check the indentation and quoting on this line",
                )
            ]
        ) from None
    finally:
        loader.dispose()
    located = Located(file, None)
    if node is not None:
        located.data = _walk(node, (), located, loader, environ, located.issues)
    return located


def _walk(
    node: yaml.Node,
    path: Path_,
    located: Located,
    loader: yaml.SafeLoader,
    environ: dict[str, str],
    issues: list[ConfigIssue],
) -> Any:
    located.values[path] = (node.start_mark.line + 1, node.start_mark.column + 1)
    if isinstance(node, yaml.MappingNode):
        out: dict[Any, Any] = {}
        for key_node, value_node in node.value:
            key = loader.construct_object(key_node, deep=True)
            key = key if isinstance(key, str | int) else str(key)
            child = (*path, key)
            if key in out:
                first = located.keys[child]
                issues.append(
                    ConfigIssue(
                        located.file,
                        key_node.start_mark.line + 1,
                        key_node.start_mark.column + 1,
                        f"duplicate key '{key}'",
                        f"it is already defined on line {first[0]}; keep one of them or rename this one",
                    )
                )
                continue
            located.keys[child] = (key_node.start_mark.line + 1, key_node.start_mark.column + 1)
            out[key] = _walk(value_node, child, located, loader, environ, issues)
        return out
    if isinstance(node, yaml.SequenceNode):
        return [
            _walk(item, (*path, i), located, loader, environ, issues) for i, item in enumerate(node.value)
        ]
    value = loader.construct_object(node, deep=True)
    if isinstance(value, str) and "${" in value:
        value = _interpolate(value, path, located, environ, issues)
    return value


def _interpolate(
    value: str, path: Path_, located: Located, environ: dict[str, str], issues: list[ConfigIssue]
) -> str:
    def replace(match: re.Match[str]) -> str:
        name, default = match["name"], match["default"]
        if name in environ:
            return environ[name]
        if default is not None:
            return default
        issues.append(
            located.issue(
                path,
                f"environment variable {name} is not set",
                f"export {name}=... before running Herald, or write ${{{name}:-default}}",
            )
        )
        return ""

    return _ENV.sub(replace, value)
