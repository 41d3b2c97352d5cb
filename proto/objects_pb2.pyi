import datetime

from google.protobuf import timestamp_pb2 as _timestamp_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class NodeRole(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    WORKER: _ClassVar[NodeRole]
    MANAGER: _ClassVar[NodeRole]

class TaskState(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    NEW: _ClassVar[TaskState]
    PENDING: _ClassVar[TaskState]
    ASSIGNED: _ClassVar[TaskState]
    ACCEPTED: _ClassVar[TaskState]
    PREPARING: _ClassVar[TaskState]
    READY: _ClassVar[TaskState]
    STARTING: _ClassVar[TaskState]
    RUNNING: _ClassVar[TaskState]
    COMPLETE: _ClassVar[TaskState]
    SHUTDOWN: _ClassVar[TaskState]
    FAILED: _ClassVar[TaskState]
    REJECTED: _ClassVar[TaskState]
    REMOVE: _ClassVar[TaskState]
    ORPHANED: _ClassVar[TaskState]
WORKER: NodeRole
MANAGER: NodeRole
NEW: TaskState
PENDING: TaskState
ASSIGNED: TaskState
ACCEPTED: TaskState
PREPARING: TaskState
READY: TaskState
STARTING: TaskState
RUNNING: TaskState
COMPLETE: TaskState
SHUTDOWN: TaskState
FAILED: TaskState
REJECTED: TaskState
REMOVE: TaskState
ORPHANED: TaskState

class Meta(_message.Message):
    __slots__ = ("version", "created_at", "updated_at")
    VERSION_FIELD_NUMBER: _ClassVar[int]
    CREATED_AT_FIELD_NUMBER: _ClassVar[int]
    UPDATED_AT_FIELD_NUMBER: _ClassVar[int]
    version: int
    created_at: _timestamp_pb2.Timestamp
    updated_at: _timestamp_pb2.Timestamp
    def __init__(self, version: _Optional[int] = ..., created_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., updated_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...

class Annotations(_message.Message):
    __slots__ = ("name", "labels")
    class LabelsEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: str
        def __init__(self, key: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...
    NAME_FIELD_NUMBER: _ClassVar[int]
    LABELS_FIELD_NUMBER: _ClassVar[int]
    name: str
    labels: _containers.ScalarMap[str, str]
    def __init__(self, name: _Optional[str] = ..., labels: _Optional[_Mapping[str, str]] = ...) -> None: ...

class NodeSpec(_message.Message):
    __slots__ = ("annotations", "availability", "desired_role")
    class Availability(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
        __slots__ = ()
        ACTIVE: _ClassVar[NodeSpec.Availability]
        PAUSE: _ClassVar[NodeSpec.Availability]
        DRAIN: _ClassVar[NodeSpec.Availability]
    ACTIVE: NodeSpec.Availability
    PAUSE: NodeSpec.Availability
    DRAIN: NodeSpec.Availability
    ANNOTATIONS_FIELD_NUMBER: _ClassVar[int]
    AVAILABILITY_FIELD_NUMBER: _ClassVar[int]
    DESIRED_ROLE_FIELD_NUMBER: _ClassVar[int]
    annotations: Annotations
    availability: NodeSpec.Availability
    desired_role: NodeRole
    def __init__(self, annotations: _Optional[_Union[Annotations, _Mapping]] = ..., availability: _Optional[_Union[NodeSpec.Availability, str]] = ..., desired_role: _Optional[_Union[NodeRole, str]] = ...) -> None: ...

class Platform(_message.Message):
    __slots__ = ("architecture", "os")
    ARCHITECTURE_FIELD_NUMBER: _ClassVar[int]
    OS_FIELD_NUMBER: _ClassVar[int]
    architecture: str
    os: str
    def __init__(self, architecture: _Optional[str] = ..., os: _Optional[str] = ...) -> None: ...

class Resources(_message.Message):
    __slots__ = ("nano_cpus", "memory_bytes", "pids", "generic_resources")
    NANO_CPUS_FIELD_NUMBER: _ClassVar[int]
    MEMORY_BYTES_FIELD_NUMBER: _ClassVar[int]
    PIDS_FIELD_NUMBER: _ClassVar[int]
    GENERIC_RESOURCES_FIELD_NUMBER: _ClassVar[int]
    nano_cpus: int
    memory_bytes: int
    pids: int
    generic_resources: _containers.RepeatedCompositeFieldContainer[GenericResource]
    def __init__(self, nano_cpus: _Optional[int] = ..., memory_bytes: _Optional[int] = ..., pids: _Optional[int] = ..., generic_resources: _Optional[_Iterable[_Union[GenericResource, _Mapping]]] = ...) -> None: ...

class GenericResource(_message.Message):
    __slots__ = ("named_resource_spec", "discrete_resource_spec")
    NAMED_RESOURCE_SPEC_FIELD_NUMBER: _ClassVar[int]
    DISCRETE_RESOURCE_SPEC_FIELD_NUMBER: _ClassVar[int]
    named_resource_spec: NamedGenericResource
    discrete_resource_spec: DiscreteGenericResource
    def __init__(self, named_resource_spec: _Optional[_Union[NamedGenericResource, _Mapping]] = ..., discrete_resource_spec: _Optional[_Union[DiscreteGenericResource, _Mapping]] = ...) -> None: ...

class NamedGenericResource(_message.Message):
    __slots__ = ("kind", "value")
    KIND_FIELD_NUMBER: _ClassVar[int]
    VALUE_FIELD_NUMBER: _ClassVar[int]
    kind: str
    value: str
    def __init__(self, kind: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...

class DiscreteGenericResource(_message.Message):
    __slots__ = ("kind", "value")
    KIND_FIELD_NUMBER: _ClassVar[int]
    VALUE_FIELD_NUMBER: _ClassVar[int]
    kind: str
    value: int
    def __init__(self, kind: _Optional[str] = ..., value: _Optional[int] = ...) -> None: ...

class NodeDescription(_message.Message):
    __slots__ = ("hostname", "platform", "resources", "engine_version", "engine_labels", "tls_info", "data_path_addr")
    class EngineLabelsEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: str
        def __init__(self, key: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...
    HOSTNAME_FIELD_NUMBER: _ClassVar[int]
    PLATFORM_FIELD_NUMBER: _ClassVar[int]
    RESOURCES_FIELD_NUMBER: _ClassVar[int]
    ENGINE_VERSION_FIELD_NUMBER: _ClassVar[int]
    ENGINE_LABELS_FIELD_NUMBER: _ClassVar[int]
    TLS_INFO_FIELD_NUMBER: _ClassVar[int]
    DATA_PATH_ADDR_FIELD_NUMBER: _ClassVar[int]
    hostname: str
    platform: Platform
    resources: Resources
    engine_version: str
    engine_labels: _containers.ScalarMap[str, str]
    tls_info: NodeTLSInfo
    data_path_addr: str
    def __init__(self, hostname: _Optional[str] = ..., platform: _Optional[_Union[Platform, _Mapping]] = ..., resources: _Optional[_Union[Resources, _Mapping]] = ..., engine_version: _Optional[str] = ..., engine_labels: _Optional[_Mapping[str, str]] = ..., tls_info: _Optional[_Union[NodeTLSInfo, _Mapping]] = ..., data_path_addr: _Optional[str] = ...) -> None: ...

class NodeTLSInfo(_message.Message):
    __slots__ = ("trust_root", "cert_issuer_subject", "cert_issuer_public_key")
    TRUST_ROOT_FIELD_NUMBER: _ClassVar[int]
    CERT_ISSUER_SUBJECT_FIELD_NUMBER: _ClassVar[int]
    CERT_ISSUER_PUBLIC_KEY_FIELD_NUMBER: _ClassVar[int]
    trust_root: bytes
    cert_issuer_subject: bytes
    cert_issuer_public_key: bytes
    def __init__(self, trust_root: _Optional[bytes] = ..., cert_issuer_subject: _Optional[bytes] = ..., cert_issuer_public_key: _Optional[bytes] = ...) -> None: ...

class NodeStatus(_message.Message):
    __slots__ = ("state", "message", "addr", "volumes")
    class State(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
        __slots__ = ()
        UNKNOWN: _ClassVar[NodeStatus.State]
        DOWN: _ClassVar[NodeStatus.State]
        READY: _ClassVar[NodeStatus.State]
        DISCONNECTED: _ClassVar[NodeStatus.State]
    UNKNOWN: NodeStatus.State
    DOWN: NodeStatus.State
    READY: NodeStatus.State
    DISCONNECTED: NodeStatus.State
    STATE_FIELD_NUMBER: _ClassVar[int]
    MESSAGE_FIELD_NUMBER: _ClassVar[int]
    ADDR_FIELD_NUMBER: _ClassVar[int]
    VOLUMES_FIELD_NUMBER: _ClassVar[int]
    state: NodeStatus.State
    message: str
    addr: str
    volumes: _containers.RepeatedCompositeFieldContainer[NodeVolume]
    def __init__(self, state: _Optional[_Union[NodeStatus.State, str]] = ..., message: _Optional[str] = ..., addr: _Optional[str] = ..., volumes: _Optional[_Iterable[_Union[NodeVolume, _Mapping]]] = ...) -> None: ...

class ManagerStatus(_message.Message):
    __slots__ = ("raft_addr", "leader", "reachability", "addr")
    class Reachability(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
        __slots__ = ()
        UNKNOWN: _ClassVar[ManagerStatus.Reachability]
        UNREACHABLE: _ClassVar[ManagerStatus.Reachability]
        REACHABLE: _ClassVar[ManagerStatus.Reachability]
    UNKNOWN: ManagerStatus.Reachability
    UNREACHABLE: ManagerStatus.Reachability
    REACHABLE: ManagerStatus.Reachability
    RAFT_ADDR_FIELD_NUMBER: _ClassVar[int]
    LEADER_FIELD_NUMBER: _ClassVar[int]
    REACHABILITY_FIELD_NUMBER: _ClassVar[int]
    ADDR_FIELD_NUMBER: _ClassVar[int]
    raft_addr: str
    leader: bool
    reachability: ManagerStatus.Reachability
    addr: str
    def __init__(self, raft_addr: _Optional[str] = ..., leader: _Optional[bool] = ..., reachability: _Optional[_Union[ManagerStatus.Reachability, str]] = ..., addr: _Optional[str] = ...) -> None: ...

class Node(_message.Message):
    __slots__ = ("id", "meta", "spec", "description", "status", "manager_status", "role", "attachments")
    ID_FIELD_NUMBER: _ClassVar[int]
    META_FIELD_NUMBER: _ClassVar[int]
    SPEC_FIELD_NUMBER: _ClassVar[int]
    DESCRIPTION_FIELD_NUMBER: _ClassVar[int]
    STATUS_FIELD_NUMBER: _ClassVar[int]
    MANAGER_STATUS_FIELD_NUMBER: _ClassVar[int]
    ROLE_FIELD_NUMBER: _ClassVar[int]
    ATTACHMENTS_FIELD_NUMBER: _ClassVar[int]
    id: str
    meta: Meta
    spec: NodeSpec
    description: NodeDescription
    status: NodeStatus
    manager_status: ManagerStatus
    role: NodeRole
    attachments: _containers.RepeatedCompositeFieldContainer[NetworkAttachment]
    def __init__(self, id: _Optional[str] = ..., meta: _Optional[_Union[Meta, _Mapping]] = ..., spec: _Optional[_Union[NodeSpec, _Mapping]] = ..., description: _Optional[_Union[NodeDescription, _Mapping]] = ..., status: _Optional[_Union[NodeStatus, _Mapping]] = ..., manager_status: _Optional[_Union[ManagerStatus, _Mapping]] = ..., role: _Optional[_Union[NodeRole, str]] = ..., attachments: _Optional[_Iterable[_Union[NetworkAttachment, _Mapping]]] = ...) -> None: ...

class Duration(_message.Message):
    __slots__ = ("nanos",)
    NANOS_FIELD_NUMBER: _ClassVar[int]
    nanos: int
    def __init__(self, nanos: _Optional[int] = ...) -> None: ...

class HealthConfig(_message.Message):
    __slots__ = ("test", "interval", "timeout", "retries", "start_period", "start_interval")
    TEST_FIELD_NUMBER: _ClassVar[int]
    INTERVAL_FIELD_NUMBER: _ClassVar[int]
    TIMEOUT_FIELD_NUMBER: _ClassVar[int]
    RETRIES_FIELD_NUMBER: _ClassVar[int]
    START_PERIOD_FIELD_NUMBER: _ClassVar[int]
    START_INTERVAL_FIELD_NUMBER: _ClassVar[int]
    test: _containers.RepeatedScalarFieldContainer[str]
    interval: Duration
    timeout: Duration
    retries: int
    start_period: Duration
    start_interval: Duration
    def __init__(self, test: _Optional[_Iterable[str]] = ..., interval: _Optional[_Union[Duration, _Mapping]] = ..., timeout: _Optional[_Union[Duration, _Mapping]] = ..., retries: _Optional[int] = ..., start_period: _Optional[_Union[Duration, _Mapping]] = ..., start_interval: _Optional[_Union[Duration, _Mapping]] = ...) -> None: ...

class ContainerSpec(_message.Message):
    __slots__ = ("image", "labels", "command", "args", "env", "user", "dir", "hostname", "stop_signal", "stop_grace_period", "healthcheck", "tty", "read_only", "groups", "secrets", "configs", "dns_nameservers", "dns_search", "dns_options", "init", "mounts", "cap_add", "cap_drop", "sysctls", "ulimits", "hosts", "oom_score_adj", "pull_options")
    class LabelsEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: str
        def __init__(self, key: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...
    class SysctlsEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: str
        def __init__(self, key: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...
    IMAGE_FIELD_NUMBER: _ClassVar[int]
    LABELS_FIELD_NUMBER: _ClassVar[int]
    COMMAND_FIELD_NUMBER: _ClassVar[int]
    ARGS_FIELD_NUMBER: _ClassVar[int]
    ENV_FIELD_NUMBER: _ClassVar[int]
    USER_FIELD_NUMBER: _ClassVar[int]
    DIR_FIELD_NUMBER: _ClassVar[int]
    HOSTNAME_FIELD_NUMBER: _ClassVar[int]
    STOP_SIGNAL_FIELD_NUMBER: _ClassVar[int]
    STOP_GRACE_PERIOD_FIELD_NUMBER: _ClassVar[int]
    HEALTHCHECK_FIELD_NUMBER: _ClassVar[int]
    TTY_FIELD_NUMBER: _ClassVar[int]
    READ_ONLY_FIELD_NUMBER: _ClassVar[int]
    GROUPS_FIELD_NUMBER: _ClassVar[int]
    SECRETS_FIELD_NUMBER: _ClassVar[int]
    CONFIGS_FIELD_NUMBER: _ClassVar[int]
    DNS_NAMESERVERS_FIELD_NUMBER: _ClassVar[int]
    DNS_SEARCH_FIELD_NUMBER: _ClassVar[int]
    DNS_OPTIONS_FIELD_NUMBER: _ClassVar[int]
    INIT_FIELD_NUMBER: _ClassVar[int]
    MOUNTS_FIELD_NUMBER: _ClassVar[int]
    CAP_ADD_FIELD_NUMBER: _ClassVar[int]
    CAP_DROP_FIELD_NUMBER: _ClassVar[int]
    SYSCTLS_FIELD_NUMBER: _ClassVar[int]
    ULIMITS_FIELD_NUMBER: _ClassVar[int]
    HOSTS_FIELD_NUMBER: _ClassVar[int]
    OOM_SCORE_ADJ_FIELD_NUMBER: _ClassVar[int]
    PULL_OPTIONS_FIELD_NUMBER: _ClassVar[int]
    image: str
    labels: _containers.ScalarMap[str, str]
    command: _containers.RepeatedScalarFieldContainer[str]
    args: _containers.RepeatedScalarFieldContainer[str]
    env: _containers.RepeatedScalarFieldContainer[str]
    user: str
    dir: str
    hostname: str
    stop_signal: str
    stop_grace_period: Duration
    healthcheck: HealthConfig
    tty: bool
    read_only: bool
    groups: _containers.RepeatedScalarFieldContainer[str]
    secrets: _containers.RepeatedCompositeFieldContainer[SecretReference]
    configs: _containers.RepeatedCompositeFieldContainer[ConfigReference]
    dns_nameservers: _containers.RepeatedScalarFieldContainer[str]
    dns_search: _containers.RepeatedScalarFieldContainer[str]
    dns_options: _containers.RepeatedScalarFieldContainer[str]
    init: bool
    mounts: _containers.RepeatedCompositeFieldContainer[Mount]
    cap_add: _containers.RepeatedScalarFieldContainer[str]
    cap_drop: _containers.RepeatedScalarFieldContainer[str]
    sysctls: _containers.ScalarMap[str, str]
    ulimits: _containers.RepeatedCompositeFieldContainer[Ulimit]
    hosts: _containers.RepeatedScalarFieldContainer[str]
    oom_score_adj: int
    pull_options: PullOptions
    def __init__(self, image: _Optional[str] = ..., labels: _Optional[_Mapping[str, str]] = ..., command: _Optional[_Iterable[str]] = ..., args: _Optional[_Iterable[str]] = ..., env: _Optional[_Iterable[str]] = ..., user: _Optional[str] = ..., dir: _Optional[str] = ..., hostname: _Optional[str] = ..., stop_signal: _Optional[str] = ..., stop_grace_period: _Optional[_Union[Duration, _Mapping]] = ..., healthcheck: _Optional[_Union[HealthConfig, _Mapping]] = ..., tty: _Optional[bool] = ..., read_only: _Optional[bool] = ..., groups: _Optional[_Iterable[str]] = ..., secrets: _Optional[_Iterable[_Union[SecretReference, _Mapping]]] = ..., configs: _Optional[_Iterable[_Union[ConfigReference, _Mapping]]] = ..., dns_nameservers: _Optional[_Iterable[str]] = ..., dns_search: _Optional[_Iterable[str]] = ..., dns_options: _Optional[_Iterable[str]] = ..., init: _Optional[bool] = ..., mounts: _Optional[_Iterable[_Union[Mount, _Mapping]]] = ..., cap_add: _Optional[_Iterable[str]] = ..., cap_drop: _Optional[_Iterable[str]] = ..., sysctls: _Optional[_Mapping[str, str]] = ..., ulimits: _Optional[_Iterable[_Union[Ulimit, _Mapping]]] = ..., hosts: _Optional[_Iterable[str]] = ..., oom_score_adj: _Optional[int] = ..., pull_options: _Optional[_Union[PullOptions, _Mapping]] = ...) -> None: ...

class PullOptions(_message.Message):
    __slots__ = ("registry_auth",)
    REGISTRY_AUTH_FIELD_NUMBER: _ClassVar[int]
    registry_auth: str
    def __init__(self, registry_auth: _Optional[str] = ...) -> None: ...

class Mount(_message.Message):
    __slots__ = ("type", "source", "target", "read_only", "bind_options", "volume_options", "tmpfs_options")
    class Type(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
        __slots__ = ()
        VOLUME: _ClassVar[Mount.Type]
        BIND: _ClassVar[Mount.Type]
        TMPFS: _ClassVar[Mount.Type]
    VOLUME: Mount.Type
    BIND: Mount.Type
    TMPFS: Mount.Type
    class BindOptions(_message.Message):
        __slots__ = ("propagation",)
        PROPAGATION_FIELD_NUMBER: _ClassVar[int]
        propagation: str
        def __init__(self, propagation: _Optional[str] = ...) -> None: ...
    class VolumeOptions(_message.Message):
        __slots__ = ("no_copy", "labels", "driver", "driver_options")
        class LabelsEntry(_message.Message):
            __slots__ = ("key", "value")
            KEY_FIELD_NUMBER: _ClassVar[int]
            VALUE_FIELD_NUMBER: _ClassVar[int]
            key: str
            value: str
            def __init__(self, key: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...
        class DriverOptionsEntry(_message.Message):
            __slots__ = ("key", "value")
            KEY_FIELD_NUMBER: _ClassVar[int]
            VALUE_FIELD_NUMBER: _ClassVar[int]
            key: str
            value: str
            def __init__(self, key: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...
        NO_COPY_FIELD_NUMBER: _ClassVar[int]
        LABELS_FIELD_NUMBER: _ClassVar[int]
        DRIVER_FIELD_NUMBER: _ClassVar[int]
        DRIVER_OPTIONS_FIELD_NUMBER: _ClassVar[int]
        no_copy: bool
        labels: _containers.ScalarMap[str, str]
        driver: str
        driver_options: _containers.ScalarMap[str, str]
        def __init__(self, no_copy: _Optional[bool] = ..., labels: _Optional[_Mapping[str, str]] = ..., driver: _Optional[str] = ..., driver_options: _Optional[_Mapping[str, str]] = ...) -> None: ...
    class TmpfsOptions(_message.Message):
        __slots__ = ("size_bytes", "mode")
        SIZE_BYTES_FIELD_NUMBER: _ClassVar[int]
        MODE_FIELD_NUMBER: _ClassVar[int]
        size_bytes: int
        mode: int
        def __init__(self, size_bytes: _Optional[int] = ..., mode: _Optional[int] = ...) -> None: ...
    TYPE_FIELD_NUMBER: _ClassVar[int]
    SOURCE_FIELD_NUMBER: _ClassVar[int]
    TARGET_FIELD_NUMBER: _ClassVar[int]
    READ_ONLY_FIELD_NUMBER: _ClassVar[int]
    BIND_OPTIONS_FIELD_NUMBER: _ClassVar[int]
    VOLUME_OPTIONS_FIELD_NUMBER: _ClassVar[int]
    TMPFS_OPTIONS_FIELD_NUMBER: _ClassVar[int]
    type: Mount.Type
    source: str
    target: str
    read_only: bool
    bind_options: Mount.BindOptions
    volume_options: Mount.VolumeOptions
    tmpfs_options: Mount.TmpfsOptions
    def __init__(self, type: _Optional[_Union[Mount.Type, str]] = ..., source: _Optional[str] = ..., target: _Optional[str] = ..., read_only: _Optional[bool] = ..., bind_options: _Optional[_Union[Mount.BindOptions, _Mapping]] = ..., volume_options: _Optional[_Union[Mount.VolumeOptions, _Mapping]] = ..., tmpfs_options: _Optional[_Union[Mount.TmpfsOptions, _Mapping]] = ...) -> None: ...

class Ulimit(_message.Message):
    __slots__ = ("name", "soft", "hard")
    NAME_FIELD_NUMBER: _ClassVar[int]
    SOFT_FIELD_NUMBER: _ClassVar[int]
    HARD_FIELD_NUMBER: _ClassVar[int]
    name: str
    soft: int
    hard: int
    def __init__(self, name: _Optional[str] = ..., soft: _Optional[int] = ..., hard: _Optional[int] = ...) -> None: ...

class NodeVolume(_message.Message):
    __slots__ = ("name", "driver", "labels", "options", "mountpoint", "created_at")
    class LabelsEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: str
        def __init__(self, key: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...
    class OptionsEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: str
        def __init__(self, key: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...
    NAME_FIELD_NUMBER: _ClassVar[int]
    DRIVER_FIELD_NUMBER: _ClassVar[int]
    LABELS_FIELD_NUMBER: _ClassVar[int]
    OPTIONS_FIELD_NUMBER: _ClassVar[int]
    MOUNTPOINT_FIELD_NUMBER: _ClassVar[int]
    CREATED_AT_FIELD_NUMBER: _ClassVar[int]
    name: str
    driver: str
    labels: _containers.ScalarMap[str, str]
    options: _containers.ScalarMap[str, str]
    mountpoint: str
    created_at: _timestamp_pb2.Timestamp
    def __init__(self, name: _Optional[str] = ..., driver: _Optional[str] = ..., labels: _Optional[_Mapping[str, str]] = ..., options: _Optional[_Mapping[str, str]] = ..., mountpoint: _Optional[str] = ..., created_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...

class ResourceRequirements(_message.Message):
    __slots__ = ("limits", "reservations")
    LIMITS_FIELD_NUMBER: _ClassVar[int]
    RESERVATIONS_FIELD_NUMBER: _ClassVar[int]
    limits: Resources
    reservations: Resources
    def __init__(self, limits: _Optional[_Union[Resources, _Mapping]] = ..., reservations: _Optional[_Union[Resources, _Mapping]] = ...) -> None: ...

class RestartPolicy(_message.Message):
    __slots__ = ("condition", "delay", "max_attempts", "window", "has_delay")
    class Condition(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
        __slots__ = ()
        ANY: _ClassVar[RestartPolicy.Condition]
        NONE: _ClassVar[RestartPolicy.Condition]
        ON_FAILURE: _ClassVar[RestartPolicy.Condition]
    ANY: RestartPolicy.Condition
    NONE: RestartPolicy.Condition
    ON_FAILURE: RestartPolicy.Condition
    CONDITION_FIELD_NUMBER: _ClassVar[int]
    DELAY_FIELD_NUMBER: _ClassVar[int]
    MAX_ATTEMPTS_FIELD_NUMBER: _ClassVar[int]
    WINDOW_FIELD_NUMBER: _ClassVar[int]
    HAS_DELAY_FIELD_NUMBER: _ClassVar[int]
    condition: RestartPolicy.Condition
    delay: Duration
    max_attempts: int
    window: Duration
    has_delay: bool
    def __init__(self, condition: _Optional[_Union[RestartPolicy.Condition, str]] = ..., delay: _Optional[_Union[Duration, _Mapping]] = ..., max_attempts: _Optional[int] = ..., window: _Optional[_Union[Duration, _Mapping]] = ..., has_delay: _Optional[bool] = ...) -> None: ...

class PlacementPreference(_message.Message):
    __slots__ = ("spread",)
    SPREAD_FIELD_NUMBER: _ClassVar[int]
    spread: str
    def __init__(self, spread: _Optional[str] = ...) -> None: ...

class Placement(_message.Message):
    __slots__ = ("constraints", "preferences", "max_replicas", "platforms")
    CONSTRAINTS_FIELD_NUMBER: _ClassVar[int]
    PREFERENCES_FIELD_NUMBER: _ClassVar[int]
    MAX_REPLICAS_FIELD_NUMBER: _ClassVar[int]
    PLATFORMS_FIELD_NUMBER: _ClassVar[int]
    constraints: _containers.RepeatedScalarFieldContainer[str]
    preferences: _containers.RepeatedCompositeFieldContainer[PlacementPreference]
    max_replicas: int
    platforms: _containers.RepeatedCompositeFieldContainer[Platform]
    def __init__(self, constraints: _Optional[_Iterable[str]] = ..., preferences: _Optional[_Iterable[_Union[PlacementPreference, _Mapping]]] = ..., max_replicas: _Optional[int] = ..., platforms: _Optional[_Iterable[_Union[Platform, _Mapping]]] = ...) -> None: ...

class NetworkAttachmentConfig(_message.Message):
    __slots__ = ("target", "aliases")
    TARGET_FIELD_NUMBER: _ClassVar[int]
    ALIASES_FIELD_NUMBER: _ClassVar[int]
    target: str
    aliases: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, target: _Optional[str] = ..., aliases: _Optional[_Iterable[str]] = ...) -> None: ...

class TaskSpec(_message.Message):
    __slots__ = ("container", "resources", "restart", "placement", "networks", "force_update", "log_driver_options", "log_driver")
    class LogDriverOptionsEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: str
        def __init__(self, key: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...
    CONTAINER_FIELD_NUMBER: _ClassVar[int]
    RESOURCES_FIELD_NUMBER: _ClassVar[int]
    RESTART_FIELD_NUMBER: _ClassVar[int]
    PLACEMENT_FIELD_NUMBER: _ClassVar[int]
    NETWORKS_FIELD_NUMBER: _ClassVar[int]
    FORCE_UPDATE_FIELD_NUMBER: _ClassVar[int]
    LOG_DRIVER_OPTIONS_FIELD_NUMBER: _ClassVar[int]
    LOG_DRIVER_FIELD_NUMBER: _ClassVar[int]
    container: ContainerSpec
    resources: ResourceRequirements
    restart: RestartPolicy
    placement: Placement
    networks: _containers.RepeatedCompositeFieldContainer[NetworkAttachmentConfig]
    force_update: int
    log_driver_options: _containers.ScalarMap[str, str]
    log_driver: str
    def __init__(self, container: _Optional[_Union[ContainerSpec, _Mapping]] = ..., resources: _Optional[_Union[ResourceRequirements, _Mapping]] = ..., restart: _Optional[_Union[RestartPolicy, _Mapping]] = ..., placement: _Optional[_Union[Placement, _Mapping]] = ..., networks: _Optional[_Iterable[_Union[NetworkAttachmentConfig, _Mapping]]] = ..., force_update: _Optional[int] = ..., log_driver_options: _Optional[_Mapping[str, str]] = ..., log_driver: _Optional[str] = ...) -> None: ...

class ReplicatedService(_message.Message):
    __slots__ = ("replicas",)
    REPLICAS_FIELD_NUMBER: _ClassVar[int]
    replicas: int
    def __init__(self, replicas: _Optional[int] = ...) -> None: ...

class GlobalService(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class ReplicatedJob(_message.Message):
    __slots__ = ("max_concurrent", "total_completions")
    MAX_CONCURRENT_FIELD_NUMBER: _ClassVar[int]
    TOTAL_COMPLETIONS_FIELD_NUMBER: _ClassVar[int]
    max_concurrent: int
    total_completions: int
    def __init__(self, max_concurrent: _Optional[int] = ..., total_completions: _Optional[int] = ...) -> None: ...

class GlobalJob(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class UpdateConfig(_message.Message):
    __slots__ = ("parallelism", "delay", "failure_action", "monitor", "max_failure_ratio", "order")
    class FailureAction(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
        __slots__ = ()
        PAUSE: _ClassVar[UpdateConfig.FailureAction]
        CONTINUE: _ClassVar[UpdateConfig.FailureAction]
        ROLLBACK: _ClassVar[UpdateConfig.FailureAction]
    PAUSE: UpdateConfig.FailureAction
    CONTINUE: UpdateConfig.FailureAction
    ROLLBACK: UpdateConfig.FailureAction
    class Order(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
        __slots__ = ()
        STOP_FIRST: _ClassVar[UpdateConfig.Order]
        START_FIRST: _ClassVar[UpdateConfig.Order]
    STOP_FIRST: UpdateConfig.Order
    START_FIRST: UpdateConfig.Order
    PARALLELISM_FIELD_NUMBER: _ClassVar[int]
    DELAY_FIELD_NUMBER: _ClassVar[int]
    FAILURE_ACTION_FIELD_NUMBER: _ClassVar[int]
    MONITOR_FIELD_NUMBER: _ClassVar[int]
    MAX_FAILURE_RATIO_FIELD_NUMBER: _ClassVar[int]
    ORDER_FIELD_NUMBER: _ClassVar[int]
    parallelism: int
    delay: Duration
    failure_action: UpdateConfig.FailureAction
    monitor: Duration
    max_failure_ratio: float
    order: UpdateConfig.Order
    def __init__(self, parallelism: _Optional[int] = ..., delay: _Optional[_Union[Duration, _Mapping]] = ..., failure_action: _Optional[_Union[UpdateConfig.FailureAction, str]] = ..., monitor: _Optional[_Union[Duration, _Mapping]] = ..., max_failure_ratio: _Optional[float] = ..., order: _Optional[_Union[UpdateConfig.Order, str]] = ...) -> None: ...

class PortConfig(_message.Message):
    __slots__ = ("name", "protocol", "target_port", "published_port", "publish_mode")
    class Protocol(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
        __slots__ = ()
        TCP: _ClassVar[PortConfig.Protocol]
        UDP: _ClassVar[PortConfig.Protocol]
        SCTP: _ClassVar[PortConfig.Protocol]
    TCP: PortConfig.Protocol
    UDP: PortConfig.Protocol
    SCTP: PortConfig.Protocol
    class PublishMode(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
        __slots__ = ()
        INGRESS: _ClassVar[PortConfig.PublishMode]
        HOST: _ClassVar[PortConfig.PublishMode]
    INGRESS: PortConfig.PublishMode
    HOST: PortConfig.PublishMode
    NAME_FIELD_NUMBER: _ClassVar[int]
    PROTOCOL_FIELD_NUMBER: _ClassVar[int]
    TARGET_PORT_FIELD_NUMBER: _ClassVar[int]
    PUBLISHED_PORT_FIELD_NUMBER: _ClassVar[int]
    PUBLISH_MODE_FIELD_NUMBER: _ClassVar[int]
    name: str
    protocol: PortConfig.Protocol
    target_port: int
    published_port: int
    publish_mode: PortConfig.PublishMode
    def __init__(self, name: _Optional[str] = ..., protocol: _Optional[_Union[PortConfig.Protocol, str]] = ..., target_port: _Optional[int] = ..., published_port: _Optional[int] = ..., publish_mode: _Optional[_Union[PortConfig.PublishMode, str]] = ...) -> None: ...

class EndpointSpec(_message.Message):
    __slots__ = ("mode", "ports")
    class ResolutionMode(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
        __slots__ = ()
        VIP: _ClassVar[EndpointSpec.ResolutionMode]
        DNSRR: _ClassVar[EndpointSpec.ResolutionMode]
    VIP: EndpointSpec.ResolutionMode
    DNSRR: EndpointSpec.ResolutionMode
    MODE_FIELD_NUMBER: _ClassVar[int]
    PORTS_FIELD_NUMBER: _ClassVar[int]
    mode: EndpointSpec.ResolutionMode
    ports: _containers.RepeatedCompositeFieldContainer[PortConfig]
    def __init__(self, mode: _Optional[_Union[EndpointSpec.ResolutionMode, str]] = ..., ports: _Optional[_Iterable[_Union[PortConfig, _Mapping]]] = ...) -> None: ...

class ServiceSpec(_message.Message):
    __slots__ = ("annotations", "task", "replicated", "replicated_job", "global_job", "update", "rollback", "endpoint")
    ANNOTATIONS_FIELD_NUMBER: _ClassVar[int]
    TASK_FIELD_NUMBER: _ClassVar[int]
    REPLICATED_FIELD_NUMBER: _ClassVar[int]
    GLOBAL_FIELD_NUMBER: _ClassVar[int]
    REPLICATED_JOB_FIELD_NUMBER: _ClassVar[int]
    GLOBAL_JOB_FIELD_NUMBER: _ClassVar[int]
    UPDATE_FIELD_NUMBER: _ClassVar[int]
    ROLLBACK_FIELD_NUMBER: _ClassVar[int]
    ENDPOINT_FIELD_NUMBER: _ClassVar[int]
    annotations: Annotations
    task: TaskSpec
    replicated: ReplicatedService
    replicated_job: ReplicatedJob
    global_job: GlobalJob
    update: UpdateConfig
    rollback: UpdateConfig
    endpoint: EndpointSpec
    def __init__(self, annotations: _Optional[_Union[Annotations, _Mapping]] = ..., task: _Optional[_Union[TaskSpec, _Mapping]] = ..., replicated: _Optional[_Union[ReplicatedService, _Mapping]] = ..., replicated_job: _Optional[_Union[ReplicatedJob, _Mapping]] = ..., global_job: _Optional[_Union[GlobalJob, _Mapping]] = ..., update: _Optional[_Union[UpdateConfig, _Mapping]] = ..., rollback: _Optional[_Union[UpdateConfig, _Mapping]] = ..., endpoint: _Optional[_Union[EndpointSpec, _Mapping]] = ..., **kwargs) -> None: ...

class VirtualIP(_message.Message):
    __slots__ = ("network_id", "addr")
    NETWORK_ID_FIELD_NUMBER: _ClassVar[int]
    ADDR_FIELD_NUMBER: _ClassVar[int]
    network_id: str
    addr: str
    def __init__(self, network_id: _Optional[str] = ..., addr: _Optional[str] = ...) -> None: ...

class Endpoint(_message.Message):
    __slots__ = ("spec", "ports", "virtual_ips")
    SPEC_FIELD_NUMBER: _ClassVar[int]
    PORTS_FIELD_NUMBER: _ClassVar[int]
    VIRTUAL_IPS_FIELD_NUMBER: _ClassVar[int]
    spec: EndpointSpec
    ports: _containers.RepeatedCompositeFieldContainer[PortConfig]
    virtual_ips: _containers.RepeatedCompositeFieldContainer[VirtualIP]
    def __init__(self, spec: _Optional[_Union[EndpointSpec, _Mapping]] = ..., ports: _Optional[_Iterable[_Union[PortConfig, _Mapping]]] = ..., virtual_ips: _Optional[_Iterable[_Union[VirtualIP, _Mapping]]] = ...) -> None: ...

class UpdateStatus(_message.Message):
    __slots__ = ("state", "started_at", "completed_at", "message")
    class State(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
        __slots__ = ()
        UNKNOWN: _ClassVar[UpdateStatus.State]
        UPDATING: _ClassVar[UpdateStatus.State]
        PAUSED: _ClassVar[UpdateStatus.State]
        COMPLETED: _ClassVar[UpdateStatus.State]
        ROLLBACK_STARTED: _ClassVar[UpdateStatus.State]
        ROLLBACK_PAUSED: _ClassVar[UpdateStatus.State]
        ROLLBACK_COMPLETED: _ClassVar[UpdateStatus.State]
    UNKNOWN: UpdateStatus.State
    UPDATING: UpdateStatus.State
    PAUSED: UpdateStatus.State
    COMPLETED: UpdateStatus.State
    ROLLBACK_STARTED: UpdateStatus.State
    ROLLBACK_PAUSED: UpdateStatus.State
    ROLLBACK_COMPLETED: UpdateStatus.State
    STATE_FIELD_NUMBER: _ClassVar[int]
    STARTED_AT_FIELD_NUMBER: _ClassVar[int]
    COMPLETED_AT_FIELD_NUMBER: _ClassVar[int]
    MESSAGE_FIELD_NUMBER: _ClassVar[int]
    state: UpdateStatus.State
    started_at: _timestamp_pb2.Timestamp
    completed_at: _timestamp_pb2.Timestamp
    message: str
    def __init__(self, state: _Optional[_Union[UpdateStatus.State, str]] = ..., started_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., completed_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., message: _Optional[str] = ...) -> None: ...

class Service(_message.Message):
    __slots__ = ("id", "meta", "spec", "previous_spec", "endpoint", "update_status", "spec_version")
    ID_FIELD_NUMBER: _ClassVar[int]
    META_FIELD_NUMBER: _ClassVar[int]
    SPEC_FIELD_NUMBER: _ClassVar[int]
    PREVIOUS_SPEC_FIELD_NUMBER: _ClassVar[int]
    ENDPOINT_FIELD_NUMBER: _ClassVar[int]
    UPDATE_STATUS_FIELD_NUMBER: _ClassVar[int]
    SPEC_VERSION_FIELD_NUMBER: _ClassVar[int]
    id: str
    meta: Meta
    spec: ServiceSpec
    previous_spec: ServiceSpec
    endpoint: Endpoint
    update_status: UpdateStatus
    spec_version: int
    def __init__(self, id: _Optional[str] = ..., meta: _Optional[_Union[Meta, _Mapping]] = ..., spec: _Optional[_Union[ServiceSpec, _Mapping]] = ..., previous_spec: _Optional[_Union[ServiceSpec, _Mapping]] = ..., endpoint: _Optional[_Union[Endpoint, _Mapping]] = ..., update_status: _Optional[_Union[UpdateStatus, _Mapping]] = ..., spec_version: _Optional[int] = ...) -> None: ...

class ContainerStatus(_message.Message):
    __slots__ = ("container_id", "pid", "exit_code")
    CONTAINER_ID_FIELD_NUMBER: _ClassVar[int]
    PID_FIELD_NUMBER: _ClassVar[int]
    EXIT_CODE_FIELD_NUMBER: _ClassVar[int]
    container_id: str
    pid: int
    exit_code: int
    def __init__(self, container_id: _Optional[str] = ..., pid: _Optional[int] = ..., exit_code: _Optional[int] = ...) -> None: ...

class TaskStatus(_message.Message):
    __slots__ = ("timestamp", "state", "message", "err", "container_status", "ports", "health", "running_since")
    TIMESTAMP_FIELD_NUMBER: _ClassVar[int]
    STATE_FIELD_NUMBER: _ClassVar[int]
    MESSAGE_FIELD_NUMBER: _ClassVar[int]
    ERR_FIELD_NUMBER: _ClassVar[int]
    CONTAINER_STATUS_FIELD_NUMBER: _ClassVar[int]
    PORTS_FIELD_NUMBER: _ClassVar[int]
    HEALTH_FIELD_NUMBER: _ClassVar[int]
    RUNNING_SINCE_FIELD_NUMBER: _ClassVar[int]
    timestamp: _timestamp_pb2.Timestamp
    state: TaskState
    message: str
    err: str
    container_status: ContainerStatus
    ports: _containers.RepeatedCompositeFieldContainer[PortConfig]
    health: TaskHealth
    running_since: _timestamp_pb2.Timestamp
    def __init__(self, timestamp: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., state: _Optional[_Union[TaskState, str]] = ..., message: _Optional[str] = ..., err: _Optional[str] = ..., container_status: _Optional[_Union[ContainerStatus, _Mapping]] = ..., ports: _Optional[_Iterable[_Union[PortConfig, _Mapping]]] = ..., health: _Optional[_Union[TaskHealth, _Mapping]] = ..., running_since: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...

class HealthResult(_message.Message):
    __slots__ = ("start", "end", "exit_code", "output")
    START_FIELD_NUMBER: _ClassVar[int]
    END_FIELD_NUMBER: _ClassVar[int]
    EXIT_CODE_FIELD_NUMBER: _ClassVar[int]
    OUTPUT_FIELD_NUMBER: _ClassVar[int]
    start: _timestamp_pb2.Timestamp
    end: _timestamp_pb2.Timestamp
    exit_code: int
    output: str
    def __init__(self, start: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., end: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., exit_code: _Optional[int] = ..., output: _Optional[str] = ...) -> None: ...

class TaskHealth(_message.Message):
    __slots__ = ("status", "failing_streak", "log")
    STATUS_FIELD_NUMBER: _ClassVar[int]
    FAILING_STREAK_FIELD_NUMBER: _ClassVar[int]
    LOG_FIELD_NUMBER: _ClassVar[int]
    status: str
    failing_streak: int
    log: _containers.RepeatedCompositeFieldContainer[HealthResult]
    def __init__(self, status: _Optional[str] = ..., failing_streak: _Optional[int] = ..., log: _Optional[_Iterable[_Union[HealthResult, _Mapping]]] = ...) -> None: ...

class NetworkAttachment(_message.Message):
    __slots__ = ("network_id", "addresses", "aliases")
    NETWORK_ID_FIELD_NUMBER: _ClassVar[int]
    ADDRESSES_FIELD_NUMBER: _ClassVar[int]
    ALIASES_FIELD_NUMBER: _ClassVar[int]
    network_id: str
    addresses: _containers.RepeatedScalarFieldContainer[str]
    aliases: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, network_id: _Optional[str] = ..., addresses: _Optional[_Iterable[str]] = ..., aliases: _Optional[_Iterable[str]] = ...) -> None: ...

class Task(_message.Message):
    __slots__ = ("id", "meta", "spec", "service_id", "slot", "node_id", "annotations", "service_name", "status", "desired_state", "networks", "endpoint", "spec_version", "restarts", "scheduling_message", "assigned_generic_resources")
    ID_FIELD_NUMBER: _ClassVar[int]
    META_FIELD_NUMBER: _ClassVar[int]
    SPEC_FIELD_NUMBER: _ClassVar[int]
    SERVICE_ID_FIELD_NUMBER: _ClassVar[int]
    SLOT_FIELD_NUMBER: _ClassVar[int]
    NODE_ID_FIELD_NUMBER: _ClassVar[int]
    ANNOTATIONS_FIELD_NUMBER: _ClassVar[int]
    SERVICE_NAME_FIELD_NUMBER: _ClassVar[int]
    STATUS_FIELD_NUMBER: _ClassVar[int]
    DESIRED_STATE_FIELD_NUMBER: _ClassVar[int]
    NETWORKS_FIELD_NUMBER: _ClassVar[int]
    ENDPOINT_FIELD_NUMBER: _ClassVar[int]
    SPEC_VERSION_FIELD_NUMBER: _ClassVar[int]
    RESTARTS_FIELD_NUMBER: _ClassVar[int]
    SCHEDULING_MESSAGE_FIELD_NUMBER: _ClassVar[int]
    ASSIGNED_GENERIC_RESOURCES_FIELD_NUMBER: _ClassVar[int]
    id: str
    meta: Meta
    spec: TaskSpec
    service_id: str
    slot: int
    node_id: str
    annotations: Annotations
    service_name: str
    status: TaskStatus
    desired_state: TaskState
    networks: _containers.RepeatedCompositeFieldContainer[NetworkAttachment]
    endpoint: Endpoint
    spec_version: int
    restarts: _containers.RepeatedScalarFieldContainer[float]
    scheduling_message: str
    assigned_generic_resources: _containers.RepeatedCompositeFieldContainer[GenericResource]
    def __init__(self, id: _Optional[str] = ..., meta: _Optional[_Union[Meta, _Mapping]] = ..., spec: _Optional[_Union[TaskSpec, _Mapping]] = ..., service_id: _Optional[str] = ..., slot: _Optional[int] = ..., node_id: _Optional[str] = ..., annotations: _Optional[_Union[Annotations, _Mapping]] = ..., service_name: _Optional[str] = ..., status: _Optional[_Union[TaskStatus, _Mapping]] = ..., desired_state: _Optional[_Union[TaskState, str]] = ..., networks: _Optional[_Iterable[_Union[NetworkAttachment, _Mapping]]] = ..., endpoint: _Optional[_Union[Endpoint, _Mapping]] = ..., spec_version: _Optional[int] = ..., restarts: _Optional[_Iterable[float]] = ..., scheduling_message: _Optional[str] = ..., assigned_generic_resources: _Optional[_Iterable[_Union[GenericResource, _Mapping]]] = ...) -> None: ...

class IPAMConfig(_message.Message):
    __slots__ = ("subnet", "gateway", "range", "aux_addresses")
    class AuxAddressesEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: str
        def __init__(self, key: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...
    SUBNET_FIELD_NUMBER: _ClassVar[int]
    GATEWAY_FIELD_NUMBER: _ClassVar[int]
    RANGE_FIELD_NUMBER: _ClassVar[int]
    AUX_ADDRESSES_FIELD_NUMBER: _ClassVar[int]
    subnet: str
    gateway: str
    range: str
    aux_addresses: _containers.ScalarMap[str, str]
    def __init__(self, subnet: _Optional[str] = ..., gateway: _Optional[str] = ..., range: _Optional[str] = ..., aux_addresses: _Optional[_Mapping[str, str]] = ...) -> None: ...

class NetworkSpec(_message.Message):
    __slots__ = ("annotations", "driver", "driver_options", "ipam", "attachable", "ingress", "internal", "config_only", "config_from")
    class DriverOptionsEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: str
        def __init__(self, key: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...
    ANNOTATIONS_FIELD_NUMBER: _ClassVar[int]
    DRIVER_FIELD_NUMBER: _ClassVar[int]
    DRIVER_OPTIONS_FIELD_NUMBER: _ClassVar[int]
    IPAM_FIELD_NUMBER: _ClassVar[int]
    ATTACHABLE_FIELD_NUMBER: _ClassVar[int]
    INGRESS_FIELD_NUMBER: _ClassVar[int]
    INTERNAL_FIELD_NUMBER: _ClassVar[int]
    CONFIG_ONLY_FIELD_NUMBER: _ClassVar[int]
    CONFIG_FROM_FIELD_NUMBER: _ClassVar[int]
    annotations: Annotations
    driver: str
    driver_options: _containers.ScalarMap[str, str]
    ipam: _containers.RepeatedCompositeFieldContainer[IPAMConfig]
    attachable: bool
    ingress: bool
    internal: bool
    config_only: bool
    config_from: str
    def __init__(self, annotations: _Optional[_Union[Annotations, _Mapping]] = ..., driver: _Optional[str] = ..., driver_options: _Optional[_Mapping[str, str]] = ..., ipam: _Optional[_Iterable[_Union[IPAMConfig, _Mapping]]] = ..., attachable: _Optional[bool] = ..., ingress: _Optional[bool] = ..., internal: _Optional[bool] = ..., config_only: _Optional[bool] = ..., config_from: _Optional[str] = ...) -> None: ...

class Network(_message.Message):
    __slots__ = ("id", "meta", "spec", "vni", "ipam")
    ID_FIELD_NUMBER: _ClassVar[int]
    META_FIELD_NUMBER: _ClassVar[int]
    SPEC_FIELD_NUMBER: _ClassVar[int]
    VNI_FIELD_NUMBER: _ClassVar[int]
    IPAM_FIELD_NUMBER: _ClassVar[int]
    id: str
    meta: Meta
    spec: NetworkSpec
    vni: int
    ipam: _containers.RepeatedCompositeFieldContainer[IPAMConfig]
    def __init__(self, id: _Optional[str] = ..., meta: _Optional[_Union[Meta, _Mapping]] = ..., spec: _Optional[_Union[NetworkSpec, _Mapping]] = ..., vni: _Optional[int] = ..., ipam: _Optional[_Iterable[_Union[IPAMConfig, _Mapping]]] = ...) -> None: ...

class SecretSpec(_message.Message):
    __slots__ = ("annotations", "data")
    ANNOTATIONS_FIELD_NUMBER: _ClassVar[int]
    DATA_FIELD_NUMBER: _ClassVar[int]
    annotations: Annotations
    data: bytes
    def __init__(self, annotations: _Optional[_Union[Annotations, _Mapping]] = ..., data: _Optional[bytes] = ...) -> None: ...

class Secret(_message.Message):
    __slots__ = ("id", "meta", "spec")
    ID_FIELD_NUMBER: _ClassVar[int]
    META_FIELD_NUMBER: _ClassVar[int]
    SPEC_FIELD_NUMBER: _ClassVar[int]
    id: str
    meta: Meta
    spec: SecretSpec
    def __init__(self, id: _Optional[str] = ..., meta: _Optional[_Union[Meta, _Mapping]] = ..., spec: _Optional[_Union[SecretSpec, _Mapping]] = ...) -> None: ...

class SecretReference(_message.Message):
    __slots__ = ("secret_id", "secret_name", "target", "uid", "gid", "mode")
    SECRET_ID_FIELD_NUMBER: _ClassVar[int]
    SECRET_NAME_FIELD_NUMBER: _ClassVar[int]
    TARGET_FIELD_NUMBER: _ClassVar[int]
    UID_FIELD_NUMBER: _ClassVar[int]
    GID_FIELD_NUMBER: _ClassVar[int]
    MODE_FIELD_NUMBER: _ClassVar[int]
    secret_id: str
    secret_name: str
    target: str
    uid: int
    gid: int
    mode: int
    def __init__(self, secret_id: _Optional[str] = ..., secret_name: _Optional[str] = ..., target: _Optional[str] = ..., uid: _Optional[int] = ..., gid: _Optional[int] = ..., mode: _Optional[int] = ...) -> None: ...

class ConfigSpec(_message.Message):
    __slots__ = ("annotations", "data")
    ANNOTATIONS_FIELD_NUMBER: _ClassVar[int]
    DATA_FIELD_NUMBER: _ClassVar[int]
    annotations: Annotations
    data: bytes
    def __init__(self, annotations: _Optional[_Union[Annotations, _Mapping]] = ..., data: _Optional[bytes] = ...) -> None: ...

class Config(_message.Message):
    __slots__ = ("id", "meta", "spec")
    ID_FIELD_NUMBER: _ClassVar[int]
    META_FIELD_NUMBER: _ClassVar[int]
    SPEC_FIELD_NUMBER: _ClassVar[int]
    id: str
    meta: Meta
    spec: ConfigSpec
    def __init__(self, id: _Optional[str] = ..., meta: _Optional[_Union[Meta, _Mapping]] = ..., spec: _Optional[_Union[ConfigSpec, _Mapping]] = ...) -> None: ...

class ConfigReference(_message.Message):
    __slots__ = ("config_id", "config_name", "target", "uid", "gid", "mode")
    CONFIG_ID_FIELD_NUMBER: _ClassVar[int]
    CONFIG_NAME_FIELD_NUMBER: _ClassVar[int]
    TARGET_FIELD_NUMBER: _ClassVar[int]
    UID_FIELD_NUMBER: _ClassVar[int]
    GID_FIELD_NUMBER: _ClassVar[int]
    MODE_FIELD_NUMBER: _ClassVar[int]
    config_id: str
    config_name: str
    target: str
    uid: int
    gid: int
    mode: int
    def __init__(self, config_id: _Optional[str] = ..., config_name: _Optional[str] = ..., target: _Optional[str] = ..., uid: _Optional[int] = ..., gid: _Optional[int] = ..., mode: _Optional[int] = ...) -> None: ...

class OrchestrationConfig(_message.Message):
    __slots__ = ("task_history_retention_limit",)
    TASK_HISTORY_RETENTION_LIMIT_FIELD_NUMBER: _ClassVar[int]
    task_history_retention_limit: int
    def __init__(self, task_history_retention_limit: _Optional[int] = ...) -> None: ...

class DispatcherConfig(_message.Message):
    __slots__ = ("heartbeat_period",)
    HEARTBEAT_PERIOD_FIELD_NUMBER: _ClassVar[int]
    heartbeat_period: Duration
    def __init__(self, heartbeat_period: _Optional[_Union[Duration, _Mapping]] = ...) -> None: ...

class CAConfig(_message.Message):
    __slots__ = ("node_cert_expiry", "external_ca_urls", "force_rotate", "signing_ca_cert", "signing_ca_key", "external_cas")
    NODE_CERT_EXPIRY_FIELD_NUMBER: _ClassVar[int]
    EXTERNAL_CA_URLS_FIELD_NUMBER: _ClassVar[int]
    FORCE_ROTATE_FIELD_NUMBER: _ClassVar[int]
    SIGNING_CA_CERT_FIELD_NUMBER: _ClassVar[int]
    SIGNING_CA_KEY_FIELD_NUMBER: _ClassVar[int]
    EXTERNAL_CAS_FIELD_NUMBER: _ClassVar[int]
    node_cert_expiry: Duration
    external_ca_urls: _containers.RepeatedScalarFieldContainer[str]
    force_rotate: int
    signing_ca_cert: bytes
    signing_ca_key: bytes
    external_cas: _containers.RepeatedCompositeFieldContainer[ExternalCA]
    def __init__(self, node_cert_expiry: _Optional[_Union[Duration, _Mapping]] = ..., external_ca_urls: _Optional[_Iterable[str]] = ..., force_rotate: _Optional[int] = ..., signing_ca_cert: _Optional[bytes] = ..., signing_ca_key: _Optional[bytes] = ..., external_cas: _Optional[_Iterable[_Union[ExternalCA, _Mapping]]] = ...) -> None: ...

class ExternalCA(_message.Message):
    __slots__ = ("protocol", "url", "options", "ca_cert")
    class OptionsEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: str
        def __init__(self, key: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...
    PROTOCOL_FIELD_NUMBER: _ClassVar[int]
    URL_FIELD_NUMBER: _ClassVar[int]
    OPTIONS_FIELD_NUMBER: _ClassVar[int]
    CA_CERT_FIELD_NUMBER: _ClassVar[int]
    protocol: str
    url: str
    options: _containers.ScalarMap[str, str]
    ca_cert: bytes
    def __init__(self, protocol: _Optional[str] = ..., url: _Optional[str] = ..., options: _Optional[_Mapping[str, str]] = ..., ca_cert: _Optional[bytes] = ...) -> None: ...

class EncryptionConfig(_message.Message):
    __slots__ = ("auto_lock_managers",)
    AUTO_LOCK_MANAGERS_FIELD_NUMBER: _ClassVar[int]
    auto_lock_managers: bool
    def __init__(self, auto_lock_managers: _Optional[bool] = ...) -> None: ...

class RaftConfig(_message.Message):
    __slots__ = ("snapshot_interval", "keep_old_snapshots", "election_tick", "heartbeat_tick")
    SNAPSHOT_INTERVAL_FIELD_NUMBER: _ClassVar[int]
    KEEP_OLD_SNAPSHOTS_FIELD_NUMBER: _ClassVar[int]
    ELECTION_TICK_FIELD_NUMBER: _ClassVar[int]
    HEARTBEAT_TICK_FIELD_NUMBER: _ClassVar[int]
    snapshot_interval: int
    keep_old_snapshots: int
    election_tick: int
    heartbeat_tick: int
    def __init__(self, snapshot_interval: _Optional[int] = ..., keep_old_snapshots: _Optional[int] = ..., election_tick: _Optional[int] = ..., heartbeat_tick: _Optional[int] = ...) -> None: ...

class ClusterSpec(_message.Message):
    __slots__ = ("annotations", "orchestration", "dispatcher", "ca_config", "encryption", "raft", "default_addr_pool", "subnet_size", "data_path_port")
    ANNOTATIONS_FIELD_NUMBER: _ClassVar[int]
    ORCHESTRATION_FIELD_NUMBER: _ClassVar[int]
    DISPATCHER_FIELD_NUMBER: _ClassVar[int]
    CA_CONFIG_FIELD_NUMBER: _ClassVar[int]
    ENCRYPTION_FIELD_NUMBER: _ClassVar[int]
    RAFT_FIELD_NUMBER: _ClassVar[int]
    DEFAULT_ADDR_POOL_FIELD_NUMBER: _ClassVar[int]
    SUBNET_SIZE_FIELD_NUMBER: _ClassVar[int]
    DATA_PATH_PORT_FIELD_NUMBER: _ClassVar[int]
    annotations: Annotations
    orchestration: OrchestrationConfig
    dispatcher: DispatcherConfig
    ca_config: CAConfig
    encryption: EncryptionConfig
    raft: RaftConfig
    default_addr_pool: _containers.RepeatedScalarFieldContainer[str]
    subnet_size: int
    data_path_port: int
    def __init__(self, annotations: _Optional[_Union[Annotations, _Mapping]] = ..., orchestration: _Optional[_Union[OrchestrationConfig, _Mapping]] = ..., dispatcher: _Optional[_Union[DispatcherConfig, _Mapping]] = ..., ca_config: _Optional[_Union[CAConfig, _Mapping]] = ..., encryption: _Optional[_Union[EncryptionConfig, _Mapping]] = ..., raft: _Optional[_Union[RaftConfig, _Mapping]] = ..., default_addr_pool: _Optional[_Iterable[str]] = ..., subnet_size: _Optional[int] = ..., data_path_port: _Optional[int] = ...) -> None: ...

class NetworkKey(_message.Message):
    __slots__ = ("id", "key", "created_at", "primary")
    ID_FIELD_NUMBER: _ClassVar[int]
    KEY_FIELD_NUMBER: _ClassVar[int]
    CREATED_AT_FIELD_NUMBER: _ClassVar[int]
    PRIMARY_FIELD_NUMBER: _ClassVar[int]
    id: int
    key: bytes
    created_at: float
    primary: bool
    def __init__(self, id: _Optional[int] = ..., key: _Optional[bytes] = ..., created_at: _Optional[float] = ..., primary: _Optional[bool] = ...) -> None: ...

class JoinTokens(_message.Message):
    __slots__ = ("worker", "manager")
    WORKER_FIELD_NUMBER: _ClassVar[int]
    MANAGER_FIELD_NUMBER: _ClassVar[int]
    worker: str
    manager: str
    def __init__(self, worker: _Optional[str] = ..., manager: _Optional[str] = ...) -> None: ...

class Cluster(_message.Message):
    __slots__ = ("id", "meta", "spec", "join_tokens", "root_ca_cert", "root_rotation", "root_ca_key", "network_keys", "unlock_key")
    ID_FIELD_NUMBER: _ClassVar[int]
    META_FIELD_NUMBER: _ClassVar[int]
    SPEC_FIELD_NUMBER: _ClassVar[int]
    JOIN_TOKENS_FIELD_NUMBER: _ClassVar[int]
    ROOT_CA_CERT_FIELD_NUMBER: _ClassVar[int]
    ROOT_ROTATION_FIELD_NUMBER: _ClassVar[int]
    ROOT_CA_KEY_FIELD_NUMBER: _ClassVar[int]
    NETWORK_KEYS_FIELD_NUMBER: _ClassVar[int]
    UNLOCK_KEY_FIELD_NUMBER: _ClassVar[int]
    id: str
    meta: Meta
    spec: ClusterSpec
    join_tokens: JoinTokens
    root_ca_cert: bytes
    root_rotation: RootRotation
    root_ca_key: bytes
    network_keys: _containers.RepeatedCompositeFieldContainer[NetworkKey]
    unlock_key: str
    def __init__(self, id: _Optional[str] = ..., meta: _Optional[_Union[Meta, _Mapping]] = ..., spec: _Optional[_Union[ClusterSpec, _Mapping]] = ..., join_tokens: _Optional[_Union[JoinTokens, _Mapping]] = ..., root_ca_cert: _Optional[bytes] = ..., root_rotation: _Optional[_Union[RootRotation, _Mapping]] = ..., root_ca_key: _Optional[bytes] = ..., network_keys: _Optional[_Iterable[_Union[NetworkKey, _Mapping]]] = ..., unlock_key: _Optional[str] = ...) -> None: ...

class RootRotation(_message.Message):
    __slots__ = ("ca_cert", "ca_key", "cross_signed_ca_cert")
    CA_CERT_FIELD_NUMBER: _ClassVar[int]
    CA_KEY_FIELD_NUMBER: _ClassVar[int]
    CROSS_SIGNED_CA_CERT_FIELD_NUMBER: _ClassVar[int]
    ca_cert: bytes
    ca_key: bytes
    cross_signed_ca_cert: bytes
    def __init__(self, ca_cert: _Optional[bytes] = ..., ca_key: _Optional[bytes] = ..., cross_signed_ca_cert: _Optional[bytes] = ...) -> None: ...

class StoreObject(_message.Message):
    __slots__ = ("node", "service", "task", "network", "secret", "config", "cluster", "stack")
    NODE_FIELD_NUMBER: _ClassVar[int]
    SERVICE_FIELD_NUMBER: _ClassVar[int]
    TASK_FIELD_NUMBER: _ClassVar[int]
    NETWORK_FIELD_NUMBER: _ClassVar[int]
    SECRET_FIELD_NUMBER: _ClassVar[int]
    CONFIG_FIELD_NUMBER: _ClassVar[int]
    CLUSTER_FIELD_NUMBER: _ClassVar[int]
    STACK_FIELD_NUMBER: _ClassVar[int]
    node: Node
    service: Service
    task: Task
    network: Network
    secret: Secret
    config: Config
    cluster: Cluster
    stack: Stack
    def __init__(self, node: _Optional[_Union[Node, _Mapping]] = ..., service: _Optional[_Union[Service, _Mapping]] = ..., task: _Optional[_Union[Task, _Mapping]] = ..., network: _Optional[_Union[Network, _Mapping]] = ..., secret: _Optional[_Union[Secret, _Mapping]] = ..., config: _Optional[_Union[Config, _Mapping]] = ..., cluster: _Optional[_Union[Cluster, _Mapping]] = ..., stack: _Optional[_Union[Stack, _Mapping]] = ...) -> None: ...

class StackDefinition(_message.Message):
    __slots__ = ("name", "services", "networks", "secrets", "configs", "external_networks", "external_secrets", "external_configs")
    NAME_FIELD_NUMBER: _ClassVar[int]
    SERVICES_FIELD_NUMBER: _ClassVar[int]
    NETWORKS_FIELD_NUMBER: _ClassVar[int]
    SECRETS_FIELD_NUMBER: _ClassVar[int]
    CONFIGS_FIELD_NUMBER: _ClassVar[int]
    EXTERNAL_NETWORKS_FIELD_NUMBER: _ClassVar[int]
    EXTERNAL_SECRETS_FIELD_NUMBER: _ClassVar[int]
    EXTERNAL_CONFIGS_FIELD_NUMBER: _ClassVar[int]
    name: str
    services: _containers.RepeatedCompositeFieldContainer[ServiceSpec]
    networks: _containers.RepeatedCompositeFieldContainer[NetworkSpec]
    secrets: _containers.RepeatedCompositeFieldContainer[SecretSpec]
    configs: _containers.RepeatedCompositeFieldContainer[ConfigSpec]
    external_networks: _containers.RepeatedScalarFieldContainer[str]
    external_secrets: _containers.RepeatedScalarFieldContainer[str]
    external_configs: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, name: _Optional[str] = ..., services: _Optional[_Iterable[_Union[ServiceSpec, _Mapping]]] = ..., networks: _Optional[_Iterable[_Union[NetworkSpec, _Mapping]]] = ..., secrets: _Optional[_Iterable[_Union[SecretSpec, _Mapping]]] = ..., configs: _Optional[_Iterable[_Union[ConfigSpec, _Mapping]]] = ..., external_networks: _Optional[_Iterable[str]] = ..., external_secrets: _Optional[_Iterable[str]] = ..., external_configs: _Optional[_Iterable[str]] = ...) -> None: ...

class Stack(_message.Message):
    __slots__ = ("id", "meta", "name", "definition", "previous_definition")
    ID_FIELD_NUMBER: _ClassVar[int]
    META_FIELD_NUMBER: _ClassVar[int]
    NAME_FIELD_NUMBER: _ClassVar[int]
    DEFINITION_FIELD_NUMBER: _ClassVar[int]
    PREVIOUS_DEFINITION_FIELD_NUMBER: _ClassVar[int]
    id: str
    meta: Meta
    name: str
    definition: StackDefinition
    previous_definition: StackDefinition
    def __init__(self, id: _Optional[str] = ..., meta: _Optional[_Union[Meta, _Mapping]] = ..., name: _Optional[str] = ..., definition: _Optional[_Union[StackDefinition, _Mapping]] = ..., previous_definition: _Optional[_Union[StackDefinition, _Mapping]] = ...) -> None: ...
