"""raft.store.Store implements raft.api.ObjectStore, the store interface the rest of Shoal uses.

mypy checks the same at the end of raft/store.py; this test keeps the check
in the test suite, down to parameter names, defaults and annotations.
"""
from __future__ import annotations

import inspect
from typing import Optional

from raft.api import ObjectStore
from raft.store import Store


def protocol_mismatches(protocol: type, implementation: type) -> list[str]:
    """What `implementation` lacks or declares differently from `protocol`'s public members."""
    problems = []
    for name, declared in vars(protocol).items():
        if name.startswith("_"):
            continue
        actual = inspect.getattr_static(implementation, name, None)
        where = f"{implementation.__name__}.{name}"
        if actual is None:
            problems.append(f"{where} is missing")
        elif isinstance(declared, property):
            if not isinstance(actual, property):
                problems.append(f"{where} should be a property")
        elif not inspect.isfunction(actual):
            problems.append(f"{where} should be a method")
        elif inspect.iscoroutinefunction(declared) != inspect.iscoroutinefunction(actual):
            problems.append(f"{where} should {'' if inspect.iscoroutinefunction(declared) else 'not '}"
                            "be a coroutine function")
        elif inspect.signature(declared) != inspect.signature(actual):
            problems.append(f"{where}{inspect.signature(actual)} differs from "
                            f"{protocol.__name__}.{name}{inspect.signature(declared)}")
    return problems


def test_store_implements_object_store() -> None:
    assert protocol_mismatches(ObjectStore, Store) == []


def test_the_check_reports_each_kind_of_mismatch() -> None:
    class Wanted:
        @property
        def version(self) -> int:
            return 0

        def leader(self) -> Optional[str]:
            return None

        async def acommit(self, actions: list, timeout: float = 5.0) -> int:
            return 0

        def members(self) -> list:
            return []

    class Broken:
        version = 0  # not a property

        def leader(self, refresh: bool) -> Optional[str]:  # extra parameter
            return None

        def acommit(self, actions: list, timeout: float = 5.0) -> int:  # not async
            return 0

    problems = protocol_mismatches(Wanted, Broken)
    assert problems == [
        "Broken.version should be a property",
        "Broken.leader(self, refresh: 'bool') -> 'Optional[str]' differs from "
        "Wanted.leader(self) -> 'Optional[str]'",
        "Broken.acommit should be a coroutine function",
        "Broken.members is missing",
    ]
    assert protocol_mismatches(Wanted, Wanted) == []
