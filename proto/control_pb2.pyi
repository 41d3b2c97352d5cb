from proto import objects_pb2 as _objects_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class ListFilters(_message.Message):
    __slots__ = ("names", "id_prefixes", "labels", "service_ids", "node_ids", "desired_states", "roles", "name_prefixes")
    class LabelsEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: str
        def __init__(self, key: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...
    NAMES_FIELD_NUMBER: _ClassVar[int]
    ID_PREFIXES_FIELD_NUMBER: _ClassVar[int]
    LABELS_FIELD_NUMBER: _ClassVar[int]
    SERVICE_IDS_FIELD_NUMBER: _ClassVar[int]
    NODE_IDS_FIELD_NUMBER: _ClassVar[int]
    DESIRED_STATES_FIELD_NUMBER: _ClassVar[int]
    ROLES_FIELD_NUMBER: _ClassVar[int]
    NAME_PREFIXES_FIELD_NUMBER: _ClassVar[int]
    names: _containers.RepeatedScalarFieldContainer[str]
    id_prefixes: _containers.RepeatedScalarFieldContainer[str]
    labels: _containers.ScalarMap[str, str]
    service_ids: _containers.RepeatedScalarFieldContainer[str]
    node_ids: _containers.RepeatedScalarFieldContainer[str]
    desired_states: _containers.RepeatedScalarFieldContainer[_objects_pb2.TaskState]
    roles: _containers.RepeatedScalarFieldContainer[_objects_pb2.NodeRole]
    name_prefixes: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, names: _Optional[_Iterable[str]] = ..., id_prefixes: _Optional[_Iterable[str]] = ..., labels: _Optional[_Mapping[str, str]] = ..., service_ids: _Optional[_Iterable[str]] = ..., node_ids: _Optional[_Iterable[str]] = ..., desired_states: _Optional[_Iterable[_Union[_objects_pb2.TaskState, str]]] = ..., roles: _Optional[_Iterable[_Union[_objects_pb2.NodeRole, str]]] = ..., name_prefixes: _Optional[_Iterable[str]] = ...) -> None: ...

class GetNodeRequest(_message.Message):
    __slots__ = ("node_id",)
    NODE_ID_FIELD_NUMBER: _ClassVar[int]
    node_id: str
    def __init__(self, node_id: _Optional[str] = ...) -> None: ...

class GetNodeResponse(_message.Message):
    __slots__ = ("node",)
    NODE_FIELD_NUMBER: _ClassVar[int]
    node: _objects_pb2.Node
    def __init__(self, node: _Optional[_Union[_objects_pb2.Node, _Mapping]] = ...) -> None: ...

class ListNodesRequest(_message.Message):
    __slots__ = ("filters",)
    FILTERS_FIELD_NUMBER: _ClassVar[int]
    filters: ListFilters
    def __init__(self, filters: _Optional[_Union[ListFilters, _Mapping]] = ...) -> None: ...

class ListNodesResponse(_message.Message):
    __slots__ = ("nodes",)
    NODES_FIELD_NUMBER: _ClassVar[int]
    nodes: _containers.RepeatedCompositeFieldContainer[_objects_pb2.Node]
    def __init__(self, nodes: _Optional[_Iterable[_Union[_objects_pb2.Node, _Mapping]]] = ...) -> None: ...

class UpdateNodeRequest(_message.Message):
    __slots__ = ("node_id", "node_version", "spec")
    NODE_ID_FIELD_NUMBER: _ClassVar[int]
    NODE_VERSION_FIELD_NUMBER: _ClassVar[int]
    SPEC_FIELD_NUMBER: _ClassVar[int]
    node_id: str
    node_version: int
    spec: _objects_pb2.NodeSpec
    def __init__(self, node_id: _Optional[str] = ..., node_version: _Optional[int] = ..., spec: _Optional[_Union[_objects_pb2.NodeSpec, _Mapping]] = ...) -> None: ...

class UpdateNodeResponse(_message.Message):
    __slots__ = ("node",)
    NODE_FIELD_NUMBER: _ClassVar[int]
    node: _objects_pb2.Node
    def __init__(self, node: _Optional[_Union[_objects_pb2.Node, _Mapping]] = ...) -> None: ...

class RemoveNodeRequest(_message.Message):
    __slots__ = ("node_id", "force")
    NODE_ID_FIELD_NUMBER: _ClassVar[int]
    FORCE_FIELD_NUMBER: _ClassVar[int]
    node_id: str
    force: bool
    def __init__(self, node_id: _Optional[str] = ..., force: _Optional[bool] = ...) -> None: ...

class RemoveNodeResponse(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class CreateServiceRequest(_message.Message):
    __slots__ = ("spec",)
    SPEC_FIELD_NUMBER: _ClassVar[int]
    spec: _objects_pb2.ServiceSpec
    def __init__(self, spec: _Optional[_Union[_objects_pb2.ServiceSpec, _Mapping]] = ...) -> None: ...

class CreateServiceResponse(_message.Message):
    __slots__ = ("service",)
    SERVICE_FIELD_NUMBER: _ClassVar[int]
    service: _objects_pb2.Service
    def __init__(self, service: _Optional[_Union[_objects_pb2.Service, _Mapping]] = ...) -> None: ...

class GetServiceRequest(_message.Message):
    __slots__ = ("service_id",)
    SERVICE_ID_FIELD_NUMBER: _ClassVar[int]
    service_id: str
    def __init__(self, service_id: _Optional[str] = ...) -> None: ...

class GetServiceResponse(_message.Message):
    __slots__ = ("service",)
    SERVICE_FIELD_NUMBER: _ClassVar[int]
    service: _objects_pb2.Service
    def __init__(self, service: _Optional[_Union[_objects_pb2.Service, _Mapping]] = ...) -> None: ...

class ListServicesRequest(_message.Message):
    __slots__ = ("filters", "status")
    FILTERS_FIELD_NUMBER: _ClassVar[int]
    STATUS_FIELD_NUMBER: _ClassVar[int]
    filters: ListFilters
    status: bool
    def __init__(self, filters: _Optional[_Union[ListFilters, _Mapping]] = ..., status: _Optional[bool] = ...) -> None: ...

class ServiceStatus(_message.Message):
    __slots__ = ("running_tasks", "desired_tasks", "completed_tasks", "total_completions")
    RUNNING_TASKS_FIELD_NUMBER: _ClassVar[int]
    DESIRED_TASKS_FIELD_NUMBER: _ClassVar[int]
    COMPLETED_TASKS_FIELD_NUMBER: _ClassVar[int]
    TOTAL_COMPLETIONS_FIELD_NUMBER: _ClassVar[int]
    running_tasks: int
    desired_tasks: int
    completed_tasks: int
    total_completions: int
    def __init__(self, running_tasks: _Optional[int] = ..., desired_tasks: _Optional[int] = ..., completed_tasks: _Optional[int] = ..., total_completions: _Optional[int] = ...) -> None: ...

class ListServicesResponse(_message.Message):
    __slots__ = ("services", "statuses")
    class StatusesEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: ServiceStatus
        def __init__(self, key: _Optional[str] = ..., value: _Optional[_Union[ServiceStatus, _Mapping]] = ...) -> None: ...
    SERVICES_FIELD_NUMBER: _ClassVar[int]
    STATUSES_FIELD_NUMBER: _ClassVar[int]
    services: _containers.RepeatedCompositeFieldContainer[_objects_pb2.Service]
    statuses: _containers.MessageMap[str, ServiceStatus]
    def __init__(self, services: _Optional[_Iterable[_Union[_objects_pb2.Service, _Mapping]]] = ..., statuses: _Optional[_Mapping[str, ServiceStatus]] = ...) -> None: ...

class UpdateServiceRequest(_message.Message):
    __slots__ = ("service_id", "service_version", "spec", "rollback")
    SERVICE_ID_FIELD_NUMBER: _ClassVar[int]
    SERVICE_VERSION_FIELD_NUMBER: _ClassVar[int]
    SPEC_FIELD_NUMBER: _ClassVar[int]
    ROLLBACK_FIELD_NUMBER: _ClassVar[int]
    service_id: str
    service_version: int
    spec: _objects_pb2.ServiceSpec
    rollback: bool
    def __init__(self, service_id: _Optional[str] = ..., service_version: _Optional[int] = ..., spec: _Optional[_Union[_objects_pb2.ServiceSpec, _Mapping]] = ..., rollback: _Optional[bool] = ...) -> None: ...

class UpdateServiceResponse(_message.Message):
    __slots__ = ("service",)
    SERVICE_FIELD_NUMBER: _ClassVar[int]
    service: _objects_pb2.Service
    def __init__(self, service: _Optional[_Union[_objects_pb2.Service, _Mapping]] = ...) -> None: ...

class RemoveServiceRequest(_message.Message):
    __slots__ = ("service_id",)
    SERVICE_ID_FIELD_NUMBER: _ClassVar[int]
    service_id: str
    def __init__(self, service_id: _Optional[str] = ...) -> None: ...

class RemoveServiceResponse(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class GetTaskRequest(_message.Message):
    __slots__ = ("task_id",)
    TASK_ID_FIELD_NUMBER: _ClassVar[int]
    task_id: str
    def __init__(self, task_id: _Optional[str] = ...) -> None: ...

class GetTaskResponse(_message.Message):
    __slots__ = ("task",)
    TASK_FIELD_NUMBER: _ClassVar[int]
    task: _objects_pb2.Task
    def __init__(self, task: _Optional[_Union[_objects_pb2.Task, _Mapping]] = ...) -> None: ...

class ListTasksRequest(_message.Message):
    __slots__ = ("filters",)
    FILTERS_FIELD_NUMBER: _ClassVar[int]
    filters: ListFilters
    def __init__(self, filters: _Optional[_Union[ListFilters, _Mapping]] = ...) -> None: ...

class ListTasksResponse(_message.Message):
    __slots__ = ("tasks",)
    TASKS_FIELD_NUMBER: _ClassVar[int]
    tasks: _containers.RepeatedCompositeFieldContainer[_objects_pb2.Task]
    def __init__(self, tasks: _Optional[_Iterable[_Union[_objects_pb2.Task, _Mapping]]] = ...) -> None: ...

class CreateNetworkRequest(_message.Message):
    __slots__ = ("spec",)
    SPEC_FIELD_NUMBER: _ClassVar[int]
    spec: _objects_pb2.NetworkSpec
    def __init__(self, spec: _Optional[_Union[_objects_pb2.NetworkSpec, _Mapping]] = ...) -> None: ...

class CreateNetworkResponse(_message.Message):
    __slots__ = ("network",)
    NETWORK_FIELD_NUMBER: _ClassVar[int]
    network: _objects_pb2.Network
    def __init__(self, network: _Optional[_Union[_objects_pb2.Network, _Mapping]] = ...) -> None: ...

class GetNetworkRequest(_message.Message):
    __slots__ = ("network_id",)
    NETWORK_ID_FIELD_NUMBER: _ClassVar[int]
    network_id: str
    def __init__(self, network_id: _Optional[str] = ...) -> None: ...

class GetNetworkResponse(_message.Message):
    __slots__ = ("network",)
    NETWORK_FIELD_NUMBER: _ClassVar[int]
    network: _objects_pb2.Network
    def __init__(self, network: _Optional[_Union[_objects_pb2.Network, _Mapping]] = ...) -> None: ...

class ListNetworksRequest(_message.Message):
    __slots__ = ("filters",)
    FILTERS_FIELD_NUMBER: _ClassVar[int]
    filters: ListFilters
    def __init__(self, filters: _Optional[_Union[ListFilters, _Mapping]] = ...) -> None: ...

class ListNetworksResponse(_message.Message):
    __slots__ = ("networks",)
    NETWORKS_FIELD_NUMBER: _ClassVar[int]
    networks: _containers.RepeatedCompositeFieldContainer[_objects_pb2.Network]
    def __init__(self, networks: _Optional[_Iterable[_Union[_objects_pb2.Network, _Mapping]]] = ...) -> None: ...

class RemoveNetworkRequest(_message.Message):
    __slots__ = ("network_id",)
    NETWORK_ID_FIELD_NUMBER: _ClassVar[int]
    network_id: str
    def __init__(self, network_id: _Optional[str] = ...) -> None: ...

class RemoveNetworkResponse(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class CreateSecretRequest(_message.Message):
    __slots__ = ("spec",)
    SPEC_FIELD_NUMBER: _ClassVar[int]
    spec: _objects_pb2.SecretSpec
    def __init__(self, spec: _Optional[_Union[_objects_pb2.SecretSpec, _Mapping]] = ...) -> None: ...

class CreateSecretResponse(_message.Message):
    __slots__ = ("secret",)
    SECRET_FIELD_NUMBER: _ClassVar[int]
    secret: _objects_pb2.Secret
    def __init__(self, secret: _Optional[_Union[_objects_pb2.Secret, _Mapping]] = ...) -> None: ...

class GetSecretRequest(_message.Message):
    __slots__ = ("secret_id",)
    SECRET_ID_FIELD_NUMBER: _ClassVar[int]
    secret_id: str
    def __init__(self, secret_id: _Optional[str] = ...) -> None: ...

class GetSecretResponse(_message.Message):
    __slots__ = ("secret",)
    SECRET_FIELD_NUMBER: _ClassVar[int]
    secret: _objects_pb2.Secret
    def __init__(self, secret: _Optional[_Union[_objects_pb2.Secret, _Mapping]] = ...) -> None: ...

class ListSecretsRequest(_message.Message):
    __slots__ = ("filters",)
    FILTERS_FIELD_NUMBER: _ClassVar[int]
    filters: ListFilters
    def __init__(self, filters: _Optional[_Union[ListFilters, _Mapping]] = ...) -> None: ...

class ListSecretsResponse(_message.Message):
    __slots__ = ("secrets",)
    SECRETS_FIELD_NUMBER: _ClassVar[int]
    secrets: _containers.RepeatedCompositeFieldContainer[_objects_pb2.Secret]
    def __init__(self, secrets: _Optional[_Iterable[_Union[_objects_pb2.Secret, _Mapping]]] = ...) -> None: ...

class UpdateSecretRequest(_message.Message):
    __slots__ = ("secret_id", "secret_version", "spec")
    SECRET_ID_FIELD_NUMBER: _ClassVar[int]
    SECRET_VERSION_FIELD_NUMBER: _ClassVar[int]
    SPEC_FIELD_NUMBER: _ClassVar[int]
    secret_id: str
    secret_version: int
    spec: _objects_pb2.SecretSpec
    def __init__(self, secret_id: _Optional[str] = ..., secret_version: _Optional[int] = ..., spec: _Optional[_Union[_objects_pb2.SecretSpec, _Mapping]] = ...) -> None: ...

class UpdateSecretResponse(_message.Message):
    __slots__ = ("secret",)
    SECRET_FIELD_NUMBER: _ClassVar[int]
    secret: _objects_pb2.Secret
    def __init__(self, secret: _Optional[_Union[_objects_pb2.Secret, _Mapping]] = ...) -> None: ...

class RemoveSecretRequest(_message.Message):
    __slots__ = ("secret_id",)
    SECRET_ID_FIELD_NUMBER: _ClassVar[int]
    secret_id: str
    def __init__(self, secret_id: _Optional[str] = ...) -> None: ...

class RemoveSecretResponse(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class CreateConfigRequest(_message.Message):
    __slots__ = ("spec",)
    SPEC_FIELD_NUMBER: _ClassVar[int]
    spec: _objects_pb2.ConfigSpec
    def __init__(self, spec: _Optional[_Union[_objects_pb2.ConfigSpec, _Mapping]] = ...) -> None: ...

class CreateConfigResponse(_message.Message):
    __slots__ = ("config",)
    CONFIG_FIELD_NUMBER: _ClassVar[int]
    config: _objects_pb2.Config
    def __init__(self, config: _Optional[_Union[_objects_pb2.Config, _Mapping]] = ...) -> None: ...

class GetConfigRequest(_message.Message):
    __slots__ = ("config_id",)
    CONFIG_ID_FIELD_NUMBER: _ClassVar[int]
    config_id: str
    def __init__(self, config_id: _Optional[str] = ...) -> None: ...

class GetConfigResponse(_message.Message):
    __slots__ = ("config",)
    CONFIG_FIELD_NUMBER: _ClassVar[int]
    config: _objects_pb2.Config
    def __init__(self, config: _Optional[_Union[_objects_pb2.Config, _Mapping]] = ...) -> None: ...

class ListConfigsRequest(_message.Message):
    __slots__ = ("filters",)
    FILTERS_FIELD_NUMBER: _ClassVar[int]
    filters: ListFilters
    def __init__(self, filters: _Optional[_Union[ListFilters, _Mapping]] = ...) -> None: ...

class ListConfigsResponse(_message.Message):
    __slots__ = ("configs",)
    CONFIGS_FIELD_NUMBER: _ClassVar[int]
    configs: _containers.RepeatedCompositeFieldContainer[_objects_pb2.Config]
    def __init__(self, configs: _Optional[_Iterable[_Union[_objects_pb2.Config, _Mapping]]] = ...) -> None: ...

class UpdateConfigRequest(_message.Message):
    __slots__ = ("config_id", "config_version", "spec")
    CONFIG_ID_FIELD_NUMBER: _ClassVar[int]
    CONFIG_VERSION_FIELD_NUMBER: _ClassVar[int]
    SPEC_FIELD_NUMBER: _ClassVar[int]
    config_id: str
    config_version: int
    spec: _objects_pb2.ConfigSpec
    def __init__(self, config_id: _Optional[str] = ..., config_version: _Optional[int] = ..., spec: _Optional[_Union[_objects_pb2.ConfigSpec, _Mapping]] = ...) -> None: ...

class UpdateConfigResponse(_message.Message):
    __slots__ = ("config",)
    CONFIG_FIELD_NUMBER: _ClassVar[int]
    config: _objects_pb2.Config
    def __init__(self, config: _Optional[_Union[_objects_pb2.Config, _Mapping]] = ...) -> None: ...

class RemoveConfigRequest(_message.Message):
    __slots__ = ("config_id",)
    CONFIG_ID_FIELD_NUMBER: _ClassVar[int]
    config_id: str
    def __init__(self, config_id: _Optional[str] = ...) -> None: ...

class RemoveConfigResponse(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class GetClusterRequest(_message.Message):
    __slots__ = ("cluster_id",)
    CLUSTER_ID_FIELD_NUMBER: _ClassVar[int]
    cluster_id: str
    def __init__(self, cluster_id: _Optional[str] = ...) -> None: ...

class GetClusterResponse(_message.Message):
    __slots__ = ("cluster",)
    CLUSTER_FIELD_NUMBER: _ClassVar[int]
    cluster: _objects_pb2.Cluster
    def __init__(self, cluster: _Optional[_Union[_objects_pb2.Cluster, _Mapping]] = ...) -> None: ...

class ListClustersRequest(_message.Message):
    __slots__ = ("filters",)
    FILTERS_FIELD_NUMBER: _ClassVar[int]
    filters: ListFilters
    def __init__(self, filters: _Optional[_Union[ListFilters, _Mapping]] = ...) -> None: ...

class ListClustersResponse(_message.Message):
    __slots__ = ("clusters",)
    CLUSTERS_FIELD_NUMBER: _ClassVar[int]
    clusters: _containers.RepeatedCompositeFieldContainer[_objects_pb2.Cluster]
    def __init__(self, clusters: _Optional[_Iterable[_Union[_objects_pb2.Cluster, _Mapping]]] = ...) -> None: ...

class UpdateClusterRequest(_message.Message):
    __slots__ = ("cluster_id", "cluster_version", "spec", "rotate_worker_token", "rotate_manager_token", "rotate_manager_unlock_key")
    CLUSTER_ID_FIELD_NUMBER: _ClassVar[int]
    CLUSTER_VERSION_FIELD_NUMBER: _ClassVar[int]
    SPEC_FIELD_NUMBER: _ClassVar[int]
    ROTATE_WORKER_TOKEN_FIELD_NUMBER: _ClassVar[int]
    ROTATE_MANAGER_TOKEN_FIELD_NUMBER: _ClassVar[int]
    ROTATE_MANAGER_UNLOCK_KEY_FIELD_NUMBER: _ClassVar[int]
    cluster_id: str
    cluster_version: int
    spec: _objects_pb2.ClusterSpec
    rotate_worker_token: bool
    rotate_manager_token: bool
    rotate_manager_unlock_key: bool
    def __init__(self, cluster_id: _Optional[str] = ..., cluster_version: _Optional[int] = ..., spec: _Optional[_Union[_objects_pb2.ClusterSpec, _Mapping]] = ..., rotate_worker_token: _Optional[bool] = ..., rotate_manager_token: _Optional[bool] = ..., rotate_manager_unlock_key: _Optional[bool] = ...) -> None: ...

class UpdateClusterResponse(_message.Message):
    __slots__ = ("cluster",)
    CLUSTER_FIELD_NUMBER: _ClassVar[int]
    cluster: _objects_pb2.Cluster
    def __init__(self, cluster: _Optional[_Union[_objects_pb2.Cluster, _Mapping]] = ...) -> None: ...

class GetUnlockKeyRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class GetUnlockKeyResponse(_message.Message):
    __slots__ = ("unlock_key",)
    UNLOCK_KEY_FIELD_NUMBER: _ClassVar[int]
    unlock_key: str
    def __init__(self, unlock_key: _Optional[str] = ...) -> None: ...

class ServiceLogsRequest(_message.Message):
    __slots__ = ("service_id", "follow", "tail", "timestamps", "task_ids", "since", "until")
    SERVICE_ID_FIELD_NUMBER: _ClassVar[int]
    FOLLOW_FIELD_NUMBER: _ClassVar[int]
    TAIL_FIELD_NUMBER: _ClassVar[int]
    TIMESTAMPS_FIELD_NUMBER: _ClassVar[int]
    TASK_IDS_FIELD_NUMBER: _ClassVar[int]
    SINCE_FIELD_NUMBER: _ClassVar[int]
    UNTIL_FIELD_NUMBER: _ClassVar[int]
    service_id: str
    follow: bool
    tail: int
    timestamps: bool
    task_ids: _containers.RepeatedScalarFieldContainer[str]
    since: float
    until: float
    def __init__(self, service_id: _Optional[str] = ..., follow: _Optional[bool] = ..., tail: _Optional[int] = ..., timestamps: _Optional[bool] = ..., task_ids: _Optional[_Iterable[str]] = ..., since: _Optional[float] = ..., until: _Optional[float] = ...) -> None: ...

class LogMessage(_message.Message):
    __slots__ = ("task_id", "task_name", "node_id", "service_id", "stream", "data", "timestamp")
    class Stream(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
        __slots__ = ()
        STDOUT: _ClassVar[LogMessage.Stream]
        STDERR: _ClassVar[LogMessage.Stream]
    STDOUT: LogMessage.Stream
    STDERR: LogMessage.Stream
    TASK_ID_FIELD_NUMBER: _ClassVar[int]
    TASK_NAME_FIELD_NUMBER: _ClassVar[int]
    NODE_ID_FIELD_NUMBER: _ClassVar[int]
    SERVICE_ID_FIELD_NUMBER: _ClassVar[int]
    STREAM_FIELD_NUMBER: _ClassVar[int]
    DATA_FIELD_NUMBER: _ClassVar[int]
    TIMESTAMP_FIELD_NUMBER: _ClassVar[int]
    task_id: str
    task_name: str
    node_id: str
    service_id: str
    stream: LogMessage.Stream
    data: bytes
    timestamp: float
    def __init__(self, task_id: _Optional[str] = ..., task_name: _Optional[str] = ..., node_id: _Optional[str] = ..., service_id: _Optional[str] = ..., stream: _Optional[_Union[LogMessage.Stream, str]] = ..., data: _Optional[bytes] = ..., timestamp: _Optional[float] = ...) -> None: ...

class ServiceLogsResponse(_message.Message):
    __slots__ = ("messages", "warnings")
    MESSAGES_FIELD_NUMBER: _ClassVar[int]
    WARNINGS_FIELD_NUMBER: _ClassVar[int]
    messages: _containers.RepeatedCompositeFieldContainer[LogMessage]
    warnings: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, messages: _Optional[_Iterable[_Union[LogMessage, _Mapping]]] = ..., warnings: _Optional[_Iterable[str]] = ...) -> None: ...

class VolumeFilters(_message.Message):
    __slots__ = ("nodes", "names", "labels", "drivers", "dangling")
    NODES_FIELD_NUMBER: _ClassVar[int]
    NAMES_FIELD_NUMBER: _ClassVar[int]
    LABELS_FIELD_NUMBER: _ClassVar[int]
    DRIVERS_FIELD_NUMBER: _ClassVar[int]
    DANGLING_FIELD_NUMBER: _ClassVar[int]
    nodes: _containers.RepeatedScalarFieldContainer[str]
    names: _containers.RepeatedScalarFieldContainer[str]
    labels: _containers.RepeatedScalarFieldContainer[str]
    drivers: _containers.RepeatedScalarFieldContainer[str]
    dangling: str
    def __init__(self, nodes: _Optional[_Iterable[str]] = ..., names: _Optional[_Iterable[str]] = ..., labels: _Optional[_Iterable[str]] = ..., drivers: _Optional[_Iterable[str]] = ..., dangling: _Optional[str] = ...) -> None: ...

class VolumeEntry(_message.Message):
    __slots__ = ("node_id", "node_hostname", "volume", "services", "task_ids")
    NODE_ID_FIELD_NUMBER: _ClassVar[int]
    NODE_HOSTNAME_FIELD_NUMBER: _ClassVar[int]
    VOLUME_FIELD_NUMBER: _ClassVar[int]
    SERVICES_FIELD_NUMBER: _ClassVar[int]
    TASK_IDS_FIELD_NUMBER: _ClassVar[int]
    node_id: str
    node_hostname: str
    volume: _objects_pb2.NodeVolume
    services: _containers.RepeatedScalarFieldContainer[str]
    task_ids: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, node_id: _Optional[str] = ..., node_hostname: _Optional[str] = ..., volume: _Optional[_Union[_objects_pb2.NodeVolume, _Mapping]] = ..., services: _Optional[_Iterable[str]] = ..., task_ids: _Optional[_Iterable[str]] = ...) -> None: ...

class ListVolumesRequest(_message.Message):
    __slots__ = ("filters",)
    FILTERS_FIELD_NUMBER: _ClassVar[int]
    filters: VolumeFilters
    def __init__(self, filters: _Optional[_Union[VolumeFilters, _Mapping]] = ...) -> None: ...

class ListVolumesResponse(_message.Message):
    __slots__ = ("volumes",)
    VOLUMES_FIELD_NUMBER: _ClassVar[int]
    volumes: _containers.RepeatedCompositeFieldContainer[VolumeEntry]
    def __init__(self, volumes: _Optional[_Iterable[_Union[VolumeEntry, _Mapping]]] = ...) -> None: ...

class RemoveVolumeRequest(_message.Message):
    __slots__ = ("node", "name", "force")
    NODE_FIELD_NUMBER: _ClassVar[int]
    NAME_FIELD_NUMBER: _ClassVar[int]
    FORCE_FIELD_NUMBER: _ClassVar[int]
    node: str
    name: str
    force: bool
    def __init__(self, node: _Optional[str] = ..., name: _Optional[str] = ..., force: _Optional[bool] = ...) -> None: ...

class RemoveVolumeResponse(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class PruneVolumesRequest(_message.Message):
    __slots__ = ("node",)
    NODE_FIELD_NUMBER: _ClassVar[int]
    node: str
    def __init__(self, node: _Optional[str] = ...) -> None: ...

class PruneVolumesResponse(_message.Message):
    __slots__ = ("removed", "reclaimed_bytes")
    REMOVED_FIELD_NUMBER: _ClassVar[int]
    RECLAIMED_BYTES_FIELD_NUMBER: _ClassVar[int]
    removed: _containers.RepeatedScalarFieldContainer[str]
    reclaimed_bytes: int
    def __init__(self, removed: _Optional[_Iterable[str]] = ..., reclaimed_bytes: _Optional[int] = ...) -> None: ...

class InfoRequest(_message.Message):
    __slots__ = ("store_digest",)
    STORE_DIGEST_FIELD_NUMBER: _ClassVar[int]
    store_digest: bool
    def __init__(self, store_digest: _Optional[bool] = ...) -> None: ...

class InfoResponse(_message.Message):
    __slots__ = ("node_id", "node_addr", "is_manager", "cluster_id", "managers", "nodes", "version", "raft_leader_id", "data_dir", "services", "tasks_running", "autolock_managers", "cert_expiry", "root_rotation_in_progress", "store_version", "store_digest", "raft_applied_index")
    NODE_ID_FIELD_NUMBER: _ClassVar[int]
    NODE_ADDR_FIELD_NUMBER: _ClassVar[int]
    IS_MANAGER_FIELD_NUMBER: _ClassVar[int]
    CLUSTER_ID_FIELD_NUMBER: _ClassVar[int]
    MANAGERS_FIELD_NUMBER: _ClassVar[int]
    NODES_FIELD_NUMBER: _ClassVar[int]
    VERSION_FIELD_NUMBER: _ClassVar[int]
    RAFT_LEADER_ID_FIELD_NUMBER: _ClassVar[int]
    DATA_DIR_FIELD_NUMBER: _ClassVar[int]
    SERVICES_FIELD_NUMBER: _ClassVar[int]
    TASKS_RUNNING_FIELD_NUMBER: _ClassVar[int]
    AUTOLOCK_MANAGERS_FIELD_NUMBER: _ClassVar[int]
    CERT_EXPIRY_FIELD_NUMBER: _ClassVar[int]
    ROOT_ROTATION_IN_PROGRESS_FIELD_NUMBER: _ClassVar[int]
    STORE_VERSION_FIELD_NUMBER: _ClassVar[int]
    STORE_DIGEST_FIELD_NUMBER: _ClassVar[int]
    RAFT_APPLIED_INDEX_FIELD_NUMBER: _ClassVar[int]
    node_id: str
    node_addr: str
    is_manager: bool
    cluster_id: str
    managers: int
    nodes: int
    version: str
    raft_leader_id: str
    data_dir: str
    services: int
    tasks_running: int
    autolock_managers: bool
    cert_expiry: _objects_pb2.Duration
    root_rotation_in_progress: bool
    store_version: int
    store_digest: str
    raft_applied_index: int
    def __init__(self, node_id: _Optional[str] = ..., node_addr: _Optional[str] = ..., is_manager: _Optional[bool] = ..., cluster_id: _Optional[str] = ..., managers: _Optional[int] = ..., nodes: _Optional[int] = ..., version: _Optional[str] = ..., raft_leader_id: _Optional[str] = ..., data_dir: _Optional[str] = ..., services: _Optional[int] = ..., tasks_running: _Optional[int] = ..., autolock_managers: _Optional[bool] = ..., cert_expiry: _Optional[_Union[_objects_pb2.Duration, _Mapping]] = ..., root_rotation_in_progress: _Optional[bool] = ..., store_version: _Optional[int] = ..., store_digest: _Optional[str] = ..., raft_applied_index: _Optional[int] = ...) -> None: ...

class StackChange(_message.Message):
    __slots__ = ("action", "kind", "name", "id", "fields", "rollback")
    class Action(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
        __slots__ = ()
        CREATE: _ClassVar[StackChange.Action]
        UPDATE: _ClassVar[StackChange.Action]
        REMOVE: _ClassVar[StackChange.Action]
    CREATE: StackChange.Action
    UPDATE: StackChange.Action
    REMOVE: StackChange.Action
    ACTION_FIELD_NUMBER: _ClassVar[int]
    KIND_FIELD_NUMBER: _ClassVar[int]
    NAME_FIELD_NUMBER: _ClassVar[int]
    ID_FIELD_NUMBER: _ClassVar[int]
    FIELDS_FIELD_NUMBER: _ClassVar[int]
    ROLLBACK_FIELD_NUMBER: _ClassVar[int]
    action: StackChange.Action
    kind: str
    name: str
    id: str
    fields: _containers.RepeatedScalarFieldContainer[str]
    rollback: bool
    def __init__(self, action: _Optional[_Union[StackChange.Action, str]] = ..., kind: _Optional[str] = ..., name: _Optional[str] = ..., id: _Optional[str] = ..., fields: _Optional[_Iterable[str]] = ..., rollback: _Optional[bool] = ...) -> None: ...

class DeployStackRequest(_message.Message):
    __slots__ = ("stack", "prune", "dry_run")
    STACK_FIELD_NUMBER: _ClassVar[int]
    PRUNE_FIELD_NUMBER: _ClassVar[int]
    DRY_RUN_FIELD_NUMBER: _ClassVar[int]
    stack: _objects_pb2.StackDefinition
    prune: bool
    dry_run: bool
    def __init__(self, stack: _Optional[_Union[_objects_pb2.StackDefinition, _Mapping]] = ..., prune: _Optional[bool] = ..., dry_run: _Optional[bool] = ...) -> None: ...

class DeployStackResponse(_message.Message):
    __slots__ = ("changes",)
    CHANGES_FIELD_NUMBER: _ClassVar[int]
    changes: _containers.RepeatedCompositeFieldContainer[StackChange]
    def __init__(self, changes: _Optional[_Iterable[_Union[StackChange, _Mapping]]] = ...) -> None: ...

class StackSummary(_message.Message):
    __slots__ = ("name", "services")
    NAME_FIELD_NUMBER: _ClassVar[int]
    SERVICES_FIELD_NUMBER: _ClassVar[int]
    name: str
    services: int
    def __init__(self, name: _Optional[str] = ..., services: _Optional[int] = ...) -> None: ...

class ListStacksRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class ListStacksResponse(_message.Message):
    __slots__ = ("stacks",)
    STACKS_FIELD_NUMBER: _ClassVar[int]
    stacks: _containers.RepeatedCompositeFieldContainer[StackSummary]
    def __init__(self, stacks: _Optional[_Iterable[_Union[StackSummary, _Mapping]]] = ...) -> None: ...

class RemoveStackRequest(_message.Message):
    __slots__ = ("name",)
    NAME_FIELD_NUMBER: _ClassVar[int]
    name: str
    def __init__(self, name: _Optional[str] = ...) -> None: ...

class RemoveStackResponse(_message.Message):
    __slots__ = ("changes",)
    CHANGES_FIELD_NUMBER: _ClassVar[int]
    changes: _containers.RepeatedCompositeFieldContainer[StackChange]
    def __init__(self, changes: _Optional[_Iterable[_Union[StackChange, _Mapping]]] = ...) -> None: ...

class RollbackStackRequest(_message.Message):
    __slots__ = ("name", "dry_run")
    NAME_FIELD_NUMBER: _ClassVar[int]
    DRY_RUN_FIELD_NUMBER: _ClassVar[int]
    name: str
    dry_run: bool
    def __init__(self, name: _Optional[str] = ..., dry_run: _Optional[bool] = ...) -> None: ...

class RollbackStackResponse(_message.Message):
    __slots__ = ("changes",)
    CHANGES_FIELD_NUMBER: _ClassVar[int]
    changes: _containers.RepeatedCompositeFieldContainer[StackChange]
    def __init__(self, changes: _Optional[_Iterable[_Union[StackChange, _Mapping]]] = ...) -> None: ...

class GetLockStateRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class GetLockStateResponse(_message.Message):
    __slots__ = ("locked",)
    LOCKED_FIELD_NUMBER: _ClassVar[int]
    locked: bool
    def __init__(self, locked: _Optional[bool] = ...) -> None: ...

class UnlockRequest(_message.Message):
    __slots__ = ("unlock_key",)
    UNLOCK_KEY_FIELD_NUMBER: _ClassVar[int]
    unlock_key: str
    def __init__(self, unlock_key: _Optional[str] = ...) -> None: ...

class UnlockResponse(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class GetNetworkViewsRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class GetNetworkViewsResponse(_message.Message):
    __slots__ = ("views_json",)
    VIEWS_JSON_FIELD_NUMBER: _ClassVar[int]
    views_json: str
    def __init__(self, views_json: _Optional[str] = ...) -> None: ...
