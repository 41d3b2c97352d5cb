"""Pure task placement: node filters and spreading, no I/O and no store access.

`schedule(nodes, tasks, pending, services) -> list[Decision]` places pending
tasks; `scheduler.constraints.parse(expr)` validates a placement constraint.
"""
from scheduler.schedule import Decision, schedule

__all__ = ["Decision", "schedule"]
