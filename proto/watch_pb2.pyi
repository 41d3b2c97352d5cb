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
    __slots__ = ("selectors", "include_old_object")
    SELECTORS_FIELD_NUMBER: _ClassVar[int]
    INCLUDE_OLD_OBJECT_FIELD_NUMBER: _ClassVar[int]
    selectors: _containers.RepeatedCompositeFieldContainer[WatchSelector]
    include_old_object: bool
    def __init__(self, selectors: _Optional[_Iterable[_Union[WatchSelector, _Mapping]]] = ..., include_old_object: _Optional[bool] = ...) -> None: ...

class WatchEvent(_message.Message):
    __slots__ = ("action", "object", "old_object", "version")
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
    action: WatchEvent.Action
    object: _objects_pb2.StoreObject
    old_object: _objects_pb2.StoreObject
    version: int
    def __init__(self, action: _Optional[_Union[WatchEvent.Action, str]] = ..., object: _Optional[_Union[_objects_pb2.StoreObject, _Mapping]] = ..., old_object: _Optional[_Union[_objects_pb2.StoreObject, _Mapping]] = ..., version: _Optional[int] = ...) -> None: ...

class WatchMessage(_message.Message):
    __slots__ = ("events",)
    EVENTS_FIELD_NUMBER: _ClassVar[int]
    events: _containers.RepeatedCompositeFieldContainer[WatchEvent]
    def __init__(self, events: _Optional[_Iterable[_Union[WatchEvent, _Mapping]]] = ...) -> None: ...
