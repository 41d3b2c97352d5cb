"""Encrypted overlays without kernel ESP/WireGuard/MACsec: a userspace AES-GCM tunnel.

Owns, for every encrypted network with a sandbox on this node, a multi-queue
TAP device `sec0` in the sandbox (on `br0`, where `vxlan0` would be), and the
node's tunnel sockets: one UDP socket per worker bound to the node's underlay
address, port 4790 (SO_REUSEPORT), in the node's namespace.

The per-packet cost is what limits a userspace tunnel, so it moves few, large
packets:
* the TAP is opened with a virtio-net header and TCP segmentation offload
  (TUNSETOFFLOAD), so one read returns a whole TCP segment train of up to
  ~64 KiB (the task's side of the veth caps its GSO size so that one train
  fits in one UDP datagram); the header travels inside the ciphertext and the
  receiving TAP gets the same train back, which the kernel hands to the task
  as one packet;
* one AES-256-GCM operation (`cryptography`, AES-NI) per train, into buffers
  reused for every packet (`encrypt_into`/`decrypt_into`): no per-packet
  allocation of the payload;
* the underlay IP layer fragments and reassembles the large datagrams;
* one queue of the TAP and one sending thread per worker, one receiving
  socket (SO_REUSEPORT) and thread per worker; the threads drop the GIL in
  every system call and in the cipher.

A sender thread picks the remote node by destination MAC (the same static FDB
the control plane gives VXLAN; broadcast and unknown destinations go to every
remote node of the network) and encrypts with the network's primary key; a
receiver decrypts with the key named in the packet (every listed key is
accepted, for rotation; a key no longer listed is refused) and writes the frame
to the TAP of that VNI. A packet that does not authenticate is dropped and
counted. Plaintext never leaves the node.

Packet: vni (4 bytes, big-endian) | key id (4) | nonce (12) |
AES-256-GCM(virtio-net header (10) | Ethernet frame), the first 8 bytes as
associated data. The nonce is a random 4-byte salt per sending thread and a
64-bit counter that starts at a random value: unique per packet without a
random draw per packet.
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
HEADER = struct.Struct("!II")            # vni, key id
NONCE = 12
TAG = 16
VNET_HDR = 10                            # struct virtio_net_hdr
PREFIX = HEADER.size + NONCE             # clear part of a packet
OVERHEAD = 20 + 8 + PREFIX + TAG + VNET_HDR + 14   # IP, UDP, prefix, tag, vnet, Ethernet
MAX_DATAGRAM = 65535 - 20 - 8            # largest UDP payload over IPv4
MAX_FRAME = MAX_DATAGRAM - PREFIX - TAG - VNET_HDR   # largest Ethernet frame carried
# The task's side caps its GSO trains (IP packet) so a train fits one datagram.
GSO_MAX_SIZE = (MAX_FRAME - 14) // 1024 * 1024
READ_SIZE = VNET_HDR + MAX_FRAME + 1     # one byte more: an oversized frame is noticed

TUNSETIFF = 0x400454CA
TUNSETOFFLOAD = 0x400454D0
TUNSETVNETHDRSZ = 0x400454D8
IFF_TAP = 0x0002
IFF_NO_PI = 0x1000
IFF_VNET_HDR = 0x4000
IFF_MULTI_QUEUE = 0x0100
TUN_F_CSUM = 0x01
TUN_F_TSO4 = 0x02
TUN_F_TSO6 = 0x04
TUN_F_TSO_ECN = 0x08
OFFLOADS = TUN_F_CSUM | TUN_F_TSO4 | TUN_F_TSO6 | TUN_F_TSO_ECN
SOCKET_BUFFER = 8 << 20


def default_workers() -> int:
    """One worker per core, at most four."""
    return max(1, min(4, os.cpu_count() or 1))


class SecureTunnelError(Exception):
    """The encrypted tunnel could not be set up; the message says why."""


@dataclass(frozen=True)
class _Keys:
    """The keys of one network, swapped as a whole on rotation."""
    ciphers: dict[int, AESGCM]
    primary: int


@dataclass
class _Network:
    vni: int
    sandbox: str
    fds: list[int]                        # one per TAP queue
    keys: _Keys
    fdb: dict[bytes, str]                 # mac -> node address
    nodes: tuple[str, ...]                # every remote node of the network
    stop: threading.Event = field(default_factory=threading.Event)
    threads: list[threading.Thread] = field(default_factory=list)
    fd_lock: threading.Lock = field(default_factory=threading.Lock)   # receivers vs. close


def _mac(text: str) -> bytes:
    return bytes.fromhex(text.replace(":", ""))


def _open_queues(count: int) -> list[int]:
    """Opens `count` queues of the TAP in the calling thread's namespace."""
    fds: list[int] = []
    try:
        for _ in range(count):
            fd = os.open("/dev/net/tun", os.O_RDWR | os.O_CLOEXEC | os.O_NONBLOCK)
            fds.append(fd)
            fcntl.ioctl(fd, TUNSETIFF, struct.pack(
                "16sH", TAP.encode(), IFF_TAP | IFF_NO_PI | IFF_VNET_HDR | IFF_MULTI_QUEUE))
            fcntl.ioctl(fd, TUNSETVNETHDRSZ, struct.pack("i", VNET_HDR))
            fcntl.ioctl(fd, TUNSETOFFLOAD, OFFLOADS)
    except OSError:
        for fd in fds:
            os.close(fd)
        raise
    return fds


class SecureTunnel:
    """All encrypted networks of one node."""

    def __init__(self, node_addr: str, node_netns: Optional[str], node: str = "",
                 port: int = SECURE_PORT, workers: Optional[int] = None) -> None:
        self.node_addr = node_addr
        self.node_netns = node_netns
        self.node = node
        self.port = port
        self.workers = workers or default_workers()
        self._socks: list[socket.socket] = []
        self._receivers: list[threading.Thread] = []
        self._closing = threading.Event()
        self._nets: dict[int, _Network] = {}
        self.dropped = 0                     # packets refused: unknown key/VNI, bad tag
        self.oversized = 0                   # frames too large for one datagram (dropped)

    # ---- setup

    def ensure(self, spec: SandboxSpec, keys: tuple[tuple[int, bytes, bool], ...], mtu: int,
               changes: list[str]) -> None:
        """TAP in spec's sandbox, keys and peers current; keys: (id, key, primary)."""
        if not keys:
            raise SecureTunnelError(f"encrypted network {spec.network_id} has no keys yet; "
                                    "not carrying its traffic (no plaintext fallback)")
        ciphers = {kid: AESGCM(key) for kid, key, _ in keys}
        primaries = [kid for kid, _, primary in keys if primary]
        current = _Keys(ciphers, primaries[-1] if primaries else max(ciphers))
        fdb = {_mac(mac): node for mac, node in spec.fdb if mac != ZERO_MAC}
        nodes = tuple(sorted({node for _, node in spec.fdb}))
        self._ensure_sockets()
        net = self._nets.get(spec.vni)
        path = netns.netns_path(spec.name)
        if net is not None and (net.sandbox != spec.name or not self._tap_present(path)):
            self.detach(spec.vni)
            net = None
        if net is None:
            fds = netns.run_in_netns(path, lambda: _open_queues(self.workers))
            try:
                netns.run_in_netns(path, lambda: _tap_up(mtu))
            except Exception:
                for fd in fds:
                    os.close(fd)
                raise
            net = _Network(spec.vni, spec.name, fds, current, fdb, nodes)
            self._nets[spec.vni] = net
            for index, fd in enumerate(fds):
                sender = threading.Thread(target=self._send_loop, args=(net, fd), daemon=True,
                                          name=f"secure-tx-{spec.vni}-{index}")
                net.threads.append(sender)
                sender.start()
            changes.append(f"encrypted tunnel for VNI {spec.vni} in {spec.name} "
                           f"({len(fds)} queues)")
        else:
            net.keys, net.fdb, net.nodes = current, fdb, nodes

    @staticmethod
    def _tap_present(path: str) -> bool:
        def body() -> bool:
            with IPRoute() as ipr:
                return bool(ipr.link_lookup(ifname=TAP))
        return netns.exists(path) and netns.run_in_netns(path, body)

    def _ensure_sockets(self) -> None:
        if self._socks:
            return

        def make() -> list[socket.socket]:
            socks: list[socket.socket] = []
            try:
                for _ in range(self.workers):
                    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
                    socks.append(sock)
                    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
                    _large_buffers(sock)
                    sock.bind((self.node_addr, self.port))
                    sock.setblocking(False)
            except OSError:
                for sock in socks:
                    sock.close()
                raise
            return socks
        try:
            self._socks = netns.run_in_netns(self.node_netns, make)
        except OSError as err:
            raise SecureTunnelError(f"cannot bind the encrypted overlay port "
                                    f"{self.node_addr}:{self.port}/udp: {err}") from err
        for index, sock in enumerate(self._socks):
            receiver = threading.Thread(target=self._receive_loop, args=(sock, index),
                                        daemon=True,
                                        name=f"secure-rx-{self.node}-{index}")
            self._receivers.append(receiver)
            receiver.start()

    def vnis(self) -> list[int]:
        return sorted(self._nets)

    def detach(self, vni: int) -> None:
        net = self._nets.pop(vni, None)
        if net is None:
            return
        net.stop.set()
        for thread in net.threads:
            thread.join(5)
        with net.fd_lock:                    # never write to a closed (or reused) fd
            for fd in net.fds:
                os.close(fd)                 # a non-persistent TAP goes with its last fd

    def close(self) -> None:
        for vni in list(self._nets):
            self.detach(vni)
        self._closing.set()
        for receiver in self._receivers:
            receiver.join(5)
        for sock in self._socks:
            sock.close()
        self._socks, self._receivers = [], []

    # ---- data path

    def _send_loop(self, net: _Network, fd: int) -> None:
        """Reads frames from one TAP queue, encrypts and sends them."""
        inbuf = bytearray(READ_SIZE)
        frame_view = memoryview(inbuf)
        packet = bytearray(PREFIX + READ_SIZE + TAG)
        out = memoryview(packet)
        head, nonce = out[:HEADER.size], out[HEADER.size:PREFIX]
        nonce[:4] = os.urandom(4)            # this thread's salt, fixed; the counter follows
        counter = int.from_bytes(os.urandom(8), "big")
        try:
            sock = netns.run_in_netns(self.node_netns, self._sender_socket)
        except OSError:
            log.exception("[%s] encrypted overlay: no sending socket for VNI %d",
                          self.node, net.vni)
            return
        with sock:
            while not net.stop.is_set():
                try:
                    size = os.readv(fd, (inbuf,))
                except BlockingIOError:
                    select.select((fd,), (), (), 0.5)
                    continue
                except OSError:
                    return
                if size < VNET_HDR + 14:
                    continue
                if size > VNET_HDR + MAX_FRAME:
                    self.oversized += 1
                    continue
                target = net.fdb.get(bytes(inbuf[VNET_HDR:VNET_HDR + 6]))
                keys = net.keys
                HEADER.pack_into(packet, 0, net.vni, keys.primary)
                counter = (counter + 1) & 0xFFFFFFFFFFFFFFFF
                nonce[4:] = counter.to_bytes(8, "big")
                length = PREFIX + keys.ciphers[keys.primary].encrypt_into(
                    nonce, frame_view[:size], head, out[PREFIX:PREFIX + size + TAG])
                for node in (target,) if target else net.nodes:
                    _send(sock, out[:length], (node, self.port))

    def _sender_socket(self) -> socket.socket:
        sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        try:
            _large_buffers(sock)
            sock.bind((self.node_addr, 0))
        except OSError:
            sock.close()
            raise
        return sock

    def _receive_loop(self, sock: socket.socket, index: int) -> None:
        """Receives, authenticates and decrypts packets; writes the frames to their TAP."""
        inbuf = bytearray(MAX_DATAGRAM + 1)
        packet = memoryview(inbuf)
        plain = memoryview(bytearray(MAX_DATAGRAM))
        head, nonce = packet[:HEADER.size], packet[HEADER.size:PREFIX]
        while not self._closing.is_set():
            try:
                size = sock.recv_into(inbuf)
            except BlockingIOError:
                try:
                    select.select((sock,), (), (), 0.5)
                except (OSError, ValueError):
                    return
                continue
            except OSError:
                return
            if size < PREFIX + TAG + VNET_HDR + 14:
                continue
            vni, kid = HEADER.unpack_from(inbuf)
            net = self._nets.get(vni)
            cipher = net.keys.ciphers.get(kid) if net else None
            if net is None or cipher is None:
                self.dropped += 1
                continue
            try:
                length = cipher.decrypt_into(nonce, packet[PREFIX:size], head,
                                             plain[:size - PREFIX - TAG])
            except InvalidTag:
                self.dropped += 1
                continue
            with net.fd_lock:
                if net.stop.is_set():
                    continue
                try:
                    os.write(net.fds[index % len(net.fds)], plain[:length])
                except OSError:
                    pass                     # TAP queue full or the frame refused


def _send(sock: socket.socket, data: memoryview, address: tuple[str, int]) -> None:
    """Sends one packet; a full buffer or an unreachable peer loses it, as a wire would."""
    try:
        sock.sendto(data, address)
    except OSError:
        pass


def _large_buffers(sock: socket.socket) -> None:
    """Socket buffers that hold a burst of 64 KiB datagrams (root may exceed rmem_max)."""
    for option, forced in ((socket.SO_SNDBUF, 32), (socket.SO_RCVBUF, 33)):  # ...BUFFORCE
        try:
            sock.setsockopt(socket.SOL_SOCKET, forced, SOCKET_BUFFER)
        except OSError:
            sock.setsockopt(socket.SOL_SOCKET, option, SOCKET_BUFFER)


def _tap_up(mtu: int) -> None:
    with IPRoute() as ipr:
        idx = ipr.link_lookup(ifname=TAP)[0]
        ipr.link("set", index=idx, mtu=mtu, gso_max_size=GSO_MAX_SIZE,
                 master=ipr.link_lookup(ifname=BRIDGE)[0], state="up")
