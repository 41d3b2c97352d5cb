"""The normalized stack definition the loader produces.

Owns the dataclasses a later converter turns into protobuf specs. Every field
that a file did not give is None (or an empty container), so that merging can
tell "not given" from "given as empty" and the converter can keep Shoal's
defaults. Durations are nanoseconds, sizes bytes, CPU counts nano-CPUs (the
text as written is kept beside them for `stack config`). Paths (bind sources,
env files, secret and config files) are absolute, resolved against the folder
of the first compose file (Docker's working directory), or the current folder
when that file is standard input.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Optional


@dataclass
class Port:
    target: int
    published: Optional[int] = None
    protocol: str = "tcp"         # tcp, udp, sctp
    mode: str = "ingress"         # ingress, host


@dataclass
class FileRef:
    """A service's use of a secret or a config (short form: the source only)."""
    source: str
    target: Optional[str] = None
    uid: Optional[str] = None
    gid: Optional[str] = None
    mode: Optional[int] = None


@dataclass
class ServiceMount:
    """One entry of a service's `volumes:` (short or long form)."""
    type: str                     # volume, bind, tmpfs
    target: str
    source: str = ""              # a named volume, an absolute host path, or "" (anonymous)
    read_only: bool = False
    propagation: Optional[str] = None   # bind only
    nocopy: Optional[bool] = None       # volume only
    tmpfs_size: Optional[int] = None    # bytes, tmpfs only
    tmpfs_mode: Optional[int] = None


@dataclass
class Ulimit:
    soft: int
    hard: int
    single: bool = False          # written as one number (soft = hard)


@dataclass
class Healthcheck:
    test: Optional[list[str]] = None    # ["CMD", ...], ["CMD-SHELL", cmd] or ["NONE"]
    interval: Optional[int] = None
    timeout: Optional[int] = None
    retries: Optional[int] = None
    start_period: Optional[int] = None
    start_interval: Optional[int] = None
    disable: bool = False


@dataclass
class Logging:
    driver: Optional[str] = None        # json-file, local, journald or none
    options: dict[str, str] = field(default_factory=dict)   # max-size, max-file, tag


@dataclass
class ServiceNetwork:
    aliases: Optional[list[str]] = None


@dataclass
class UpdateConfig:
    parallelism: Optional[int] = None
    delay: Optional[int] = None
    failure_action: Optional[str] = None   # pause, continue, rollback (update only)
    monitor: Optional[int] = None
    max_failure_ratio: Optional[float] = None
    order: Optional[str] = None            # stop-first, start-first


@dataclass
class RestartPolicy:
    condition: Optional[str] = None        # none, on-failure, any
    delay: Optional[int] = None
    max_attempts: Optional[int] = None
    window: Optional[int] = None


@dataclass
class Resources:
    cpus: Optional[str] = None             # as written
    nano_cpus: Optional[int] = None
    memory: Optional[int] = None           # bytes
    pids: Optional[int] = None             # limits only; 0 = unlimited


@dataclass
class Placement:
    constraints: Optional[list[str]] = None
    preferences: Optional[list[str]] = None     # spread descriptors
    max_replicas_per_node: Optional[int] = None


@dataclass
class Deploy:
    mode: Optional[str] = None    # replicated, global, replicated-job, global-job
    replicas: Optional[int] = None
    labels: dict[str, str] = field(default_factory=dict)      # service labels
    update_config: Optional[UpdateConfig] = None
    rollback_config: Optional[UpdateConfig] = None
    limits: Optional[Resources] = None
    reservations: Optional[Resources] = None
    restart_policy: Optional[RestartPolicy] = None
    placement: Optional[Placement] = None
    endpoint_mode: Optional[str] = None   # vip, dnsrr


@dataclass
class Service:
    name: str
    image: Optional[str] = None
    command: Optional[list[str]] = None
    entrypoint: Optional[list[str]] = None
    environment: dict[str, Optional[str]] = field(default_factory=dict)  # None: no value
    env_file: Optional[list[str]] = None
    labels: dict[str, str] = field(default_factory=dict)     # container labels
    hostname: Optional[str] = None
    user: Optional[str] = None
    working_dir: Optional[str] = None
    init: Optional[bool] = None
    read_only: Optional[bool] = None
    tty: Optional[bool] = None
    stop_signal: Optional[str] = None
    stop_grace_period: Optional[int] = None
    oom_score_adj: Optional[int] = None    # -1000..1000
    dns: Optional[list[str]] = None
    dns_search: Optional[list[str]] = None
    dns_opt: Optional[list[str]] = None
    group_add: Optional[list[str]] = None
    extra_hosts: Optional[list[str]] = None     # "HOST:IP"
    cap_add: Optional[list[str]] = None
    cap_drop: Optional[list[str]] = None
    sysctls: dict[str, str] = field(default_factory=dict)
    ulimits: dict[str, Ulimit] = field(default_factory=dict)
    tmpfs: Optional[list[str]] = None
    ports: Optional[list[Port]] = None
    networks: Optional[dict[str, Optional[ServiceNetwork]]] = None
    secrets: Optional[list[FileRef]] = None
    configs: Optional[list[FileRef]] = None
    volumes: Optional[list[ServiceMount]] = None
    healthcheck: Optional[Healthcheck] = None
    logging: Optional[Logging] = None
    deploy: Deploy = field(default_factory=Deploy)


@dataclass
class Network:
    name: Optional[str] = None
    driver: Optional[str] = None            # overlay (the default)
    driver_opts: dict[str, str] = field(default_factory=dict)
    subnets: list[str] = field(default_factory=list)
    external: bool = False
    internal: bool = False
    labels: dict[str, str] = field(default_factory=dict)


@dataclass
class Volume:
    name: Optional[str] = None
    driver: Optional[str] = None
    driver_opts: dict[str, str] = field(default_factory=dict)
    external: bool = False
    labels: dict[str, str] = field(default_factory=dict)


@dataclass
class FileObject:
    """A top-level secret or config: a file of the client, or an external object."""
    name: Optional[str] = None
    file: Optional[str] = None              # absolute path
    external: bool = False
    labels: dict[str, str] = field(default_factory=dict)


@dataclass
class Stack:
    """The merged, interpolated, validated stack of one or more compose files."""
    version: str
    services: dict[str, Service] = field(default_factory=dict)
    networks: dict[str, Network] = field(default_factory=dict)
    volumes: dict[str, Volume] = field(default_factory=dict)
    secrets: dict[str, FileObject] = field(default_factory=dict)
    configs: dict[str, FileObject] = field(default_factory=dict)
    files: list[str] = field(default_factory=list)
