"""pysyncobj as raft/ relies on it: every internal the patches use, checked by name and shape.

raft/ adapts pysyncobj's internals: it swaps the journal factory while a
SyncObj initialises, subclasses the TCP transport through its private
attributes and callbacks, rewrites append_entries messages before raft
handles them, and reads pysyncobj's log entries and snapshots offline
(design/internals.md, "pysyncobj underneath the store", explains each patch).
pyproject.toml pins pysyncobj exactly. This module checks that the installed
version is the pinned one and that each internal still exists with the shape
the patches were written against; a failure names the internal, the raft/
code that relies on it and the pinned version, so that upgrading pysyncobj
means re-reading that patch. The checks read pysyncobj's code (signatures,
assignments, message keys); the behaviour itself is tested by the tests named
in design/internals.md.

The checkers are unit-tested at the end against fake classes, so that each
can be seen to fail.
"""
from __future__ import annotations

from abc import ABC, abstractmethod
import ast
import importlib
import importlib.metadata
import inspect
import sys
import textwrap
import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Optional

import pytest
from pysyncobj import SyncObjConf
from pysyncobj.version import VERSION

from raft.journal import DiskJournal
from raft.tls_transport import TlsConnection, TlsServer

REPO = Path(__file__).resolve().parent.parent


def pinned_version() -> str:
    """The exact pysyncobj version pyproject.toml pins ("" when it pins none)."""
    with open(REPO / "pyproject.toml", "rb") as f:
        deps = tomllib.load(f)["project"]["dependencies"]
    for dep in deps:
        name, sep, version = dep.partition("==")
        if name.strip().lower() == "pysyncobj":
            return version.strip() if sep else ""
    return ""


PIN = pinned_version()


# ----------------------------------------------------------------- checkers --

def resolve(target: str) -> Any:
    """The object named "module:Qualified.name" (the module alone without ':')."""
    module_name, _, qualname = target.partition(":")
    obj: Any = importlib.import_module(module_name)
    for part in filter(None, qualname.split(".")):
        obj = inspect.getattr_static(obj, part) if inspect.isclass(obj) else getattr(obj, part)
    return obj


def _tree(obj: Any) -> ast.AST:
    return ast.parse(textwrap.dedent(inspect.getsource(obj)))


def _normal(code: str) -> str:
    """`code` as ast.unparse writes it (quotes, spacing and line breaks normalised)."""
    node: ast.AST = ast.parse(textwrap.dedent(code)).body[0]
    if isinstance(node, ast.Expr):
        node = node.value
    return ast.unparse(node)


@dataclass(frozen=True)
class Reliance(ABC):
    """Something of pysyncobj that raft/ code relies on; `problem()` is None while it holds."""

    target: str  # "module:Qualified.name"
    used_by: str  # the raft/ code that relies on it

    def problem(self) -> Optional[str]:
        try:
            obj = resolve(self.target)
        except (ImportError, AttributeError) as exc:
            return f"is missing ({exc})"
        return self.check(obj)

    @abstractmethod
    def check(self, obj: Any) -> Optional[str]:
        """None while `obj` has the shape relied on; otherwise what is wrong."""

    def message(self, problem: str) -> str:
        return (f"pysyncobj {PIN or '(not pinned)'}: {self.target} {problem}; relied on by "
                f"{self.used_by}. Re-read that patch (design/internals.md) before changing the pin.")


@dataclass(frozen=True)
class Function(Reliance):
    """A function or method taking exactly these parameters (after self)."""

    params: tuple[str, ...] = ()

    def check(self, obj: Any) -> Optional[str]:
        func = obj.__func__ if isinstance(obj, (staticmethod, classmethod)) else obj
        if not callable(func):
            return f"is no longer callable (it is a {type(obj).__name__})"
        names = [p for p in inspect.signature(func).parameters]
        if names[:1] == ["self"]:
            names = names[1:]
        if tuple(names) != self.params:
            return f"takes ({', '.join(names)}), expected ({', '.join(self.params)})"
        return None


@dataclass(frozen=True)
class Property(Reliance):
    """A read-only property of a class."""

    def check(self, obj: Any) -> Optional[str]:
        return None if isinstance(obj, property) else f"is no longer a property (it is a {type(obj).__name__})"


@dataclass(frozen=True)
class Constants(Reliance):
    """A class (or module) whose attributes have these values."""

    values: tuple[tuple[str, Any], ...] = ()

    def check(self, obj: Any) -> Optional[str]:
        wrong = [f"{name} = {getattr(obj, name, '<missing>')!r} (expected {value!r})"
                 for name, value in self.values if getattr(obj, name, object()) != value]
        return "has " + ", ".join(wrong) if wrong else None


@dataclass(frozen=True)
class InitAttribute(Reliance):
    """An instance attribute the class's __init__ assigns (`self.<attr> = ...`)."""

    attr: str = ""

    def check(self, obj: Any) -> Optional[str]:
        for node in ast.walk(_tree(obj.__init__)):
            targets = node.targets if isinstance(node, ast.Assign) else \
                [node.target] if isinstance(node, (ast.AnnAssign, ast.AugAssign)) else []
            for t in targets:
                if isinstance(t, ast.Attribute) and ast.unparse(t.value) == "self" and t.attr == self.attr:
                    return None
        return f"no longer sets self.{self.attr} in __init__"


@dataclass(frozen=True)
class Code(Reliance):
    """Expressions or statements the code contains (compared after ast normalisation);
    `ordered`: in this order; `top_level`: as statements of the module itself."""

    snippets: tuple[str, ...] = ()
    ordered: bool = False
    top_level: bool = False

    def check(self, obj: Any) -> Optional[str]:
        tree = _tree(obj)
        nodes = tree.body if self.top_level and isinstance(tree, ast.Module) else list(ast.walk(tree))
        found: dict[str, list[int]] = {}
        for node in nodes:
            if isinstance(node, (ast.stmt, ast.expr)):
                found.setdefault(ast.unparse(node), []).append(node.lineno)
        missing = [s for s in self.snippets if _normal(s) not in found]
        if missing:
            where = " at module level" if self.top_level else ""
            return "no longer contains " + " nor ".join(f"`{_normal(s)}`" for s in missing) + where
        if self.ordered:
            lines = [min(found[_normal(s)]) for s in self.snippets]
            if lines != sorted(lines):
                return "no longer runs " + ", then ".join(f"`{_normal(s)}`" for s in self.snippets)
        return None


@dataclass(frozen=True)
class Uses(Reliance):
    """Exactly these attributes are used on `receivers` (expressions as written in
    the code) within it: the interface a raft/ replacement was written to provide."""

    receivers: tuple[str, ...] = ()
    attrs: frozenset[str] = frozenset()

    def check(self, obj: Any) -> Optional[str]:
        used = {node.attr for node in ast.walk(_tree(obj))
                if isinstance(node, ast.Attribute) and ast.unparse(node.value) in self.receivers}
        if used == self.attrs:
            return None
        parts = []
        if used - self.attrs:
            parts.append("now also uses " + ", ".join(sorted(used - self.attrs)))
        if self.attrs - used:
            parts.append("no longer uses " + ", ".join(sorted(self.attrs - used)))
        return f"on {' / '.join(self.receivers)}: " + "; ".join(parts)


@dataclass(frozen=True)
class SameMethods(Reliance):
    """Every method the class defines exists on `ours` with the same parameter names."""

    ours: type = object

    def check(self, obj: Any) -> Optional[str]:
        wrong = []
        for name, member in vars(obj).items():
            if not inspect.isfunction(member) or name == "__init__":
                continue
            mine = inspect.getattr_static(self.ours, name, None)
            if mine is None or not inspect.isfunction(mine):
                wrong.append(f"{name} (missing on {self.ours.__name__})")
            elif list(inspect.signature(mine).parameters) != list(inspect.signature(member).parameters):
                wrong.append(f"{name}{inspect.signature(member)} ({self.ours.__name__} has "
                             f"{name}{inspect.signature(mine)})")
        return "declares " + ", ".join(wrong) if wrong else None


# --------------------------------------------------------------- inventory --

S = "pysyncobj.syncobj:SyncObj"
T = "pysyncobj.transport:TCPTransport"
ON_MESSAGE = f"{S}._SyncObj__onMessageReceived"
REPLICA = "raft/replica.py Replica"
TLS = "raft/tls_transport.py"
JOURNAL_CALLS = frozenset({
    "add", "clear", "deleteEntriesFrom", "deleteEntriesTo", "_destroy", "setRaftCommitIndex",
    "getRaftCommitIndex", "setCurrentTerm", "getCurrentTerm", "getVotedForNodeId", "onOneSecondTimer"})
CONNECTION_USES = frozenset({
    "state", "connect", "send", "disconnect", "setOnConnectedCallback",
    "setOnMessageReceivedCallback", "setOnDisconnectedCallback", "encryptor", "sendRandKey",
    "recvRandKey"})

RELIANCES: list[Reliance] = [
    # raft/__init__.py: importing pysyncobj breaks socket.inet_ntop; raft puts it back
    Code("pysyncobj.tcp_connection", "raft/__init__.py (restores socket.inet_ntop)",
         ("import pysyncobj.win_inet_pton",), top_level=True),
    Code("pysyncobj.win_inet_pton", "raft/__init__.py (restores socket.inet_ntop)",
         ("socket.inet_ntop = inet_ntop",), top_level=True),

    # the journal: DiskJournal handed to SyncObj through the swapped factory
    Code(f"{S}.__init__", f"{REPLICA}.__init__ (swaps pysyncobj.syncobj.createJournal)",
         ("self.__raftLog = createJournal(self.__conf.journalFile)",)),
    Function("pysyncobj.syncobj:createJournal", f"{REPLICA}.__init__ (swaps it under a lock)",
             ("journalFile",)),
    Uses(S, "raft/journal.py DiskJournal (the journal SyncObj calls)",
         receivers=("self.__raftLog",), attrs=JOURNAL_CALLS),
    SameMethods("pysyncobj.journal:Journal", "raft/journal.py DiskJournal", ours=DiskJournal),
    Code(f"{S}.__init__", "raft/recovery.py (a journal's first entry has index 1)",
         ("self.__raftLog.add(_bchr(_COMMAND_TYPE.NO_OP), 1, self.__raftCurrentTerm)",)),

    # snapshots: pysyncobj's "full dump" through the replica's serializer
    Code("pysyncobj.serializer:Serializer.__init__", f"{REPLICA}._write_snapshot (runs on the raft thread)",
         ("self.__useFork = tryUseFork and hasattr(os, 'fork') and serializer is None",)),
    Code("pysyncobj.serializer:Serializer.serialize", f"{REPLICA}._write_snapshot (raft_data layout)",
         ("self.__serializer(tmpFile, data[1:])",)),
    Code("pysyncobj.serializer:Serializer.deserialize", f"{REPLICA}._read_snapshot",
         ("(None,) + self.__deserializer(self.__fileName)",)),
    Code(f"{S}._SyncObj__tryLogCompaction",
         "raft/replica.py read_snapshot_file, raft/recovery.py (raft_data = last, prev, members)",
         ("self.__serializer.serialize((data, lastAppliedEntries[1], lastAppliedEntries[0], cluster), "
          "lastAppliedEntries[0][1])",)),
    InitAttribute(S, f"{REPLICA}.set_snapshot_policy (changes the live configuration)",
                  attr="__conf"),
    Code(f"{S}._SyncObj__tryLogCompaction",
         f"{REPLICA}.set_snapshot_policy (the threshold is read at every tick; the journal "
         "keeps the snapshot's last two entries: SNAPSHOT_KEEPS_ENTRIES)",
         ("len(self.__raftLog) <= self.__conf.logCompactionMinEntries",
          "self.__getEntries(self.__raftLastApplied - 1, 2)",
          "self.__deleteEntriesTo(serializeID)")),
    Code("pysyncobj.serializer:Serializer.serialize",
         "raft/replica.py retain_snapshots (runs before the new snapshot is renamed over the "
         "current one)", ("self.__serializer(tmpFile, data[1:])",
                          "atomicReplace(tmpFile, self.__fileName)"), ordered=True),
    Code(f"{S}._SyncObj__loadDumpFile", "raft/journal.py DiskJournal.align_to_snapshot",
         ("self.__raftLog[0] != data[2]", "self.__raftLog[1] != data[1]", "self.__raftLog.clear()")),

    # the tick thread and the wake-up pipe
    Function(f"{S}.doTick", f"{REPLICA}._run (autoTick off)", ("timeToWait",)),
    Function(f"{S}._doDestroy", f"{REPLICA}._run (closes raft on the tick thread)"),
    Function(f"{S}.addOnTickCallback", f"{REPLICA}.__init__ (wake-up pipe)", ("callback",)),
    InitAttribute(S, f"{REPLICA} (wake-up pipe) and {TLS} (connections on its poller)", attr="_poller"),
    Code(f"{S}._onTick", f"{REPLICA}._before_poll (tick callbacks run after new entries, before poll)",
         ("self._checkCommandsToApply()", "callback()", "self._poller.poll(timeToWait)"), ordered=True),
    Function("pysyncobj.poller:Poller.subscribe", f"{REPLICA}.__init__, {TLS}", ("descr", "callback", "eventMask")),
    Function("pysyncobj.poller:Poller.unsubscribe", f"{REPLICA}._run, {TLS}", ("descr",)),
    Constants("pysyncobj.poller:POLL_EVENT_TYPE", f"{REPLICA}.__init__, {TLS}",
              values=(("READ", 1), ("WRITE", 2), ("ERROR", 4))),

    # construction, configuration, transport
    Function(f"{S}.__init__", f"{REPLICA}.__init__ (transportClass=_InspectingTransport)",
             ("selfNode", "otherNodes", "conf", "consumers", "nodeClass", "transport", "transportClass")),
    InitAttribute(S, f"{REPLICA}.transport (tests reach the TLS transport through it)",
                  attr="__transport"),
    Code(f"{S}.__init__", f"{REPLICA}.transport", ("self.__transport = transportClass(self, self.__selfNode, "
                                                   "self.__otherNodes)",)),
    Function("pysyncobj.config:SyncObjConf.__init__", f"{REPLICA}.__init__ (every option checked below)",
             ("kwargs",)),
    Function("pysyncobj.syncobj:SyncObjException.__init__", f"{REPLICA}.__init__ (errorCode of a failed bind)",
             ("errorCode", "args", "kwargs")),

    # leadership, status, membership
    Function(f"{S}._getLeader", f"{REPLICA}.leader_addr"),
    Function(f"{S}._isLeader", f"{REPLICA}.leadership_established"),
    Function(f"{S}.isReady", "raft/store.py Store._after_tick"),
    Property(f"{S}.raftLastApplied", f"{REPLICA}.leadership_established, raft/store.py"),
    Property(f"{S}.raftCommitIndex", f"{REPLICA}.inspect_message, _rewind_to_commit"),
    Property(f"{S}.raftCurrentTerm", f"{REPLICA}.leadership_established"),
    Property(f"{S}.selfNode", f"{REPLICA}.members"),
    Property(f"{S}.otherNodes", f"{REPLICA}.members"),
    Property(f"{S}.conf", f"{TLS} TlsTransport"),
    Property("pysyncobj.node:TCPNode.address", f"{REPLICA}.leader_addr, members"),
    Code("pysyncobj.node:TCPNode.__init__", "raft/store.py Store.reachable_members (node.id is the address)",
         ("super(TCPNode, self).__init__(address, **kwargs)",)),
    Code(f"{S}.getStatus", "raft/store.py Store.reachable_members",
         ("status['partner_node_status_server_' + node.id] = 2 if self.isNodeConnected(node) else 0",)),
    Function(f"{S}.forceLogCompaction", "raft/store.py Store.write_snapshot"),
    Function(f"{S}.addNodeToCluster", "raft/store.py Store.add_member", ("node", "callback")),
    Function(f"{S}.removeNodeFromCluster", "raft/store.py Store.remove_member", ("node", "callback")),
    Constants("pysyncobj.config:FAIL_REASON", "raft/store.py _FAILURES (and _CLOSED = -1 beside them)",
              values=(("SUCCESS", 0), ("QUEUE_FULL", 1), ("MISSING_LEADER", 2), ("DISCARDED", 3),
                      ("NOT_LEADER", 4), ("LEADER_CHANGED", 5), ("REQUEST_DENIED", 6),
                      ("UNKNOWN_OUTCOME", 7))),
    Code(f"{S}._checkCommandsToApply", "raft/store.py Store._leaderless (writes wait for a leader)",
         ("self.__raftLeader is None and self.__conf.commandsWaitLeader",)),
    # a proposal the leader cannot write (disk full) fails for its proposer at once
    Code(f"{S}.__init__", f"{REPLICA}.__init__ (replaces the queue by _CommandQueue)",
         ("self.__commandsQueue = FastQueue(self.__conf.commandsQueueSize)",)),
    Function("pysyncobj.fast_queue:FastQueue.__init__", f"{REPLICA} _CommandQueue", ("maxSize",)),
    Function("pysyncobj.fast_queue:FastQueue.get_nowait", f"{REPLICA} _CommandQueue.last_taken"),
    Code(f"{S}._checkCommandsToApply",
         f"{REPLICA}._checkCommandsToApply (the entry taken last is the one being appended)",
         ("command, callback = self.__commandsQueue.get_nowait()",
          "self.__raftLog.add(command, idx, term)"), ordered=True),
    Code(f"{S}._SyncObj__setCurrentTerm",
         f"{REPLICA}._SyncObj__setCurrentTerm (writes term and vote before pysyncobj sets them)",
         ("self.__raftCurrentTerm = term", "self.__votedForNodeId = votedForNodeId",
          "self.__raftLog.setCurrentTerm(term, votedForNodeId)"), ordered=True),
    Code(f"{S}._onTick", f"{REPLICA}._SyncObj__setCurrentTerm (called through self)",
         ("self.__setCurrentTerm(self.__raftCurrentTerm + 1, self.__selfNode.id)",)),
    Function(f"{S}._SyncObj__tryLogCompaction", f"{REPLICA}._SyncObj__tryLogCompaction (waits "
             "snapshot_retry after a failed snapshot)"),
    Code(f"{S}._onTick", f"{REPLICA}._SyncObj__tryLogCompaction (called through self every tick)",
         ("self.__tryLogCompaction()",)),
    Code(f"{S}._SyncObj__onMessageReceived",
         f"{REPLICA}._refuse (a follower's proposal is answered with an error code)",
         ("error = message.get('error', None)", "callback(None, error)"), ordered=True),

    # log entries read offline (raft/recovery.py)
    Constants("pysyncobj.syncobj:_COMMAND_TYPE", "raft/recovery.py (_REGULAR, _NO_OP, _MEMBERSHIP, _VERSION)",
              values=(("REGULAR", 0), ("NO_OP", 1), ("MEMBERSHIP", 2), ("VERSION", 3))),
    Code("pysyncobj.syncobj:replicated", "raft/recovery.py _replay ((method ID, args) of apply_payload)",
         ("cmd = (funcID, args)", "applier(pickle.dumps(cmd), callback, _COMMAND_TYPE.REGULAR)")),
    Code(f"{S}.addNodeToCluster", "raft/recovery.py _replay (membership entries)",
         ("pickle.dumps(['add', node.id, node])",)),
    Code(f"{S}.removeNodeFromCluster", "raft/recovery.py _replay (membership entries)",
         ("pickle.dumps(['rem', node.id, node])",)),

    # append_entries as Replica.inspect_message and _rewind_to_commit rewrite them
    Code(f"{S}._SyncObj__sendAppendEntries", f"{REPLICA}.inspect_message (message keys)",
         ("{'type': 'append_entries', 'term': self.__raftCurrentTerm, 'commit_index': self.__raftCommitIndex, "
          "'entries': entries, 'prevLogIdx': prevLogIdx, 'prevLogTerm': prevLogTerm}",)),
    Code(ON_MESSAGE, f"{REPLICA}.inspect_message (how a follower reads append_entries)",
         ("message['type'] == 'append_entries' and message['term'] >= self.__raftCurrentTerm",
          "'prevLogIdx' in message", "message.get('transmission', None)", "message.get('entries', [])",
          "message['prevLogIdx']", "message['prevLogTerm']", "self.__raftLog.add(*entry)")),
    Code(ON_MESSAGE, f"{REPLICA}.inspect_message (the truncation it prevents)",
         ("self.__deleteEntriesFrom(prevLogIdx + 1)",)),
    Code(ON_MESSAGE, f"{REPLICA}._rewind_to_commit (the two refusals)",
         ("self.__sendNextNodeIdx(node, success=False, reset=True)",
          "self.__sendNextNodeIdx(node, nextNodeIdx=prevLogIdx, success=False, reset=True)",
          "self.__raftNextIndex[node] = nextNodeIdx")),
    Code(f"{S}._SyncObj__sendNextNodeIdx", f"{REPLICA}._rewind_to_commit (refusal = last index + 1)",
         ("nextNodeIdx = self.__getCurrentLogIndex() + 1",)),
    Function(f"{T}._onMessageReceived", "raft/replica.py _InspectingTransport._onMessageReceived",
             ("node", "message")),

    # the TLS transport (raft/tls_transport.py TlsTransport, TlsConnection, TlsServer)
    Function(f"{T}.__init__", f"{TLS} TlsTransport.__init__", ("syncObj", "selfNode", "otherNodes")),
    *[InitAttribute(T, f"{TLS} TlsTransport", attr=a) for a in (
        "_syncObj", "_selfNode", "_server", "_connections", "_unknownConnections", "_nodeAddrToNode")],
    Function(f"{T}._createServer", f"{TLS} TlsTransport._createServer (puts a TlsServer in _server)"),
    Uses(T, f"{TLS} TlsServer (what the transport calls on its server)",
         receivers=("self._server",), attrs=frozenset({"bind", "unbind"})),
    Function(f"{T}.addNode", f"{TLS} TlsTransport.addNode (replaces the TcpConnection it made)", ("node",)),
    Code(f"{T}.addNode", f"{TLS} TlsTransport.addNode",
         ("self._connections[node] = conn",
          "conn.setOnConnectedCallback(functools.partial(self._onOutgoingConnected, conn))",
          "conn.setOnMessageReceivedCallback(functools.partial(self._onMessageReceived, node))",
          "conn.setOnDisconnectedCallback(functools.partial(self._onDisconnected, conn))")),
    Function(f"{T}._onNewIncomingConnection", f"{TLS} TlsServer (handed to it)", ("conn",)),
    Function(f"{T}._onOutgoingConnected", f"{TLS} TlsTransport.addNode", ("conn",)),
    Function(f"{T}._onDisconnected", f"{TLS} TlsTransport.addNode", ("conn",)),
    Function(f"{T}._onIncomingMessageReceived", f"{TLS} TlsTransport._onIncomingMessageReceived",
             ("conn", "message")),
    Code(f"{T}._onIncomingMessageReceived", f"{TLS} TlsTransport._onIncomingMessageReceived "
         "(admin commands and read-only nodes refused)",
         ("isinstance(message, list) and self._onUtilityMessage(conn, message)",
          "node is None and message != 'readonly'")),
    Function(f"{T}._onTick", f"{TLS} TlsTransport._onTick"),
    Uses(T, f"{TLS} TlsConnection (what the transport uses on a connection)",
         receivers=("conn", "self._connections[node]"), attrs=CONNECTION_USES),
    Constants("pysyncobj.tcp_connection:CONNECTION_STATE", f"{TLS} TlsConnection.state",
              values=(("DISCONNECTED", 0), ("CONNECTING", 1), ("CONNECTED", 2))),
    Function("pysyncobj.tcp_connection:_getAddrType", f"{TLS} TlsConnection.connect, TlsServer.bind", ("addr",)),
    Function("pysyncobj.dns_resolver:globalDnsResolver", f"{TLS} TlsTransport._createServer"),
    Function("pysyncobj.dns_resolver:DnsCachingResolver.resolve", f"{TLS} TlsTransport._createServer",
             ("hostname",)),
    Function("pysyncobj.pickle:dumps", f"{TLS} TlsConnection.send", ("obj", "protocol")),
    Function("pysyncobj.pickle:loads", f"{TLS} TlsConnection._next_message", ("data",)),
]


def _reliance_id(r: Reliance) -> str:
    extra = getattr(r, "attr", "") or ""
    return f"{type(r).__name__}:{r.target.split(':')[-1]}{'.' + extra if extra else ''}"


# ----------------------------------------------------------------- the tests --

def test_pysyncobj_is_pinned_exactly_and_installed_at_the_pin() -> None:
    assert PIN, "pyproject.toml must pin pysyncobj exactly (pysyncobj==X.Y.Z): raft/ patches its internals"
    installed = importlib.metadata.version("pysyncobj")
    assert installed == PIN, (
        f"pysyncobj {installed} is installed, pyproject.toml pins {PIN}: raft/ was checked against "
        f"{PIN}; see design/internals.md before changing the pin")
    assert VERSION == PIN, f"pysyncobj says it is {VERSION}, its metadata says {installed}"


@pytest.mark.parametrize("reliance", RELIANCES, ids=_reliance_id)
def test_pysyncobj_internal_still_has_its_shape(reliance: Reliance) -> None:
    problem = reliance.problem()
    assert problem is None, reliance.message(problem)


def test_every_option_the_replica_sets_exists_in_syncobjconf() -> None:
    """SyncObjConf takes **kwargs and ignores names it does not know: a renamed
    option would be dropped silently."""
    tree = ast.parse((REPO / "raft" / "replica.py").read_text())
    calls = [n for n in ast.walk(tree) if isinstance(n, ast.Call) and ast.unparse(n.func) == "SyncObjConf"]
    assert len(calls) == 1
    options = [k.arg for k in calls[0].keywords]
    assert "appendEntriesUseBatch" in options and "autoTick" in options
    conf = SyncObjConf()
    unknown = [o for o in options if not hasattr(conf, o)]
    assert not unknown, (f"pysyncobj {PIN}: SyncObjConf no longer knows {', '.join(unknown)}; "
                         "relied on by raft/replica.py Replica.__init__ (RaftTuning)")


def test_the_replacements_provide_what_pysyncobj_calls() -> None:
    """DiskJournal, TlsConnection and TlsServer offer every name the Uses checks list."""
    def provided(cls: type) -> set[str]:
        names = {n for n in dir(cls)}
        for node in ast.walk(_tree(cls.__init__)):
            if isinstance(node, (ast.Assign, ast.AnnAssign)):
                for t in node.targets if isinstance(node, ast.Assign) else [node.target]:
                    if isinstance(t, ast.Attribute) and ast.unparse(t.value) == "self":
                        names.add(t.attr)
        return names

    assert JOURNAL_CALLS - provided(DiskJournal) == set()
    assert CONNECTION_USES - provided(TlsConnection) == set()
    assert {"bind", "unbind"} - provided(TlsServer) == set()


def test_nothing_outside_raft_imports_pysyncobj() -> None:
    """Everything else reaches consensus through raft.api.ObjectStore (tests of raft/ excepted)."""
    offenders = []
    for path in sorted(REPO.rglob("*.py")):
        rel = path.relative_to(REPO)
        if rel.parts[0] in ("raft", "tests") or rel.parts[0].startswith("."):
            continue
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            names = [a.name for a in node.names] if isinstance(node, ast.Import) else \
                [node.module or ""] if isinstance(node, ast.ImportFrom) else []
            if any(n == "pysyncobj" or n.startswith("pysyncobj.") for n in names):
                offenders.append(f"{rel}:{node.lineno}")
    assert not offenders, f"pysyncobj imported outside raft/: {', '.join(offenders)}"


# ------------------------------------------------- the checkers can fail --

class _FakeConf:
    READY = 1


class _FakeTransport:
    def __init__(self) -> None:
        self._connections: dict = {}

    def _onTick(self, extra: int) -> None:  # noqa: N802
        pass

    def handle(self, message: dict) -> None:
        if message["type"] == "ping":
            self.reply(message)
        self._connections["x"].send(message)

    def reply(self, message: dict) -> None:
        pass

    @property
    def ready(self) -> bool:
        return True

    limit = 3


class _FakeJournal:
    def add(self, command: bytes, idx: int) -> None:
        pass


class _FakeJournalSpec:
    def add(self, command: bytes, idx: int, term: int) -> None:
        pass

    def clear(self) -> None:
        pass


FAKE = f"{__name__}:_FakeTransport"


@pytest.mark.parametrize("reliance,expected", [
    (Function(f"{FAKE}._onTick", "raft/x.py A", ()), "takes (extra), expected ()"),
    (Function(f"{FAKE}._gone", "raft/x.py A"), "is missing"),
    (Function(f"{FAKE}.limit", "raft/x.py A"), "is no longer callable"),
    (Property(f"{FAKE}.handle", "raft/x.py A"), "is no longer a property"),
    (Constants(f"{__name__}:_FakeConf", "raft/x.py A", values=(("READY", 2), ("GONE", 0))),
     "has READY = 1 (expected 2), GONE = '<missing>' (expected 0)"),
    (InitAttribute(FAKE, "raft/x.py A", attr="_nodes"), "no longer sets self._nodes in __init__"),
    (Code(f"{FAKE}.handle", "raft/x.py A", ("message['type'] == 'pong'",)),
     "no longer contains `message['type'] == 'pong'`"),
    (Code(f"{FAKE}.handle", "raft/x.py A", ("self._connections['x'].send(message)", "self.reply(message)"),
          ordered=True), "no longer runs"),
    (Code(__name__, "raft/x.py A", ("FAKE = 1",), top_level=True), "no longer contains `FAKE = 1` at module level"),
    (Uses(FAKE, "raft/x.py A", receivers=("self._connections['x']",), attrs=frozenset({"send", "close"})),
     "on self._connections['x']: no longer uses close"),
    (Uses(FAKE, "raft/x.py A", receivers=("self",), attrs=frozenset({"_connections"})),
     "on self: now also uses reply"),
    (SameMethods(f"{__name__}:_FakeJournalSpec", "raft/x.py A", ours=_FakeJournal),
     "declares add(self, command: 'bytes', idx: 'int', term: 'int') -> 'None' (_FakeJournal has "
     "add(self, command: 'bytes', idx: 'int') -> 'None'), clear (missing on _FakeJournal)"),
])
def test_each_checker_reports_a_changed_shape(reliance: Reliance, expected: str) -> None:
    problem = reliance.problem()
    assert problem is not None and expected in problem, problem
    message = reliance.message(problem)
    assert reliance.target in message and "raft/x.py A" in message and PIN in message


def test_the_checkers_accept_the_shape_they_were_given() -> None:
    holding = [
        Function(f"{FAKE}._onTick", "raft/x.py A", ("extra",)),
        Function(f"{FAKE}.handle", "raft/x.py A", ("message",)),
        Property(f"{FAKE}.ready", "raft/x.py A"),
        Constants(f"{__name__}:_FakeConf", "raft/x.py A", values=(("READY", 1),)),
        InitAttribute(FAKE, "raft/x.py A", attr="_connections"),
        Code(f"{FAKE}.handle", "raft/x.py A", ('message["type"]  ==  "ping"', "self.reply(message)",
                                                "self._connections['x'].send(message)"), ordered=True),
        Uses(FAKE, "raft/x.py A", receivers=("self._connections['x']",), attrs=frozenset({"send"})),
        SameMethods(f"{__name__}:_FakeJournal", "raft/x.py A", ours=_FakeJournal),
    ]
    assert [r.problem() for r in holding] == [None] * len(holding)


def test_a_missing_pin_is_reported(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(sys.modules[__name__], "PIN", "")
    with pytest.raises(AssertionError, match="must pin pysyncobj exactly"):
        test_pysyncobj_is_pinned_exactly_and_installed_at_the_pin()
