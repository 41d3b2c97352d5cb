"""Argument parsers whose arguments are declared when first used.

Owns `LazyParser`: an ArgumentParser given a `declare` function that adds its
arguments only when the parser parses, or prints its usage or help. It also
reads `--flag=--` as the value "--", as Docker's flag parser does: argparse
drops the "--" and hands the command an empty list in place of a string. And it
reads a word such as `-5s` as a value, as it reads `-5` (`--restart-delay -5s`
reaches the duration parser, which says why a negative delay is refused,
instead of argparse's "expected one argument"). A `swarm`
run then pays for declaring only the command it runs: `service create` and
`service update` have over a hundred options, and declaring them took 6 ms of
every `swarm service ls`.
"""
from __future__ import annotations

import argparse
import re
from typing import Any, Callable, Optional

Declarer = Callable[[argparse.ArgumentParser], None]
# A negative number or duration ("-1", "-5s", "-1.5h", "-.5"): no swarm option starts with
# a dash and a digit, so such a word is always a value.
_NEGATIVE_VALUE = re.compile(r"^-\.?\d")


class LazyParser(argparse.ArgumentParser):
    """An ArgumentParser that runs `declare(self)` once, before its first use.

    Sub-parsers made from it are LazyParsers too; without a `declare` they
    behave as plain ArgumentParsers.
    """

    def __init__(self, *args: Any, declare: Optional[Declarer] = None, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._undeclared = declare

    def declare(self) -> None:
        """Adds the arguments (once)."""
        declare, self._undeclared = self._undeclared, None
        if declare is not None:
            declare(self)

    def parse_known_args(self, *args: Any, **kwargs: Any) -> Any:
        self.declare()
        return super().parse_known_args(*args, **kwargs)

    def _parse_optional(self, arg_string: str) -> Any:
        # argparse takes "-5" for a value but "-5s" (a negative duration) for an unknown
        # option; Docker's flag parser takes both as the value of the flag before them.
        if _NEGATIVE_VALUE.match(arg_string) and not self._has_negative_number_optionals:
            return None
        return super()._parse_optional(arg_string)

    def _get_values(self, action: argparse.Action, arg_strings: list[str]) -> Any:
        # argparse's own method removes a "--" given as an option's value (`--cap-add=--`)
        # and returns [] where the command expects one string: take it as the value.
        if action.option_strings and action.nargs is None and arg_strings == ["--"]:
            value = self._get_value(action, "--")
            self._check_value(action, value)
            return value
        return super()._get_values(action, arg_strings)

    def format_usage(self) -> str:
        self.declare()
        return super().format_usage()

    def format_help(self) -> str:
        self.declare()
        return super().format_help()
