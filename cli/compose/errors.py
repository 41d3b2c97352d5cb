"""The compose loader's error type and its warnings.

Owns `ComposeError` (what was wrong, in which file, at which key path, what
was expected; or several such problems found in one load), `Collector` (the
loader's way of checking independent parts and keeping every problem) and
`Warnings` (the messages Docker prints on stderr while it loads a stack: unset
variables, ignored options). Every failure of the loader is a ComposeError,
whatever the input.
"""
from __future__ import annotations

from types import TracebackType
from typing import Iterable, Optional, Sequence


class ComposeError(ValueError):
    """A compose file is refused: `file`, `path` (`services.web.deploy.replicas`), why.

    One error may stand for several independent problems (`several`): `errors` lists
    them all (a single problem lists itself), `message`, `file` and `path` are the
    first one's, and the text has one line per problem."""

    def __init__(self, message: str, file: str = "", path: str = "") -> None:
        self.message = message
        self.file = file
        self.path = path
        self.errors: list[ComposeError] = [self]
        # the stack as far as it could be read, when the load found only problems
        # that leave it whole enough to look at (set by the loader; `model.Stack`)
        self.partial: Optional[object] = None
        super().__init__(self.text())

    @classmethod
    def several(cls, errors: Sequence["ComposeError"],
                files: Sequence[str] = ()) -> "ComposeError":
        """One error for `errors` (each problem once, those of nested errors flattened),
        sorted by file, in the order of `files` (others after, by name), then found."""
        problems: list[ComposeError] = []
        seen: set[tuple[str, str, str]] = set()
        for error in errors:
            for problem in error.errors:
                key = (problem.file, problem.path, problem.message)
                if key not in seen:
                    seen.add(key)
                    problems.append(problem)
        if not problems:
            raise ValueError("ComposeError.several needs at least one error")
        order = {name: index for index, name in enumerate(files)}
        problems.sort(key=lambda p: (order.get(p.file, len(order)), p.file))
        if len(problems) == 1:
            return problems[0]
        first = problems[0]
        combined = cls(first.message, first.file, first.path)
        combined.errors = problems
        combined.args = (combined.text(),)
        return combined

    def text(self) -> str:
        """`file, path: message`, a line per problem when there are several."""
        if len(self.errors) > 1:
            return "\n".join(problem.text() for problem in self.errors)
        where = ", ".join(part for part in (self.file, self.path) if part)
        return f"{where}: {self.message}" if where else self.message

    def located(self, file: str) -> "ComposeError":
        """The same error, naming `file` unless it names one already (each problem)."""
        if len(self.errors) > 1:
            return ComposeError.several([problem.located(file) for problem in self.errors])
        if self.file:
            return self
        return ComposeError(self.message, file, self.path)

    def __str__(self) -> str:
        return self.text()


class Collector:
    """The problems of the independent parts of one load.

    `with collector:` runs one part: a ComposeError it raises is kept and the load goes
    on with the next part; `check()` then raises them all as one ComposeError."""

    def __init__(self) -> None:
        self.errors: list[ComposeError] = []

    def add(self, error: ComposeError) -> None:
        self.errors.extend(error.errors)

    def __enter__(self) -> "Collector":
        return self

    def __exit__(self, kind: Optional[type[BaseException]], error: Optional[BaseException],
                 trace: Optional[TracebackType]) -> bool:
        if isinstance(error, ComposeError):
            self.add(error)
            return True
        return False

    def failed_at(self, path: str) -> bool:
        """Whether a problem was found at `path` or at a key that contains it."""
        return any(path == p.path or path.startswith((p.path + ".", p.path + "["))
                   for p in self.errors if p.path)

    def check(self, files: Sequence[str] = ()) -> None:
        if self.errors:
            raise ComposeError.several(self.errors, files)


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
