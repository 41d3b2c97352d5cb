"""`swarm service ...`: create, ls, ps, inspect, update, rollback, scale, rm, logs.

Owns the service verbs' behaviour on top of the Control API: which calls
they make, in which order, what they print and their exit codes. Updates
read the service, edit a copy of its spec and send it back with the version
they read. `create`, and `update` given `--image`, pin the image to its
digest first (`cli.imagepin`; `--no-resolve-image` skips). Spec building
lives in `cli.specs`, tables in `cli.format`, progress in `cli.progress`, the
task listing shared with `node ps` in `cli.tasklist`, logs (flags and output)
in `cli.servicelogs`.
"""
from __future__ import annotations

import argparse
import re
from typing import TYPE_CHECKING, Optional

from cli import format as fmt
from cli import imagepin, inspectformat, pretty, registryauth, specs
from cli.client import CLIError, RpcFailure, describe_rpc_error
from cli.context import Context
from cli.flags import add_service_flags, bool_flag, is_on, list_flags, task_list_flags
from cli.parsing import (Filter, UsageError, filter_values, label_matches, parse_filters,
                         parse_replicas)
from cli.progress import Timeout, Waiter
from cli.servicelogs import add_log_flags
from cli.tasklist import TASK_FILTERS, filter_tasks, print_tasks
from cli.templates import render
from proto import control_pb2 as cpb
from proto import model

if TYPE_CHECKING:
    from cli.registry import Credentials
from proto import objects_pb2 as pb

SERVICE_FILTERS = ("id", "name", "label", "mode")
_SCALE_ARG = re.compile(r"^([^=]+)=(.*)$")


def _wait(ctx: Context, service_id: str, quiet: bool,
          initial: Optional[pb.UpdateStatus] = None) -> int:
    """Waits for convergence (progress on stdout unless quiet); returns the exit code."""
    out = ctx.out if not quiet else NullStream()
    waiter = Waiter(ctx.call, out, ctx.is_tty() and not quiet)
    try:
        waiter.wait(service_id, initial=initial)
    except Timeout as exc:
        ctx.warn(f"Error: {exc}")
        return 1
    except KeyboardInterrupt:
        ctx.warn("Operation continuing in background.\n"
                 f"Use `swarm service ps {service_id}` to check progress.")
        return 130
    return 0


class NullStream:
    """Swallows progress output for --quiet."""

    def write(self, text: str) -> int:
        return len(text)

    def flush(self) -> None:
        pass

    def isatty(self) -> bool:
        return False


# ---------------------------------------------------------------- create ----

def registry_credentials(ns: argparse.Namespace, image: str) -> Optional[Credentials]:
    """The credentials to resolve `image`'s digest with: with `--with-registry-auth` the
    login `swarm login` stored for its registry (cli.registryauth); anonymous otherwise,
    as Docker."""
    if not registryauth.wanted(ns):
        return None
    found: Optional[Credentials] = registryauth.credentials_for(image)
    return found


def pin_image(ctx: Context, ns: argparse.Namespace, spec: pb.ServiceSpec) -> None:
    """Pins the spec's image to its digest (`cli.imagepin`) unless --no-resolve-image;
    prints Docker's warning on stderr when the registry cannot say. An invalid image
    reference is refused first, resolved or not (UsageError, as Docker)."""
    container = spec.task.container
    imagepin.check_image(container.image)
    if is_on(getattr(ns, "no_resolve_image", None), "--no-resolve-image"):
        return
    pinned = imagepin.pin(container.image, registry_credentials(ns, container.image))
    if pinned.warning:
        ctx.warn(pinned.warning)
    container.image = pinned.image


def create(ctx: Context, ns: argparse.Namespace) -> int:
    spec = specs.create_spec(ns)
    pin_image(ctx, ns, spec)
    registryauth.apply(spec, ns)
    service = ctx.call("CreateService", cpb.CreateServiceRequest(spec=spec)).service
    ctx.print(service.id)
    ctx.out.flush()
    if is_on(ns.detach, "--detach"):
        return 0
    return _wait(ctx, service.id, is_on(ns.quiet, "--quiet"))


# ---------------------------------------------------------------- update ----

# what `--rollback` may be combined with (besides the service and global options)
_ROLLBACK_COMPANIONS = {"host", "debug", "command", "subcommand", "handler", "service",
                        "rollback", "detach", "quiet"}


# boolean flags that do nothing when set to false (`--with-registry-auth=false`)
_OFF_IS_ABSENT = ("with_registry_auth", "no_resolve_image", "force")


def rollback_conflicts(ns: argparse.Namespace) -> list[str]:
    """The flags given along with `--rollback` that it cannot take (all but -d, -q; a
    flag of _OFF_IS_ABSENT set to false is not given)."""
    return sorted("--" + name.replace("_", "-") for name, value in vars(ns).items()
                  if name not in _ROLLBACK_COMPANIONS and value not in (None, [], False)
                  and not (name in _OFF_IS_ABSENT
                           and not is_on(value, "--" + name.replace("_", "-"))))


def update(ctx: Context, ns: argparse.Namespace) -> int:
    if is_on(ns.rollback, "--rollback"):
        conflicts = rollback_conflicts(ns)
        if conflicts:
            raise UsageError("other flags may not be combined with --rollback: "
                             + ", ".join(conflicts))
        return rollback(ctx, ns)
    specs.check_values(ns)   # a bad value is refused before the service is read
    service = ctx.get_service(ns.service)
    request = cpb.UpdateServiceRequest(service_id=service.id,
                                       service_version=service.meta.version)
    request.spec.CopyFrom(specs.update_spec(service.spec, ns))
    if ns.image is not None:
        # as Docker: only a given --image is resolved (the same tag again picks up where
        # it points now); any other update keeps the pinned digest untouched
        pin_image(ctx, ns, request.spec)
    registryauth.apply(request.spec, ns)   # without the flag the managers keep theirs
    return _send_update(ctx, ns, request)


def rollback(ctx: Context, ns: argparse.Namespace) -> int:
    """`service rollback` (and `service update --rollback`): the spec and the previous
    spec swap, so a second rollback goes forward again."""
    service = ctx.get_service(ns.service)
    request = cpb.UpdateServiceRequest(service_id=service.id, rollback=True,
                                       service_version=service.meta.version)
    request.spec.CopyFrom(service.spec)
    return _send_update(ctx, ns, request)


def _send_update(ctx: Context, ns: argparse.Namespace,
                 request: cpb.UpdateServiceRequest) -> int:
    updated = ctx.call("UpdateService", request).service
    ctx.print(ns.service)
    ctx.out.flush()
    if is_on(ns.detach, "--detach"):
        return 0
    if request.rollback and not is_on(ns.quiet, "--quiet"):
        ctx.print("rollback: manually requested rollback")
    return _wait(ctx, request.service_id, is_on(ns.quiet, "--quiet"), updated.update_status)


def scale(ctx: Context, ns: argparse.Namespace) -> int:
    wanted: list[tuple[str, int]] = []
    for arg in ns.pairs:
        m = _SCALE_ARG.match(arg)
        if not m:
            raise UsageError(f"invalid scale specifier '{arg}': expected <service>=<replicas>, "
                             "e.g. web=5")
        wanted.append((m.group(1), parse_replicas(m.group(2))))
    status = 0
    for name, replicas in wanted:
        found: list[pb.Service] = []

        def scale_one() -> None:
            service = ctx.get_service(name)
            mode = service.spec.WhichOneof("mode")
            if mode == "global_job":
                raise CLIError(f"{name}: scale can only be used with replicated or "
                               "replicated-job mode")
            if mode not in ("replicated", "replicated_job"):
                raise CLIError(f"{name}: scale can only be used with replicated mode")
            spec = pb.ServiceSpec()
            spec.CopyFrom(service.spec)
            if mode == "replicated_job":  # as Docker: the number of completions (a re-run)
                spec.replicated_job.total_completions = replicas
            else:
                spec.replicated.replicas = replicas
            ctx.call("UpdateService", cpb.UpdateServiceRequest(
                service_id=service.id, service_version=service.meta.version, spec=spec))
            found.append(service)
        if not ctx.attempt(scale_one):
            status = 1
            continue
        service = found[0]
        ctx.print(f"{name} scaled to {replicas}")
        ctx.out.flush()
        if not is_on(ns.detach, "--detach"):
            status = _wait(ctx, service.id, False) or status
    return status


def remove(ctx: Context, ns: argparse.Namespace) -> int:
    status = 0
    for name in ns.services:
        try:
            service = ctx.get_service(name)
            ctx.call("RemoveService", cpb.RemoveServiceRequest(service_id=service.id))
        except RpcFailure as exc:
            ctx.warn(describe_rpc_error(exc, ctx.host, ctx.debug))
            status = 1
            continue
        ctx.print(name)
    return status


# ------------------------------------------------------------------ read ----

def _matches_service(service: pb.Service, filters) -> bool:
    name = service.spec.annotations.name
    labels = dict(service.spec.annotations.labels)
    for f in filters:
        if f.key == "name" and not name.startswith(f.value):
            return False
        if f.key == "id" and not service.id.startswith(f.value):
            return False
        if f.key == "mode" and fmt.mode_of(service.spec).replace(" ", "-") != f.value.lower():
            return False
        if f.key == "label" and not label_matches(labels, f.value):
            return False
    return True


def ls(ctx: Context, ns: argparse.Namespace) -> int:
    services = list_services(ctx, parse_filters(ns.filter, SERVICE_FILTERS))
    print_services(ctx, services, ns)
    return 0


def list_services(ctx: Context, filters: list[Filter],
                  labels: Optional[dict[str, str]] = None) -> list[pb.Service]:
    """The services that pass `filters` (and carry `labels`, e.g. a stack's), by name."""
    request = cpb.ListFilters(name_prefixes=filter_values(filters, "name"),
                              id_prefixes=filter_values(filters, "id"), labels=labels or {})
    services = ctx.call("ListServices", cpb.ListServicesRequest(filters=request)).services
    wanted = list(filters) + [Filter("label", f"{k}={v}") for k, v in (labels or {}).items()]
    return sorted((s for s in services if _matches_service(s, wanted)),
                  key=lambda s: s.spec.annotations.name)


def print_services(ctx: Context, services: list[pb.Service], ns: argparse.Namespace) -> None:
    """`service ls` output (-q, --format) for these services, with their task counts."""
    if ns.quiet:
        for s in services:
            ctx.print(fmt.truncate_id(s.id))
        return
    rows = [fmt.service_row(s, [], status=counts)
            for s, counts in zip(services, _replica_counts(ctx, services))]
    text = render(ns.format, rows, fmt.SERVICE_FIELDS, fmt.SERVICE_FIELDS)
    if text:
        ctx.print(text)


def _replica_counts(ctx: Context, services: list[pb.Service]) -> list[tuple[int, int, int, int]]:
    """(running, desired, completed, total) of each service: counted by the manager
    (ListServices with status: no task leaves it), or here from the services' tasks
    when the manager does not count them (an older one)."""
    if not services:
        return []
    by_id = cpb.ListFilters(id_prefixes=sorted({s.id for s in services}))
    counted = ctx.call("ListServices", cpb.ListServicesRequest(filters=by_id, status=True))
    statuses = counted.statuses
    if all(s.id in statuses for s in services):
        return [(statuses[s.id].running_tasks, statuses[s.id].desired_tasks,
                 statuses[s.id].completed_tasks, statuses[s.id].total_completions)
                for s in services]
    # a job's completed tasks have desired state COMPLETE (its REPLICAS counts them)
    task_filter = cpb.ListFilters(service_ids=[s.id for s in services],
                                  desired_states=model.LISTED_DESIRED_STATES)
    tasks = list(ctx.call("ListTasks", cpb.ListTasksRequest(filters=task_filter)).tasks)
    down = [n.id for n in ctx.nodes() if n.status.state == pb.NodeStatus.DOWN]
    of_service: dict[str, list[pb.Task]] = {}
    for task in tasks:  # each service's counts read its own tasks only
        of_service.setdefault(task.service_id, []).append(task)
    return [model.replica_status(s, of_service.get(s.id, []), down) for s in services]


def ps(ctx: Context, ns: argparse.Namespace) -> int:
    filters = parse_filters(ns.filter, TASK_FILTERS)
    services = [ctx.get_service(ref) for ref in ns.services]
    for value in filter_values(filters, "service"):
        services.append(ctx.get_service(value))
    node_names = ctx.node_names()
    task_filter = cpb.ListFilters(service_ids=sorted({s.id for s in services}))
    tasks = ctx.call("ListTasks", cpb.ListTasksRequest(filters=task_filter)).tasks
    ids = {s.id for s in services}
    tasks = filter_tasks([t for t in tasks if t.service_id in ids], filters, node_names)
    print_tasks(ctx, tasks, ns, node_names)
    return 0


SERVICE_PATHS = inspectformat.message_resolver(pb.Service, "a service")


def inspect(ctx: Context, ns: argparse.Namespace) -> int:
    out = inspectformat.output(ns.format, ns.pretty, SERVICE_PATHS)
    services = []
    status = 0
    for ref in ns.services:
        try:
            services.append(ctx.get_service(ref))
        except RpcFailure as exc:
            ctx.warn(describe_rpc_error(exc, ctx.host, ctx.debug))
            status = 1
    if out.pretty:
        if services:
            ctx.print("\n\n".join(pretty.service_text(s) for s in services))
    elif out.template:
        for text in out.each([fmt.to_dict(s) for s in services]):
            ctx.print(text)
    else:
        ctx.print(fmt.inspect_json(services))
    return status


def _declare_create(parser: argparse.ArgumentParser) -> None:
    add_service_flags(parser, update=False)
    registryauth.add_flag(parser)
    parser.set_defaults(handler=create)


def _declare_update(parser: argparse.ArgumentParser) -> None:
    add_service_flags(parser, update=True)
    registryauth.add_flag(parser)
    parser.set_defaults(handler=update)


def declare_service(parser: argparse.ArgumentParser) -> None:
    """Declares `swarm service create|update|rollback|ls|ps|inspect|scale|rm|logs` on `parser`."""
    ssub = parser.add_subparsers(dest="subcommand", metavar="COMMAND")
    ssub.required = True

    # create and update have over a hundred options: declared only when one of them runs
    ssub.add_parser("create", help="Create a new service", declare=_declare_create,
                    usage="swarm service create [OPTIONS] IMAGE [COMMAND] [ARG...]")
    ssub.add_parser("update", help="Update a service", declare=_declare_update)

    p = ssub.add_parser("rollback", help="Revert changes to a service's configuration")
    bool_flag(p, "--detach", "-d", "Exit immediately instead of waiting for the service "
                                   "to converge")
    bool_flag(p, "--quiet", "-q", "Suppress progress output")
    p.add_argument("service", metavar="SERVICE")
    p.set_defaults(handler=rollback)

    p = ssub.add_parser("ls", aliases=["list"], help="List services")
    list_flags(p, "Only display IDs")
    p.set_defaults(handler=ls)

    p = ssub.add_parser("ps", help="List the tasks of one or more services")
    task_list_flags(p)
    p.add_argument("services", nargs="+", metavar="SERVICE")
    p.set_defaults(handler=ps)

    p = ssub.add_parser("inspect", help="Display detailed information on one or more services")
    p.add_argument("-f", "--format", default=None,
                   help="Format the output using the given Go template")
    p.add_argument("--pretty", action="store_true", help="Print the information in a human "
                                                         "friendly format")
    p.add_argument("services", nargs="+", metavar="SERVICE")
    p.set_defaults(handler=inspect)

    p = ssub.add_parser("scale", help="Scale one or multiple replicated services",
                        usage="swarm service scale SERVICE=REPLICAS [SERVICE=REPLICAS...]")
    bool_flag(p, "--detach", "-d", "Exit immediately instead of waiting for the service "
                                   "to converge")
    p.add_argument("pairs", nargs="+", metavar="SERVICE=REPLICAS")
    p.set_defaults(handler=scale)

    p = ssub.add_parser("rm", aliases=["remove"], help="Remove one or more services")
    p.add_argument("services", nargs="+", metavar="SERVICE")
    p.set_defaults(handler=remove)

    p = ssub.add_parser("logs", help="Fetch the logs of a service or task",
                        usage="swarm service logs [OPTIONS] SERVICE|TASK")
    add_log_flags(p)
    p.add_argument("target", metavar="SERVICE|TASK")
