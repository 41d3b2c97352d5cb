"""The other commands that build specs or requests: any command line is a request or a refusal.

For `network create`, `secret create`, `config create`, `node update`,
`swarm update`, `swarm ca`, `service scale`, `join-token` and the `ls` commands
(their `--filter` and `--format`), command lines are generated from the real parser's
flags (tests/fuzz_helpers.py) and run through `cli.main.parse_command_line`
and the command's handler against a fake manager that answers every call
with a canned object. The outcome must be argparse's usage error (exit 2, a
message on stderr), `UsageError` or `CLIError` with a message (what `main`
prints on one line), or requests that serialize. `swarm init`'s flags go
through what runs before the node is made (cluster_settings, the addresses,
the address pools) and the cluster spec the daemon then creates must be one
the manager's rules accept; `swarm events --filter` values parse or are refused.
Examples: 200 per command, 300 for `init` and for the ls commands.
"""
from __future__ import annotations

import argparse
import io
import tempfile
from pathlib import Path
from typing import Any

from hypothesis import given
from hypothesis import strategies as st

from cli.client import CLIError
from cli.context import Context
from cli.eventfilter import EventFilter
from cli.node_commands import cluster_settings
from cli.parsing import UsageError
from manager.allocator import ipam
from manager.controlapi.cluster import check_spec
from manager.controlapi.common import Refusal
from node.state import node_addresses
from proto import control_pb2 as cpb
from proto import objects_pb2 as pb
from tests.fuzz_helpers import VALUES, argv_for, fuzz_settings, parse_or_usage, subparser

SECRET_FILE = Path(tempfile.mkdtemp(prefix="shoal-fuzz-")) / "data"
SECRET_FILE.write_bytes(b"s3cret")


def _service() -> pb.Service:
    service = pb.Service(id="s" * 25)
    service.spec.annotations.name = "web"
    service.spec.task.container.image = "busybox"
    service.spec.replicated.replicas = 2
    return service


def _node() -> pb.Node:
    node = pb.Node(id="n" * 25, role=pb.MANAGER)
    node.description.hostname = "host1"
    node.spec.annotations.labels["zone"] = "a"
    node.manager_status.addr = "10.0.0.1:2377"
    return node


class FakeManager:
    """Answers every Control API call with a canned object; records the requests."""

    def __init__(self) -> None:
        self.requests: list[Any] = []

    def call(self, method: str, request: Any, timeout: Any = None) -> Any:
        request.SerializeToString()          # what is sent must be a valid message
        self.requests.append(request)
        response = getattr(cpb, f"{method}Response")()
        if method in ("GetService", "UpdateService", "CreateService"):
            response.service.CopyFrom(_service())
        elif method in ("GetNode", "UpdateNode"):
            response.node.CopyFrom(_node())
        elif method == "ListNodes":
            response.nodes.append(_node())
        elif method == "Info":
            response.node_id = "n" * 25
        elif method in ("GetCluster", "UpdateCluster"):
            response.cluster.id = "c" * 25
            response.cluster.join_tokens.worker = "SWMTKN-1-a-b"
        elif method == "GetUnlockKey":
            response.unlock_key = "SWMKEY-1-abc"
        elif method.startswith("Create"):
            getattr(response, method[len("Create"):].lower()).id = "x" * 25
        elif method == "ListServices":
            response.services.append(_service())
        elif method in ("ListSecrets", "ListConfigs"):
            item = getattr(response, method[len("List"):].lower()).add(id="y" * 25)
            item.spec.annotations.name = "s"
            item.spec.annotations.labels["k"] = "v"
        elif method == "ListNetworks":
            response.networks.add(id="z" * 25).spec.annotations.name = "net"
        return response


def run(argv: list[str]) -> None:
    """`swarm ARGV` up to the manager: a refusal with a message, or valid requests."""
    ns = parse_or_usage(argv)
    if ns is None:
        return
    ctx = Context("unix:///fuzz.sock", out=io.StringIO(), err=io.StringIO(),
                  _client=FakeManager())  # type: ignore[arg-type]
    if getattr(ns, "detach", "set") is None:
        ns.detach = "true"            # `service scale` would wait for convergence
    if getattr(ns, "rotate", False) and ns.command == "ca":
        ns.detach = True              # `ca --rotate` would wait for the rotation
    try:
        ns.handler(ctx, ns)
    except UsageError as exc:
        assert str(exc)
    except CLIError as exc:
        assert exc.message and exc.code


def command(*names: str, positionals: st.SearchStrategy[list[str]]) -> Any:
    """Command lines for `swarm NAMES... [OPTIONS] POSITIONALS`."""
    parser = subparser(*names)
    return st.tuples(argv_for(parser, []), positionals).map(
        lambda parts: [*names, *parts[0], *parts[1]])


NAMES = st.lists(st.sampled_from(["web", "self", "host1", "n" * 25, "net", "s"]) | VALUES,
                 min_size=1, max_size=2)
FORMATS = st.sampled_from([
    "table", "json", "{{.ID}}", "table {{.ID}}\\t{{.Name}}", "{{json .}}", "{{.Name | upper}}",
    "{{truncate .ID 3}}", "{{.Nope}}", "{{", "}}", "{{}}", "{{ lower }}", "{{truncate .ID}}",
    "{{truncate .ID \"x\"}}", "{{\"}}", "{{'a' 'b'}}", "{{.ID .Name}}", "{{println .ID 1}}",
    "{{.Labels.k}}", "{{title}}", "{{json}}", "{{print}}", "{{-1}}", "{{truncate .ID -1}}",
    "{{.}}", "{{ . | json }}", "{{.ID | truncate 2}}"]) | VALUES


@fuzz_settings(200)
@given(command("network", "create", positionals=NAMES.map(lambda n: n[:1])))
def test_network_create(argv: list[str]) -> None:
    run(argv)


@fuzz_settings(200)
@given(st.sampled_from(["secret", "config"]), argv_for(subparser("secret", "create"), []),
       NAMES.map(lambda n: n[:1]))
def test_secret_and_config_create(kind: str, options: list[str], name: list[str]) -> None:
    run([kind, "create", *options, *name, str(SECRET_FILE)])


@fuzz_settings(200)
@given(command("node", "update", positionals=NAMES.map(lambda n: n[:1])))
def test_node_update(argv: list[str]) -> None:
    run(argv)


@fuzz_settings(200)
@given(command("update", positionals=st.just([])))
def test_swarm_update(argv: list[str]) -> None:
    run(argv)


@fuzz_settings(200)
@given(command("ca", positionals=st.just([])))
def test_swarm_ca(argv: list[str]) -> None:
    run(argv)


@fuzz_settings(200)
@given(st.lists(st.tuples(st.sampled_from(["type", "event", "service", "node", "label",
                                           "scope", "container"]) | VALUES,
                          st.sampled_from(["service", "node", "create", "update", "remove",
                                           "web", "k=v", ""]) | VALUES).map("=".join)
                | VALUES, max_size=3))
def test_event_filters(items: list[str]) -> None:
    try:
        EventFilter.parse(items)
    except UsageError as exc:
        assert str(exc)


@fuzz_settings(200)
@given(command("join-token", positionals=st.sampled_from(["worker", "manager"]).map(
    lambda r: [r]) | NAMES.map(lambda n: n[:1])))
def test_join_token(argv: list[str]) -> None:
    run(argv)


@fuzz_settings(200)
@given(command("service", "scale", positionals=st.lists(
    st.tuples(st.sampled_from(["web", "", "a=b"]) | VALUES,
              st.sampled_from(["0", "3", "-1", "9" * 30, ""]) | VALUES).map("=".join)
    | VALUES, min_size=1, max_size=3)))
def test_service_scale(argv: list[str]) -> None:
    run(argv)


@fuzz_settings(300)
@given(st.sampled_from([("service", "ls"), ("node", "ls"), ("network", "ls"),
                        ("secret", "ls"), ("config", "ls"), ("service", "ps"),
                        ("node", "ps")]),
       st.lists(st.tuples(st.sampled_from(["id", "name", "label", "mode", "role", "driver",
                                           "type", "membership", "desired-state", "node",
                                           "node.label", "scope", "service"]) | VALUES,
                          st.sampled_from(["web", "k", "k=v", "manager", "custom", "builtin",
                                           "running", "accepted", "replicated"]) | VALUES)
                .map("=".join) | VALUES, max_size=2),
       st.none() | FORMATS, st.booleans())
def test_ls_filters_and_formats(which: tuple[str, str], filters: list[str],
                                fmt: str | None, quiet: bool) -> None:
    argv = [*which]
    for item in filters:
        argv += ["--filter", item]
    if fmt is not None:
        argv.append(f"--format={fmt}")
    if quiet:
        argv.append("-q")
    if which[1] == "ps":
        argv.append("web" if which[0] == "service" else "self")
    run(argv)


@fuzz_settings(300)
@given(argv_for(subparser("init"), [], max_options=4))
def test_swarm_init_flags(options: list[str]) -> None:
    """What `swarm init` checks before it makes the node, and the cluster it then makes."""
    ns = parse_or_usage(["init", *options])
    if ns is None or ns.force_new_cluster:
        return
    try:
        settings = cluster_settings(ns)
    except UsageError as exc:
        assert str(exc)
        return
    try:
        node_addresses(ns.listen_addr, ns.advertise_addr or "10.0.0.1")
        ipam.parse_pools(settings.default_addr_pool or [],
                         settings.default_addr_pool_mask_length or 0)
    except ValueError as exc:       # cmd_init prints it on one line and exits 1
        assert str(exc)
        return
    daemon_makes_cluster(settings)


def daemon_makes_cluster(settings: Any) -> None:
    """The cluster spec the first daemon makes from init's settings (node/daemon.py) fits
    its fields and passes the rules `swarm update` is held to."""
    cluster = pb.Cluster(id="c" * 25)
    spec = cluster.spec
    if settings.task_history_limit is not None:
        spec.orchestration.task_history_retention_limit = settings.task_history_limit
    if settings.dispatcher_heartbeat_ns:
        spec.dispatcher.heartbeat_period.nanos = settings.dispatcher_heartbeat_ns
    spec.default_addr_pool.extend(settings.default_addr_pool or [])
    spec.subnet_size = settings.default_addr_pool_mask_length or 0
    try:
        check_spec(pb.Cluster(), spec)
    except Refusal as exc:
        raise AssertionError(f"swarm init accepted what swarm update refuses: {exc}") from None


_: Any = argparse  # the namespace type the handlers take
