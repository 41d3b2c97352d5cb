"""`swarm events` pure parts: store changes to events, attributes, filters, times, resuming.

The daemon side (history, replay) is in tests/test_watch_history.py; the real
command on a lab cluster in tests/test_e2e_events.py.
"""
from __future__ import annotations

import datetime as dt
import json
from typing import Any, Optional

import pytest

from cli.client import CLIError, RpcFailure
from cli.client import Client
from cli.commands_events import Follower, failover_hosts
from cli.grpc_transport import KEEPALIVE_OPTIONS, KEEPALIVE_TIME_MS
from node.daemon import CLIENT_PING_INTERVAL_MS, SERVER_OPTIONS
from cli.eventfilter import EventFilter
from cli import eventfilter, eventmodel, servicelogs, templates
from cli.timevalues import nanos_of_seconds, parse_timestamp, rfc3339_nano
from cli.eventmodel import Event, to_event
from cli.parsing import UsageError
from cli.templates import Template
from cli.eventmodel import FIELDS
from proto import control_pb2 as cpb
from proto import model
from proto import objects_pb2 as pb
from proto import watch_pb2 as wpb

NOW = 1_796_497_200 * 1_000_000_000   # 2026-12-05T19:00:00Z


def change(action: Any, new: Any, old: Any = None, version: int = 7,
           at: float = 1_796_497_200.123456789) -> wpb.WatchEvent:
    ev = wpb.WatchEvent(action=action, version=version)
    ev.object.CopyFrom(model.wrap(new))
    if old is not None:
        ev.old_object.CopyFrom(model.wrap(old))
    ev.committed_at.CopyFrom(model.timestamp(at))
    return ev


def service(name: str = "web", image: str = "img:1", replicas: int = 2,
            state: Any = None) -> pb.Service:
    svc = pb.Service(id="s" * 25)
    svc.spec.annotations.name = name
    svc.spec.annotations.labels["tier"] = "front"
    svc.spec.task.container.image = image
    svc.spec.replicated.replicas = replicas
    if state is not None:
        svc.update_status.state = state
    return svc


def node(state: Any = pb.NodeStatus.READY, availability: Any = pb.NodeSpec.ACTIVE,
         leader: bool = False, role: Any = pb.MANAGER) -> pb.Node:
    n = pb.Node(id="n" * 25, role=role)
    n.description.hostname = "manager1"
    n.status.state = state
    n.spec.availability = availability
    n.manager_status.leader = leader
    n.manager_status.reachability = pb.ManagerStatus.REACHABLE
    return n


def task(state: Any, exit_code: int = 0, err: str = "") -> pb.Task:
    t = pb.Task(id="t" * 25, service_id="s" * 25, service_name="web", slot=2, node_id="n" * 25)
    t.spec.container.image = "img:1"
    t.status.state = state
    t.status.container_status.exit_code = exit_code
    t.status.err = err
    return t


# ------------------------------------------------------------ attributes ----

def test_service_update_names_what_changed() -> None:
    old, new = service(), service(image="img:2", replicas=5, state=pb.UpdateStatus.UPDATING)
    event = to_event(change(wpb.WatchEvent.UPDATE, new, old))
    assert event is not None
    assert (event.type, event.action, event.id, event.version) == ("service", "update", "s" * 25, 7)
    assert dict(event.attributes) == {
        "name": "web", "tier": "front", "image.old": "img:1", "image.new": "img:2",
        "replicas.old": "2", "replicas.new": "5", "updatestate.new": "updating"}
    # an update state that changes shows old and new; one that does not, nothing
    later = service(state=pb.UpdateStatus.COMPLETED)
    attrs = to_event(change(wpb.WatchEvent.UPDATE, later,
                            service(state=pb.UpdateStatus.UPDATING))).attributes  # type: ignore[union-attr]
    assert attrs["updatestate.old"] == "updating" and attrs["updatestate.new"] == "completed"
    same = to_event(change(wpb.WatchEvent.UPDATE, later, later)).attributes  # type: ignore[union-attr]
    assert dict(same) == {"name": "web", "tier": "front"}


def test_service_create_and_remove_carry_the_name_only() -> None:
    for action, name in ((wpb.WatchEvent.CREATE, "create"), (wpb.WatchEvent.REMOVE, "remove")):
        event = to_event(change(action, service()))
        assert event is not None and event.action == name
        assert dict(event.attributes) == {"name": "web", "tier": "front"}


def test_node_update_names_state_availability_role_and_leadership() -> None:
    old = node()
    new = node(state=pb.NodeStatus.DOWN, availability=pb.NodeSpec.DRAIN, leader=True,
               role=pb.WORKER)
    new.manager_status.reachability = pb.ManagerStatus.UNREACHABLE
    event = to_event(change(wpb.WatchEvent.UPDATE, new, old))
    assert event is not None and event.type == "node"
    assert dict(event.attributes) == {
        "name": "manager1", "state.old": "ready", "state.new": "down",
        "availability.old": "active", "availability.new": "drain",
        "role.old": "manager", "role.new": "worker", "leader.old": "false", "leader.new": "true",
        "reachability.old": "reachable", "reachability.new": "unreachable"}


def test_secret_config_network_events_carry_name_and_labels() -> None:
    secret = pb.Secret(id="x" * 25)
    secret.spec.annotations.name = "db-password"
    secret.spec.annotations.labels["env"] = "prod"
    event = to_event(change(wpb.WatchEvent.CREATE, secret))
    assert event is not None and (event.type, event.action) == ("secret", "create")
    assert dict(event.attributes) == {"name": "db-password", "env": "prod"}
    net = pb.Network(id="w" * 25)
    net.spec.annotations.name = "backend"
    assert to_event(change(wpb.WatchEvent.REMOVE, net)).type == "network"  # type: ignore[union-attr]
    config = pb.Config(id="c" * 25)
    config.spec.annotations.name = "nginx.conf"
    assert to_event(change(wpb.WatchEvent.UPDATE, config, config)).type == "config"  # type: ignore[union-attr]


def test_task_start_and_die_from_status_changes() -> None:
    names = {"n" * 25: "manager1"}
    start = to_event(change(wpb.WatchEvent.UPDATE, task(pb.RUNNING), task(pb.STARTING)), names)
    assert start is not None and (start.type, start.action, start.id) == ("task", "start", "t" * 25)
    assert dict(start.attributes) == {
        "name": f"web.2.{'t' * 25}", "image": "img:1", "service.id": "s" * 25,
        "service.name": "web", "node.id": "n" * 25, "node.name": "manager1", "slot": "2"}
    die = to_event(change(wpb.WatchEvent.UPDATE, task(pb.FAILED, 3, "exit 3"), task(pb.RUNNING)))
    assert die is not None and die.action == "die"
    assert (die.attributes["exitCode"], die.attributes["state"], die.attributes["error"]) == \
        ("3", "failed", "exit 3")
    assert "node.name" not in die.attributes       # no name known for the node
    # a container that failed to start dies too; bookkeeping changes are no events
    assert to_event(change(wpb.WatchEvent.UPDATE, task(pb.FAILED), task(pb.STARTING))).action == "die"  # type: ignore[union-attr]
    for before, after in ((pb.PENDING, pb.ASSIGNED), (pb.RUNNING, pb.RUNNING),
                          (pb.PREPARING, pb.REJECTED), (pb.RUNNING, pb.ORPHANED)):
        assert to_event(change(wpb.WatchEvent.UPDATE, task(after), task(before))) is None
    assert to_event(change(wpb.WatchEvent.CREATE, task(pb.NEW))) is None
    assert to_event(change(wpb.WatchEvent.REMOVE, task(pb.SHUTDOWN))) is None
    assert to_event(change(wpb.WatchEvent.UPDATE, pb.Cluster(id="c" * 25), pb.Cluster(id="c" * 25))) is None


def test_line_and_row_formats() -> None:
    event = Event("service", "update", "abc", {"updatestate.new": "updating", "name": "web"},
                  time_nano=NOW + 123_456_789, version=9)
    assert event.line() == ("2026-12-05T19:00:00.123456789Z service update abc "
                            "(name=web, updatestate.new=updating)")
    assert Event("node", "remove", "n1", {}, NOW).line() == \
        "2026-12-05T19:00:00.000000000Z node remove n1"
    row = event.row()
    assert row["Actor"] == {"ID": "abc", "Attributes": {"name": "web", "updatestate.new": "updating"}}
    assert (row["Time"], row["TimeNano"], row["Scope"], row["Version"]) == \
        (NOW // 10**9, NOW + 123_456_789, "swarm", 9)
    assert Template("{{.Type}} {{.Action}} {{.Actor.ID}} {{.Actor.Attributes.name}}",
                    FIELDS).render(row) == "service update abc web"
    assert rfc3339_nano(0) == "1970-01-01T00:00:00.000000000Z"


def test_json_uses_dockers_event_message_keys() -> None:
    event = Event("node", "update", "n1", {"name": "m1"}, time_nano=NOW + 5, version=4)
    docker = {"Type": "node", "Action": "update", "Actor": {"ID": "n1", "Attributes": {"name": "m1"}},
              "scope": "swarm", "time": NOW // 10**9, "timeNano": NOW + 5, "version": 4}
    assert json.loads(Template("{{json .}}", FIELDS).render(event.row())) == docker
    assert json.loads(templates.render("json", [event.row()], [], FIELDS)) == docker
    assert Template("{{.Scope}} {{.Time}} {{.TimeNano}} {{.Version}} {{json .Actor}}",
                    FIELDS).render(event.row()) == \
        f'swarm {NOW // 10**9} {NOW + 5} 4 {{"Attributes":{{"name":"m1"}},"ID":"n1"}}'


# --------------------------------------------------------------- filters ----

def ev(type_: str, action: str, id_: str = "id1", **attrs: str) -> Event:
    return Event(type_, action, id_, attrs)


def test_filters_or_within_a_key_and_across_keys() -> None:
    f = EventFilter.parse(["type=service", "type=node", "event=update"])
    assert f.matches(ev("service", "update")) and f.matches(ev("node", "update"))
    assert not f.matches(ev("service", "create")) and not f.matches(ev("task", "update"))
    assert EventFilter.parse([]).matches(ev("task", "die"))


def test_service_and_node_filters_match_their_tasks_by_id_name_or_prefix() -> None:
    f = EventFilter.parse(["service=web"])
    assert f.matches(ev("service", "create", "abc", name="web"))
    assert f.matches(ev("service", "create", "abc", name="webfront"))   # Docker's prefix match
    assert f.matches(ev("task", "start", "t1", **{"service.name": "web"}))
    assert not f.matches(ev("service", "create", "abc", name="db"))
    assert not f.matches(ev("node", "update", "web1", name="web"))
    assert EventFilter.parse(["service=ab"]).matches(ev("service", "remove", "abc", name="x"))
    g = EventFilter.parse(["node=manager1", "node=worker"])
    assert g.matches(ev("node", "update", "n1", name="manager1"))
    assert g.matches(ev("task", "die", "t1", **{"node.id": "x", "node.name": "worker2"}))
    assert not g.matches(ev("task", "die", "t1", **{"node.id": "x", "node.name": "manager2"}))
    assert not g.matches(ev("service", "update", "s1", name="manager1"))
    both = EventFilter.parse(["service=web", "node=manager1"])
    assert both.matches(ev("task", "start", "t", **{"service.name": "web", "node.name": "manager1"}))
    assert not both.matches(ev("service", "update", "s", name="web"))


def test_label_filters_all_have_to_match_as_docker() -> None:
    f = EventFilter.parse(["label=tier", "label=env=prod"])
    assert f.matches(ev("service", "create", tier="x", env="prod"))
    assert not f.matches(ev("service", "create", tier="x", env="dev"))
    assert not f.matches(ev("service", "create", env="prod"))


@pytest.mark.parametrize("bad, message", [
    (["type=container"], "type=container"), (["event=kill"], "event=kill"),
    (["colour=red"], 'invalid filter "colour"'), (["service="], "give a value"),
    (["type"], "expected name=value")])
def test_bad_filters_are_refused(bad: list[str], message: str) -> None:
    with pytest.raises(UsageError, match=message):
        EventFilter.parse(bad)


# ----------------------------------------------------------------- times ----

@pytest.mark.parametrize("text, expected", [
    ("2026-12-05T19:00:00Z", NOW),
    ("2026-12-05T19:00:00.5Z", NOW + 500_000_000),
    ("2026-12-05T20:00:00.000000001+01:00", NOW + 1),
    ("2026-12-05T18:00:00-0100", NOW),
    ("1796497200", NOW), ("1796497200.25", NOW + 250_000_000),
    ("10m", NOW - 600 * 10**9), ("1h30m", NOW - 5400 * 10**9), ("0", 0), ("-5s", NOW + 5 * 10**9),
])
def test_timestamps_in_dockers_forms(text: str, expected: int) -> None:
    assert parse_timestamp(text, NOW, "--since") == expected


def test_times_without_a_zone_are_local_and_bad_ones_refused() -> None:
    local = dt.datetime(2026, 12, 5, 19, 0, 0).timestamp()
    assert parse_timestamp("2026-12-05T19:00:00", NOW, "--since") == int(local) * 10**9
    assert parse_timestamp("2026-12-05", NOW, "--since") == \
        int(dt.datetime(2026, 12, 5).timestamp()) * 10**9
    for bad in ("yesterday", "2026-13-01", "--5m", "10 minutes", "-"):
        with pytest.raises(UsageError, match="--until"):
            parse_timestamp(bad, NOW, "--until")


def test_times_outside_a_protobuf_timestamp_are_refused_naming_the_flag() -> None:
    for bad in ("100000000000h", "-100000000000h", "999999999999", "0000-01-01"):
        with pytest.raises(UsageError, match="--since"):
            parse_timestamp(bad, NOW, "--since")
    # a duration back from now longer than Go's longest is a time out of range too
    for bad in ("100000000000h", "-100000000000h"):
        with pytest.raises(UsageError, match="the time is out of range"):
            parse_timestamp(bad, NOW, "--since")
    first, last = "0001-01-01T00:00:00Z", "9999-12-31T23:59:59.999999999Z"
    assert wpb.WatchRequest().since.FromNanoseconds(parse_timestamp(first, NOW, "--since")) is None
    assert rfc3339_nano(parse_timestamp(first, NOW, "--since")) == "0001-01-01T00:00:00.000000000Z"
    assert rfc3339_nano(parse_timestamp(last, NOW, "--until")) == last


def test_eventfilter_says_it_owns_the_filters_only() -> None:
    summary = (eventfilter.__doc__ or "").splitlines()[0]
    assert "--filter" in summary and "--since" not in summary and "--until" not in summary


def test_events_and_logs_print_times_with_the_same_formatter() -> None:
    assert rfc3339_nano(NOW + 5) == "2026-12-05T19:00:00.000000005Z"
    assert rfc3339_nano(nanos_of_seconds(NOW / 1e9 + 0.25)) == "2026-12-05T19:00:00.250000000Z"
    assert rfc3339_nano(nanos_of_seconds(1.9999999999)) == "1970-01-01T00:00:02.000000000Z"
    assert eventmodel.rfc3339_nano is servicelogs.rfc3339_nano is rfc3339_nano


# -------------------------------------------------------------- resuming ----

def message(version: int, *changes: wpb.WatchEvent) -> wpb.WatchMessage:
    for c in changes:
        c.version = version
    return wpb.WatchMessage(events=list(changes))


def test_follower_prints_each_transaction_once_and_resumes_after_it() -> None:
    printed: list[Event] = []
    f = Follower(["unix:///x"], printed.append, lambda _: None, EventFilter.parse([]))
    assert not f.request().HasField("resume_after_version")
    f.handle(wpb.WatchMessage(version=10))          # progress: the live part starts after 10
    assert f.caught_up and f.request().resume_after_version == 10
    f.handle(message(11, change(wpb.WatchEvent.CREATE, service("a"))))
    f.handle(message(11, change(wpb.WatchEvent.CREATE, service("a"))))   # a replay repeats it
    f.handle(message(12, change(wpb.WatchEvent.UPDATE, task(pb.PENDING), task(pb.NEW))))
    f.handle(message(13, change(wpb.WatchEvent.CREATE, service("b")),
                     change(wpb.WatchEvent.REMOVE, service("a"))))
    assert [(e.version, e.action, e.attributes["name"]) for e in printed] == \
        [(11, "create", "a"), (13, "create", "b"), (13, "remove", "a")]
    assert f.request().resume_after_version == 13
    f.handle(wpb.WatchMessage(version=12))          # an older progress mark moves nothing back
    assert f.request().resume_after_version == 13


def test_follower_since_until_and_node_names() -> None:
    printed: list[Event] = []
    at = NOW / 1e9
    f = Follower(["unix:///x"], printed.append, lambda _: None, EventFilter.parse(["type=task"]),
                 since=NOW, until=NOW + 10 * 10**9, clock=lambda: NOW + 5 * 10**9)
    assert f.request().since.ToNanoseconds() == NOW
    renamed = node()
    renamed.description.hostname = "big-box"
    f.handle(message(3, change(wpb.WatchEvent.UPDATE, renamed, node(), at=at)))
    f.handle(message(4, change(wpb.WatchEvent.UPDATE, task(pb.RUNNING), task(pb.STARTING), at=at - 1)))
    f.handle(message(5, change(wpb.WatchEvent.UPDATE, task(pb.RUNNING), task(pb.STARTING), at=at + 1)))
    f.handle(message(6, change(wpb.WatchEvent.UPDATE, task(pb.RUNNING), task(pb.STARTING), at=at + 11)))
    assert [(e.version, e.attributes["node.name"]) for e in printed] == [(5, "big-box")]
    assert not f.done()                     # not caught up with the replay yet
    f.handle(wpb.WatchMessage(version=6))
    assert not f.done()                     # caught up, but --until is 5 s away
    f.clock = lambda: NOW + 10 * 10**9
    assert f.done()


class FakeStream:
    """A Watch stream that yields scripted messages (calling `after` once they are out),
    then raises its failure (if any)."""

    def __init__(self, items: list[Any], then: Optional[Exception] = None,
                 after: Any = None, failing: Any = None) -> None:
        self.items, self.then, self.after, self.failing = items, then, after, failing

    def __iter__(self) -> Any:
        yield from self.items
        if self.after is not None:
            self.after()
            yield wpb.WatchMessage(version=0)     # a progress mark that moves nothing
        if self.then is not None:
            if self.failing is not None:
                self.failing()
            raise self.then

    def cancel(self) -> None:
        pass


class FakeClient:
    def __init__(self, script: list[FakeStream], nodes: Optional[list[pb.Node]] = None) -> None:
        self.script = script
        self.nodes = nodes
        self.requests: list[wpb.WatchRequest] = []

    def watch(self, request: wpb.WatchRequest, timeout: Optional[float] = None) -> FakeStream:
        self.requests.append(request)
        assert len(self.requests) < 50, "the follower never gave up"
        return self.script.pop(0) if self.script else FakeStream([], RpcFailure("UNAVAILABLE", "gone"))

    def call(self, method: str, request: Any, timeout: Optional[float] = None) -> Any:
        assert method == "ListNodes"
        if self.nodes is None:
            raise RpcFailure("UNAVAILABLE", "connection refused")
        return cpb.ListNodesResponse(nodes=self.nodes)

    def close(self) -> None:
        pass


def follower_on(clients: dict[str, FakeClient], **kwargs: Any) -> tuple[Follower, list[Event], list[str]]:
    printed: list[Event] = []
    warnings: list[str] = []
    f = Follower(list(clients), printed.append, warnings.append, EventFilter.parse([]), **kwargs)
    f._clients = clients  # type: ignore[assignment]
    return f, printed, warnings


def test_follower_fails_over_and_resumes_after_the_last_version() -> None:
    clock = {"now": NOW}

    def until_passes() -> None:
        clock["now"] = NOW + 2 * 10**9

    a = FakeClient([FakeStream([wpb.WatchMessage(version=5),
                                message(6, change(wpb.WatchEvent.CREATE, service("a")))],
                               RpcFailure("UNAVAILABLE", "connection refused"))])
    b = FakeClient([FakeStream([message(6, change(wpb.WatchEvent.CREATE, service("a"))),
                                message(7, change(wpb.WatchEvent.CREATE, service("b"))),
                                wpb.WatchMessage(version=7)], after=until_passes)])
    f, printed, warnings = follower_on({"unix:///a": a, "unix:///b": b}, until=NOW + 10**9,
                                       clock=lambda: clock["now"])
    assert f.run() == 0
    assert [e.attributes["name"] for e in printed] == ["a", "b"]
    assert not a.requests[0].HasField("resume_after_version")
    assert b.requests[0].resume_after_version == 6
    assert any("lost the stream from unix:///a" in w for w in warnings)
    assert any("resumed from unix:///b after store version 6" in w for w in warnings)


def test_follower_refuses_to_skip_what_no_manager_keeps() -> None:
    gone = RpcFailure("OUT_OF_RANGE", "changes after store version 6 are no longer kept")
    a = FakeClient([FakeStream([wpb.WatchMessage(version=6)], RpcFailure("UNAVAILABLE", "x")),
                    FakeStream([], gone)])
    b = FakeClient([FakeStream([], gone)])
    f, _, _ = follower_on({"unix:///a": a, "unix:///b": b})
    with pytest.raises(CLIError, match="events were missed"):
        f.run()


def test_follower_reports_a_node_it_cannot_reach_at_first() -> None:
    a = FakeClient([FakeStream([], RpcFailure("UNAVAILABLE", "connection refused"))])
    f, _, _ = follower_on({"unix:///a": a})
    with pytest.raises(RpcFailure, match="connection refused"):
        f.run()


def test_until_alone_replays_everything_kept_up_to_it() -> None:
    f = Follower(["unix:///x"], lambda _: None, lambda _: None, EventFilter.parse([]),
                 until=NOW - 10**9, clock=lambda: NOW)
    request = f.request()
    assert request.HasField("since") and request.since.ToNanoseconds() == 0
    assert not Follower(["unix:///x"], lambda _: None, lambda _: None,
                        EventFilter.parse([])).request().HasField("since")


def test_until_alone_prints_the_past_and_exits() -> None:
    a = FakeClient([FakeStream([message(3, change(wpb.WatchEvent.CREATE, service("a"), at=NOW / 1e9 - 5)),
                                message(4, change(wpb.WatchEvent.CREATE, service("b"), at=NOW / 1e9 + 5)),
                                wpb.WatchMessage(version=4)])])
    f, printed, _ = follower_on({"unix:///a": a}, until=NOW, clock=lambda: NOW + 10 * 10**9)
    assert f.run() == 0
    assert [e.attributes["name"] for e in printed] == ["a"]
    assert a.requests[0].HasField("since") and a.requests[0].since.ToNanoseconds() == 0


def test_start_up_tries_the_failover_hosts_in_order() -> None:
    named = node()
    a = FakeClient([FakeStream([], RpcFailure("UNAVAILABLE", "connection refused"))])
    b = FakeClient([FakeStream([message(2, change(wpb.WatchEvent.UPDATE, task(pb.RUNNING),
                                                  task(pb.STARTING), at=NOW / 1e9 - 1)),
                                wpb.WatchMessage(version=2)])], nodes=[named])
    f, printed, _ = follower_on({"unix:///a": a, "unix:///b": b}, until=NOW, clock=lambda: NOW)
    f.load_node_names()
    assert f.node_names == {named.id: "manager1"}
    assert f.run() == 0
    assert [e.attributes["node.name"] for e in printed] == ["manager1"]
    assert len(a.requests) == 1 and len(b.requests) == 1


def test_start_up_names_every_host_when_none_answers() -> None:
    a = FakeClient([FakeStream([], RpcFailure("UNAVAILABLE", "connection refused"))])
    b = FakeClient([FakeStream([], RpcFailure("UNAVAILABLE", "no route to host"))])
    f, _, _ = follower_on({"unix:///a": a, "unix:///b": b})
    with pytest.raises(CLIError, match=r"no manager answered: unix:///a \(connection refused\), "
                                       r"unix:///b \(connection refused\)"):
        f.load_node_names()
    with pytest.raises(CLIError, match=r"unix:///a \(connection refused\), unix:///b \(no route"):
        f.run()


def test_malformed_failover_hosts_are_refused_up_front() -> None:
    assert failover_hosts(["unix:///b/swarm.sock", "10.0.0.2:4242"]) == \
        ["unix:///b/swarm.sock", "10.0.0.2:4242"]
    for bad in ("manager2", "", "unix://relative", "host:port"):
        with pytest.raises(CLIError, match=f'invalid --failover "{bad}": expected') as err:
            failover_hosts(["/ok/swarm.sock", bad])
        assert err.value.code == 1


def test_until_is_honoured_while_no_manager_answers() -> None:
    clock = {"now": NOW}

    def until_passes() -> None:
        clock["now"] = NOW + 2 * 10**9

    a = FakeClient([FakeStream([message(6, change(wpb.WatchEvent.CREATE, service("a")))],
                               RpcFailure("UNAVAILABLE", "connection refused"),
                               failing=until_passes)])
    b = FakeClient([])
    f, printed, _ = follower_on({"unix:///a": a, "unix:///b": b}, until=NOW + 10**9,
                                clock=lambda: clock["now"])
    with pytest.raises(CLIError, match="could not read the events up to --until: no manager "
                                       "answered"):
        f.run()
    assert [e.attributes["name"] for e in printed] == ["a"]
    assert len(a.requests) == 1 and len(b.requests) == 1   # each tried once after --until


def test_event_streams_ping_at_a_rate_managers_accept() -> None:
    client = Client("unix:///nowhere/swarm.sock", keepalive=True)
    try:
        options = dict(client.channel.options)
    finally:
        client.close()
    assert set(KEEPALIVE_OPTIONS) <= set(options.items())
    assert options["grpc.keepalive_time_ms"] == KEEPALIVE_TIME_MS <= 10_000
    assert options["grpc.http2.max_pings_without_data"] == 0
    assert "grpc.keepalive_time_ms" not in dict(Client("unix:///x/swarm.sock").channel.options)
    server = dict(SERVER_OPTIONS)
    assert server["grpc.http2.min_ping_interval_without_data_ms"] == CLIENT_PING_INTERVAL_MS
    assert CLIENT_PING_INTERVAL_MS < KEEPALIVE_TIME_MS
    assert server["grpc.keepalive_permit_without_calls"] == 1
