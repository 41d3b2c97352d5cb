"""Unit tests for `swarm join-token`, `swarm update` and the `leave` parser (no node needed)."""
from __future__ import annotations

import argparse
import io

import pytest

from cli import commands_swarm as sw
from cli.client import CLIError
from cli.context import Context
from cli.flags import rewrite_bool_assignments
from cli.main import build_parser, main
from cli.parsing import UsageError
from proto import control_pb2 as cpb
from proto import objects_pb2 as pb

NOWHERE = ["-H", "unix:///nonexistent/dir/swarm.sock"]
ADDR = "10.0.0.1:2377"


def parse(argv: list[str]) -> argparse.Namespace:
    return build_parser().parse_args(rewrite_bool_assignments(argv))


def make_cluster(version: int = 7) -> pb.Cluster:
    cluster = pb.Cluster(id="clusterid")
    cluster.meta.version = version
    cluster.spec.annotations.name = "default"
    cluster.spec.dispatcher.heartbeat_period.nanos = 5 * 10**9
    cluster.spec.orchestration.task_history_retention_limit = 5
    cluster.spec.default_addr_pool.append("10.10.0.0/16")
    cluster.join_tokens.worker = "SWMTKN-1-worker-a"
    cluster.join_tokens.manager = "SWMTKN-1-manager-a"
    return cluster


class FakeClient:
    """A Control API that keeps one cluster and records what was sent."""

    def __init__(self, cluster: pb.Cluster, addr: str = ADDR) -> None:
        self.cluster = cluster
        self.addr = addr
        self.calls: list[tuple[str, object]] = []

    def call(self, method: str, request, timeout=None):
        self.calls.append((method, request))
        if method == "Info":
            return cpb.InfoResponse(node_id="self1", is_manager=True)
        if method == "GetNode":
            node = pb.Node(id=request.node_id, role=pb.MANAGER)
            node.manager_status.addr = self.addr
            return cpb.GetNodeResponse(node=node)
        if method == "GetCluster":
            return cpb.GetClusterResponse(cluster=self.cluster)
        if method == "UpdateCluster":
            assert request.cluster_version == self.cluster.meta.version
            new = pb.Cluster()
            new.CopyFrom(self.cluster)
            new.spec.CopyFrom(request.spec)
            new.meta.version += 1
            if request.rotate_worker_token:
                new.join_tokens.worker = "SWMTKN-1-worker-b"
            if request.rotate_manager_token:
                new.join_tokens.manager = "SWMTKN-1-manager-b"
            self.cluster = new
            return cpb.UpdateClusterResponse(cluster=new)
        raise AssertionError(f"unexpected call {method}")

    def methods(self) -> list[str]:
        return [m for m, _ in self.calls]

    def close(self) -> None:
        pass


def run(handler, argv: list[str], client: FakeClient) -> tuple[int, str]:
    out = io.StringIO()
    ctx = Context(host="unix:///fake.sock", out=out, _client=client)
    return handler(ctx, parse(argv)), out.getvalue()


# ------------------------------------------------------------ join-token ----

def test_join_command_text_matches_docker() -> None:
    assert sw.join_command_text("worker", "SWMTKN-1-x", ADDR) == (
        "To add a worker to this swarm, run the following command:\n\n"
        f"    swarm join --token SWMTKN-1-x {ADDR}\n")
    assert sw.join_command_text("manager", "T", "m:1").startswith(
        "To add a manager to this swarm, run the following command:\n\n")
    assert sw.rotated_text("manager") == "Successfully rotated manager join token.\n"


def test_check_role() -> None:
    assert sw.check_role("worker") == "worker"
    assert sw.check_role("manager") == "manager"
    for bad in ("Worker", "admin", ""):
        with pytest.raises(UsageError, match="expected worker or manager"):
            sw.check_role(bad)


def test_token_for_and_manager_addr() -> None:
    cluster = make_cluster()
    assert sw.token_for(cluster, "worker") == "SWMTKN-1-worker-a"
    assert sw.token_for(cluster, "manager") == "SWMTKN-1-manager-a"
    node = pb.Node(id="n1")
    node.manager_status.raft_addr = "10.0.0.2:4242"
    assert sw.manager_addr(node) == "10.0.0.2:4242"
    node.manager_status.addr = ADDR
    assert sw.manager_addr(node) == ADDR
    with pytest.raises(CLIError, match="no manager address"):
        sw.manager_addr(pb.Node(id="n2"))


def test_rotate_request_keeps_spec_and_version() -> None:
    cluster = make_cluster(version=12)
    request = sw.rotate_request(cluster, "manager")
    assert request.cluster_version == 12 and request.cluster_id == "clusterid"
    assert request.rotate_manager_token and not request.rotate_worker_token
    assert request.spec == cluster.spec
    assert sw.rotate_request(cluster, "worker").rotate_worker_token


def test_join_token_prints_command() -> None:
    client = FakeClient(make_cluster())
    status, out = run(sw.join_token, ["join-token", "worker"], client)
    assert status == 0
    assert out == sw.join_command_text("worker", "SWMTKN-1-worker-a", ADDR)
    get_node = [r for m, r in client.calls if m == "GetNode"][0]
    assert get_node.node_id == "self1"
    get_cluster = [r for m, r in client.calls if m == "GetCluster"][0]
    assert get_cluster.cluster_id == ""


def test_join_token_quiet_prints_only_token() -> None:
    client = FakeClient(make_cluster())
    status, out = run(sw.join_token, ["join-token", "-q", "manager"], client)
    assert (status, out) == (0, "SWMTKN-1-manager-a\n")
    assert "UpdateCluster" not in client.methods()


def test_join_token_rotate() -> None:
    client = FakeClient(make_cluster(version=7))
    status, out = run(sw.join_token, ["join-token", "--rotate", "worker"], client)
    assert status == 0
    assert out == ("Successfully rotated worker join token.\n\n"
                   + sw.join_command_text("worker", "SWMTKN-1-worker-b", ADDR))
    update = [r for m, r in client.calls if m == "UpdateCluster"][0]
    assert update.cluster_version == 7 and update.rotate_worker_token
    assert not update.rotate_manager_token
    assert client.cluster.join_tokens.manager == "SWMTKN-1-manager-a"
    # the token printed is the one read back after the update
    assert client.methods().count("GetCluster") == 2


def test_join_token_rotate_quiet() -> None:
    client = FakeClient(make_cluster())
    status, out = run(sw.join_token, ["join-token", "-q", "--rotate", "manager"], client)
    assert (status, out) == (0, "SWMTKN-1-manager-b\n")


def test_join_token_bad_role_exits_1_before_connecting(capsys) -> None:
    assert main([*NOWHERE, "join-token", "admin"]) == 1
    err = capsys.readouterr().err
    assert 'unknown role "admin"' in err and "Cannot connect" not in err


def test_join_token_needs_a_role() -> None:
    with pytest.raises(SystemExit):
        parse(["join-token"])


# ---------------------------------------------------------------- update ----

def changes(argv: list[str]) -> sw.ClusterChanges:
    return sw.parse_changes(parse(["update", *argv]))


def test_parse_changes() -> None:
    c = changes(["--dispatcher-heartbeat", "10s", "--task-history-limit", "3",
                 "--cert-expiry", "720h"])
    assert c == sw.ClusterChanges(10 * 10**9, 3, 720 * 3600 * 10**9)
    assert changes(["--task-history-limit", "-1"]).task_history_limit == -1
    assert changes(["--task-history-limit", "0"]) == sw.ClusterChanges(task_history_limit=0)
    assert changes(["--dispatcher-heartbeat", "100ms"]).heartbeat_ns == 100_000_000


def test_parse_changes_needs_a_flag() -> None:
    with pytest.raises(UsageError) as exc:
        changes([])
    for flag in sw.UPDATE_FLAGS:
        assert flag in str(exc.value)


@pytest.mark.parametrize("argv,match", [
    (["--dispatcher-heartbeat", "5"], "--dispatcher-heartbeat"),
    (["--dispatcher-heartbeat", "fast"], "expected a number with a unit"),
    (["--dispatcher-heartbeat", "50ms"], "at least 100ms"),
    (["--cert-expiry", "90d"], "--cert-expiry"),
    (["--cert-expiry", "30m"], "at least 1h0m0s"),
    (["--task-history-limit", "many"], "--task-history-limit: expected an integer"),
    (["--task-history-limit", "2.5"], "expected an integer"),
    # a ValueError traceback (the spec's int64 field), found by the fuzz tests
    (["--task-history-limit", "18446744073709551615"],
     'invalid value "18446744073709551615" for --task-history-limit: out of range; give a '
     "number of tasks"),
    (["--task-history-limit", "-9223372036854775809"], "out of range"),
])
def test_parse_changes_rejects(argv: list[str], match: str) -> None:
    with pytest.raises(UsageError, match=match):
        changes(argv)


def test_apply_changes_copies_the_spec() -> None:
    spec = make_cluster().spec
    before = pb.ClusterSpec()
    before.CopyFrom(spec)
    new = sw.apply_changes(spec, sw.ClusterChanges(heartbeat_ns=2 * 10**9))
    assert spec == before
    assert new.dispatcher.heartbeat_period.nanos == 2 * 10**9
    assert new.orchestration.task_history_retention_limit == 5
    assert list(new.default_addr_pool) == ["10.10.0.0/16"]
    new = sw.apply_changes(spec, sw.ClusterChanges(task_history_limit=9,
                                                   cert_expiry_ns=7200 * 10**9))
    assert new.orchestration.task_history_retention_limit == 9
    assert new.ca_config.node_cert_expiry.nanos == 7200 * 10**9
    assert new.dispatcher.heartbeat_period.nanos == 5 * 10**9


def test_update_sends_version_read() -> None:
    client = FakeClient(make_cluster(version=21))
    status, out = run(sw.update, ["update", "--task-history-limit", "2"], client)
    assert (status, out) == (0, "Swarm updated.\n")
    update = [r for m, r in client.calls if m == "UpdateCluster"][0]
    assert update.cluster_version == 21 and update.cluster_id == "clusterid"
    assert update.spec.orchestration.task_history_retention_limit == 2
    assert update.spec.dispatcher.heartbeat_period.nanos == 5 * 10**9
    assert not update.rotate_worker_token and not update.rotate_manager_token


def test_update_errors_exit_1_before_connecting(capsys) -> None:
    assert main([*NOWHERE, "update"]) == 1
    assert "--dispatcher-heartbeat, --task-history-limit, --cert-expiry" in \
        capsys.readouterr().err
    assert main([*NOWHERE, "update", "--cert-expiry", "soon"]) == 1
    err = capsys.readouterr().err
    assert 'invalid duration "soon" for --cert-expiry' in err and "Cannot connect" not in err


def test_update_autolock_spellings() -> None:
    from cli.commands_swarm import apply_changes, parse_changes
    for argv, want in ((["update", "--autolock"], True), (["update", "--autolock=true"], True),
                       (["update", "--autolock=false"], False)):
        changes = parse_changes(parse(argv))
        assert changes.autolock is want
        assert apply_changes(pb.ClusterSpec(), changes).encryption.auto_lock_managers is want
    with pytest.raises(UsageError):
        parse_changes(parse(["update", "--autolock=maybe"]))


# ----------------------------------------------------------------- leave ----

def test_leave_parser_dispatches_to_bootstrap() -> None:
    ns = parse(["leave"])
    assert (ns.bootstrap, ns.force, ns.data_dir) == ("cmd_leave", False, None)
    ns = parse(["leave", "--force", "--data-dir", "/tmp/n1"])
    assert (ns.force, ns.data_dir) == (True, "/tmp/n1")
    assert parse(["leave", "-f"]).force


# ------------------------------------------------------ autolock, unlock-key ----

KEY1 = "SWMKEY-1-" + "A" * 43
KEY2 = "SWMKEY-1-" + "B" * 43


class LockingClient(FakeClient):
    """FakeClient plus the manager's unlock-key behaviour."""

    def call(self, method: str, request, timeout=None):
        if method == "GetUnlockKey":
            self.calls.append((method, request))
            on = self.cluster.spec.encryption.auto_lock_managers
            return cpb.GetUnlockKeyResponse(unlock_key=self.cluster.unlock_key if on else "")
        response = super().call(method, request, timeout)
        if method == "UpdateCluster":
            if self.cluster.spec.encryption.auto_lock_managers:
                if request.rotate_manager_unlock_key:
                    self.cluster.unlock_key = KEY2
                elif not self.cluster.unlock_key:
                    self.cluster.unlock_key = KEY1
            else:
                self.cluster.unlock_key = ""
        return response


def test_unlock_key_text_matches_docker() -> None:
    assert sw.unlock_key_text(KEY1) == (
        "To unlock a swarm manager after it restarts, run the `swarm unlock`\n"
        f"command and provide the following key:\n\n    {KEY1}\n\n"
        "Please remember to store this key in a password manager, since without it you\n"
        "will not be able to restart the manager.\n")


def test_update_autolock_on_prints_the_key_once() -> None:
    client = LockingClient(make_cluster())
    rc, out = run(sw.update, ["update", "--autolock=true"], client)
    assert rc == 0 and out == "Swarm updated.\n" + sw.unlock_key_text(KEY1)
    rc, out = run(sw.update, ["update", "--autolock"], client)      # already on: no key
    assert rc == 0 and out == "Swarm updated.\n"
    rc, out = run(sw.update, ["update", "--autolock=false"], client)
    assert rc == 0 and out == "Swarm updated.\n"
    assert not client.cluster.spec.encryption.auto_lock_managers


def test_unlock_key_quiet_rotate_and_refusals() -> None:
    client = LockingClient(make_cluster())
    with pytest.raises(CLIError, match="^Error: no unlock key is set$"):
        run(sw.unlock_key, ["unlock-key"], client)
    with pytest.raises(CLIError, match="cannot rotate because autolock is not turned on"):
        run(sw.unlock_key, ["unlock-key", "--rotate"], client)
    assert "UpdateCluster" not in client.methods()
    run(sw.update, ["update", "--autolock=true"], client)
    assert run(sw.unlock_key, ["unlock-key", "-q"], client) == (0, KEY1 + "\n")
    rc, out = run(sw.unlock_key, ["unlock-key", "--rotate"], client)
    assert rc == 0 and out == ("Successfully rotated manager unlock key.\n\n"
                               + sw.unlock_key_text(KEY2))
    assert client.calls[-2][1].rotate_manager_unlock_key
    assert run(sw.unlock_key, ["unlock-key", "--rotate", "-q"], client)[1] == KEY2 + "\n"


def test_unlock_parses() -> None:
    assert parse(["unlock"]).handler is sw.unlock
    ns = parse(["unlock-key", "-q", "--rotate"])
    assert ns.quiet and ns.rotate and ns.handler is sw.unlock_key
    assert parse(["init", "--autolock"]).autolock == "true"
    assert parse(["init"]).autolock is None
