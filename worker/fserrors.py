"""Words for a failed file write on the node: a full file system is named as such.

The agent writes task files (secrets and configs on a per-task tmpfs under
the runtime directory, resolv.conf files of task namespaces); when a write
fails, the task is refused with a message a person can act on instead of
an errno, and the agent carries on.
"""
from __future__ import annotations

import errno
import os


def describe(exc: OSError, path: str) -> str:
    """What went wrong writing `path`: "no space left on the file system holding DIR
    (...)" for a full disk or inode table, the system's words otherwise."""
    where = os.path.dirname(os.path.abspath(path))
    if exc.errno in (errno.ENOSPC, errno.EDQUOT):
        return (f"no space left on the file system holding {where} (writing {path}); "
                "free space there")
    return f"{exc.strerror or exc} ({exc.filename or path})"
