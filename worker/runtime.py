"""The container runtime interface the agent drives.

A runtime knows nothing of tasks or the cluster: the agent turns a task into a
`ContainerConfig` and reads back `ContainerState`. Implementations: the podman
runtime (`worker.podman`) and the hollow one of scale tests (`worker.hollow`, no
containers); tests/runtime_contract.py holds both to one behaviour.
"""
from __future__ import annotations

import abc
import builtins
from dataclasses import dataclass, field
from typing import AsyncIterator, Callable, Sequence


HOST_NETWORK = "host"  # ContainerConfig.network_ns value: share the node's network namespace


class RuntimeError_(Exception):
    """A runtime operation failed; the message is fit for a task's error field."""


class ImagePullError(RuntimeError_):
    """The image is not present and could not be pulled."""


class ContainerNotFound(RuntimeError_):
    """The container does not exist (any more)."""


class VolumeNotFound(RuntimeError_):
    """The engine has no volume of that name."""


class VolumeInUse(RuntimeError_):
    """The engine refuses to remove a volume a container uses (the message names them)."""


@dataclass
class Mount:
    """A filesystem in the container: a node path (bind), a named volume of the engine
    (volume; anonymous when `source` is "", removed with its container) or memory (tmpfs)."""
    source: str          # host path (bind), volume name (volume), unused (tmpfs)
    target: str          # path in the container
    read_only: bool = True
    type: str = "bind"   # BIND | VOLUME | TMPFS
    propagation: str = ""     # bind: "" (rprivate), private, shared, slave, r*
    no_copy: bool = False     # volume: not seeded from the image's content at target
    tmpfs_size: int = 0       # tmpfs: bytes, 0 = the engine's default
    tmpfs_mode: int = 0       # tmpfs: permission bits, 0 = the engine's default (1777)


BIND = "bind"       # Mount.type values
VOLUME = "volume"
TMPFS = "tmpfs"


@dataclass(frozen=True)
class Ulimit:
    """A resource limit of the container's processes; -1 = unlimited."""
    name: str            # nofile, nproc, ... (no RLIMIT_ prefix)
    soft: int
    hard: int


@dataclass
class ContainerConfig:
    """Everything needed to create one container."""
    name: str                                  # <service>.<slot>.<task id>
    image: str
    command: list[str] = field(default_factory=list)  # entrypoint override
    args: list[str] = field(default_factory=list)     # cmd override
    env: list[str] = field(default_factory=list)      # KEY=VALUE
    labels: dict[str, str] = field(default_factory=dict)
    user: str = ""
    workdir: str = ""
    hostname: str = ""
    stop_signal: str = ""            # "" = SIGTERM
    stop_grace_period: float = 10.0  # seconds before SIGKILL
    nano_cpus: int = 0               # CPU limit, 1e9 = one core; 0 = none
    memory_bytes: int = 0            # memory limit; 0 = none
    pids_limit: int = 0              # most processes in the container; 0 = unlimited
    oom_score_adj: int = 0           # the kernel's OOM preference, -1000..1000
    network_ns: str = ""             # netns path to join; "host" = the node's; "" = loopback only
    mounts: list[Mount] = field(default_factory=list)
    dns_servers: list[str] = field(default_factory=list)
    dns_search: list[str] = field(default_factory=list)
    dns_options: list[str] = field(default_factory=list)
    tty: bool = False
    read_only: bool = False
    init: bool = False
    groups: list[str] = field(default_factory=list)
    # The exact capability set (CAP_ names); None leaves the engine's default.
    capabilities: list[str] | None = None
    capabilities_requested: list[str] = field(default_factory=list)  # the spec's cap_add
    sysctls: dict[str, str] = field(default_factory=dict)
    ulimits: list[Ulimit] = field(default_factory=list)
    hosts: list[str] = field(default_factory=list)    # extra /etc/hosts lines "IP NAME [ALIAS...]"
    # The log file's size limit in bytes (the task's max-size log option); the engine
    # starts the file afresh when it would pass it. 0 = no limit.
    log_max_size: int = 0
    log_driver: str = "k8s-file"     # podman's log driver: k8s-file, journald or none
    log_tag: str = ""                # podman's log tag; "" = podman's default
    # The image pull's credentials (Docker's X-Registry-Auth value, "" = none), for a
    # pull again when the image went missing before the create; never in a repr or log.
    registry_auth: str = field(default="", repr=False)


@dataclass
class VolumeConfig:
    """A named volume a task's mount needs on its node (created on first use)."""
    name: str
    driver: str = ""     # "" = local (and an existing volume of any driver will do)
    labels: dict[str, str] = field(default_factory=dict)
    options: dict[str, str] = field(default_factory=dict)   # the driver's options


@dataclass
class ContainerState:
    """What the runtime knows of one container."""
    id: str
    name: str
    labels: dict[str, str]
    status: str            # created | running | exited | stopped | paused | unknown ...
    running: bool
    exit_code: int = 0
    pid: int = 0
    error: str = ""        # runtime error (e.g. OCI failure), "" if none
    started_at: float = 0.0   # unix seconds, 0 if never
    finished_at: float = 0.0  # unix seconds, 0 if not finished


@dataclass
class ExecResult:
    """How one command run inside a container (`Runtime.exec`) ended."""
    exit_code: int         # the command's exit code; -1 when it did not finish
    output: bytes = b""    # stdout and stderr as they came, capped by the runtime
    timed_out: bool = False


@dataclass(frozen=True)
class ImageHealth:
    """An image's own HEALTHCHECK: its test (["CMD", ...], ["CMD-SHELL", "..."] or
    ["NONE"]) and settings, durations in seconds; 0 means not set."""
    test: tuple[str, ...] = ()
    interval: float = 0.0
    timeout: float = 0.0
    start_period: float = 0.0
    start_interval: float = 0.0
    retries: int = 0


@dataclass(frozen=True)
class VolumeInfo:
    """One named volume of the engine, as `Runtime.list_volumes` reports it."""
    name: str
    driver: str = "local"
    labels: dict[str, str] = field(default_factory=dict)
    options: dict[str, str] = field(default_factory=dict)
    mountpoint: str = ""
    created_at: float = 0.0   # unix seconds, 0 when unknown


@dataclass
class LogLine:
    stream: str    # "stdout" | "stderr"
    data: bytes    # one line, no trailing newline
    timestamp: float


class Runtime(abc.ABC):
    """Async interface to a container engine. Every method may raise RuntimeError_."""

    @abc.abstractmethod
    async def version(self) -> str:
        """Engine version string, e.g. "podman 4.3.1"."""

    @abc.abstractmethod
    async def ensure_image(self, image: str, registry_auth: str = "") -> None:
        """Pulls the image if it is not present; raises ImagePullError with the reason.
        `registry_auth` (Docker's X-Registry-Auth value, "" = none) is the pull's
        credentials for the image's registry: used for that pull only, never logged."""

    @abc.abstractmethod
    async def create(self, config: ContainerConfig) -> str:
        """Creates (does not start) a container; returns its ID."""

    @abc.abstractmethod
    async def start(self, container_id: str) -> None:
        """Starts a created container."""

    @abc.abstractmethod
    async def wait(self, container_id: str,
                   on_running: Callable[[ContainerState], None] | None = None) -> ContainerState:
        """Blocks until the container is no longer running; returns its final state.

        `on_running`, if given, is called once with the container's state when the
        wait first sees it running (its PID, without an inspect of the caller's own).
        """

    @abc.abstractmethod
    async def stop(self, container_id: str, signal: str, grace_period: float) -> None:
        """Sends `signal` (default SIGTERM), then SIGKILL after grace_period seconds."""

    @abc.abstractmethod
    async def remove(self, container_id: str) -> None:
        """Removes the container (forcefully); missing containers are not an error."""

    @abc.abstractmethod
    async def inspect(self, container_id: str) -> ContainerState:
        """Current state; raises ContainerNotFound."""

    @abc.abstractmethod
    async def list(self, labels: dict[str, str]) -> list[ContainerState]:
        """Every container (running or not) carrying all the given labels."""

    @abc.abstractmethod
    def logs(self, container_id: str, tail: int = -1, follow: bool = False) -> AsyncIterator[LogLine]:
        """Yields the container's output lines; with follow, until it exits."""

    @abc.abstractmethod
    async def exec(self, container_id: str, argv: Sequence[str], timeout: float,
                   max_output: int = 4096) -> ExecResult:
        """Runs `argv` inside the running container and waits for it to end.

        The command is abandoned (and killed where the engine allows) after `timeout`
        seconds: the result then has `timed_out` and exit code -1. Output beyond
        `max_output` bytes is dropped. Raises ContainerNotFound, RuntimeError_.
        """

    # ---- named volumes of task mounts (issue 12) ----

    async def ensure_volume(self, volume: VolumeConfig) -> None:
        """Creates the named volume unless the engine has it (an existing one is reused
        as it is, never changed). Raises RuntimeError_ with the reason, e.g. a driver
        the engine does not have. Engines without volumes keep this default."""
        raise RuntimeError_(f"volume {volume.name}: this node's container runtime has "
                            "no named volumes")

    async def image_health(self, image: str) -> ImageHealth | None:
        """The HEALTHCHECK the (present) image declares, None when it declares none.
        Engines that cannot tell keep this default."""
        return None

    async def list_volumes(self) -> builtins.list[VolumeInfo]:
        """Every named volume the engine holds. Engines without volumes keep this default."""
        return []

    async def remove_volume(self, name: str) -> None:
        """Removes the volume unless a container uses it; raises VolumeNotFound,
        VolumeInUse (naming the containers) or RuntimeError_."""
        raise VolumeNotFound(f"no such volume: {name}")

    async def close(self) -> None:
        """Releases connections and helper processes."""
