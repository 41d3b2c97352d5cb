"""The authorization table names every RPC a manager serves, with the intended roles."""
from __future__ import annotations

from manager.authz import ANYONE, MANAGERS, NODES, allowed_roles
from tests.authz_matrix import ALL, EXPECTED, MANAGER, WORKER, methods

_AS_CALLERS = {ANYONE: ALL, NODES: frozenset({MANAGER, WORKER}), MANAGERS: frozenset({MANAGER}),
               frozenset(): frozenset()}


def test_every_served_rpc_has_an_expected_policy() -> None:
    served = {path for path, _ in methods()}
    assert served == set(EXPECTED), (served ^ set(EXPECTED))


def test_table_matches_the_expected_policy_rpc_by_rpc() -> None:
    wrong = {}
    for path, _ in methods():
        roles = allowed_roles(path)
        assert roles in _AS_CALLERS, f"{path}: unknown role set {roles}"
        if _AS_CALLERS[roles] != EXPECTED[path]:
            wrong[path] = (sorted(_AS_CALLERS[roles]), sorted(EXPECTED[path]))
    assert not wrong, wrong


def test_unknown_methods_are_closed() -> None:
    assert allowed_roles("/shoal.v1.Control/NoSuchCall") == MANAGERS  # service prefix
    assert allowed_roles("/shoal.v1.Secret/Anything") == frozenset()
    assert allowed_roles("/grpc.health.v1.Health/Check") == ANYONE


def test_raft_addresses_are_checked() -> None:
    from manager.ca import raft_addr_problem
    assert raft_addr_problem("10.0.0.2:2378") is None
    assert raft_addr_problem("[fd00::2]:2378") is None
    for bad in ("", "10.0.0.2", ":2378", "10.0.0.2:x", "10.0.0.2:70000", "not an address:1"):
        assert "invalid raft address" in raft_addr_problem(bad), bad
