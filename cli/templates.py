"""`--format` for list commands: Docker's table, `json` and Go-template subset.

Owns rendering a list of rows (dicts keyed by Docker's field names, e.g.
`ID`, `Name`, `CurrentState`) through a format string:

* `None`/`""`/`"table"`: the command's default columns, as a table;
* `"json"`: one compact JSON object per row, keys sorted (as `docker ... --format json`);
* `"table {{.ID}}\\t{{.Name}}"`: a header made of the fields' column names, then rows,
  aligned like Go's tabwriter;
* any other text: the template applied to each row, one line per row.

The template language is a small subset of Go's text/template: `{{.Field}}`,
`{{.Field.Key}}` (into a field that holds a map, e.g. `{{.Health.Status}}`), `{{.}}`, `{{json .}}`, `{{json .Field}}`, `{{lower .F}}`, `{{upper .F}}`,
`{{title .F}}`, `{{truncate .F N}}`, `{{index .Map "key"}}`, `{{println}}`, string
literals and pipes (`{{.Field | lower}}`). Literal `\\t` and `\\n` in the format become
tab and newline, as Docker does. A `Template` given a `resolve` function checks and maps
each `.A.B` path through it when parsing (the inspect commands: Docker's field names onto
Shoal's JSON keys, cli/inspectformat.py).
"""
from __future__ import annotations

import json
import re
import shlex
from typing import Any, Callable, Iterable, Mapping, NamedTuple, Optional, Sequence

from cli.parsing import UsageError

Row = Mapping[str, Any]


class Resolved(NamedTuple):
    """Where a template path leads in a row: the keys to read (["spec", "annotations",
    "name"] for .Spec.Name) and the value when the row lacks them (None: "<no value>")."""

    keys: list[str]
    missing: Any = None


# A template path (["Spec", "Name"]) to where it leads, or UsageError naming the field
# that does not exist.
Resolver = Callable[[list[str]], Resolved]

_ACTION = re.compile(r"{{-?\s*(.*?)\s*-?}}", re.DOTALL)
_WORD_SPLIT = re.compile(r"(?<=[a-z])(?=[A-Z])")
_NUMBER = re.compile(r"-?[0-9]+")


def header_of(field: str) -> str:
    """Docker's column title for a field: DesiredState -> "DESIRED STATE"."""
    if field == "ID":
        return "ID"
    return _WORD_SPLIT.sub(" ", field).upper()


def tabulate(rows: Sequence[Sequence[str]], minwidth: int = 10, padding: int = 3) -> str:
    """Aligns cells like Go's tabwriter(minwidth=10, padding=3), as Docker's tables.

    The last cell of every line is not padded; trailing blanks are removed.
    """
    if not rows:
        return ""
    ncols = max(len(r) for r in rows)
    widths = [0] * ncols
    for row in rows:
        for i, cell in enumerate(row[:-1]):
            widths[i] = max(widths[i], len(cell) + padding, minwidth)
    lines = []
    for row in rows:
        parts = [cell.ljust(widths[i]) for i, cell in enumerate(row[:-1])]
        parts.append(row[-1] if row else "")
        lines.append("".join(parts).rstrip())
    return "\n".join(lines)


def _unescape(fmt: str) -> str:
    return fmt.replace("\\t", "\t").replace("\\n", "\n")


def _as_text(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if value is None:
        return "<no value>"
    if isinstance(value, Mapping):
        return "map[" + " ".join(f"{k}:{_as_text(v)}" for k, v in sorted(value.items())) + "]"
    if isinstance(value, (list, tuple)):
        return "[" + " ".join(_as_text(v) for v in value) + "]"
    return str(value)


def _is_literal(word: str) -> bool:
    """A quoted string: "text" or 'text'."""
    return len(word) >= 2 and word[0] in "\"'" and word[-1] == word[0]


class JsonRow(dict):
    """A row whose JSON form (`json`, `{{json .}}`) has other keys than the fields templates
    read, as a Go struct with json tags: Docker's events.Message is `{{.Scope}}` to a
    template but `"scope"` in JSON."""

    def __init__(self, fields: Mapping[str, Any], json_form: Mapping[str, Any]) -> None:
        super().__init__(fields)
        self.json_form = dict(json_form)


def _json(value: Any) -> str:
    if isinstance(value, JsonRow):
        value = value.json_form
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def _truncate(value: Any, length: Any) -> str:
    return _as_text(value)[: int(length)]


def _index(value: Any, *keys: Any) -> Any:
    """Go's index: a map's value by key ("" when absent, as Go's zero string), a list's
    element by number."""
    for key in keys:
        if isinstance(value, Mapping):
            value = value.get(key, "") if isinstance(key, str) else ""
        elif isinstance(value, (list, tuple)) and isinstance(key, int):
            if not 0 <= key < len(value):
                raise UsageError(f"error calling index: index out of range: {key}")
            value = value[key]
        else:
            raise UsageError(f"error calling index: cannot index {_as_text(value)!r} "
                             f"with {_as_text(key)!r}")
    return value


_FUNCS: dict[str, Callable[..., Any]] = {
    "json": _json,
    "lower": lambda v: _as_text(v).lower(),
    "upper": lambda v: _as_text(v).upper(),
    "title": lambda v: _as_text(v).title(),
    "truncate": _truncate,
    "index": _index,
    "println": lambda *v: " ".join(_as_text(x) for x in v) + "\n",
    "print": lambda *v: "".join(_as_text(x) for x in v),
}


# How many arguments each function takes (None: any number), and how it is used.
_ARITY: dict[str, int | None] = {"json": 1, "lower": 1, "upper": 1, "title": 1, "truncate": 2,
                                 "index": None, "println": None, "print": None}
_EXAMPLES = {"json": "{{json .}}", "lower": "{{lower .Name}}", "upper": "{{upper .Name}}",
             "title": "{{title .Name}}", "truncate": "{{truncate .ID 12}}",
             "index": '{{index .Labels "key"}}'}


class Template:
    """A parsed format template; `render(row)` applies it to one row."""

    def __init__(self, text: str, fields: Iterable[str],
                 resolve: Optional[Resolver] = None) -> None:
        self.text = _unescape(text)
        self.fields = tuple(fields)
        self.resolve = resolve
        self._paths: dict[str, Resolved] = {}   # ".Spec.Name" -> where it leads (resolve)
        self._parts: list[tuple[str, Any]] = []
        pos = 0
        for m in _ACTION.finditer(self.text):
            if m.start() > pos:
                self._parts.append(("text", self.text[pos:m.start()]))
            self._parts.append(("action", self._parse_pipeline(m.group(1))))
            pos = m.end()
        if "{{" in self.text[pos:] or "}}" in self.text[pos:]:
            raise UsageError(f'invalid --format "{text}": unbalanced "{{{{" and "}}}}"')
        if pos < len(self.text):
            self._parts.append(("text", self.text[pos:]))

    def _parse_pipeline(self, body: str) -> list[list[str]]:
        commands: list[list[str]] = []
        for command in body.split("|"):
            try:
                words = shlex.split(command.strip(), posix=False)
            except ValueError:
                raise UsageError(f'invalid --format action "{{{{{body}}}}}"') from None
            if not words:
                raise UsageError(f'invalid --format action "{{{{{body}}}}}": empty command')
            for word in words:
                if word.startswith(".") and word != "." and self.resolve is not None:
                    self._paths[word] = self.resolve(word[1:].split("."))
                elif word.startswith(".") and word != "." \
                        and word[1:].split(".")[0] not in self.fields:
                    raise UsageError(
                        f'invalid --format: unknown field "{word}"; fields are '
                        + ", ".join("." + f for f in self.fields))
                if word.startswith(('"', "'")) and not _is_literal(word):
                    raise UsageError(f'invalid --format action "{{{{{body}}}}}": {word} is not '
                                     'a quoted string; write "text" or \'text\'')
                if not word.startswith((".", '"', "'")) and not _NUMBER.fullmatch(word) \
                        and word not in _FUNCS:
                    raise UsageError(f'invalid --format: unknown function "{word}"; known are '
                                     + ", ".join(sorted(_FUNCS)))
            self._check_command(words, piped=bool(commands), body=body)
            commands.append(words)
        return commands

    @staticmethod
    def _check_command(words: list[str], piped: bool, body: str) -> None:
        """Refuses, before any row is rendered, a command that could not run: a function
        given the wrong number of arguments (a piped value is the last one), a function
        name as an argument, arguments to a field or literal, truncate without a number."""
        head, rest = words[0], words[1:]
        action = "{{" + body + "}}"
        for word in rest:
            if word in _FUNCS:
                raise UsageError(f'invalid --format action "{action}": the function "{word}" '
                                 f"cannot be an argument; pipe into it instead, e.g. "
                                 f"{{{{.Name | {word}}}}}")
        if head not in _FUNCS:
            if rest or piped:
                raise UsageError(f'invalid --format action "{action}": "{head}" is not a '
                                 "function and takes no arguments")
            return
        count = len(rest) + (1 if piped else 0)
        wanted = _ARITY.get(head)
        if wanted is not None and count != wanted:
            raise UsageError(f'invalid --format action "{action}": {head} takes {wanted} '
                             f"argument{'s' if wanted != 1 else ''}, not {count}; e.g. "
                             f"{_EXAMPLES[head]}")
        if head == "index" and count < 2:
            raise UsageError(f'invalid --format action "{action}": index takes a map or list '
                             f"and at least one key, e.g. {_EXAMPLES[head]}")
        if head == "truncate" and (piped or not _NUMBER.fullmatch(rest[1])):
            raise UsageError(f'invalid --format action "{action}": truncate takes a field '
                             f"and a number, e.g. {_EXAMPLES[head]}")

    def _arg(self, word: str, row: Row) -> Any:
        if word == ".":
            return row if isinstance(row, JsonRow) else dict(row)
        if word.startswith("."):
            resolved = self._paths.get(word)
            value: Any = row
            for key in resolved.keys if resolved else word[1:].split("."):
                value = value.get(key) if isinstance(value, Mapping) else None
            return resolved.missing if value is None and resolved else value
        if _is_literal(word):
            return _unescape(word[1:-1])
        return int(word)

    def _run(self, commands: list[list[str]], row: Row) -> Any:
        value: Any = None
        for index, words in enumerate(commands):
            head, rest = words[0], words[1:]
            args = [self._arg(w, row) for w in rest]
            if index > 0:
                args.append(value)
            if head in _FUNCS:
                value = _FUNCS[head](*args)
            else:
                if args:
                    raise UsageError(f'invalid --format: "{head}" is not a function')
                value = self._arg(head, row)
        return value

    def render(self, row: Row) -> str:
        out = []
        for kind, part in self._parts:
            out.append(part if kind == "text" else _as_text(self._run(part, row)))
        return "".join(out)


def render(fmt: str | None, rows: Sequence[Row], columns: Sequence[str],
           fields: Sequence[str], table: Callable[[Sequence[Row]], str] | None = None) -> str:
    """Renders rows through a --format value; returns the text without a final newline.

    `columns` are the default table's fields, `fields` all known ones; `table`
    (if given) renders the default table itself (e.g. `node ls`' "ID *").
    """
    if fmt is None or fmt.strip() in ("", "table"):
        if table is not None:
            return table(rows)
        body = [[header_of(c) for c in columns]]
        body += [[_as_text(r.get(c, "")) for c in columns] for r in rows]
        return tabulate(body)
    if fmt.strip() == "json":
        return "\n".join(_json(r if isinstance(r, JsonRow) else dict(r)) for r in rows)
    if fmt.startswith("table"):
        spec = fmt[len("table"):].strip(" ")
        tpl = Template(spec, fields)
        header_row = {f: header_of(f) for f in fields}
        lines = [tpl.render(header_row)] + [tpl.render(r) for r in rows]
        return tabulate([line.split("\t") for line in "\n".join(lines).split("\n")])
    tpl = Template(fmt, fields)
    return "\n".join(tpl.render(r) for r in rows)
