"""Encrypted overlays without kernel ESP/WireGuard/MACsec: a userspace AES-GCM tunnel.

Owns, for every encrypted network with a sandbox on this node, a TAP device
`sec0` in the sandbox (on `br0`, where `vxlan0` would be) and one UDP socket
per node, bound to the node's underlay address, port 4790, in the node's
namespace. A thread per TAP reads Ethernet frames, picks the remote node by
destination MAC (the same static FDB the control plane gives VXLAN; broadcast
and unknown destinations go to every remote node of the network), encrypts
each frame with the network's primary key and sends it; a receiver thread
decrypts with the key named in the packet (every listed key is accepted, for
rotation) and writes the frame to the TAP of that VNI. A packet that does not
authenticate is dropped. Plaintext never leaves the node.

Packet: vni (4 bytes, big-endian) | key id (4) | nonce (12, random) |
AES-256-GCM(frame) with the first 8 bytes as associated data.
"""
from __future__ import annotations

import fcntl
import logging
import os
import select
import socket
import struct
import threading
from dataclasses import dataclass, field
from typing import Optional

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from pyroute2 import IPRoute

from overlay_net import netns
from overlay_net.plan import BRIDGE, ZERO_MAC, SandboxSpec

log = logging.getLogger(__name__)

SECURE_PORT = 4790
TAP = "sec0"
OVERHEAD = 20 + 8 + 8 + 12 + 16 + 14     # IP, UDP, header, nonce, tag, inner Ethernet
TUNSETIFF = 0x400454CA
IFF_TAP = 0x0002
IFF_NO_PI = 0x1000
HEADER = struct.Struct("!II")


class SecureTunnelError(Exception):
    """The encrypted tunnel could not be set up; the message says why."""


@dataclass
class _Network:
    vni: int
    sandbox: str
    fd: int
    keys: dict[int, AESGCM]
    primary: int
    fdb: dict[str, str]                  # mac -> node address
    nodes: tuple[str, ...]               # every remote node of the network
    stop: threading.Event = field(default_factory=threading.Event)
    thread: Optional[threading.Thread] = None
    fd_lock: threading.Lock = field(default_factory=threading.Lock)   # receiver vs. close


def _open_tap() -> int:
    """Creates the TAP device in the calling thread's namespace; returns its fd."""
    fd = os.open("/dev/net/tun", os.O_RDWR | os.O_CLOEXEC)
    try:
        fcntl.ioctl(fd, TUNSETIFF, struct.pack("16sH", TAP.encode(), IFF_TAP | IFF_NO_PI))
    except OSError:
        os.close(fd)
        raise
    return fd


class SecureTunnel:
    """All encrypted networks of one node."""

    def __init__(self, node_addr: str, node_netns: Optional[str], node: str = "",
                 port: int = SECURE_PORT) -> None:
        self.node_addr = node_addr
        self.node_netns = node_netns
        self.node = node
        self.port = port
        self._sock: Optional[socket.socket] = None
        self._receiver: Optional[threading.Thread] = None
        self._closing = threading.Event()
        self._nets: dict[int, _Network] = {}
        self.dropped = 0                     # packets that did not authenticate

    # ---- setup

    def ensure(self, spec: SandboxSpec, keys: tuple[tuple[int, bytes, bool], ...], mtu: int,
               changes: list[str]) -> None:
        """TAP in spec's sandbox, keys and peers current; keys: (id, key, primary)."""
        if not keys:
            raise SecureTunnelError(f"encrypted network {spec.network_id} has no keys yet; "
                                    "not carrying its traffic (no plaintext fallback)")
        ciphers = {kid: AESGCM(key) for kid, key, _ in keys}
        primaries = [kid for kid, _, primary in keys if primary]
        primary = primaries[-1] if primaries else max(ciphers)
        fdb = {mac: node for mac, node in spec.fdb if mac != ZERO_MAC}
        nodes = tuple(sorted({node for _, node in spec.fdb}))
        self._ensure_socket()
        net = self._nets.get(spec.vni)
        path = netns.netns_path(spec.name)
        if net is not None and (net.sandbox != spec.name or not self._tap_present(path)):
            self.detach(spec.vni)
            net = None
        if net is None:
            fd = netns.run_in_netns(path, _open_tap)
            netns.run_in_netns(path, lambda: _tap_up(mtu))
            net = _Network(spec.vni, spec.name, fd, ciphers, primary, fdb, nodes)
            net.thread = threading.Thread(target=self._send_loop, args=(net,), daemon=True,
                                          name=f"secure-tx-{spec.vni}")
            self._nets[spec.vni] = net
            net.thread.start()
            changes.append(f"encrypted tunnel for VNI {spec.vni} in {spec.name}")
        else:
            net.keys, net.primary, net.fdb, net.nodes = ciphers, primary, fdb, nodes

    @staticmethod
    def _tap_present(path: str) -> bool:
        def body() -> bool:
            with IPRoute() as ipr:
                return bool(ipr.link_lookup(ifname=TAP))
        return netns.exists(path) and netns.run_in_netns(path, body)

    def _ensure_socket(self) -> None:
        if self._sock is not None:
            return

        def make() -> socket.socket:
            sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
            sock.bind((self.node_addr, self.port))
            return sock
        try:
            self._sock = netns.run_in_netns(self.node_netns, make)
        except OSError as err:
            raise SecureTunnelError(f"cannot bind the encrypted overlay port "
                                    f"{self.node_addr}:{self.port}/udp: {err}") from err
        self._receiver = threading.Thread(target=self._receive_loop, daemon=True,
                                          name=f"secure-rx-{self.node}")
        self._receiver.start()

    def vnis(self) -> list[int]:
        return sorted(self._nets)

    def detach(self, vni: int) -> None:
        net = self._nets.pop(vni, None)
        if net is None:
            return
        net.stop.set()
        if net.thread is not None:
            net.thread.join(5)
        with net.fd_lock:                    # never write to a closed (or reused) fd
            os.close(net.fd)                 # a non-persistent TAP goes with its fd

    def close(self) -> None:
        for vni in list(self._nets):
            self.detach(vni)
        self._closing.set()
        if self._sock is not None:
            self._sock.close()
            if self._receiver is not None:
                self._receiver.join(5)
            self._sock = None

    # ---- data path

    def _send_loop(self, net: _Network) -> None:
        while not net.stop.is_set():
            ready, _, _ = select.select([net.fd], [], [], 0.5)
            if not ready:
                continue
            try:
                frame = os.read(net.fd, 65536)
            except OSError:
                return
            if len(frame) < 14 or self._sock is None:
                continue
            dst = ":".join(f"{b:02x}" for b in frame[:6])
            target = net.fdb.get(dst)
            targets = (target,) if target else net.nodes
            head = HEADER.pack(net.vni, net.primary)
            nonce = os.urandom(12)
            packet = head + nonce + net.keys[net.primary].encrypt(nonce, frame, head)
            for node in targets:
                try:
                    self._sock.sendto(packet, (node, self.port))
                except OSError:
                    pass

    def _receive_loop(self) -> None:
        sock = self._sock
        assert sock is not None
        while not self._closing.is_set():
            try:
                ready, _, _ = select.select([sock], [], [], 0.5)
                if not ready:
                    continue
                packet, _ = sock.recvfrom(65536)
            except (OSError, ValueError):
                return
            if len(packet) < HEADER.size + 12 + 16:
                continue
            vni, kid = HEADER.unpack_from(packet)
            net = self._nets.get(vni)
            cipher = net.keys.get(kid) if net else None
            if net is None or cipher is None:
                self.dropped += 1
                continue
            head, nonce = packet[:HEADER.size], packet[HEADER.size:HEADER.size + 12]
            try:
                frame = cipher.decrypt(nonce, packet[HEADER.size + 12:], head)
            except InvalidTag:
                self.dropped += 1
                continue
            with net.fd_lock:
                if net.stop.is_set():
                    continue
                try:
                    os.write(net.fd, frame)
                except OSError:
                    pass


def _tap_up(mtu: int) -> None:
    with IPRoute() as ipr:
        idx = ipr.link_lookup(ifname=TAP)[0]
        ipr.link("set", index=idx, mtu=mtu, master=ipr.link_lookup(ifname=BRIDGE)[0],
                 state="up")
