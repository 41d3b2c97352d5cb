"""Docker's service templates in a task's env, hostname and labels.

`--hostname "{{.Node.Hostname}}-{{.Service.Name}}"` or `--env SLOT={{.Task.Slot}}`
are expanded on the node, per task, with the placeholders Docker offers:
.Service.ID/.Name/.Labels, .Node.ID/.Hostname/.Platform.OS/.Platform.Architecture,
.Task.ID/.Name/.Slot. Pure functions; an unknown placeholder is left as written.
"""
from __future__ import annotations

import platform
import re

from proto import objects_pb2 as pb

_PLACEHOLDER = re.compile(r"\{\{\s*(\.[A-Za-z.]+)(?:\s+\"([^\"]*)\")?\s*\}\}")
_INDEX = re.compile(r"\{\{\s*index\s+\.Service\.Labels\s+\"([^\"]*)\"\s*\}\}")


def context(task: pb.Task, node_id: str, hostname: str) -> dict[str, str]:
    """The values a template may use for this task on this node."""
    return {
        ".Service.ID": task.service_id,
        ".Service.Name": task.service_name,
        ".Node.ID": node_id,
        ".Node.Hostname": hostname,
        ".Node.Platform.OS": platform.system().lower(),
        ".Node.Platform.Architecture": platform.machine(),
        ".Task.ID": task.id,
        ".Task.Name": f"{task.annotations.name}.{task.id}",
        ".Task.Slot": str(task.slot) if task.slot else "",
    }


def expand(text: str, values: dict[str, str], labels: dict[str, str] | None = None) -> str:
    """Replaces every known `{{.X.Y}}` in text; leaves the rest untouched."""
    if "{{" not in text:
        return text
    labels = labels or {}
    text = _INDEX.sub(lambda m: labels.get(m.group(1), ""), text)
    return _PLACEHOLDER.sub(lambda m: values.get(m.group(1), m.group(0)), text)
