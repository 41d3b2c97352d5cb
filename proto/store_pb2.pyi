from proto import objects_pb2 as _objects_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class StoreAction(_message.Message):
    __slots__ = ("kind", "object", "expected_version")
    class Kind(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
        __slots__ = ()
        CREATE: _ClassVar[StoreAction.Kind]
        UPDATE: _ClassVar[StoreAction.Kind]
        REMOVE: _ClassVar[StoreAction.Kind]
    CREATE: StoreAction.Kind
    UPDATE: StoreAction.Kind
    REMOVE: StoreAction.Kind
    KIND_FIELD_NUMBER: _ClassVar[int]
    OBJECT_FIELD_NUMBER: _ClassVar[int]
    EXPECTED_VERSION_FIELD_NUMBER: _ClassVar[int]
    kind: StoreAction.Kind
    object: _objects_pb2.StoreObject
    expected_version: int
    def __init__(self, kind: _Optional[_Union[StoreAction.Kind, str]] = ..., object: _Optional[_Union[_objects_pb2.StoreObject, _Mapping]] = ..., expected_version: _Optional[int] = ...) -> None: ...

class StoreTransaction(_message.Message):
    __slots__ = ("actions", "proposer", "proposed_at")
    ACTIONS_FIELD_NUMBER: _ClassVar[int]
    PROPOSER_FIELD_NUMBER: _ClassVar[int]
    PROPOSED_AT_FIELD_NUMBER: _ClassVar[int]
    actions: _containers.RepeatedCompositeFieldContainer[StoreAction]
    proposer: str
    proposed_at: float
    def __init__(self, actions: _Optional[_Iterable[_Union[StoreAction, _Mapping]]] = ..., proposer: _Optional[str] = ..., proposed_at: _Optional[float] = ...) -> None: ...
