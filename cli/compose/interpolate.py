"""Variable substitution in compose files, as Docker's compose loader does it.

Owns the template language of values: `$VAR` and `${VAR}`, `${VAR:-default}`
(unset or empty), `${VAR-default}` (unset), `${VAR:?message}` and
`${VAR?message}` (required: an error with the message), `${VAR:+alt}` and
`${VAR+alt}` (Compose's alternate value) and `$$` (a literal `$`). Defaults,
alternates and messages may themselves hold substitutions
(`${A:-${B:-x}}`). An unset variable without a default becomes "" and adds
the warning Docker's Compose prints (`The "V" variable is not set.
Defaulting to a blank string.`). Only values are substituted, never keys.

A value that substitution changed comes back as `Interpolated` (a str): the
validator then accepts it where a number or a boolean is expected and
converts it, as Docker casts substituted values (`replicas: ${N}`), while a
literal string there stays a type error.
"""
from __future__ import annotations

import re
from typing import Any, Mapping

from cli.compose.errors import ComposeError, Warnings, join_path

_NAME = re.compile(r"[_A-Za-z][_A-Za-z0-9]*")
_ESCAPE_HINT = "; you may need to escape any $ with another $"


class Interpolated(str):
    """A string value produced by substitution (it may be read as a number or boolean)."""


class _Template:
    """One string being substituted (a small recursive-descent parser)."""

    def __init__(self, text: str, env: Mapping[str, str], warnings: Warnings) -> None:
        self.text = text
        self.env = env
        self.warnings = warnings

    def fail(self, why: str) -> ComposeError:
        return ComposeError(f'invalid interpolation format: "{self.text}": {why}'
                            f"{_ESCAPE_HINT}")

    def run(self) -> str:
        return self.until(0, closing=False)[0]

    def until(self, pos: int, closing: bool) -> tuple[str, int]:
        """Substitutes from pos to the end (or to the unmatched `}` when closing)."""
        out: list[str] = []
        text = self.text
        while pos < len(text):
            ch = text[pos]
            if ch == "}" and closing:
                return "".join(out), pos
            if ch != "$":
                out.append(ch)
                pos += 1
                continue
            value, pos = self.dollar(pos + 1)
            out.append(value)
        if closing:
            raise self.fail("a ${ is never closed by }")
        return "".join(out), pos

    def dollar(self, pos: int) -> tuple[str, int]:
        text = self.text
        if pos < len(text) and text[pos] == "$":
            return "$", pos + 1
        if pos < len(text) and text[pos] == "{":
            return self.braced(pos + 1)
        match = _NAME.match(text, pos)
        if not match:
            raise self.fail("a $ must be followed by a variable name, { or $")
        return self.lookup(match.group()), match.end()

    def braced(self, pos: int) -> tuple[str, int]:
        text = self.text
        match = _NAME.match(text, pos)
        if not match:
            raise self.fail("${ must be followed by a variable name")
        name, pos = match.group(), match.end()
        if pos < len(text) and text[pos] == "}":
            return self.lookup(name), pos + 1
        operator = ""
        for candidate in (":-", ":?", ":+", "-", "?", "+"):
            if text.startswith(candidate, pos):
                operator = candidate
                break
        if not operator:
            raise self.fail(f"unexpected character after ${{{name}")
        word, end = self.until(pos + len(operator), closing=True)
        value = self.env.get(name)
        empty_counts = operator.startswith(":")
        missing = value is None or (empty_counts and value == "")
        kind = operator[-1]
        if kind == "-":
            return (word if missing else str(value)), end + 1
        if kind == "+":
            return ("" if missing else word), end + 1
        if missing:
            reason = f": {word}" if word else ""
            raise ComposeError(f"required variable {name} is missing a value{reason}")
        return str(value), end + 1

    def lookup(self, name: str) -> str:
        value = self.env.get(name)
        if value is None:
            self.warnings.unset_variable(name)
            return ""
        return str(value)


def substitute(text: str, env: Mapping[str, str], warnings: Warnings) -> str:
    """One string with its variables substituted (raises ComposeError without a path)."""
    if "$" not in text:
        return text
    return _Template(text, env, warnings).run()


def interpolate(document: Any, env: Mapping[str, str], warnings: Warnings,
                path: str = "") -> Any:
    """A copy of the document with every string value substituted (keys untouched)."""
    if isinstance(document, str):
        try:
            value = substitute(document, env, warnings)
        except ComposeError as exc:
            raise ComposeError(exc.message, path=path) from None
        return Interpolated(value) if value != document else document
    if isinstance(document, dict):
        return {key: interpolate(item, env, warnings, join_path(path, key))
                for key, item in document.items()}
    if isinstance(document, list):
        return [interpolate(item, env, warnings, join_path(path, index))
                for index, item in enumerate(document)]
    return document
