"""Shared by the overlay data plane's end-to-end tests: a placement scenario and an underlay capture.

`Scenario` places networks, services and tasks on the nodes of an `OverlayLab`
and gives each node's `DesiredState`; `Capture` reads every frame through one
underlay port (AF_PACKET) and keeps what the encrypted-overlay tests check:
UDP destination ports (first fragments), fragments, plaintext markers, key ids
of tunnel packets and a few whole tunnel datagrams to replay.
"""
from __future__ import annotations

import collections
import socket
import struct
import threading
from dataclasses import replace
from typing import Any, Optional

from lab.overlaylab import OverlayLab
from overlay_net import netns
from overlay_net.model import (Attachment, DesiredState, Endpoint, LocalTask, NetworkView,
                               Peer, ServiceView, mac_for_ip)
from overlay_net.secure import HEADER, SECURE_PORT


class Scenario:
    """Networks and tasks placed on nodes; `desired(node)` is what that node gets."""

    def __init__(self, lab: OverlayLab) -> None:
        self.lab = lab
        self.networks: dict[str, NetworkView] = {}
        self.placed: dict[str, tuple[str, LocalTask]] = {}   # task -> (node, task)
        self.services: dict[str, dict[str, ServiceView]] = collections.defaultdict(dict)
        self.mesh: dict[str, int] = {}                       # node -> host part on ingress

    def network(self, net_id: str, vni: int, third_octet: int) -> None:
        self.networks[net_id] = NetworkView(id=net_id, name=net_id, vni=vni,
                                            subnet=f"10.{self.lab.index}.{third_octet}.0/24",
                                            gateway=f"10.{self.lab.index}.{third_octet}.1")

    def ip(self, net_id: str, host: int) -> str:
        return self.networks[net_id].subnet.rsplit(".", 1)[0] + f".{host}"

    def task(self, name: str, node: str, *attachments: tuple[str, int]) -> str:
        path = self.lab.task_netns(name) if not netns.exists(f"{self.lab.prefix}task-{name}") \
            else netns.netns_path(f"{self.lab.prefix}task-{name}")
        atts = tuple(Attachment(net, f"{self.ip(net, host)}/24", mac_for_ip(self.ip(net, host)))
                     for net, host in attachments)
        self.placed[name] = (node, LocalTask(name, path, atts))
        return path

    def service(self, net_id: str, svc: ServiceView) -> None:
        self.services[net_id][svc.name] = svc

    def desired(self, node: str) -> DesiredState:
        nets = []
        for net in self.networks.values():
            eps = []
            for name, (where, task) in self.placed.items():
                for att in task.attachments:
                    if att.network_id == net.id:
                        svc = next((s.name for s in self.services[net.id].values()
                                    if att.ip in s.backends), "")
                        eps.append(Endpoint(att.ip, att.mac, self.lab.node_ip(where), name, svc))
            extra: dict[str, Any] = {}
            if net.ingress:
                extra["peers"] = tuple(Peer(self.lab.node_ip(n), self.ip(net.id, h),
                                            mac_for_ip(self.ip(net.id, h)))
                                       for n, h in self.mesh.items())
                if node in self.mesh:
                    extra["local_addr"] = f"{self.ip(net.id, self.mesh[node])}/24"
            nets.append(replace(net, endpoints=tuple(eps),
                                services=tuple(self.services[net.id].values()), **extra))
        tasks = tuple(t for where, t in self.placed.values() if where == node)
        return DesiredState(networks=tuple(nets), tasks=tasks)

    def apply_all(self) -> dict[str, Any]:
        results = {}
        for node, plane in self.lab.planes.items():
            results[node] = plane.apply(self.desired(node))
            assert not results[node].errors, results[node].errors
        return results


class Capture:
    """Frames through one underlay device (a bridge port), read with AF_PACKET.

    keep_frames: keep every frame (small captures only); otherwise only the
    counters and up to `samples` whole tunnel datagrams (UDP payloads) per key id.
    """

    def __init__(self, device: str, markers: tuple[bytes, ...] = (), keep_frames: bool = True,
                 samples: int = 20) -> None:
        self.sock = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(0x0003))
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 16 << 20)
        self.sock.bind((device, 0))
        self.sock.settimeout(0.2)
        self.markers = markers
        self.keep_frames = keep_frames
        self.samples = samples
        self.frames: list[bytes] = []
        self.seen = 0
        self.fragments = 0                   # IPv4 fragments after the first
        self.ports: collections.Counter = collections.Counter()
        self.key_ids: collections.Counter = collections.Counter()   # tunnel packets by key id
        self.datagrams: dict[int, list[bytes]] = collections.defaultdict(list)
        self.plaintext: Optional[bytes] = None   # the first frame holding a marker
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self) -> None:
        while not self.stop.is_set():
            try:
                frame = self.sock.recv(65536)
            except (socket.timeout, OSError):
                continue
            self.seen += 1
            if self.keep_frames:
                self.frames.append(frame)
            if self.plaintext is None and any(m in frame for m in self.markers):
                self.plaintext = frame
            self._count(frame)

    def _count(self, frame: bytes) -> None:
        if len(frame) < 34 or frame[12:14] != b"\x08\x00" or frame[23] != 17:
            return
        if struct.unpack("!H", frame[20:22])[0] & 0x1FFF:
            self.fragments += 1              # no UDP header in this one
            return
        ihl = (frame[14] & 0x0F) * 4
        udp = 14 + ihl
        dport = struct.unpack("!H", frame[udp + 2:udp + 4])[0]
        self.ports[dport] += 1
        if dport == SECURE_PORT and len(frame) >= udp + 8 + HEADER.size:
            _vni, kid = HEADER.unpack_from(frame, udp + 8)
            self.key_ids[kid] += 1
            more = struct.unpack("!H", frame[20:22])[0] & 0x2000
            if not more and len(self.datagrams[kid]) < self.samples:
                self.datagrams[kid].append(frame[udp + 8:14 + struct.unpack(
                    "!H", frame[16:18])[0]])

    def close(self) -> list[bytes]:
        self.stop.set()
        self.thread.join(5)
        self.sock.close()
        return self.frames


def udp_dports(frames: list[bytes]) -> collections.Counter:
    """UDP destination ports of the frames (first fragments only: the others have none)."""
    ports: collections.Counter = collections.Counter()
    for frame in frames:
        if len(frame) > 38 and frame[12:14] == b"\x08\x00" and frame[23] == 17 \
                and not struct.unpack("!H", frame[20:22])[0] & 0x1FFF:
            ihl = (frame[14] & 0x0F) * 4
            ports[struct.unpack("!H", frame[14 + ihl + 2:14 + ihl + 4])[0]] += 1
    return ports
