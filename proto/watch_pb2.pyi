import datetime

from google.protobuf import timestamp_pb2 as _timestamp_pb2
from proto import objects_pb2 as _objects_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class WatchSelector(_message.Message):
    __slots__ = ("kind", "id", "name", "service_id", "node_id", "actions")
    KIND_FIELD_NUMBER: _ClassVar[int]
    ID_FIELD_NUMBER: _ClassVar[int]
    NAME_FIELD_NUMBER: _ClassVar[int]
    SERVICE_ID_FIELD_NUMBER: _ClassVar[int]
    NODE_ID_FIELD_NUMBER: _ClassVar[int]
    ACTIONS_FIELD_NUMBER: _ClassVar[int]
    kind: str
    id: str
    name: str
    service_id: str
    node_id: str
    actions: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, kind: _Optional[str] = ..., id: _Optional[str] = ..., name: _Optional[str] = ..., service_id: _Optional[str] = ..., node_id: _Optional[str] = ..., actions: _Optional[_Iterable[str]] = ...) -> None: ...

class WatchRequest(_message.Message):
    __slots__ = ("selectors", "include_old_object", "resume_after_version", "since", "progress")
    SELECTORS_FIELD_NUMBER: _ClassVar[int]
    INCLUDE_OLD_OBJECT_FIELD_NUMBER: _ClassVar[int]
    RESUME_AFTER_VERSION_FIELD_NUMBER: _ClassVar[int]
    SINCE_FIELD_NUMBER: _ClassVar[int]
    PROGRESS_FIELD_NUMBER: _ClassVar[int]
    selectors: _containers.RepeatedCompositeFieldContainer[WatchSelector]
    include_old_object: bool
    resume_after_version: int
    since: _timestamp_pb2.Timestamp
    progress: bool
    def __init__(self, selectors: _Optional[_Iterable[_Union[WatchSelector, _Mapping]]] = ..., include_old_object: _Optional[bool] = ..., resume_after_version: _Optional[int] = ..., since: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., progress: _Optional[bool] = ...) -> None: ...

class WatchEvent(_message.Message):
    __slots__ = ("action", "object", "old_object", "version", "committed_at")
    class Action(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
        __slots__ = ()
        CREATE: _ClassVar[WatchEvent.Action]
        UPDATE: _ClassVar[WatchEvent.Action]
        REMOVE: _ClassVar[WatchEvent.Action]
    CREATE: WatchEvent.Action
    UPDATE: WatchEvent.Action
    REMOVE: WatchEvent.Action
    ACTION_FIELD_NUMBER: _ClassVar[int]
    OBJECT_FIELD_NUMBER: _ClassVar[int]
    OLD_OBJECT_FIELD_NUMBER: _ClassVar[int]
    VERSION_FIELD_NUMBER: _ClassVar[int]
    COMMITTED_AT_FIELD_NUMBER: _ClassVar[int]
    action: WatchEvent.Action
    object: _objects_pb2.StoreObject
    old_object: _objects_pb2.StoreObject
    version: int
    committed_at: _timestamp_pb2.Timestamp
    def __init__(self, action: _Optional[_Union[WatchEvent.Action, str]] = ..., object: _Optional[_Union[_objects_pb2.StoreObject, _Mapping]] = ..., old_object: _Optional[_Union[_objects_pb2.StoreObject, _Mapping]] = ..., version: _Optional[int] = ..., committed_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...

class WatchMessage(_message.Message):
    __slots__ = ("events", "version")
    EVENTS_FIELD_NUMBER: _ClassVar[int]
    VERSION_FIELD_NUMBER: _ClassVar[int]
    events: _containers.RepeatedCompositeFieldContainer[WatchEvent]
    version: int
    def __init__(self, events: _Optional[_Iterable[_Union[WatchEvent, _Mapping]]] = ..., version: _Optional[int] = ...) -> None: ...
