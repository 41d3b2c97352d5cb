"""The task listing `swarm service ps` and `swarm node ps` share.

Owns the task filters (Docker's `--filter id|name|node|desired-state|service`,
applied client-side) and printing a task table, so that `swarm node ...`
needs nothing of the service commands (`swarm node ls` imports only what it
uses).
"""
from __future__ import annotations

import argparse

from cli import format as fmt
from cli.context import Context
from cli.parsing import UsageError, filter_values
from cli.templates import render
from proto import objects_pb2 as pb

TASK_FILTERS = ("id", "name", "node", "desired-state", "service")


def _desired_state_matches(task: pb.Task, wanted: list[str]) -> bool:
    if not wanted:
        return True
    for value in wanted:
        v = value.lower()
        if v == "running" and task.desired_state in (pb.RUNNING, pb.READY):
            return True
        if v == "shutdown" and task.desired_state >= pb.COMPLETE:
            return True
        if v == "accepted" and task.desired_state == pb.ACCEPTED:
            return True
        if v not in ("running", "shutdown", "accepted"):
            raise UsageError(f'invalid desired-state filter "{value}": expected running, '
                             "shutdown or accepted")
    return False


def filter_tasks(tasks, filters, node_names: dict[str, str]) -> list[pb.Task]:
    """Applies `service ps`/`node ps` filters client-side."""
    states = filter_values(filters, "desired-state")
    kept = []
    for task in tasks:
        if not _desired_state_matches(task, states):
            continue
        ok = True
        for f in filters:
            if f.key == "id" and not task.id.startswith(f.value):
                ok = False
            elif f.key == "name" and not fmt.task_base_name(task).startswith(f.value):
                ok = False
            elif f.key == "node" and f.value not in (task.node_id,
                                                     node_names.get(task.node_id)):
                ok = False
        if ok:
            kept.append(task)
    return kept


def print_tasks(ctx: Context, tasks, ns: argparse.Namespace, node_names: dict[str, str]) -> None:
    """`service ps`/`node ps` output for already filtered tasks."""
    trunc = not ns.no_trunc
    if ns.quiet:
        for task in fmt.sort_tasks(tasks):
            ctx.print(fmt.truncate_id(task.id) if trunc else task.id)
        return
    names = {} if ns.no_resolve else node_names
    rows = fmt.task_rows(tasks, names, trunc=trunc)
    text = render(ns.format, rows, fmt.TASK_FIELDS, fmt.TASK_TEMPLATE_FIELDS)
    if text:
        ctx.print(text)
