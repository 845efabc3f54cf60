"""YAML that remembers where every key came from, for errors that name file and line.

`load(text, filename)` returns plain Python data and a `Lines` map from key paths
(tuples of keys and list indexes) to 1-based line numbers. Duplicate keys are an
error (a policy must not silently mean two things). Only safe YAML is built.
"""

from __future__ import annotations

from typing import Any

import yaml

from vigie.errors import ConfigError

Path = tuple[str | int, ...]


class Lines:
    def __init__(self, filename: str) -> None:
        self.filename = filename
        self._lines: dict[Path, int] = {}

    def set(self, path: Path, line: int) -> None:
        self._lines[path] = line

    def line(self, path: Path) -> int:
        """The line of `path`, or of its nearest ancestor that has one."""
        while path:
            if path in self._lines:
                return self._lines[path]
            path = path[:-1]
        return self._lines.get((), 1)

    def error(self, path: Path, message: str) -> ConfigError:
        key = ".".join(str(p) for p in path) if path else None
        return ConfigError(message, file=self.filename, line=self.line(path), key=key)


def load(text: str, filename: str) -> tuple[Any, Lines]:
    lines = Lines(filename)
    try:
        node = yaml.compose(text, Loader=yaml.SafeLoader)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        line = mark.line + 1 if mark is not None else None
        problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
        raise ConfigError(f"invalid YAML: {problem}", file=filename, line=line) from exc
    if node is None:
        return None, lines
    lines.set((), node.start_mark.line + 1)
    return _build(node, (), lines), lines


def _build(node: yaml.Node, path: Path, lines: Lines) -> Any:
    if isinstance(node, yaml.MappingNode):
        result: dict[Any, Any] = {}
        for key_node, value_node in node.value:
            key = _build(key_node, path, lines)
            if isinstance(key, list | dict):
                raise ConfigError("a key must be a scalar", file=lines.filename,
                                  line=key_node.start_mark.line + 1)
            if key in result:
                raise ConfigError(f"duplicate key {key!r}", file=lines.filename,
                                  line=key_node.start_mark.line + 1, key=str(key))
            child = (*path, key)
            lines.set(child, key_node.start_mark.line + 1)
            result[key] = _build(value_node, child, lines)
        return result
    if isinstance(node, yaml.SequenceNode):
        items = []
        for index, item in enumerate(node.value):
            child = (*path, index)
            lines.set(child, item.start_mark.line + 1)
            items.append(_build(item, child, lines))
        return items
    loader = yaml.SafeLoader("")
    try:
        return loader.construct_object(node, deep=True)
    finally:
        loader.dispose()
