"""DNS wire format, the little the embedded DNS needs (RFC 1035); pure, no I/O.

Owns parsing the question of a query and building an answer with A records
(or an empty answer / an error code), plus the service-discovery name table
of each local task (`task_records`), computed from a `DesiredState`.
"""
from __future__ import annotations

import ipaddress
import struct
from dataclasses import dataclass
from typing import Optional

from overlay_net.model import DesiredState

TYPE_A = 1
TYPE_ANY = 255
CLASS_IN = 1
RCODE_OK = 0
RCODE_FORMERR = 1
RCODE_SERVFAIL = 2
RCODE_NXDOMAIN = 3
RCODE_NOTIMP = 4
TTL = 600          # Docker's embedded DNS answers with a 600 s TTL


class DnsFormatError(ValueError):
    """The message is not a DNS query this server understands."""


@dataclass(frozen=True)
class Question:
    id: int
    flags: int
    name: str                 # lowercase, no trailing dot
    qtype: int
    qclass: int
    end: int                  # offset just after the question section


def parse_query(data: bytes) -> Question:
    if len(data) < 12:
        raise DnsFormatError("message shorter than a DNS header")
    qid, flags, qdcount = struct.unpack("!HHH", data[:6])
    if flags & 0x8000:
        raise DnsFormatError("a response, not a query")
    if qdcount != 1:
        raise DnsFormatError(f"{qdcount} questions (exactly one supported)")
    labels: list[str] = []
    pos = 12
    while True:
        if pos >= len(data):
            raise DnsFormatError("question name runs past the message")
        length = data[pos]
        pos += 1
        if length == 0:
            break
        if length & 0xC0:
            raise DnsFormatError("compressed name in a question")
        label = data[pos:pos + length]
        if len(label) != length:
            raise DnsFormatError("question name runs past the message")
        labels.append(label.decode("ascii", errors="replace").lower())
        pos += length
    if pos + 4 > len(data):
        raise DnsFormatError("question has no type and class")
    qtype, qclass = struct.unpack("!HH", data[pos:pos + 4])
    return Question(qid, flags, ".".join(labels), qtype, qclass, pos + 4)


def build_response(query: bytes, question: Question, rcode: int,
                   addresses: tuple[str, ...] = (), ttl: int = TTL) -> bytes:
    """An authoritative answer to question with A records for addresses."""
    opcode_rd = question.flags & 0x7900           # opcode + RD copied
    flags = 0x8000 | 0x0400 | 0x0080 | opcode_rd | (rcode & 0xF)   # QR AA RA
    header = struct.pack("!HHHHHH", question.id, flags, 1, len(addresses), 0, 0)
    body = bytearray(query[12:question.end])
    for ip in addresses:
        body += struct.pack("!HHHIH", 0xC00C, TYPE_A, CLASS_IN, ttl, 4)
        body += ipaddress.IPv4Address(ip).packed
    return header + bytes(body)


def error_response(query: bytes, rcode: int) -> Optional[bytes]:
    """A bare error answer for a query we could not parse (None if not even a header)."""
    if len(query) < 12:
        return None
    qid, flags = struct.unpack("!HH", query[:4])
    flags = 0x8000 | 0x0080 | (flags & 0x7900) | (rcode & 0xF)
    return struct.pack("!HHHHHH", qid, flags, 0, 0, 0, 0)


def parse_answer_addresses(data: bytes) -> tuple[int, list[str]]:
    """(rcode, A addresses) of a response; used by tests and the forwarder's logs."""
    qid, flags, qd, an = struct.unpack("!HHHH", data[:8])
    pos = 12
    for _ in range(qd):
        pos = _skip_name(data, pos) + 4
    found: list[str] = []
    for _ in range(an):
        pos = _skip_name(data, pos)
        rtype, _cls, _ttl, rdlen = struct.unpack("!HHIH", data[pos:pos + 10])
        pos += 10
        if rtype == TYPE_A and rdlen == 4:
            found.append(str(ipaddress.IPv4Address(data[pos:pos + 4])))
        pos += rdlen
    return flags & 0xF, found


def _skip_name(data: bytes, pos: int) -> int:
    while True:
        length = data[pos]
        if length & 0xC0 == 0xC0:
            return pos + 2
        pos += 1
        if length == 0:
            return pos
        pos += length


def build_query(name: str, qtype: int = TYPE_A, qid: int = 0x1234) -> bytes:
    """A recursive query for name (tests and health checks)."""
    out = bytearray(struct.pack("!HHHHHH", qid, 0x0100, 1, 0, 0, 0))
    for label in name.rstrip(".").split("."):
        out += bytes([len(label)]) + label.encode("ascii")
    out += b"\x00" + struct.pack("!HH", qtype, CLASS_IN)
    return bytes(out)


Records = dict[str, tuple[str, ...]]


def task_records(desired: DesiredState) -> dict[str, Records]:
    """task id -> {name: addresses} over the networks that task is attached to.

    `<service>` and its aliases answer the VIP (mode vip) or the task
    addresses (mode dnsrr); `tasks.<service>` / `tasks.<alias>` the task
    addresses. A name on several shared networks answers all their addresses.
    """
    per_network: dict[str, dict[str, set[str]]] = {}
    for net in desired.networks:
        names: dict[str, set[str]] = {}
        for svc in net.services:
            targets = {svc.vip} if svc.mode == "vip" and svc.vip else set(svc.backends)
            for name in (svc.name, *svc.aliases):
                key = name.lower().rstrip(".")
                names.setdefault(key, set()).update(targets)
                names.setdefault(f"tasks.{key}", set()).update(svc.backends)
        per_network[net.id] = names
    result: dict[str, Records] = {}
    for task in desired.tasks:
        merged: dict[str, set[str]] = {}
        for att in task.attachments:
            for name, ips in per_network.get(att.network_id, {}).items():
                merged.setdefault(name, set()).update(ips)
        result[task.task_id] = {
            name: tuple(sorted(ips, key=lambda ip: int(ipaddress.IPv4Address(ip))))
            for name, ips in merged.items()}
    return result


def resolv_conf(host_text: str = "") -> str:
    """The resolv.conf a task gets: the embedded DNS, the host's search and options.

    Like Docker: nameserver 127.0.0.11, `options ndots:0` added (unless the
    host sets ndots), the host's `search` line kept.
    """
    search: list[str] = []
    options: list[str] = []
    for line in host_text.splitlines():
        parts = line.split()
        if not parts or parts[0].startswith(("#", ";")):
            continue
        if parts[0] == "search":
            search = parts[1:]
        elif parts[0] == "options":
            options += parts[1:]
    if not any(o.startswith("ndots:") for o in options):
        options.append("ndots:0")
    lines = ["# generated by shoal: the node's embedded DNS", "nameserver 127.0.0.11"]
    if search:
        lines.append("search " + " ".join(search))
    lines.append("options " + " ".join(options))
    return "\n".join(lines) + "\n"


def upstreams_from(host_text: str) -> list[str]:
    """The nameservers of a resolv.conf, without the embedded DNS itself."""
    found = []
    for line in host_text.splitlines():
        parts = line.split()
        if len(parts) >= 2 and parts[0] == "nameserver" and parts[1] != "127.0.0.11":
            found.append(parts[1])
    return found
