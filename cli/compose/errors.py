"""The compose loader's error type and its warnings.

Owns `ComposeError` (what was wrong, in which file, at which key path, what
was expected) and `Warnings` (the messages Docker prints on stderr while it
loads a stack: unset variables, ignored options). Every failure of the loader
is a ComposeError, whatever the input.
"""
from __future__ import annotations

from typing import Iterable


class ComposeError(ValueError):
    """A compose file is refused: `file`, `path` (`services.web.deploy.replicas`), why."""

    def __init__(self, message: str, file: str = "", path: str = "") -> None:
        self.message = message
        self.file = file
        self.path = path
        super().__init__(self.text())

    def text(self) -> str:
        where = ", ".join(part for part in (self.file, self.path) if part)
        return f"{where}: {self.message}" if where else self.message

    def located(self, file: str) -> "ComposeError":
        """The same error, naming `file` unless it names one already."""
        if self.file:
            return self
        return ComposeError(self.message, file, self.path)


def join_path(path: str, key: str | int) -> str:
    """`services.web` + `ports` -> `services.web.ports`; an index -> `ports[2]`."""
    if isinstance(key, int):
        return f"{path}[{key}]"
    return f"{path}.{key}" if path else key


class Warnings:
    """The warnings of one load, in the order they arose, each once."""

    def __init__(self) -> None:
        self.items: list[str] = []

    def add(self, text: str) -> None:
        if text not in self.items:
            self.items.append(text)

    def extend(self, texts: Iterable[str]) -> None:
        for text in texts:
            self.add(text)

    def unset_variable(self, name: str) -> None:
        self.add(f'The "{name}" variable is not set. Defaulting to a blank string.')
