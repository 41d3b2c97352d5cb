"""`swarm service logs SERVICE|TASK` and `swarm task logs TASK`: the logs of tasks.

Owns the logs commands' flags, what they mean (Docker's `service logs`: time
bounds, tail, follow, and the prefix, timestamp, details and raw options that
shape each line) and what the command prints. A task ID (or unique prefix) is
accepted where a service is, as Docker does; `swarm task logs` takes task
IDs only (Docker has no `task` command group: it is an alias for that form).

Lines come from the manager's ServiceLogs stream: stdout lines go to stdout,
stderr lines to stderr. When the manager reports that some logs cannot be
read (a node that is down or unreachable), the command says so on stderr in
Docker's words and exits 1; without --follow once the other lines are out,
with --follow at once (the stream goes on).

Kept free of slow imports: `swarm service ls` loads this module (it declares
`service logs`).
"""
from __future__ import annotations

import argparse
import time
from typing import Optional

from cli import format as fmt
from cli.client import CLIError, RpcFailure, is_not_found
from cli.context import Context
from cli.parsing import INT64_MAX, UsageError
from cli.timevalues import nanos_of_seconds, parse_timestamp, rfc3339_nano
from proto import control_pb2 as cpb
from proto import objects_pb2 as pb

INCOMPLETE = ("error from daemon in stream: Error grabbing logs: warning: incomplete log "
              "stream. some logs could not be retrieved for the following reasons: ")
TTY_NEEDS_RAW = "tty service logs only supported with --raw"
NO_LOG = ("configured logging driver does not support reading: the log driver is \"none\", "
          "which keeps no log; choose another with `swarm service update --log-driver "
          "json-file`")
DETAIL_KEYS = ("com.docker.swarm.node.id", "com.docker.swarm.service.id",
               "com.docker.swarm.task.id")


# ------------------------------------------------------------------ times ----

def parse_time(value: str, flag: str, now: float) -> float:
    """Docker's --since/--until value as unix seconds (`cli.timevalues`): a duration
    before `now` (10m, 1h30m; a negative one is after it), an RFC 3339 date or time
    (local time when it names no zone), or a unix timestamp. UsageError else."""
    return parse_timestamp(value, int(now * 1e9), flag) / 1e9


def parse_tail(value: str) -> int:
    """--tail: a number of lines (0 for none) or "all" (-1)."""
    if value == "all":
        return -1
    try:
        tail = int(value)
    except ValueError:
        tail = -2
    if tail < -1:
        raise UsageError(f'invalid --tail "{value}": expected a number of lines or "all"')
    if tail > INT64_MAX:   # the request's int64 field
        raise UsageError(f'invalid --tail "{value}": too large; at most {INT64_MAX} lines, '
                         'or "all"')
    return tail


# ------------------------------------------------------------------ lines ----

class LineFormat:
    """How each line is printed: Docker's `web.1.abc123def456@node1    | text`,
    with --timestamps, --details, --no-task-ids, --no-trunc, --no-resolve, --raw."""

    def __init__(self, ns: argparse.Namespace, node_names: dict[str, str],
                 service_name: str = "", width: int = 1) -> None:
        self.raw = bool(getattr(ns, "raw", False))
        self.details = bool(getattr(ns, "details", False))
        self.timestamps = bool(getattr(ns, "timestamps", False))
        self.task_ids = not getattr(ns, "no_task_ids", False)
        self.no_trunc = bool(getattr(ns, "no_trunc", False))
        self.resolve = not getattr(ns, "no_resolve", False)
        self.node_names = node_names
        self.service_name = service_name
        self.width = width   # digits of the largest slot: shorter ones are padded

    def context(self, message: cpb.LogMessage) -> str:
        """The `service.slot[.task]@node` prefix (IDs for names with --no-resolve)."""
        name = message.task_name or message.task_id
        slot = name.rpartition(".")[2]
        if self.service_name and name.startswith(self.service_name + "."):
            slot = name[len(self.service_name) + 1:]
        if not self.resolve:
            name = f"{message.service_id}.{slot}"
        if self.task_ids:
            name += "." + (message.task_id if self.no_trunc else fmt.truncate_id(message.task_id))
        node = self.node_names.get(message.node_id, message.node_id) if self.resolve \
            else message.node_id
        padding = " " * (self.width - len(slot)) if slot.isdigit() else ""
        return f"{name}@{node}{padding}"

    def line(self, message: cpb.LogMessage) -> str:
        out = rfc3339_nano(nanos_of_seconds(message.timestamp)) + " " if self.timestamps else ""
        if not self.raw:
            out += self.context(message) + "    | "
        if self.details:
            out += detail_text(message) + " "
        return out + message.data.decode("utf-8", errors="replace")


def detail_text(message: cpb.LogMessage) -> str:
    """--details: the line's attributes as Docker sends them (k=v, sorted, comma-separated)."""
    values = (message.node_id, message.service_id, message.task_id)
    return ",".join(f"{key}={value}" for key, value in zip(DETAIL_KEYS, values))


def log_line(message: cpb.LogMessage, node_names: dict[str, str], ns: argparse.Namespace,
             service_name: str = "", width: int = 1) -> str:
    """One output line (see LineFormat)."""
    return LineFormat(ns, node_names, service_name, width).line(message)


# ---------------------------------------------------------------- command ----

class Target:
    """What the logs are read from: a service, or one task of it."""

    def __init__(self, service: pb.Service, task: Optional[pb.Task] = None) -> None:
        self.service = service
        self.task = task

    @property
    def width(self) -> int:
        """Docker pads slots to the digits of the replica count (of the task's slot)."""
        if self.task is not None:
            return len(str(self.task.slot))
        if self.service.spec.WhichOneof("mode") == "replicated":
            return len(str(self.service.spec.replicated.replicas))
        return 1


def resolve_target(ctx: Context, ref: str, tasks_only: bool) -> Target:
    """The service `ref` names, else the task it names (ID or unique prefix)."""
    if not tasks_only:
        try:
            return Target(ctx.get_service(ref))
        except RpcFailure as exc:
            if not is_not_found(exc):
                raise
    try:
        task = ctx.call("GetTask", cpb.GetTaskRequest(task_id=ref)).task
    except RpcFailure as exc:
        if not is_not_found(exc):
            raise
        raise CLIError(f"Error: no such task{'' if tasks_only else ' or service'}: {ref}") \
            from None
    return Target(ctx.get_service(task.service_id), task)


def check_readable(task_spec: pb.TaskSpec) -> None:
    """CLIError when the tasks' log driver keeps no log to read (Docker's error)."""
    if task_spec.log_driver == "none":
        raise CLIError(f"Error: {NO_LOG}")


def logs(ctx: Context, ns: argparse.Namespace) -> int:
    tail = parse_tail(ns.tail)
    now = time.time()
    since = parse_time(ns.since, "--since", now) if ns.since else 0.0
    until = parse_time(ns.until, "--until", now) if ns.until else 0.0
    if since and until and until < since:
        raise UsageError("--until is before --since: no line can be in between")
    target = resolve_target(ctx, ns.target, getattr(ns, "tasks_only", False))
    if target.service.spec.task.container.tty and not ns.raw:
        raise CLIError(f"Error: {TTY_NEEDS_RAW}")
    check_readable(target.task.spec if target.task is not None else target.service.spec.task)
    node_names = ctx.node_names() if not ns.no_resolve else {}
    lines = LineFormat(ns, node_names, target.service.spec.annotations.name, target.width)
    request = cpb.ServiceLogsRequest(
        service_id=target.service.id, follow=bool(ns.follow), tail=tail,
        timestamps=bool(ns.timestamps), since=since, until=until,
        task_ids=[target.task.id] if target.task is not None else [])
    # No total deadline, with or without --follow (as Docker): a large log may take
    # long to read; the broker ends a node that stops answering (NODE_ANSWER_TIMEOUT
    # between lines) and Ctrl-C cancels the stream.
    stream = ctx.client.stream("ServiceLogs", request, timeout=None)
    warnings: list[str] = []
    try:
        for response in stream:
            for message in response.messages:
                if lines.resolve and message.node_id not in lines.node_names:
                    lines.node_names = ctx.node_names()
                out = ctx.err if message.stream == cpb.LogMessage.STDERR else ctx.out
                out.write(lines.line(message) + "\n")
                out.flush()
            if response.warnings:
                warnings.extend(response.warnings)
                if ns.follow:  # the stream may never end: say it now
                    ctx.warn(INCOMPLETE + ", ".join(response.warnings))
    except KeyboardInterrupt:
        stream.cancel()
        return 1 if warnings else 0
    if warnings and not ns.follow:
        ctx.out.flush()
        ctx.warn(INCOMPLETE + ", ".join(warnings))
    return 1 if warnings else 0


# ------------------------------------------------------------ declaration ----

def add_log_flags(p: argparse.ArgumentParser) -> None:
    """The flags of `service logs` and `task logs` (Docker's, plus --until)."""
    p.add_argument("--details", action="store_true",
                   help="Show extra details provided to logs (the node, service and task "
                        "IDs as com.docker.swarm.* attributes)")
    p.add_argument("-f", "--follow", action="store_true", help="Follow log output")
    p.add_argument("--no-resolve", action="store_true", help="Do not map IDs to Names in output")
    p.add_argument("--no-task-ids", action="store_true", help="Do not include task IDs in output")
    p.add_argument("--no-trunc", action="store_true", help="Do not truncate output")
    p.add_argument("--raw", action="store_true", help="Do not neatly format logs")
    p.add_argument("--since", default="",
                   help='Show logs since timestamp (e.g. "2013-01-02T13:23:37Z") or relative '
                        '(e.g. "42m" for 42 minutes)')
    p.add_argument("--until", default="",
                   help='Show logs before a timestamp (e.g. "2013-01-02T13:23:37Z") or '
                        'relative (e.g. "42m" for 42 minutes)')
    p.add_argument("-n", "--tail", default="all",
                   help='Number of lines to show from the end of the logs (default "all")')
    p.add_argument("-t", "--timestamps", action="store_true", help="Show timestamps")
    p.set_defaults(handler=logs)


def declare_task(parser: argparse.ArgumentParser) -> None:
    """Declares `swarm task logs TASK` on `parser`."""
    sub = parser.add_subparsers(dest="subcommand", metavar="COMMAND")
    sub.required = True
    p = sub.add_parser("logs", help="Fetch the logs of a task (as `swarm service logs TASK`)")
    add_log_flags(p)
    p.add_argument("target", metavar="TASK", help="Task ID or unique ID prefix")
    p.set_defaults(tasks_only=True)
