"""Reading one compose file's YAML into plain Python values.

Owns the YAML dialect: PyYAML's safe loader (no arbitrary objects) with
anchors, aliases and merge keys (`<<`), but scalars resolved as Docker's YAML
library (YAML 1.2 core schema) resolves them: only true/false are booleans
(`yes`, `on` stay strings), `8080:80` is a string and not a base-60 number,
`0440` is octal, and there are no implicit timestamps. A key given twice in
one mapping is an error (as in Docker). Keys must be strings; the document
must be a mapping. Any failure is a ComposeError naming the file.
"""
from __future__ import annotations

import re
from typing import Any

import yaml
from yaml.nodes import MappingNode

from cli.compose.errors import ComposeError

# Alias expansion can make a small file describe a huge tree ("billion laughs"):
# walks of the loaded document stop past this many values.
MAX_VALUES = 200_000

_BOOL = re.compile(r"^(?:true|True|TRUE|false|False|FALSE)$")
_NULL = re.compile(r"^(?:~|null|Null|NULL|)$")
_INT = re.compile(r"^(?:[-+]?[0-9][0-9_]*|[-+]?0[xX][0-9a-fA-F_]+|[-+]?0[oO][0-7_]+"
                  r"|[-+]?0[bB][01_]+)$")
_FLOAT = re.compile(r"^(?:[-+]?(?:\.[0-9]+|[0-9][0-9_]*(?:\.[0-9_]*)?)(?:[eE][-+]?[0-9]+)?"
                    r"|[-+]?\.(?:inf|Inf|INF)|\.(?:nan|NaN|NAN))$")


class _Loader(yaml.SafeLoader):
    """SafeLoader with YAML 1.2 core scalar resolution and duplicate-key checks."""

    yaml_implicit_resolvers: dict = {}

    def construct_mapping(self, node: Any, deep: bool = False) -> Any:
        if isinstance(node, MappingNode):
            seen: set[Any] = set()
            for key_node, _ in node.value:
                if key_node.tag == "tag:yaml.org,2002:merge":
                    continue
                key = self.construct_object(key_node, deep=True)
                try:
                    duplicate = key in seen
                    seen.add(key)
                except TypeError:
                    raise ComposeError(f"line {key_node.start_mark.line + 1}: a mapping key "
                                       "must be a string") from None
                if duplicate:
                    raise ComposeError(f'line {key_node.start_mark.line + 1}: mapping key '
                                       f'"{key}" already defined')
        return super().construct_mapping(node, deep)


def _int(loader: Any, node: Any) -> int:
    text = str(loader.construct_scalar(node)).replace("_", "")
    sign = -1 if text.startswith("-") else 1
    digits = text.lstrip("+-")
    if digits[:2].lower() in ("0x", "0o", "0b"):
        return sign * int(digits, 0)
    if len(digits) > 1 and digits.startswith("0") and set(digits) <= set("01234567"):
        return sign * int(digits, 8)       # Go's ParseInt(s, 0): a leading 0 is octal
    return sign * int(digits, 10)


def _float(loader: Any, node: Any) -> float:
    text = str(loader.construct_scalar(node)).replace("_", "").lower()
    if text.endswith("inf"):
        return float("-inf") if text.startswith("-") else float("inf")
    if text.endswith("nan"):
        return float("nan")
    return float(text)


_Loader.add_implicit_resolver("tag:yaml.org,2002:bool", _BOOL, list("tTfF"))
_Loader.add_implicit_resolver("tag:yaml.org,2002:null", _NULL, ["~", "n", "N", ""])
_Loader.add_implicit_resolver("tag:yaml.org,2002:int", _INT, list("-+0123456789"))
_Loader.add_implicit_resolver("tag:yaml.org,2002:float", _FLOAT, list("-+0123456789."))
_Loader.add_implicit_resolver("tag:yaml.org,2002:merge", re.compile(r"^(?:<<)$"), ["<"])
_Loader.add_constructor("tag:yaml.org,2002:int", _int)
_Loader.add_constructor("tag:yaml.org,2002:float", _float)


def parse_yaml(text: str, file: str) -> dict[str, Any]:
    """The document of one compose file: a mapping with string keys."""
    try:
        document = yaml.load(text, Loader=_Loader)   # noqa: S506 - _Loader is a SafeLoader
    except ComposeError as exc:
        raise exc.located(file) from None
    except yaml.YAMLError as exc:
        raise ComposeError(f"invalid YAML: {_one_line(exc)}", file) from None
    except Exception as exc:  # noqa: BLE001 - PyYAML's constructors fail on bad input with
        # plain errors too (a malformed !!timestamp raises AttributeError): all are the file's
        raise ComposeError(f"invalid YAML: {type(exc).__name__}: {exc}", file) from None
    if document is None:
        document = {}
    if not isinstance(document, dict):
        raise ComposeError("top-level object must be a mapping", file)
    _check_tree(document, file)
    return document


def _one_line(exc: yaml.YAMLError) -> str:
    return " ".join(str(exc).split())


def _check_tree(document: dict[str, Any], file: str) -> None:
    """Refuses recursive aliases, non-string keys and trees too big once aliases expand."""
    count = 0
    stack: list[tuple[Any, str, frozenset[int]]] = [(document, "", frozenset())]
    while stack:
        value, path, parents = stack.pop()
        count += 1
        if count > MAX_VALUES:
            raise ComposeError(f"the document has more than {MAX_VALUES} values once its "
                               "aliases are expanded", file)
        if isinstance(value, (dict, list)):
            if id(value) in parents:
                raise ComposeError("an alias refers to a node that contains it (a recursive "
                                   "structure)", file, path)
            inner = parents | {id(value)}
            if isinstance(value, dict):
                for key, item in value.items():
                    if not isinstance(key, str):
                        raise ComposeError(f"key {key!r} must be a string", file, path)
                    stack.append((item, f"{path}.{key}" if path else key, inner))
            else:
                for index, item in enumerate(value):
                    stack.append((item, f"{path}[{index}]", inner))
