"""Control API rules for tasks: tasks are read-only through the API; this is their listing order."""
from __future__ import annotations

from typing import Iterable, Optional

from manager import lookup
from proto import control_pb2 as cpb
from proto import model
from proto import objects_pb2 as pb


def listed(tasks: Iterable[pb.Task], filters: Optional[cpb.ListFilters]) -> list[pb.Task]:
    """The tasks that pass the filters: by service, slot, node, newest first."""
    out = [t for t in tasks if lookup.matches(t, filters)]
    out.sort(key=lambda t: (t.service_name, t.slot, t.node_id,
                            -model.ts_seconds(t.meta.created_at)))
    return out
