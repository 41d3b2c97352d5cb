"""Where a node's podman keeps its state: `PodmanOptions` (storage and
configuration of the podman processes a node runs), and the SHOAL_PODMAN_*
variables that name them. `worker.podman` re-exports all of it.
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Mapping

ENV_ROOT = "SHOAL_PODMAN_ROOT"
ENV_RUNROOT = "SHOAL_PODMAN_RUNROOT"
ENV_HOME = "SHOAL_PODMAN_HOME"


@dataclass(frozen=True)
class PodmanOptions:
    """Where a node's podman keeps its state; empty fields mean podman's defaults.

    `root`/`run_root` are podman's `--root`/`--runroot` (graph root and run root
    of its container storage: images, layers, containers). `home` is the HOME
    of the podman processes: a `.config/containers/registries.conf` there
    replaces the host's registry configuration, drop-ins included.
    """
    root: str = ""
    run_root: str = ""
    home: str = ""

    @classmethod
    def from_env(cls, environ: Mapping[str, str]) -> "PodmanOptions":
        """The options SHOAL_PODMAN_ROOT, SHOAL_PODMAN_RUNROOT and SHOAL_PODMAN_HOME
        name in `environ` (the CLI passes its environment; nothing else reads it).

        Raises ValueError naming the variable when a value is not an absolute path.
        """
        env = environ
        values = {}
        for field_name, var in (("root", ENV_ROOT), ("run_root", ENV_RUNROOT),
                                ("home", ENV_HOME)):
            value = env.get(var, "")
            if value and not os.path.isabs(value):
                raise ValueError(f"{var} must be an absolute path, got {value!r} "
                                 "(unset it to use the host's podman storage)")
            values[field_name] = value
        return cls(**values)

    def to_env(self) -> dict[str, str]:
        """The variables that make `from_env` give these options back."""
        pairs = ((ENV_ROOT, self.root), (ENV_RUNROOT, self.run_root), (ENV_HOME, self.home))
        return {var: value for var, value in pairs if value}

    def global_args(self) -> list[str]:
        """podman's global options for this storage (before the subcommand)."""
        args = []
        if self.root:
            args += ["--root", self.root]
        if self.run_root:
            args += ["--runroot", self.run_root]
        return args

    def command(self, podman: str = "podman") -> list[str]:
        """argv prefix of a podman CLI call on this storage."""
        return [podman, *self.global_args()]

    def environ(self, base: Mapping[str, str] | None = None) -> dict[str, str]:
        """The environment of a podman process using these options."""
        env = dict(os.environ if base is None else base)
        if self.home:
            env["HOME"] = self.home
        return env
