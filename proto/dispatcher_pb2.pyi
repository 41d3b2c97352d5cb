from proto import objects_pb2 as _objects_pb2
from proto import control_pb2 as _control_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class SessionRequest(_message.Message):
    __slots__ = ("description", "session_id", "node_id")
    DESCRIPTION_FIELD_NUMBER: _ClassVar[int]
    SESSION_ID_FIELD_NUMBER: _ClassVar[int]
    NODE_ID_FIELD_NUMBER: _ClassVar[int]
    description: _objects_pb2.NodeDescription
    session_id: str
    node_id: str
    def __init__(self, description: _Optional[_Union[_objects_pb2.NodeDescription, _Mapping]] = ..., session_id: _Optional[str] = ..., node_id: _Optional[str] = ...) -> None: ...

class WeightedPeer(_message.Message):
    __slots__ = ("node_id", "addr", "weight")
    NODE_ID_FIELD_NUMBER: _ClassVar[int]
    ADDR_FIELD_NUMBER: _ClassVar[int]
    WEIGHT_FIELD_NUMBER: _ClassVar[int]
    node_id: str
    addr: str
    weight: int
    def __init__(self, node_id: _Optional[str] = ..., addr: _Optional[str] = ..., weight: _Optional[int] = ...) -> None: ...

class LogSubscription(_message.Message):
    __slots__ = ("id", "task_ids", "follow", "tail", "close", "since", "until")
    ID_FIELD_NUMBER: _ClassVar[int]
    TASK_IDS_FIELD_NUMBER: _ClassVar[int]
    FOLLOW_FIELD_NUMBER: _ClassVar[int]
    TAIL_FIELD_NUMBER: _ClassVar[int]
    CLOSE_FIELD_NUMBER: _ClassVar[int]
    SINCE_FIELD_NUMBER: _ClassVar[int]
    UNTIL_FIELD_NUMBER: _ClassVar[int]
    id: str
    task_ids: _containers.RepeatedScalarFieldContainer[str]
    follow: bool
    tail: int
    close: bool
    since: float
    until: float
    def __init__(self, id: _Optional[str] = ..., task_ids: _Optional[_Iterable[str]] = ..., follow: _Optional[bool] = ..., tail: _Optional[int] = ..., close: _Optional[bool] = ..., since: _Optional[float] = ..., until: _Optional[float] = ...) -> None: ...

class SessionMessage(_message.Message):
    __slots__ = ("session_id", "node", "managers", "log_subscriptions", "root_ca", "issuing_ca", "volume_requests")
    SESSION_ID_FIELD_NUMBER: _ClassVar[int]
    NODE_FIELD_NUMBER: _ClassVar[int]
    MANAGERS_FIELD_NUMBER: _ClassVar[int]
    LOG_SUBSCRIPTIONS_FIELD_NUMBER: _ClassVar[int]
    ROOT_CA_FIELD_NUMBER: _ClassVar[int]
    ISSUING_CA_FIELD_NUMBER: _ClassVar[int]
    VOLUME_REQUESTS_FIELD_NUMBER: _ClassVar[int]
    session_id: str
    node: _objects_pb2.Node
    managers: _containers.RepeatedCompositeFieldContainer[WeightedPeer]
    log_subscriptions: _containers.RepeatedCompositeFieldContainer[LogSubscription]
    root_ca: bytes
    issuing_ca: bytes
    volume_requests: _containers.RepeatedCompositeFieldContainer[VolumeRequest]
    def __init__(self, session_id: _Optional[str] = ..., node: _Optional[_Union[_objects_pb2.Node, _Mapping]] = ..., managers: _Optional[_Iterable[_Union[WeightedPeer, _Mapping]]] = ..., log_subscriptions: _Optional[_Iterable[_Union[LogSubscription, _Mapping]]] = ..., root_ca: _Optional[bytes] = ..., issuing_ca: _Optional[bytes] = ..., volume_requests: _Optional[_Iterable[_Union[VolumeRequest, _Mapping]]] = ...) -> None: ...

class VolumeRequest(_message.Message):
    __slots__ = ("id", "op", "name", "force", "keep")
    class Op(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
        __slots__ = ()
        REMOVE: _ClassVar[VolumeRequest.Op]
        PRUNE: _ClassVar[VolumeRequest.Op]
    REMOVE: VolumeRequest.Op
    PRUNE: VolumeRequest.Op
    ID_FIELD_NUMBER: _ClassVar[int]
    OP_FIELD_NUMBER: _ClassVar[int]
    NAME_FIELD_NUMBER: _ClassVar[int]
    FORCE_FIELD_NUMBER: _ClassVar[int]
    KEEP_FIELD_NUMBER: _ClassVar[int]
    id: str
    op: VolumeRequest.Op
    name: str
    force: bool
    keep: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, id: _Optional[str] = ..., op: _Optional[_Union[VolumeRequest.Op, str]] = ..., name: _Optional[str] = ..., force: _Optional[bool] = ..., keep: _Optional[_Iterable[str]] = ...) -> None: ...

class UpdateVolumesRequest(_message.Message):
    __slots__ = ("session_id", "volumes")
    SESSION_ID_FIELD_NUMBER: _ClassVar[int]
    VOLUMES_FIELD_NUMBER: _ClassVar[int]
    session_id: str
    volumes: _containers.RepeatedCompositeFieldContainer[_objects_pb2.NodeVolume]
    def __init__(self, session_id: _Optional[str] = ..., volumes: _Optional[_Iterable[_Union[_objects_pb2.NodeVolume, _Mapping]]] = ...) -> None: ...

class UpdateVolumesResponse(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class VolumeResultRequest(_message.Message):
    __slots__ = ("session_id", "request_id", "failure", "message", "removed", "reclaimed_bytes")
    class Failure(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
        __slots__ = ()
        NONE: _ClassVar[VolumeResultRequest.Failure]
        NOT_FOUND: _ClassVar[VolumeResultRequest.Failure]
        IN_USE: _ClassVar[VolumeResultRequest.Failure]
        ERROR: _ClassVar[VolumeResultRequest.Failure]
    NONE: VolumeResultRequest.Failure
    NOT_FOUND: VolumeResultRequest.Failure
    IN_USE: VolumeResultRequest.Failure
    ERROR: VolumeResultRequest.Failure
    SESSION_ID_FIELD_NUMBER: _ClassVar[int]
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    FAILURE_FIELD_NUMBER: _ClassVar[int]
    MESSAGE_FIELD_NUMBER: _ClassVar[int]
    REMOVED_FIELD_NUMBER: _ClassVar[int]
    RECLAIMED_BYTES_FIELD_NUMBER: _ClassVar[int]
    session_id: str
    request_id: str
    failure: VolumeResultRequest.Failure
    message: str
    removed: _containers.RepeatedScalarFieldContainer[str]
    reclaimed_bytes: int
    def __init__(self, session_id: _Optional[str] = ..., request_id: _Optional[str] = ..., failure: _Optional[_Union[VolumeResultRequest.Failure, str]] = ..., message: _Optional[str] = ..., removed: _Optional[_Iterable[str]] = ..., reclaimed_bytes: _Optional[int] = ...) -> None: ...

class VolumeResultResponse(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class HeartbeatRequest(_message.Message):
    __slots__ = ("session_id",)
    SESSION_ID_FIELD_NUMBER: _ClassVar[int]
    session_id: str
    def __init__(self, session_id: _Optional[str] = ...) -> None: ...

class HeartbeatResponse(_message.Message):
    __slots__ = ("period",)
    PERIOD_FIELD_NUMBER: _ClassVar[int]
    period: _objects_pb2.Duration
    def __init__(self, period: _Optional[_Union[_objects_pb2.Duration, _Mapping]] = ...) -> None: ...

class AssignmentsRequest(_message.Message):
    __slots__ = ("session_id",)
    SESSION_ID_FIELD_NUMBER: _ClassVar[int]
    session_id: str
    def __init__(self, session_id: _Optional[str] = ...) -> None: ...

class NetworkEndpoint(_message.Message):
    __slots__ = ("task_id", "task_name", "service_id", "service_name", "node_id", "node_addr", "addr", "mac", "aliases", "running")
    TASK_ID_FIELD_NUMBER: _ClassVar[int]
    TASK_NAME_FIELD_NUMBER: _ClassVar[int]
    SERVICE_ID_FIELD_NUMBER: _ClassVar[int]
    SERVICE_NAME_FIELD_NUMBER: _ClassVar[int]
    NODE_ID_FIELD_NUMBER: _ClassVar[int]
    NODE_ADDR_FIELD_NUMBER: _ClassVar[int]
    ADDR_FIELD_NUMBER: _ClassVar[int]
    MAC_FIELD_NUMBER: _ClassVar[int]
    ALIASES_FIELD_NUMBER: _ClassVar[int]
    RUNNING_FIELD_NUMBER: _ClassVar[int]
    task_id: str
    task_name: str
    service_id: str
    service_name: str
    node_id: str
    node_addr: str
    addr: str
    mac: str
    aliases: _containers.RepeatedScalarFieldContainer[str]
    running: bool
    def __init__(self, task_id: _Optional[str] = ..., task_name: _Optional[str] = ..., service_id: _Optional[str] = ..., service_name: _Optional[str] = ..., node_id: _Optional[str] = ..., node_addr: _Optional[str] = ..., addr: _Optional[str] = ..., mac: _Optional[str] = ..., aliases: _Optional[_Iterable[str]] = ..., running: _Optional[bool] = ...) -> None: ...

class NetworkPeer(_message.Message):
    __slots__ = ("node_id", "node_addr", "addr", "mac")
    NODE_ID_FIELD_NUMBER: _ClassVar[int]
    NODE_ADDR_FIELD_NUMBER: _ClassVar[int]
    ADDR_FIELD_NUMBER: _ClassVar[int]
    MAC_FIELD_NUMBER: _ClassVar[int]
    node_id: str
    node_addr: str
    addr: str
    mac: str
    def __init__(self, node_id: _Optional[str] = ..., node_addr: _Optional[str] = ..., addr: _Optional[str] = ..., mac: _Optional[str] = ...) -> None: ...

class NetworkServiceView(_message.Message):
    __slots__ = ("service_id", "name", "aliases", "endpoint_mode", "vip", "backend_addrs", "ports")
    SERVICE_ID_FIELD_NUMBER: _ClassVar[int]
    NAME_FIELD_NUMBER: _ClassVar[int]
    ALIASES_FIELD_NUMBER: _ClassVar[int]
    ENDPOINT_MODE_FIELD_NUMBER: _ClassVar[int]
    VIP_FIELD_NUMBER: _ClassVar[int]
    BACKEND_ADDRS_FIELD_NUMBER: _ClassVar[int]
    PORTS_FIELD_NUMBER: _ClassVar[int]
    service_id: str
    name: str
    aliases: _containers.RepeatedScalarFieldContainer[str]
    endpoint_mode: _objects_pb2.EndpointSpec.ResolutionMode
    vip: str
    backend_addrs: _containers.RepeatedScalarFieldContainer[str]
    ports: _containers.RepeatedCompositeFieldContainer[_objects_pb2.PortConfig]
    def __init__(self, service_id: _Optional[str] = ..., name: _Optional[str] = ..., aliases: _Optional[_Iterable[str]] = ..., endpoint_mode: _Optional[_Union[_objects_pb2.EndpointSpec.ResolutionMode, str]] = ..., vip: _Optional[str] = ..., backend_addrs: _Optional[_Iterable[str]] = ..., ports: _Optional[_Iterable[_Union[_objects_pb2.PortConfig, _Mapping]]] = ...) -> None: ...

class NetworkView(_message.Message):
    __slots__ = ("network_id", "name", "vni", "subnet", "gateway", "encrypted", "ingress", "internal", "attachable", "driver_options", "local_addr", "peers", "endpoints", "services", "keys", "vxlan_port")
    class DriverOptionsEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: str
        def __init__(self, key: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...
    NETWORK_ID_FIELD_NUMBER: _ClassVar[int]
    NAME_FIELD_NUMBER: _ClassVar[int]
    VNI_FIELD_NUMBER: _ClassVar[int]
    SUBNET_FIELD_NUMBER: _ClassVar[int]
    GATEWAY_FIELD_NUMBER: _ClassVar[int]
    ENCRYPTED_FIELD_NUMBER: _ClassVar[int]
    INGRESS_FIELD_NUMBER: _ClassVar[int]
    INTERNAL_FIELD_NUMBER: _ClassVar[int]
    ATTACHABLE_FIELD_NUMBER: _ClassVar[int]
    DRIVER_OPTIONS_FIELD_NUMBER: _ClassVar[int]
    LOCAL_ADDR_FIELD_NUMBER: _ClassVar[int]
    PEERS_FIELD_NUMBER: _ClassVar[int]
    ENDPOINTS_FIELD_NUMBER: _ClassVar[int]
    SERVICES_FIELD_NUMBER: _ClassVar[int]
    KEYS_FIELD_NUMBER: _ClassVar[int]
    VXLAN_PORT_FIELD_NUMBER: _ClassVar[int]
    network_id: str
    name: str
    vni: int
    subnet: str
    gateway: str
    encrypted: bool
    ingress: bool
    internal: bool
    attachable: bool
    driver_options: _containers.ScalarMap[str, str]
    local_addr: str
    peers: _containers.RepeatedCompositeFieldContainer[NetworkPeer]
    endpoints: _containers.RepeatedCompositeFieldContainer[NetworkEndpoint]
    services: _containers.RepeatedCompositeFieldContainer[NetworkServiceView]
    keys: _containers.RepeatedCompositeFieldContainer[_objects_pb2.NetworkKey]
    vxlan_port: int
    def __init__(self, network_id: _Optional[str] = ..., name: _Optional[str] = ..., vni: _Optional[int] = ..., subnet: _Optional[str] = ..., gateway: _Optional[str] = ..., encrypted: _Optional[bool] = ..., ingress: _Optional[bool] = ..., internal: _Optional[bool] = ..., attachable: _Optional[bool] = ..., driver_options: _Optional[_Mapping[str, str]] = ..., local_addr: _Optional[str] = ..., peers: _Optional[_Iterable[_Union[NetworkPeer, _Mapping]]] = ..., endpoints: _Optional[_Iterable[_Union[NetworkEndpoint, _Mapping]]] = ..., services: _Optional[_Iterable[_Union[NetworkServiceView, _Mapping]]] = ..., keys: _Optional[_Iterable[_Union[_objects_pb2.NetworkKey, _Mapping]]] = ..., vxlan_port: _Optional[int] = ...) -> None: ...

class Assignment(_message.Message):
    __slots__ = ("task", "secret", "config", "network")
    TASK_FIELD_NUMBER: _ClassVar[int]
    SECRET_FIELD_NUMBER: _ClassVar[int]
    CONFIG_FIELD_NUMBER: _ClassVar[int]
    NETWORK_FIELD_NUMBER: _ClassVar[int]
    task: _objects_pb2.Task
    secret: _objects_pb2.Secret
    config: _objects_pb2.Config
    network: NetworkView
    def __init__(self, task: _Optional[_Union[_objects_pb2.Task, _Mapping]] = ..., secret: _Optional[_Union[_objects_pb2.Secret, _Mapping]] = ..., config: _Optional[_Union[_objects_pb2.Config, _Mapping]] = ..., network: _Optional[_Union[NetworkView, _Mapping]] = ...) -> None: ...

class AssignmentChange(_message.Message):
    __slots__ = ("assignment", "action")
    class Action(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
        __slots__ = ()
        UPDATE: _ClassVar[AssignmentChange.Action]
        REMOVE: _ClassVar[AssignmentChange.Action]
    UPDATE: AssignmentChange.Action
    REMOVE: AssignmentChange.Action
    ASSIGNMENT_FIELD_NUMBER: _ClassVar[int]
    ACTION_FIELD_NUMBER: _ClassVar[int]
    assignment: Assignment
    action: AssignmentChange.Action
    def __init__(self, assignment: _Optional[_Union[Assignment, _Mapping]] = ..., action: _Optional[_Union[AssignmentChange.Action, str]] = ...) -> None: ...

class AssignmentsMessage(_message.Message):
    __slots__ = ("type", "changes")
    class Type(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
        __slots__ = ()
        COMPLETE: _ClassVar[AssignmentsMessage.Type]
        INCREMENTAL: _ClassVar[AssignmentsMessage.Type]
    COMPLETE: AssignmentsMessage.Type
    INCREMENTAL: AssignmentsMessage.Type
    TYPE_FIELD_NUMBER: _ClassVar[int]
    CHANGES_FIELD_NUMBER: _ClassVar[int]
    type: AssignmentsMessage.Type
    changes: _containers.RepeatedCompositeFieldContainer[AssignmentChange]
    def __init__(self, type: _Optional[_Union[AssignmentsMessage.Type, str]] = ..., changes: _Optional[_Iterable[_Union[AssignmentChange, _Mapping]]] = ...) -> None: ...

class TaskStatusUpdate(_message.Message):
    __slots__ = ("task_id", "status")
    TASK_ID_FIELD_NUMBER: _ClassVar[int]
    STATUS_FIELD_NUMBER: _ClassVar[int]
    task_id: str
    status: _objects_pb2.TaskStatus
    def __init__(self, task_id: _Optional[str] = ..., status: _Optional[_Union[_objects_pb2.TaskStatus, _Mapping]] = ...) -> None: ...

class UpdateTaskStatusRequest(_message.Message):
    __slots__ = ("session_id", "updates")
    SESSION_ID_FIELD_NUMBER: _ClassVar[int]
    UPDATES_FIELD_NUMBER: _ClassVar[int]
    session_id: str
    updates: _containers.RepeatedCompositeFieldContainer[TaskStatusUpdate]
    def __init__(self, session_id: _Optional[str] = ..., updates: _Optional[_Iterable[_Union[TaskStatusUpdate, _Mapping]]] = ...) -> None: ...

class UpdateTaskStatusResponse(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class PublishLogsRequest(_message.Message):
    __slots__ = ("session_id", "subscription_id", "messages", "close")
    SESSION_ID_FIELD_NUMBER: _ClassVar[int]
    SUBSCRIPTION_ID_FIELD_NUMBER: _ClassVar[int]
    MESSAGES_FIELD_NUMBER: _ClassVar[int]
    CLOSE_FIELD_NUMBER: _ClassVar[int]
    session_id: str
    subscription_id: str
    messages: _containers.RepeatedCompositeFieldContainer[_control_pb2.LogMessage]
    close: bool
    def __init__(self, session_id: _Optional[str] = ..., subscription_id: _Optional[str] = ..., messages: _Optional[_Iterable[_Union[_control_pb2.LogMessage, _Mapping]]] = ..., close: _Optional[bool] = ...) -> None: ...

class PublishLogsResponse(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...
