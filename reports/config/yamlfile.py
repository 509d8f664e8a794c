"""Read YAML while remembering where each key and value stands, for `file:line:col` errors.

The file is untrusted, so it is read as plain data only: UTF-8 text of at most 2 MB and 20,000
values, no tags, nested at most 32 deep, and aliases that expand to at most 10,000 values in all
(an alias "bomb" is refused where it goes off). Keys are read as the text written, so `123:` is the
name '123'. Merge keys (`<<: *defaults`) are supported; merged keys point at where they are
written.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from reports.config.base import echoable, quoted
from reports.errors import ConfigError, ConfigIssue

Path_ = tuple[str | int, ...]
_ENV = re.compile(r"\$\{(?P<name>[A-Za-z_][A-Za-z0-9_]*)(?::-(?P<default>[^}]*))?\}")
_SECRET_NAME = re.compile(r"TOKEN|PASS|SECRET|KEY|CREDENTIAL|AUTH|WEBHOOK", re.IGNORECASE)
# What YAML refuses in a file (as PyYAML's reader does): control characters other than tab and
# line breaks, lone surrogates, U+FFFE and U+FFFF.
_UNPRINTABLE = re.compile("[^\x09\x0a\x0d\x20-\x7e\x85\xa0-\ud7ff\ue000-\ufffd\U00010000-\U0010ffff]")
_MERGE = "tag:yaml.org,2002:merge"
_INT = "tag:yaml.org,2002:int"
_KINDS = {_INT: "number", "tag:yaml.org,2002:timestamp": "date"}

MAX_BYTES = 2 * 1024 * 1024
MAX_VALUES = 20_000  # a real config has hundreds; reading this many already takes a good second
MAX_DEPTH = 32
MAX_ALIASED = 10_000
MAX_INT = 10**18  # no setting needs more, and larger ones overflow floats downstream


@dataclass
class Located:
    """Parsed YAML data plus the line and column of every key and value in it."""

    file: str
    data: Any
    values: dict[Path_, tuple[int, int]] = field(default_factory=dict)
    keys: dict[Path_, tuple[int, int]] = field(default_factory=dict)
    issues: list[ConfigIssue] = field(default_factory=list)  # duplicate keys, unset variables
    broken: set[Path_] = field(default_factory=set)  # values the issues above already speak for
    secrets: set[str] = field(default_factory=set)  # values taken from the environment that may be secret

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
    file = path.name if path.parent == Path() else str(path)
    try:
        with path.open("rb") as handle:
            raw = handle.read(MAX_BYTES + 1)  # never more, whatever the file claims to be
    except OSError as exc:
        raise _refuse(
            str(path),
            1,
            1,
            f"cannot read the config: {exc.strerror}",
            "pass the right file with --config PATH",
        ) from None
    if len(raw) > MAX_BYTES:
        raise _refuse(file, 1, 1, *_too_large())
    raw = raw.removeprefix(b"\xef\xbb\xbf")  # a byte-order mark some editors write
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        line_start = raw.rfind(b"\n", 0, exc.start) + 1
        column = len(raw[line_start : exc.start].decode("utf-8")) + 1
        raise _refuse(
            file,
            raw.count(b"\n", 0, exc.start) + 1,
            column,
            f"the config is not UTF-8: byte 0x{raw[exc.start]:02x} cannot be read",
            "the file must be UTF-8 text; save it as UTF-8 in your editor",
        ) from None
    return parse(text, file, environ)


def parse(text: str, file: str, environ: dict[str, str] | None = None) -> Located:
    environ = dict(os.environ) if environ is None else environ
    text = text.removeprefix("\ufeff")
    if len(text) > MAX_BYTES:
        raise _refuse(file, 1, 1, *_too_large())
    if bad := _UNPRINTABLE.search(text):
        line, column = _line_column(text, bad.start())
        what = "a NUL byte" if bad[0] == "\0" else f"the control character U+{ord(bad[0]):04X}"
        raise _refuse(
            file, line, column, f"the config contains {what}", "the file must be UTF-8 text; remove it"
        )
    loader = _Loader(text)
    try:
        node = loader.get_single_node()
    except _Refused as exc:
        raise _refuse(file, exc.mark.line + 1, exc.mark.column + 1, exc.message, exc.hint) from None
    except yaml.MarkedYAMLError as exc:
        raise _not_yaml(file, exc) from None
    except yaml.YAMLError:
        raise _refuse(file, 1, 1, "not valid YAML", "check the file is a YAML config") from None
    finally:
        loader.dispose()
    located = Located(file, None)
    if node is not None:
        located.data = _Walk(located, loader, environ).value(node, ())
    return located


def _refuse(file: str, line: int, column: int, message: str, hint: str) -> ConfigError:
    return ConfigError([ConfigIssue(file, line, column, message, hint)])


def _too_large() -> tuple[str, str]:
    return (
        f"the config is larger than {MAX_BYTES // 1024 // 1024} MB",
        "a config is a few kilobytes of YAML; check that --config names the right file",
    )


def _line_column(text: str, index: int) -> tuple[int, int]:
    return text.count("\n", 0, index) + 1, index - text.rfind("\n", 0, index)


def _not_yaml(file: str, exc: yaml.MarkedYAMLError) -> ConfigError:
    problem = ", ".join(part for part in (exc.context, exc.problem) if part)
    # PyYAML quotes what it found, e.g. an alias's name: show it only if it cannot be a secret.
    problem = re.sub(r"'([^']*)'", lambda m: m[0] if echoable(m[1]) else "(not shown)", problem)
    mark = exc.problem_mark or exc.context_mark
    hint = "check the indentation and quoting on this line"
    if "'\\t'" in problem:
        hint = "indent with spaces, not tabs"
    elif "undefined alias" in problem:
        hint = "mark a value with `&name` before `*name` refers to it"
    elif ("end of stream" in problem or "<stream end>" in problem) and exc.context_mark is not None:
        # An unclosed quote or bracket is found at the end of the file; point where it opens.
        mark, hint = exc.context_mark, "close the quote or bracket that starts here"
    line, column = (mark.line + 1, mark.column + 1) if mark else (1, 1)
    return _refuse(file, line, column, f"not valid YAML: {problem}", hint)


class _Refused(Exception):
    """YAML that is valid but that Herald will not read, and where it stands."""

    def __init__(self, mark: yaml.Mark, message: str, hint: str) -> None:
        super().__init__(message)
        self.mark, self.message, self.hint = mark, message, hint


class _Loader(yaml.SafeLoader):
    """PyYAML's safe loader, refusing tags, deep nesting and alias expansion past a budget.

    Aliases share one node, so a "billion laughs" costs nothing to compose; the cost comes
    when the data is walked. Each node's expanded size is therefore counted as it is composed,
    and every alias adds its target's size to the budget.
    """

    def __init__(self, text: str) -> None:
        super().__init__(text)
        self.depth = 0
        self.aliased = 0
        self.sizes: dict[int, tuple[int, int]] = {}  # id(node) → (values once expanded, depth)

    def compose_node(self, parent: yaml.Node | None, index: Any) -> yaml.Node:
        event = self.peek_event()
        if isinstance(event, yaml.AliasEvent):
            node = super().compose_node(parent, index)
            if id(node) not in self.sizes:
                raise _Refused(
                    event.start_mark, "an alias refers to the value it is part of", "remove the loop"
                )
            size, depth = self.sizes[id(node)]
            self.aliased += size
            if self.aliased > MAX_ALIASED:
                raise _Refused(
                    event.start_mark,
                    f"aliases expand to more than {MAX_ALIASED:,} values",
                    "write the values out, or nest fewer aliases",
                )
            if self.depth + depth > MAX_DEPTH:
                raise _too_deep(event.start_mark)
            return node
        if event.tag is not None:
            shown = quoted(_tag_at(event.start_mark)) or "a tag"
            raise _Refused(
                event.start_mark,
                f"tags are not supported (found {shown})",
                "remove the tag; Herald reads plain YAML (quote the value to keep it as text)",
            )
        self.depth += 1
        if self.depth > MAX_DEPTH:
            raise _too_deep(event.start_mark)
        if len(self.sizes) >= MAX_VALUES:
            raise _Refused(
                event.start_mark,
                f"the config holds more than {MAX_VALUES:,} values",
                "a config needs a few hundred; check that --config names the right file",
            )
        try:
            node = super().compose_node(parent, index)
        finally:
            self.depth -= 1
        children: list[yaml.Node] = []
        if isinstance(node, yaml.SequenceNode):
            children = node.value
        elif isinstance(node, yaml.MappingNode):
            children = [part for pair in node.value for part in pair]
        counted = [self.sizes[id(child)] for child in children]
        self.sizes[id(node)] = (1 + sum(s for s, _ in counted), 1 + max((d for _, d in counted), default=0))
        return node


def _too_deep(mark: yaml.Mark) -> _Refused:
    return _Refused(
        mark, f"the config nests more than {MAX_DEPTH} levels deep", "a config needs a few levels; flatten it"
    )


def _tag_at(mark: yaml.Mark) -> str:
    """The tag as written at a node's start (after its anchor, if any), e.g. `!custom`."""
    words = (mark.buffer or "")[mark.pointer : mark.pointer + 200].split(maxsplit=2)[:2]
    return next((word for word in words if word.startswith("!")), "")


class _Walk:
    """Turns composed nodes into plain data, noting each key's and value's position."""

    def __init__(self, located: Located, loader: yaml.SafeLoader, environ: dict[str, str]) -> None:
        self.located, self.loader, self.environ = located, loader, environ

    def value(self, node: yaml.Node, path: Path_) -> Any:
        self.located.values[path] = _position(node)
        if isinstance(node, yaml.MappingNode):
            return self.mapping(node, path)
        if isinstance(node, yaml.SequenceNode):
            return [self.value(item, (*path, i)) for i, item in enumerate(node.value)]
        return self.scalar(node, path)

    def mapping(self, node: yaml.MappingNode, path: Path_) -> dict[str, Any]:
        out: dict[str, Any] = {}
        merged = [value for key, value in node.value if key.tag == _MERGE]
        for key_node, value_node in node.value:
            if key_node.tag == _MERGE or (key := self.key(key_node, path)) is None:
                continue
            if key in out:
                first = self.located.keys[(*path, key)]
                self.located.issues.append(
                    ConfigIssue(
                        self.located.file,
                        *_position(key_node),
                        f"duplicate key {quoted(key) or ''}".rstrip(),
                        f"it is already defined on line {first[0]}; keep one of them or rename this one",
                    )
                )
                continue
            self.add(out, path, key, key_node, value_node)
        # Merged keys fill in what the mapping does not set itself; the first merged mapping wins.
        for key_node, value_node in (pair for source in merged for pair in self.merged_pairs(source, path)):
            key = self.key(key_node, path)
            if key is not None and key not in out:
                self.add(out, path, key, key_node, value_node)
        return out

    def add(self, out: dict[str, Any], path: Path_, key: str, key_node: yaml.Node, value: yaml.Node) -> None:
        self.located.keys[(*path, key)] = _position(key_node)
        out[key] = self.value(value, (*path, key))

    def merged_pairs(self, source: yaml.Node, path: Path_) -> list[tuple[yaml.Node, yaml.Node]]:
        """The key/value pairs `<<: source` brings in, its own before those it merges in turn."""
        if isinstance(source, yaml.SequenceNode):
            return [pair for item in source.value for pair in self.merged_pairs(item, path)]
        if not isinstance(source, yaml.MappingNode):
            self.located.issues.append(
                ConfigIssue(
                    self.located.file,
                    *_position(source),
                    "`<<` merges a mapping into this one, not a single value",
                    "write `<<: *name` where `&name` marks a mapping",
                )
            )
            self.located.broken.add(path)
            return []
        own = [(k, v) for k, v in source.value if k.tag != _MERGE]
        nested = [pair for k, v in source.value if k.tag == _MERGE for pair in self.merged_pairs(v, path)]
        return own + nested

    def key(self, node: yaml.Node, path: Path_) -> str | None:
        """A key as the text written: names such as `123` or `yes` stay names."""
        if isinstance(node, yaml.ScalarNode):
            return node.value
        self.located.issues.append(
            ConfigIssue(
                self.located.file,
                *_position(node),
                "a key must be a name, not a list or a mapping",
                "write `name: value`",
            )
        )
        self.located.broken.add(path)
        return None

    def scalar(self, node: yaml.ScalarNode, path: Path_) -> Any:
        try:
            value = self.loader.construct_object(node, deep=True)
        except yaml.constructor.ConstructorError:
            value = node.value  # a type PyYAML recognises but cannot build (`=`, `<<`): the text
        except (ValueError, OverflowError):  # a date such as 2024-13-45, or an int of 5,000 digits
            value = None if node.tag == _INT else self.unreadable(node, path)
        if ":" in node.value and isinstance(value, int | float):
            return node.value  # YAML 1.1 reads 10:00 as 600 (base 60); Herald means the time
        if node.tag == _INT and (value is None or abs(value) > MAX_INT):
            self.located.issues.append(
                self.located.issue(
                    path,
                    f"{quoted(node.value) or 'the number'} is too large",
                    "no setting needs more than 10^18",
                )
            )
            self.located.broken.add(path)
            return node.value
        if isinstance(value, str) and "${" in value:
            value = self.interpolate(value, path)
        return value

    def unreadable(self, node: yaml.ScalarNode, path: Path_) -> str:
        kind = _KINDS.get(node.tag, "value")
        self.located.issues.append(
            self.located.issue(
                path,
                f"{quoted(node.value) or 'this'} looks like a {kind} but is not a valid one",
                "correct it, or quote it to keep it as text",
            )
        )
        self.located.broken.add(path)
        return node.value

    def interpolate(self, value: str, path: Path_) -> str:
        def replace(match: re.Match[str]) -> str:
            name, default = match["name"], match["default"]
            if name in self.environ:
                if _SECRET_NAME.search(name) or not echoable(self.environ[name]):
                    self.located.secrets.add(self.environ[name])
                return self.environ[name]
            if default is not None:
                return default
            self.located.issues.append(
                self.located.issue(
                    path,
                    f"environment variable {name} is not set",
                    f"export {name}=... before running Herald, or write ${{{name}:-default}}",
                )
            )
            return ""

        return _ENV.sub(replace, value)


def _position(node: yaml.Node) -> tuple[int, int]:
    return node.start_mark.line + 1, node.start_mark.column + 1
