from proto import objects_pb2 as _objects_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class GetRootCACertificateRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class GetRootCACertificateResponse(_message.Message):
    __slots__ = ("certificate",)
    CERTIFICATE_FIELD_NUMBER: _ClassVar[int]
    certificate: bytes
    def __init__(self, certificate: _Optional[bytes] = ...) -> None: ...

class IssueNodeCertificateRequest(_message.Message):
    __slots__ = ("csr", "token", "availability", "advertise_addr", "raft_addr", "description")
    CSR_FIELD_NUMBER: _ClassVar[int]
    TOKEN_FIELD_NUMBER: _ClassVar[int]
    AVAILABILITY_FIELD_NUMBER: _ClassVar[int]
    ADVERTISE_ADDR_FIELD_NUMBER: _ClassVar[int]
    RAFT_ADDR_FIELD_NUMBER: _ClassVar[int]
    DESCRIPTION_FIELD_NUMBER: _ClassVar[int]
    csr: bytes
    token: str
    availability: _objects_pb2.NodeSpec.Availability
    advertise_addr: str
    raft_addr: str
    description: _objects_pb2.NodeDescription
    def __init__(self, csr: _Optional[bytes] = ..., token: _Optional[str] = ..., availability: _Optional[_Union[_objects_pb2.NodeSpec.Availability, str]] = ..., advertise_addr: _Optional[str] = ..., raft_addr: _Optional[str] = ..., description: _Optional[_Union[_objects_pb2.NodeDescription, _Mapping]] = ...) -> None: ...

class IssueNodeCertificateResponse(_message.Message):
    __slots__ = ("node_id", "certificate", "root_ca", "role", "cluster_id", "manager_addrs")
    NODE_ID_FIELD_NUMBER: _ClassVar[int]
    CERTIFICATE_FIELD_NUMBER: _ClassVar[int]
    ROOT_CA_FIELD_NUMBER: _ClassVar[int]
    ROLE_FIELD_NUMBER: _ClassVar[int]
    CLUSTER_ID_FIELD_NUMBER: _ClassVar[int]
    MANAGER_ADDRS_FIELD_NUMBER: _ClassVar[int]
    node_id: str
    certificate: bytes
    root_ca: bytes
    role: _objects_pb2.NodeRole
    cluster_id: str
    manager_addrs: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, node_id: _Optional[str] = ..., certificate: _Optional[bytes] = ..., root_ca: _Optional[bytes] = ..., role: _Optional[_Union[_objects_pb2.NodeRole, str]] = ..., cluster_id: _Optional[str] = ..., manager_addrs: _Optional[_Iterable[str]] = ...) -> None: ...

class RenewNodeCertificateRequest(_message.Message):
    __slots__ = ("csr",)
    CSR_FIELD_NUMBER: _ClassVar[int]
    csr: bytes
    def __init__(self, csr: _Optional[bytes] = ...) -> None: ...

class JoinRaftRequest(_message.Message):
    __slots__ = ("raft_addr",)
    RAFT_ADDR_FIELD_NUMBER: _ClassVar[int]
    raft_addr: str
    def __init__(self, raft_addr: _Optional[str] = ...) -> None: ...

class JoinRaftResponse(_message.Message):
    __slots__ = ("members", "raft_key", "root_ca_key")
    MEMBERS_FIELD_NUMBER: _ClassVar[int]
    RAFT_KEY_FIELD_NUMBER: _ClassVar[int]
    ROOT_CA_KEY_FIELD_NUMBER: _ClassVar[int]
    members: _containers.RepeatedScalarFieldContainer[str]
    raft_key: bytes
    root_ca_key: bytes
    def __init__(self, members: _Optional[_Iterable[str]] = ..., raft_key: _Optional[bytes] = ..., root_ca_key: _Optional[bytes] = ...) -> None: ...

class LeaveRaftRequest(_message.Message):
    __slots__ = ("raft_addr",)
    RAFT_ADDR_FIELD_NUMBER: _ClassVar[int]
    raft_addr: str
    def __init__(self, raft_addr: _Optional[str] = ...) -> None: ...

class LeaveRaftResponse(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...
