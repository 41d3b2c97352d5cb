"""Typed reading of compose values, each failure a ComposeError at its key path.

Owns the checks every section shares: the type of a value (a string, an
integer, a boolean, a list, a mapping with known keys), Docker's "list or
mapping" forms (`KEY=VALUE` lists), string-or-list values, durations, sizes
and CPU counts. A string that came from substitution (`Interpolated`) is read
as a number or a boolean where one is expected, as Docker casts it.
"""
from __future__ import annotations

import difflib
import math
from typing import Any, Callable, Iterable, Mapping, Optional, TypeVar

from cli.compose.errors import Collector, ComposeError, join_path
from cli.compose.interpolate import Interpolated
from cli.parsing import UsageError, parse_cpus, parse_duration, parse_size

T = TypeVar("T")
_TRUE = ("y", "yes", "true", "on")
_FALSE = ("n", "no", "false", "off")


def type_name(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, (int, float)):
        return "a number"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, list):
        return "a list"
    if isinstance(value, dict):
        return "a mapping"
    return f"a {type(value).__name__}"


def wrong(value: Any, path: str, expected: str) -> ComposeError:
    shown = f" ({value!r})" if isinstance(value, (str, int, float)) else ""
    return ComposeError(f"must be {expected}, not {type_name(value)}{shown}", path=path)


def mapping(value: Any, path: str, allowed: Iterable[str] = (), any_key: bool = False,
            extensions: bool = True, errors: Optional[Collector] = None) -> dict[str, Any]:
    """A mapping whose keys are `allowed` (or any, with any_key); `x-` keys are dropped.
    With `errors`, each unknown key is a problem kept there and left out of the result
    (the other keys are still checked); without, the first one is raised."""
    if not isinstance(value, dict):
        raise wrong(value, path, "a mapping")
    known = set(allowed)
    out: dict[str, Any] = {}
    for key, item in value.items():
        if extensions and key.startswith("x-"):
            continue
        if not any_key and key not in known:
            close = difflib.get_close_matches(key, sorted(known), n=1)
            hint = (f' (did you mean "{close[0]}"?)' if close else
                    f"; expected one of: {', '.join(sorted(known))}")
            problem = ComposeError(f'unknown key "{key}"{hint}', path=join_path(path, key))
            if errors is None:
                raise problem
            errors.add(problem)
            continue
        out[key] = item
    return out


def string(value: Any, path: str, allow_numbers: bool = False) -> str:
    if isinstance(value, str):
        return str(value)
    if allow_numbers and isinstance(value, (int, float)) and not isinstance(value, bool):
        return _number_text(value)
    raise wrong(value, path, "a string")


def _number_text(value: float) -> str:
    if isinstance(value, float) and value.is_integer() and abs(value) < 1e16:
        return str(int(value))
    return str(value)


INT64_MAX = (1 << 63) - 1


def integer(value: Any, path: str, minimum: Optional[int] = 0,
            maximum: int = INT64_MAX) -> int:
    if isinstance(value, Interpolated):
        try:
            value = int(value.strip(), 10)
        except ValueError:
            raise ComposeError(f'must be an integer, not "{value}"', path=path) from None
    if isinstance(value, bool) or not isinstance(value, int):
        raise wrong(value, path, "an integer")
    if minimum is not None and value < minimum:
        raise ComposeError(f"must be at least {minimum}, not {value}", path=path)
    if value > maximum:
        raise ComposeError(f"must be at most {maximum}, not {value}", path=path)
    return value


def number(value: Any, path: str) -> float:
    if isinstance(value, Interpolated):
        try:
            value = float(value.strip())
        except ValueError:
            raise ComposeError(f'must be a number, not "{value}"', path=path) from None
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise wrong(value, path, "a number")
    return float(value)


def boolean(value: Any, path: str) -> bool:
    if isinstance(value, Interpolated):
        lowered = value.strip().lower()
        if lowered in _TRUE:
            return True
        if lowered in _FALSE:
            return False
        raise ComposeError(f'must be a boolean (true or false), not "{value}"', path=path)
    if not isinstance(value, bool):
        raise wrong(value, path, "a boolean (true or false)")
    return value


def string_list(value: Any, path: str, allow_numbers: bool = False) -> list[str]:
    if not isinstance(value, list):
        raise wrong(value, path, "a list of strings")
    return [string(item, join_path(path, i), allow_numbers) for i, item in enumerate(value)]


def string_or_list(value: Any, path: str) -> list[str]:
    if isinstance(value, str):
        return [str(value)]
    if isinstance(value, list):
        return string_list(value, path)
    raise wrong(value, path, "a string or a list of strings")


def key_values(value: Any, path: str, allow_none: bool, sep: str = "=",
               what: str = "KEY=VALUE") -> dict[str, Optional[str]]:
    """Docker's "list or dict": a mapping of scalars, or a list of KEY=VALUE strings."""
    out: dict[str, Optional[str]] = {}
    if isinstance(value, dict):
        for key, item in value.items():
            item_path = join_path(path, key)
            if item is None:
                out[key] = None if allow_none else ""
            elif isinstance(item, (str, int, float)):
                out[key] = _scalar_text(item)
            else:
                raise wrong(item, item_path, "a string, a number, a boolean or null")
        return out
    if isinstance(value, list):
        for index, item in enumerate(value):
            text = string(item, join_path(path, index), allow_numbers=True)
            key, found, rest = text.partition(sep)
            if not key:
                raise ComposeError(f'"{text}" must be {what}', path=join_path(path, index))
            out[key] = rest if found else (None if allow_none else "")
        return out
    raise wrong(value, path, f"a mapping or a list of {what} strings")


def _scalar_text(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return _number_text(value)
    return str(value)


def labels(value: Any, path: str) -> dict[str, str]:
    return {k: v or "" for k, v in key_values(value, path, allow_none=False).items()}


def options(value: Any, path: str) -> dict[str, str]:
    """driver_opts and the like: a mapping of strings or numbers."""
    out = {}
    for key, item in mapping(value, path, any_key=True, extensions=False).items():
        out[key] = string(item, join_path(path, key), allow_numbers=True)
    return out


def duration(value: Any, path: str) -> int:
    text = string(value, path)
    try:
        return parse_duration(text, path)
    except UsageError:
        raise ComposeError(f'invalid duration "{text}": expected a number with a unit '
                           "(ns, us, ms, s, m, h), e.g. 10s, 1m30s or 500ms", path=path) from None


def size(value: Any, path: str) -> int:
    if isinstance(value, int) and not isinstance(value, bool):
        if value < 0:
            raise ComposeError(f"must not be negative, not {value}", path=path)
        if value > INT64_MAX:
            raise ComposeError(f"must be at most {INT64_MAX} bytes, not {value}", path=path)
        return value
    text = string(value, path)
    try:
        return parse_size(text, path)
    except UsageError:
        raise ComposeError(f'invalid size "{text}": expected a number of bytes with an '
                           "optional unit b, k, m, g, t (e.g. 512M or 1g)", path=path) from None


def cpus(value: Any, path: str) -> tuple[str, int]:
    text = string(value, path, allow_numbers=True)
    try:
        return text, parse_cpus(text, path)
    except UsageError:
        raise ComposeError(f'invalid CPU count "{text}": expected a non-negative number of '
                           'CPUs such as "0.5" or "2"', path=path) from None


def choice(value: Any, path: str, choices: Iterable[str]) -> str:
    text = string(value, path)
    allowed = list(choices)
    if text not in allowed:
        raise ComposeError(f'invalid value "{text}": expected one of {", ".join(allowed)}',
                           path=path)
    return text


def optional(section: Mapping[str, Any], key: str, path: str,
             read: Callable[[Any, str], T]) -> Optional[T]:
    """read(section[key]) when the key is present, else None."""
    if key not in section:
        return None
    return read(section[key], join_path(path, key))


def not_supported(key: str, path: str, why: str = "") -> ComposeError:
    more = f": {why}" if why else ""
    return ComposeError(f'"{key}" is not supported by Shoal yet{more}', path=path)
