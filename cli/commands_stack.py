"""`swarm stack ...`: stacks declared in Compose files.

Owns the command-line side of stacks: reading the `-c` files (`-c -` reads
standard input), the client's environment for substitution, printing the
loader's warnings on stderr as Docker does and its errors as one message
with a non-zero exit; then the verbs:

- `config` prints the merged, interpolated file;
- `deploy` (`up`) converts the stack (`cli.compose.convert`), pins its images to
  their digests as `--resolve-image` says (`cli.imagepin`), and sends it in one
  DeployStack call (the manager applies all of it or nothing), prints Docker's
  lines for what changed ("Creating service x_web", "Updating service x_web
  (id: ...)"), or with `--dry-run` what would change, and unless `-d` waits
  for each changed service to converge (`cli.progress.Waiter`); with
  `--rollback-on-failure`, a service that does not converge makes it call
  RollbackStack, wait for the rollback, and exit non-zero naming the service;
- `rollback` returns the stack to its previous definition (RollbackStack: one
  transaction on the manager), prints what changed and waits as deploy does;
- `ls`, `services` (as `service ls` of the stack's services), `ps` (as
  `service ps` of them) and `rm` (`remove`, `down`).

The loading itself is `cli.compose`.
"""
from __future__ import annotations

import argparse
import os
import re
import sys
import time
from dataclasses import dataclass
from typing import Callable, Optional, Sequence, TextIO

from cli import commands_service, imagepin, registryauth
from cli.client import CLIError, RpcFailure, describe_rpc_error, is_not_found
from cli.compose.convert import (IMAGE_LABEL, NAMESPACE_LABEL, check_stack_name, convert,
                                 external_refs)
from cli.compose.errors import ComposeError, Warnings
from cli.compose.loader import Loaded, Source, load
from cli.compose.model import Stack
from cli.compose.render import render as render_compose
from cli.context import Context
from cli.flags import bool_flag, is_on, list_flags, task_list_flags
from cli.parsing import UsageError, filter_values, parse_filters
from cli.progress import Timeout, Waiter
from cli.tasklist import TASK_FILTERS, filter_tasks, print_tasks
from cli.templates import render
from proto import control_pb2 as cpb
from proto import objects_pb2 as pb

STACK_FIELDS = ("Name", "Services")
REMOVE_TIMEOUT = 300.0   # seconds: `stack rm` waits for the stack's tasks before its networks
_ACTIONS = {cpb.StackChange.CREATE: ("Creating", "create"),
            cpb.StackChange.UPDATE: ("Updating", "update"),
            cpb.StackChange.REMOVE: ("Removing", "remove")}
# Docker's order of a deploy: pruned services, networks, secrets, configs, services.
_PHASES = {"network": 1, "secret": 2, "config": 3, "service": 4}


def _read_text(path: str) -> str:
    with open(path, encoding="utf-8") as handle:
        return handle.read()


def _read_bytes(path: str) -> bytes:
    with open(path, "rb") as handle:
        return handle.read()


def read_sources(files: Sequence[str], stdin: TextIO,
                 read: Callable[[str], str] = _read_text) -> tuple[list[Source], str]:
    """The compose files' texts and the folder relative paths are resolved against
    (the first file's; the current folder when that file is standard input)."""
    if not files:
        raise CLIError("Error: specify a Compose file (with --compose-file)")
    sources = []
    for name in files:
        try:
            text = stdin.read() if name == "-" else read(name)
        except (OSError, UnicodeDecodeError) as exc:
            reason = getattr(exc, "strerror", None) or str(exc)
            raise CLIError(f"Error: cannot read compose file {name}: {reason}") from None
        sources.append(Source(name=name, text=text))
    first = files[0]
    workdir = os.getcwd() if first == "-" else os.path.dirname(os.path.abspath(first))
    return sources, workdir


def warning_lines(warnings: Sequence[str]) -> list[str]:
    """How Docker shows each warning: variables as logrus lines, ignored options plainly."""
    return [text + "\n" if text.startswith("Ignoring") else f"WARN[0000] {text}"
            for text in warnings]


def load_stack(files: Sequence[str], stdin: TextIO, err: TextIO,
               env: Optional[dict[str, str]] = None,
               more: Optional[Callable[[Stack], list[ComposeError]]] = None) -> Loaded:
    """The loaded files, or CLIError with every problem; `more` adds the problems the
    cluster knows of (missing externals) when the files themselves have some."""
    sources, workdir = read_sources(files, stdin)
    warnings = Warnings()
    try:
        return load(sources, dict(os.environ) if env is None else env, workdir, _read_text,
                    warnings)
    except ComposeError as exc:
        problems = list(exc.errors)
        if more is not None and isinstance(exc.partial, Stack):
            problems += more(exc.partial)
        raise CLIError(f"Error: {ComposeError.several(problems, files).text()}") from None
    finally:
        for line in warning_lines(warnings.items):
            err.write(line + "\n")
        err.flush()


def missing_externals(ctx: Context, stack: Stack) -> list[ComposeError]:
    """The external networks, secrets and configs the services use that the cluster does
    not have, as the manager would refuse them (asked only when the files have problems
    of their own, so that one run shows every problem; otherwise the manager checks)."""
    refs = external_refs(stack)
    known: dict[str, set[str]] = {}
    try:
        for kind in sorted({kind for kind, _, _ in refs}):
            title = kind.capitalize() + "s"
            listed = getattr(ctx.call(f"List{title}", getattr(cpb, f"List{title}Request")()),
                             kind + "s")
            known[kind] = {o.spec.annotations.name for o in listed} | {o.id for o in listed}
    except RpcFailure:
        return []          # no cluster to ask: the file's own problems are reported
    hints = {"network": "You need to create a swarm-scoped network before the stack is "
                        "deployed"}
    return [ComposeError(f'{kind} "{name}" is declared as external, but could not be found. '
                         + hints.get(kind, f"Create it with 'swarm {kind} create' first"),
                         path=path)
            for kind, path, name in refs if name not in known.get(kind, set())]


def stack_name(name: str) -> str:
    try:
        return check_stack_name(name)
    except ComposeError as exc:
        raise CLIError(f"Error: {exc.text()}") from None


def config(ctx: Context, ns: argparse.Namespace) -> int:
    loaded = load_stack(ns.compose_file, sys.stdin, ctx.err)
    ctx.out.write(render_compose(loaded.stack))
    return 0


# ---------------------------------------------------------------- deploy ----

def ordered(changes: Sequence[cpb.StackChange]) -> list[cpb.StackChange]:
    """The changes in Docker's order (pruned services first, then networks, secrets,
    configs and services; the rest after), the manager's order within each kind."""
    def phase(change: cpb.StackChange) -> int:
        if change.action == cpb.StackChange.REMOVE:
            return 0 if change.kind == "service" else 5
        return _PHASES.get(change.kind, 5)
    return sorted(changes, key=phase)


def change_line(change: cpb.StackChange, dry_run: bool = False) -> str:
    """Docker's line for one change ("Creating network x_default", "Updating service
    x_web (id: ...)", "Removing service x_old"); for a dry run what would happen, with the
    IDs of existing objects and the fields that would change."""
    doing, do = _ACTIONS.get(change.action, ("Changing", "change"))
    if change.rollback and change.action == cpb.StackChange.UPDATE:
        doing, do = "Rolling back", "roll back"
    existing = change.id and change.action != cpb.StackChange.CREATE
    if not dry_run:
        with_id = (f" (id: {change.id})" if existing and change.kind == "service"
                   and change.action == cpb.StackChange.UPDATE else "")
        return f"{doing} {change.kind} {change.name}{with_id}"
    with_id = f" (id: {change.id})" if existing else ""
    fields = f": {', '.join(change.fields)}" if change.fields else ""
    return f"Would {do} {change.kind} {change.name}{with_id}{fields}"


_NO_ROLL = "task.container.pull_options"   # credentials alone: the manager replaces no task


def rolls(change: cpb.StackChange) -> bool:
    """Whether an update of a service replaces its tasks (its task or endpoint changed,
    other than in its registry credentials, which the manager applies without a rolling
    update; assumed when the manager lists no fields)."""
    return not change.fields or any(
        f.split(".", 1)[0] in ("task", "endpoint")
        and f != _NO_ROLL and not f.startswith(_NO_ROLL + ".") for f in change.fields)


def pin_images(ctx: Context, ns: argparse.Namespace, definition: pb.StackDefinition,
               mode: str) -> None:
    """`--resolve-image MODE`: writes in each service's spec the image a deploy sends
    (`imagepin.stack_choice`: pinned to its digest, the deployed one, or as the file
    names it), resolving the distinct images side by side; Docker's warning on stderr
    for each image whose digest could not be recorded."""
    deployed = {s.spec.annotations.name: s for s in _stack_services(ctx, definition.name, [])
                } if definition.services else {}
    choices = []
    for spec in definition.services:
        old = deployed.get(spec.annotations.name)
        choices.append(imagepin.stack_choice(
            mode, spec.task.container.image,
            None if old is None else old.spec.annotations.labels.get(IMAGE_LABEL, ""),
            "" if old is None else old.spec.task.container.image))
    pinned = imagepin.pin_all([c.image for c in choices if c.resolve],
                              lambda image: commands_service.registry_credentials(ns, image))
    warned: set[str] = set()
    for spec, choice in zip(definition.services, choices):
        image = choice.image
        if choice.resolve:
            result = pinned[choice.image]
            image = choice.fallback if result.warning and choice.fallback else result.image
            if result.warning and choice.image not in warned:
                warned.add(choice.image)
                ctx.warn(result.warning)
        spec.task.container.image = image


def deploy(ctx: Context, ns: argparse.Namespace) -> int:
    name = stack_name(ns.stack)
    try:
        mode = imagepin.check_mode(ns.resolve_image)
    except ValueError as exc:
        raise UsageError(str(exc)) from None
    detach = is_on(ns.detach, "--detach")
    if ns.rollback_on_failure and (detach or ns.dry_run):
        raise CLIError("Error: --rollback-on-failure rolls the stack back when a service "
                       "does not converge, so it waits for the services: it can't be used "
                       f"with {'--dry-run' if ns.dry_run else '--detach (-d)'}")
    loaded = load_stack(ns.compose_file, sys.stdin, ctx.err,
                        more=lambda partial: missing_externals(ctx, partial))
    try:
        definition = convert(loaded.stack, name, _read_bytes)
    except ComposeError as exc:
        raise CLIError(f"Error: {exc.text()}") from None
    pin_images(ctx, ns, definition, mode)
    if registryauth.wanted(ns):
        for spec in definition.services:
            registryauth.attach(spec)
    request = cpb.DeployStackRequest(stack=definition, prune=bool(ns.prune),
                                     dry_run=bool(ns.dry_run))
    changes = ordered(ctx.call("DeployStack", request).changes)
    for change in changes:
        ctx.print(change_line(change, ns.dry_run))
    if ns.dry_run:
        ctx.print("Dry run: nothing was changed" if changes else
                  f"Dry run: nothing to do, stack {name} is as the files define it")
        return 0
    if not changes:
        ctx.print(f"Stack {name} is up to date: nothing to change")
    ctx.out.flush()
    if detach:
        return 0
    quiet = is_on(ns.quiet, "--quiet")
    if not ns.rollback_on_failure:
        return wait_for_services(ctx, name, changes, quiet)
    return wait_or_roll_back(ctx, name, changes, quiet)


@dataclass
class Failure:
    """A service that did not converge, and why (the failing task's error)."""
    service: str
    why: str


def wait_changes(ctx: Context, stack: str, changes: Sequence[cpb.StackChange], quiet: bool,
                 clock: Callable[[], float] = time.monotonic,
                 sleep: Callable[[float], None] = time.sleep,
                 first_only: bool = False) -> Optional[list[Failure]]:
    """Waits for each created or updated service in turn until it has converged, then
    for all of them together to stay stable for the monitor period (one window for the
    stack, not one per service); the services that did not converge (paused, rolled
    back, failed or timed out), each named on stderr (with `first_only`, stops at the
    first); None when interrupted (the manager carries on)."""
    out = commands_service.NullStream() if quiet else ctx.out
    failed: list[Failure] = []
    converged: dict[str, str] = {}   # service ID -> name
    for change in changes:
        if change.kind != "service" or not change.id or change.action not in (
                cpb.StackChange.CREATE, cpb.StackChange.UPDATE):
            continue
        initial = None
        if change.action == cpb.StackChange.UPDATE and rolls(change):
            # what the update left, so that a pause or rollback that happened while an
            # earlier service was waited for still counts
            initial = pb.UpdateStatus(state=pb.UpdateStatus.ROLLBACK_STARTED if change.rollback
                                      else pb.UpdateStatus.UPDATING)
        if not quiet:
            ctx.print(f"Waiting for service {change.name} (id: {change.id})")
        waiter = Waiter(ctx.call, out, ctx.is_tty() and not quiet, clock=clock,
                        sleep=sleep)
        try:
            waiter.wait(change.id, initial=initial, stability=False)
            if initial is None:
                # a rolling update (or rollback) is COMPLETED only after the updater
                # watched its tasks for the monitor period: nothing more to verify
                converged[change.id] = change.name
        except Timeout as exc:
            ctx.warn(f"Error: service {change.name}: {exc}")
            failed.append(Failure(change.name, str(exc)))
            if first_only:
                break
        except KeyboardInterrupt:
            ctx.warn("Operation continuing in background.\n"
                     f"Use `swarm stack ps {stack}` to check progress.")
            return None
    if converged and not (failed and first_only):
        try:
            Waiter(ctx.call, out, ctx.is_tty() and not quiet, clock=clock,
                   sleep=sleep).verify_stable(converged)
        except Timeout as exc:
            ctx.warn(f"Error: stack {stack}: {exc}")
            failed.append(Failure(", ".join(sorted(converged.values())), str(exc)))
        except KeyboardInterrupt:
            ctx.warn("Operation continuing in background.\n"
                     f"Use `swarm stack ps {stack}` to check progress.")
            return None
    return failed


def wait_for_services(ctx: Context, stack: str, changes: Sequence[cpb.StackChange],
                      quiet: bool, clock: Callable[[], float] = time.monotonic,
                      sleep: Callable[[float], None] = time.sleep) -> int:
    """Waits for the created or updated services (`wait_changes`); 1 if one did not
    converge (paused, rolled back, failed or timed out), naming it."""
    failed = wait_changes(ctx, stack, changes, quiet, clock, sleep)
    if failed is None:
        return 130
    if failed:
        ctx.warn(f"Error: stack {stack}: {len(failed)} service(s) did not converge: "
                 + ", ".join(f.service for f in failed))
        return 1
    return 0


def wait_or_roll_back(ctx: Context, stack: str, changes: Sequence[cpb.StackChange],
                      quiet: bool, clock: Callable[[], float] = time.monotonic,
                      sleep: Callable[[float], None] = time.sleep) -> int:
    """`deploy --rollback-on-failure`: waits as deploy does; when a service does not
    converge, rolls the whole stack back (RollbackStack), waits for that, and returns 1
    naming the service and its error."""
    failed = wait_changes(ctx, stack, changes, quiet, clock, sleep, first_only=True)
    if failed is None:
        return 130
    if not failed:
        return 0
    names = ", ".join(f.service for f in failed)
    ctx.warn(f"Rolling back stack {stack} to its previous definition: service(s) {names} "
             "did not converge")
    try:
        back = ordered(ctx.call("RollbackStack", cpb.RollbackStackRequest(name=stack)).changes)
    except RpcFailure as exc:
        ctx.warn(f"Error: stack {stack}: service {failed[0].service} did not converge "
                 f"({failed[0].why}), and the stack could not be rolled back: "
                 + describe_rpc_error(exc, ctx.host, ctx.debug).removeprefix("Error: "))
        return 1
    for change in back:
        ctx.print(change_line(change))
    ctx.out.flush()
    again = wait_changes(ctx, stack, back, quiet, clock, sleep)
    if again is None:
        return 130
    outcome = ("the stack was rolled back to its previous definition" if not again else
               "the stack was rolled back to its previous definition, but service(s) "
               + ", ".join(f.service for f in again) + " did not converge after it either")
    ctx.warn(f"Error: stack {stack}: service {failed[0].service} did not converge "
             f"({failed[0].why}); {outcome}")
    return 1


def rollback(ctx: Context, ns: argparse.Namespace) -> int:
    name = stack_name(ns.stack)
    response = ctx.call("RollbackStack",
                        cpb.RollbackStackRequest(name=name, dry_run=bool(ns.dry_run)))
    changes = ordered(response.changes)
    for change in changes:
        ctx.print(change_line(change, ns.dry_run))
    if ns.dry_run:
        ctx.print("Dry run: nothing was changed" if changes else
                  f"Dry run: nothing to do, stack {name}'s objects are as its previous "
                  "definition")
        return 0
    if not changes:
        ctx.print(f"Stack {name} rolled back: its objects were already as its previous "
                  "definition")
    ctx.out.flush()
    if is_on(ns.detach, "--detach"):
        return 0
    return wait_for_services(ctx, name, changes, is_on(ns.quiet, "--quiet"))


# ------------------------------------------------------------------ read ----

def _natural_key(text: str) -> list:
    """Docker's natural order: "s2" before "s10"."""
    return [(0, int(part), "") if part.isdecimal() else (1, 0, part)
            for part in re.split(r"(\d+)", text) if part]


def stack_rows(stacks: Sequence[cpb.StackSummary]) -> list[dict[str, str]]:
    ordered_stacks = sorted(stacks, key=lambda s: _natural_key(s.name))
    return [{"Name": s.name, "Services": str(s.services)} for s in ordered_stacks]


def ls(ctx: Context, ns: argparse.Namespace) -> int:
    stacks = ctx.call("ListStacks", cpb.ListStacksRequest()).stacks
    text = render(ns.format, stack_rows(stacks), STACK_FIELDS, STACK_FIELDS)
    if text:
        ctx.print(text)
    return 0


def _stack_services(ctx: Context, name: str, filters: list) -> list[pb.Service]:
    return commands_service.list_services(ctx, filters, {NAMESPACE_LABEL: name})


def services(ctx: Context, ns: argparse.Namespace) -> int:
    name = stack_name(ns.stack)
    found = _stack_services(ctx, name, parse_filters(ns.filter,
                                                     commands_service.SERVICE_FILTERS))
    if not found:
        ctx.warn(f"Nothing found in stack: {name}")
        return 0
    commands_service.print_services(ctx, found, ns)
    return 0


def ps(ctx: Context, ns: argparse.Namespace) -> int:
    name = stack_name(ns.stack)
    filters = parse_filters(ns.filter, TASK_FILTERS)
    wanted = filter_values(filters, "service")
    found = [s for s in _stack_services(ctx, name, [])
             if not wanted or any(s.spec.annotations.name == w or s.id.startswith(w)
                                  for w in wanted)]
    tasks: list[pb.Task] = []
    node_names: dict[str, str] = {}
    if found:
        node_names = ctx.node_names()
        task_filter = cpb.ListFilters(service_ids=sorted(s.id for s in found))
        ids = {s.id for s in found}
        listed = ctx.call("ListTasks", cpb.ListTasksRequest(filters=task_filter)).tasks
        tasks = filter_tasks([t for t in listed if t.service_id in ids], filters, node_names)
    if not tasks:
        raise CLIError(f"nothing found in stack: {name}")
    print_tasks(ctx, tasks, ns, node_names)
    return 0


# ---------------------------------------------------------------- remove ----

def remove(ctx: Context, ns: argparse.Namespace) -> int:
    names = [stack_name(name) for name in ns.stacks]
    status = 0
    for name in names:
        try:
            response = ctx.call("RemoveStack", cpb.RemoveStackRequest(name=name),
                                timeout=REMOVE_TIMEOUT)
        except RpcFailure as exc:
            if is_not_found(exc):
                ctx.warn(f"Nothing found in stack: {name}")
                continue
            ctx.warn(describe_rpc_error(exc, ctx.host, ctx.debug))
            status = 1
            continue
        if not response.changes:
            ctx.warn(f"Nothing found in stack: {name}")
            continue
        for change in response.changes:
            ctx.print(change_line(change))
    return status


# ----------------------------------------------------------------- parser ----

def _compose_files(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("-c", "--compose-file", action="append", default=[], metavar="FILE",
                        help='Path to a Compose file, or "-" to read from stdin')


def declare_stack(parser: argparse.ArgumentParser) -> None:
    """Declares `swarm stack config|deploy|ls|services|ps|rm|rollback` on `parser`."""
    ssub = parser.add_subparsers(dest="subcommand", metavar="COMMAND")
    ssub.required = True
    p = ssub.add_parser("config", help="Outputs the final config file, after doing merges and "
                                       "interpolations",
                        usage="swarm stack config -c FILE [-c FILE...]")
    _compose_files(p)
    p.set_defaults(handler=config)

    p = ssub.add_parser("deploy", aliases=["up"],
                        help="Deploy a new stack or update an existing stack",
                        usage="swarm stack deploy -c FILE [-c FILE...] [OPTIONS] STACK")
    _compose_files(p)
    p.add_argument("--prune", action="store_true",
                   help="Prune services that are no longer referenced")
    p.add_argument("--dry-run", action="store_true",
                   help="Print what the deploy would change, and change nothing")
    bool_flag(p, "--detach", "-d", "Exit immediately instead of waiting for the stack "
                                   "services to converge")
    bool_flag(p, "--quiet", "-q", "Suppress progress output")
    p.add_argument("--resolve-image", default="always", metavar="string",
                   help='Query the registry to resolve image digest ("always", '
                        '"changed", "never")')
    p.add_argument("--rollback-on-failure", action="store_true",
                   help="When a service does not converge, roll the whole stack back to "
                        "its previous definition (needs --detach=false)")
    registryauth.add_flag(p)
    p.add_argument("stack", metavar="STACK")
    p.set_defaults(handler=deploy)

    p = ssub.add_parser("rollback", help="Return a stack to its previous definition",
                        description="Return every service, network, secret and config of "
                                    "a stack to its previous definition, in one transaction",
                        usage="swarm stack rollback [OPTIONS] STACK")
    p.add_argument("--dry-run", action="store_true",
                   help="Print what the rollback would change, and change nothing")
    bool_flag(p, "--detach", "-d", "Exit immediately instead of waiting for the stack "
                                   "services to converge")
    bool_flag(p, "--quiet", "-q", "Suppress progress output")
    p.add_argument("stack", metavar="STACK")
    p.set_defaults(handler=rollback)

    p = ssub.add_parser("ls", aliases=["list"], help="List stacks")
    p.add_argument("--format", default=None,
                   help='Format output: "table" (default), "json", or a Go template')
    p.set_defaults(handler=ls)

    p = ssub.add_parser("services", help="List the services in the stack")
    list_flags(p, "Only display IDs")
    p.add_argument("stack", metavar="STACK")
    p.set_defaults(handler=services)

    p = ssub.add_parser("ps", help="List the tasks in the stack")
    task_list_flags(p)
    p.add_argument("stack", metavar="STACK")
    p.set_defaults(handler=ps)

    p = ssub.add_parser("rm", aliases=["remove", "down"], help="Remove one or more stacks")
    p.add_argument("stacks", nargs="+", metavar="STACK")
    p.set_defaults(handler=remove)
