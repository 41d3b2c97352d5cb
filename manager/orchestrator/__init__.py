"""Orchestration decisions: from a store snapshot to the actions that converge it.

`reconcile(view, now) -> Plan` is pure (no I/O, no clock): the manager's
leader loop feeds it snapshots (and the TaskIndex it keeps, `taskindex`), commits
`Plan.actions` in order, in transactions of at most 500 actions, and runs it again on
events or at `Plan.wake_at`.

Modules: `plan` (working state, actions), `slots` (slots, new tasks),
`replicated`, `global_`, `restart` (restart policy, moves), `update` (rolling
updates), `placement` (scheduler calls), `reaper` (deletions), `reconcile`
(the order of it all), `taskindex` (what a pass needs of all tasks), `quiet` and
`triggers` (what a pass may skip).
"""
from manager.orchestrator.plan import Plan
from manager.orchestrator.reconcile import reconcile

__all__ = ["Plan", "reconcile"]
