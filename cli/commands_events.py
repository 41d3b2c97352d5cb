"""`swarm events`: Docker's `docker events` for the swarm scope, from the Watch API.

Owns the command: its options, following the Watch stream and printing each
event (cli/eventmodel.py) that passes the filters (cli/eventfilter.py), and
keeping the stream going when the node it reads from goes away.

Resuming: every manager applies the same raft log, so a store version names
the same change on each of them, and each keeps the last transactions it
applied (raft/history.py). The command remembers the version of the last
transaction it handled; when its stream breaks (the node was killed or
restarted, a leader change took it down) it opens a new one with
`resume_after_version` on the same node, or on the next manager given with
`--failover`, round-robin until one answers. Nothing is printed twice
(versions at or before the last one handled are skipped) and nothing is
lost: a manager that no longer keeps every change after that version answers
OUT_OF_RANGE and the next is tried; when none can, the command says so and
exits 1.

Start-up uses the same hosts, in order (this node's, then `--failover`'s, each
checked up front): the node names come from the first that answers
ListNodes, the first stream from the first that serves one. The streams'
channels send keepalive pings (`Client(..., keepalive=True)`), so a node gone
silent fails the stream like a closed one. `--until` ends the command even
while no host answers: once it has passed and each host has failed once, the
command exits 1 (it cannot say it printed everything up to then).
"""
from __future__ import annotations

import argparse
import queue
import signal
import threading
import time
from typing import Any, Callable, Optional

from cli.client import CLIError, Client, RpcFailure, describe_rpc_error, parse_target
from cli.context import Context
from cli.eventfilter import EventFilter
from cli.timevalues import parse_timestamp
from cli.eventmodel import FIELDS, Event, node_name, to_event
from cli.parsing import UsageError
from cli.templates import Template
from proto import control_pb2 as cpb
from proto import watch_pb2 as wpb

RETRY_FIRST = 0.1   # seconds before trying the hosts again after a whole round failed
RETRY_MAX = 1.0
POLL = 0.25         # seconds between two looks at the clock (--until) while nothing arrives
FIRST_ANSWER = 10.0  # seconds a node has to open the stream (it answers at once when it serves)


class _Ended(Exception):
    """The node closed the stream without an error (it is shutting down)."""


class _Stop(Exception):
    """SIGTERM: end the stream as Ctrl-C does."""


def _raise_stop(signum: int, frame: Any) -> None:
    raise _Stop()


class _Connection:
    """One Watch stream, read on a thread of its own into a queue (so that the main thread
    can watch the clock and signals): messages, then one RpcFailure or _Ended."""

    def __init__(self, client: Client, request: wpb.WatchRequest) -> None:
        self.items: queue.Queue = queue.Queue()
        self._stream = client.watch(request)
        self._thread = threading.Thread(target=self._read, name="watch", daemon=True)
        self._thread.start()

    def _read(self) -> None:
        try:
            for message in self._stream:
                self.items.put(message)
            self.items.put(_Ended("the node ended the stream"))
        except RpcFailure as exc:
            self.items.put(exc)

    def close(self) -> None:
        self._stream.cancel()


class Follower:
    """Follows the events of the cluster across connections; prints what passes the filters."""

    def __init__(self, hosts: list[str], emit: Callable[[Event], None], warn: Callable[[str], None],
                 event_filter: EventFilter, since: Optional[int] = None,
                 until: Optional[int] = None, node_names: Optional[dict[str, str]] = None,
                 clock: Callable[[], int] = time.time_ns) -> None:
        self.hosts = hosts
        self.emit = emit
        self.warn = warn
        self.filter = event_filter
        self.since = since
        self.until = until
        self.node_names = dict(node_names or {})
        self.clock = clock
        self.position: Optional[int] = None   # every change up to this version is handled
        self.caught_up = False                # the current stream's replay has been read
        self._clients: dict[str, Client] = {}

    # ----------------------------------------------------------- messages ----

    def handle(self, message: wpb.WatchMessage) -> None:
        """Prints one transaction's events (or records a progress mark); skips what was handled."""
        if not message.events:
            self.position = max(self.position or 0, message.version)
            self.caught_up = True
            return
        version = message.events[0].version
        if self.position is not None and version <= self.position:
            return
        for ev in message.events:
            if ev.object.HasField("node") and ev.action != wpb.WatchEvent.REMOVE:
                self.node_names[ev.object.node.id] = node_name(ev.object.node)
            event = to_event(ev, self.node_names)
            if event is None or not self.filter.matches(event):
                continue
            if self.since is not None and event.time_nano < self.since:
                continue
            if self.until is not None and event.time_nano > self.until:
                continue
            self.emit(event)
        self.position = version

    def request(self) -> wpb.WatchRequest:
        """The Watch request that continues where the last stream stopped."""
        request = wpb.WatchRequest(include_old_object=True, progress=True)
        if self.position is not None:
            request.resume_after_version = self.position
        elif self.since is not None:
            request.since.FromNanoseconds(self.since)
        elif self.until is not None:
            # --until alone replays, as Docker does, everything the manager keeps up to then
            request.since.FromNanoseconds(0)
        return request

    def done(self) -> bool:
        """--until has passed and the replay before it has been read."""
        return self.until is not None and self.caught_up and self.clock() >= self.until

    # -------------------------------------------------------- connections ----

    def _client(self, host: str) -> Client:
        if host not in self._clients:
            # keepalive: a stream to a node that vanished without closing it (power loss, a
            # partition) fails within seconds instead of waiting forever in silence
            self._clients[host] = Client(host, keepalive=True)
        return self._clients[host]

    def load_node_names(self) -> None:
        """Learns the nodes' names (task events carry them) from the first host, in order,
        that answers ListNodes; raises when none does."""
        failures: dict[str, Exception] = {}
        for host in self.hosts:
            try:
                nodes = self._client(host).call("ListNodes", cpb.ListNodesRequest()).nodes
            except RpcFailure as exc:
                failures[host] = exc
                continue
            self.node_names.update({n.id: node_name(n) for n in nodes})
            return
        raise self._none_answered(failures)

    def _none_answered(self, failures: dict[str, Exception]) -> Exception:
        """The error to raise when no host answered at start-up: the failure itself with one
        host (the caller describes it), else one line naming each host and why."""
        if len(self.hosts) == 1:
            only = failures[self.hosts[0]]
            return only if isinstance(only, RpcFailure) else CLIError(f"Error: {only}")
        reasons = ", ".join(
            f"{host} ({exc.details() if isinstance(exc, RpcFailure) else exc})"
            for host, exc in failures.items())
        return CLIError(f"Error: no manager answered: {reasons}")

    def close(self) -> None:
        for client in self._clients.values():
            client.close()
        self._clients.clear()

    def _pump(self, connection: _Connection, on_first: Callable[[], None]) -> Optional[Exception]:
        """Handles messages until the stream fails (returns why) or --until is reached (None);
        `on_first` runs when the first message arrives."""
        first = True
        opened = time.monotonic()
        while True:
            wait = POLL
            if self.until is not None:
                wait = min(POLL, max(0.01, (self.until - self.clock()) / 1e9))
            try:
                item = connection.items.get(timeout=wait)
            except queue.Empty:
                if self.done():
                    return None
                if first and time.monotonic() - opened > FIRST_ANSWER:
                    return RpcFailure("DEADLINE_EXCEEDED",
                                      f"no answer within {FIRST_ANSWER:g}s")
                continue
            if isinstance(item, Exception):
                return item
            if first:
                first = False
                on_first()
            self.handle(item)
            if self.done():
                return None

    def run(self) -> int:
        """Streams until --until, SIGINT or SIGTERM; returns the exit code."""
        index = 0
        state = {"connected": False}     # some stream has delivered a message
        lost: list[str] = []             # why the last stream ended, until one resumes
        out_of_range: set[str] = set()
        at_start: dict[str, Exception] = {}   # why each host failed before any stream served
        after_until: set[str] = set()    # hosts that failed once --until had passed
        delay = RETRY_FIRST
        tried = 0
        while True:
            host = self.hosts[index]

            def arrived(host: str = host) -> None:
                nonlocal tried, delay
                if lost:
                    self.warn(f"swarm events: resumed from {host} after store version "
                              f"{self.position}")
                    lost.clear()
                state["connected"] = True
                tried, delay = 0, RETRY_FIRST
                out_of_range.clear()
                after_until.clear()

            # a new stream first replays what the last one missed: --until waits for its end
            self.caught_up = False
            connection = _Connection(self._client(host), self.request())
            try:
                failure = self._pump(connection, arrived)
            finally:
                connection.close()
            if failure is None:
                return 0
            if not state["connected"]:
                # start-up: each host once, in order (this node's, then the --failover ones)
                if not isinstance(failure, RpcFailure):
                    failure = CLIError(f"{host} ended the event stream at once ({failure})")
                at_start[host] = failure
                if len(at_start) == len(self.hosts):
                    raise self._none_answered(at_start)
                index = (index + 1) % len(self.hosts)
                continue
            if isinstance(failure, RpcFailure) and failure.code() == "OUT_OF_RANGE":
                out_of_range.add(host)
                if out_of_range >= set(self.hosts):
                    raise CLIError(f"Error: no manager reached keeps the changes after store "
                                   f"version {self.position} any more ({failure.details()}); "
                                   "events were missed, run swarm events again")
            if self.until is not None and self.clock() >= self.until:
                after_until.add(host)
                if after_until >= set(self.hosts):
                    raise CLIError("Error: could not read the events up to --until: no manager "
                                   f"answered (the last stream ended at store version "
                                   f"{self.position})")
            if not lost:
                lost.append(failure.details() if isinstance(failure, RpcFailure) else str(failure))
                self.warn(f"swarm events: lost the stream from {host} ({lost[0]}); reconnecting")
            index = (index + 1) % len(self.hosts)
            tried += 1
            if tried % len(self.hosts) == 0:
                time.sleep(delay)     # pacing between rounds of reconnection attempts
                delay = min(RETRY_MAX, delay * 2)


def failover_hosts(values: list[str]) -> list[str]:
    """The --failover values, each checked as -H is (a control socket or host:port), so that
    a malformed one is refused before streaming rather than when it is first needed."""
    for value in values:
        try:
            parse_target(value)
        except CLIError:
            raise CLIError(f'Error: invalid --failover "{value}": expected another manager\'s '
                           "control socket (unix:///path/swarm.sock, /path/swarm.sock) or "
                           "host:port") from None
    return list(values)


def _printer(ctx: Context, fmt: Optional[str]) -> Callable[[Event], None]:
    template: Optional[Template] = None
    if fmt:
        template = Template("{{json .}}" if fmt.strip() == "json" else fmt, FIELDS)

    def emit(event: Event) -> None:
        ctx.print(event.line() if template is None else template.render(event.row()))
        ctx.out.flush()
    return emit


def events(ctx: Context, ns: argparse.Namespace) -> int:
    event_filter = EventFilter.parse(ns.filter)
    now = time.time_ns()
    since = parse_timestamp(ns.since, now, "--since") if ns.since else None
    until = parse_timestamp(ns.until, now, "--until") if ns.until else None
    if since is not None and until is not None and until < since:
        raise UsageError("--until must not be before --since")
    emit = _printer(ctx, ns.format)
    hosts = [ctx.host, *failover_hosts(ns.failover)]
    follower = Follower(hosts, emit, ctx.warn, event_filter, since, until)
    previous = signal.signal(signal.SIGTERM, _raise_stop)
    # Ctrl-C ends the stream even when this process was started with SIGINT ignored
    # (a background job of a shell without job control), as `docker events` does.
    previous_int = signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        follower.load_node_names()
        return follower.run()
    except (KeyboardInterrupt, _Stop):
        return 0
    except RpcFailure as exc:
        raise CLIError(describe_rpc_error(exc, ctx.host, ctx.debug)) from exc
    finally:
        signal.signal(signal.SIGTERM, previous)
        signal.signal(signal.SIGINT, previous_int)
        follower.close()


def declare_events(parser: argparse.ArgumentParser) -> None:
    """Declares `swarm events [OPTIONS]` on `parser`."""
    parser.add_argument("-f", "--filter", action="append", default=[],
                        metavar="FILTER",
                        help="Filter output based on conditions provided: type=, event=, "
                             "service=, node=, label=KEY[=VALUE] (one key's values OR, "
                             "different keys AND)")
    parser.add_argument("--since", default=None,
                        help="Show events committed since this time (RFC 3339, unix "
                             "seconds, or a duration back from now such as 10m)")
    parser.add_argument("--until", default=None,
                        help="Stream events until this time, then exit (same forms)")
    parser.add_argument("--format", default=None,
                        help="Format output using a Go template ({{json .}}, "
                             "{{.Type}} {{.Action}} {{.Actor.ID}} ...)")
    parser.add_argument("--failover", action="append", default=[], metavar="HOST",
                        help="Another manager's control socket or address to resume from "
                             "when this node cannot be reached (repeatable)")
    parser.set_defaults(handler=events)
