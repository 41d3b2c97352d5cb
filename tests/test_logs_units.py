"""The pure parts of `service logs`: Docker's --since/--until values, --tail, each line's
shape under the output flags, and the log broker's warnings for nodes it cannot read."""
from __future__ import annotations

import argparse
import asyncio
import datetime
import io

import pytest

from cli import servicelogs
from cli.parsing import UsageError
from cli.servicelogs import LineFormat, detail_text, parse_tail, parse_time
from cli.timevalues import nanos_of_seconds, rfc3339_nano
from manager.controlapi.logcalls import request_tail
from manager.logbroker import LogBroker
from proto import control_pb2 as cpb
from proto import dispatcher_pb2 as dpb
from proto import objects_pb2 as pb
from worker.logs import in_window

NOW = 1_700_000_000.0


def _local(*args: int) -> float:
    return datetime.datetime(*args).timestamp()   # naive: this machine's local time


@pytest.mark.parametrize("value, expected", [
    ("10m", NOW - 600), ("1h30m", NOW - 5400), ("1.5s", NOW - 1.5), ("-5s", NOW + 5),
    ("1357133017", 1357133017.0), ("1357133017.25", 1357133017.25),
    ("2013-01-02T13:23:37Z", 1357133017.0), ("2013-01-02T13:23:37z", 1357133017.0),
    ("2013-01-02T13:23:37.5+01:00", 1357129417.5), ("2013-01-02T13:23:37-01:00", 1357136617.0),
    ("2013-01-02T13:23Z", 1357132980.0), ("2013-01-02T13Z", 1357131600.0),
    ("2013-01-02Z", 1357084800.0), ("2013-01-02+02:00", 1357077600.0),
    ("2013-01-02T13:23:37", _local(2013, 1, 2, 13, 23, 37)),
    ("2013-01-02T13:23", _local(2013, 1, 2, 13, 23)), ("2013-01-02", _local(2013, 1, 2)),
])
def test_since_and_until_values(value: str, expected: float) -> None:
    assert parse_time(value, "--since", NOW) == pytest.approx(expected)


@pytest.mark.parametrize("value", ["yesterday", "10x", "2013-13-02", "2013-01-02T25:00", "1e9"])
def test_bad_time_values_are_refused_naming_the_flag(value: str) -> None:
    with pytest.raises(UsageError, match=f'invalid value "{value}" for --until'):
        parse_time(value, "--until", NOW)


def test_tail() -> None:
    assert parse_tail("all") == -1 and parse_tail("0") == 0 and parse_tail("12") == 12
    for bad in ("-2", "ten"):
        with pytest.raises(UsageError, match="invalid --tail"):
            parse_tail(bad)


def test_window() -> None:
    assert in_window(10, 0, 0) and in_window(10, 10, 10)
    assert not in_window(9.9, 10, 0) and not in_window(10.1, 0, 10)


def _ns(**flags: bool) -> argparse.Namespace:
    names = ("raw", "details", "timestamps", "no_task_ids", "no_trunc", "no_resolve")
    return argparse.Namespace(**{name: flags.get(name, False) for name in names})


MSG = cpb.LogMessage(task_id="t" * 25, task_name="web.1", node_id="n1", service_id="s" * 25,
                     data=b"hello", timestamp=NOW + 0.5)
NAMES = {"n1": "node-1"}


def test_line_shapes() -> None:
    short = "t" * 12
    assert LineFormat(_ns(), NAMES, "web").line(MSG) == f"web.1.{short}@node-1    | hello"
    assert LineFormat(_ns(no_task_ids=True), NAMES, "web").line(MSG) == "web.1@node-1    | hello"
    assert LineFormat(_ns(no_trunc=True), NAMES, "web").line(MSG) == \
        f"web.1.{'t' * 25}@node-1    | hello"
    assert LineFormat(_ns(no_resolve=True), NAMES, "web").line(MSG) == \
        f"{'s' * 25}.1.{short}@n1    | hello"
    stamp = "2023-11-14T22:13:20.500000000Z"
    assert rfc3339_nano(nanos_of_seconds(NOW + 0.5)) == stamp
    assert LineFormat(_ns(timestamps=True), NAMES, "web").line(MSG) == \
        f"{stamp} web.1.{short}@node-1    | hello"
    details = (f"com.docker.swarm.node.id=n1,com.docker.swarm.service.id={'s' * 25},"
               f"com.docker.swarm.task.id={'t' * 25}")
    assert detail_text(MSG) == details
    assert LineFormat(_ns(details=True), NAMES, "web").line(MSG) == \
        f"web.1.{short}@node-1    | {details} hello"
    assert LineFormat(_ns(raw=True), NAMES, "web").line(MSG) == "hello"
    assert LineFormat(_ns(raw=True, timestamps=True, details=True), NAMES, "web").line(MSG) == \
        f"{stamp} {details} hello"


def test_slots_are_padded_to_the_widest_and_dotted_service_names_kept() -> None:
    wide = LineFormat(_ns(no_task_ids=True), NAMES, "web", width=2)
    assert wide.line(MSG) == "web.1@node-1     | hello"          # one more space than web.10
    dotted = cpb.LogMessage(task_name="my.app.3", task_id="x" * 25, node_id="n1",
                            service_id="s" * 25, data=b"hi")
    fmt = LineFormat(_ns(no_task_ids=True, no_resolve=True), NAMES, "my.app")
    assert fmt.line(dotted) == f"{'s' * 25}.3@n1    | hi"


async def test_broker_names_nodes_without_session_and_nodes_that_leave() -> None:
    broker = LogBroker("m1")
    broker.attach(lambda node_id: None, lambda node_id: node_id in {"up", "leaving"})
    tasks = [pb.Task(id=f"t-{n}", node_id=n) for n in ("up", "down", "leaving")]
    stream = broker.subscribe(tasks, follow=False, tail=-1).__aiter__()
    first = await stream.__anext__()
    assert list(first.warnings) == ["node down is not available"]
    assert {s.id for s in broker.subscriptions_for("up")} and not broker.subscriptions_for("down")
    sub_id = broker.subscriptions_for("up")[0].id
    broker.publish("up", dpb.PublishLogsRequest(subscription_id=sub_id, close=True, messages=[
        cpb.LogMessage(task_id="t-up", data=b"line")]))
    broker.node_gone("leaving")
    got = [r async for r in stream]
    assert [m.data for r in got for m in r.messages] == [b"line"]
    assert [w for r in got for w in r.warnings] == ["node leaving is not available"]


async def test_broker_passes_tail_and_bounds_to_the_agents() -> None:
    broker = LogBroker("m1")
    broker.attach(lambda node_id: None, lambda node_id: True)
    stream = broker.subscribe([pb.Task(id="t", node_id="n")], follow=True, tail=0,
                              since=5.0, until=9.0).__aiter__()
    waiter = asyncio.ensure_future(stream.__anext__())
    await asyncio.sleep(0)
    sub = broker.subscriptions_for("n")[0]
    assert (sub.tail, sub.since, sub.until, sub.follow) == (0, 5.0, 9.0, True)
    broker.publish("n", dpb.PublishLogsRequest(subscription_id=sub.id, close=True))
    with pytest.raises(StopAsyncIteration):
        await waiter


class _Stream:
    """A ServiceLogs answer: `lines` messages, then Ctrl-C when `interrupt`."""

    def __init__(self, lines: int, interrupt: bool) -> None:
        self.lines, self.interrupt, self.cancelled = lines, interrupt, False

    def __iter__(self):
        for i in range(self.lines):
            yield cpb.ServiceLogsResponse(messages=[cpb.LogMessage(
                task_id="t1", task_name="web.1", node_id="n1", data=f"line {i}".encode())])
        if self.interrupt:
            raise KeyboardInterrupt

    def cancel(self) -> None:
        self.cancelled = True


class _Client:
    def __init__(self, stream: _Stream) -> None:
        self.stream_ = stream
        self.timeouts: list = []

    def stream(self, method: str, request, timeout=None) -> _Stream:
        assert method == "ServiceLogs"
        self.timeouts.append(timeout)
        return self.stream_


class _Ctx:
    def __init__(self, stream: _Stream) -> None:
        self.client = _Client(stream)
        self.out, self.err = io.StringIO(), io.StringIO()
        self.warnings: list[str] = []

    def get_service(self, ref: str) -> pb.Service:
        svc = pb.Service(id="s1")
        svc.spec.annotations.name = "web"
        return svc

    def node_names(self) -> dict[str, str]:
        return {"n1": "node1"}

    def warn(self, text: str) -> None:
        self.warnings.append(text)


def _logs_args(follow: bool) -> argparse.Namespace:
    return argparse.Namespace(tail="all", since=None, until=None, target="web",
                              tasks_only=False, raw=False, no_resolve=False, follow=follow,
                              timestamps=False, details=False, no_task_ids=True,
                              no_trunc=False)


@pytest.mark.parametrize("follow", [False, True])
def test_logs_have_no_total_deadline(follow: bool) -> None:
    # a large log may take longer than any fixed deadline to read (Docker has none)
    ctx = _Ctx(_Stream(lines=3, interrupt=False))
    assert servicelogs.logs(ctx, _logs_args(follow)) == 0   # type: ignore[arg-type]
    assert ctx.client.timeouts == [None]
    assert ctx.out.getvalue().count("line ") == 3


def test_ctrl_c_cancels_the_stream_and_ends_cleanly() -> None:
    stream = _Stream(lines=2, interrupt=True)
    ctx = _Ctx(stream)
    assert servicelogs.logs(ctx, _logs_args(False)) == 0   # type: ignore[arg-type]
    assert stream.cancelled
    assert ctx.out.getvalue().count("line ") == 2


def test_an_unset_tail_means_every_line_and_zero_means_none() -> None:
    # an API client that leaves tail out gets everything (proto3's 0 is not "none")
    assert request_tail(cpb.ServiceLogsRequest(service_id="web")) == -1
    assert request_tail(cpb.ServiceLogsRequest(service_id="web", tail=0)) == 0
    assert request_tail(cpb.ServiceLogsRequest(service_id="web", tail=5)) == 5
    assert request_tail(cpb.ServiceLogsRequest(service_id="web", tail=-1)) == -1
    # what the CLI sends for --tail 0 keeps its meaning across the wire
    wire = cpb.ServiceLogsRequest(tail=parse_tail("0")).SerializeToString()
    assert request_tail(cpb.ServiceLogsRequest.FromString(wire)) == 0
    assert request_tail(cpb.ServiceLogsRequest.FromString(b"")) == -1
