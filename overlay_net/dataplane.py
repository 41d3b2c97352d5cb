"""The node's overlay data plane: one idempotent `apply(desired)`.

Owns reconciling the kernel of one node with a `DesiredState`: sandboxes
(bridge + VXLAN + veths + FDB/neighbour entries, see `sandbox`) for every
network with a local task (and the ingress network whenever this node has a
routing-mesh address, see `ingress`), nothing for the others, and the VIP
rules in each task namespace (see `vip`). It finds what exists by listing the namespaces that
carry this node's sandbox prefix, so it also cleans up after a restart.

`apply()` blocks (netlink, nft); an asyncio caller runs it in a thread
(`await asyncio.to_thread(plane.apply, desired)`). Calls must not overlap.
"""
from __future__ import annotations

import logging
import threading
from dataclasses import replace
from typing import Optional

from overlay_net import netns, plan, sandbox
from overlay_net.ingress import Ingress
from overlay_net.model import ApplyResult, DesiredState
from overlay_net.secure import GSO_MAX_SIZE as SECURE_GSO_MAX, OVERHEAD as SECURE_OVERHEAD
from overlay_net.secure import SecureTunnel
from overlay_net.vip import VipBalancer

log = logging.getLogger(__name__)


class DataPlane:
    """Overlay networking of one node.

    node_addr:  the node's underlay IP (VXLAN `local`, and how endpoints on this
                node are recognised in `Endpoint.node_addr`).
    naming:     prefix and node key for the sandbox names (node-unique on a host).
    node_netns: the namespace holding node_addr (None: the caller's own).
    """

    def __init__(self, node_addr: str, naming: plan.Naming,
                 node_netns: Optional[str] = None, node: str = "") -> None:
        self.node_addr = node_addr
        self.naming = naming
        self.node_netns = node_netns
        self.node = node or naming.node_key
        self.vips = VipBalancer(self.node)
        self.ingress = Ingress(self.node)
        self._mesh_may_exist = True         # until the first apply has looked
        self._tunnel: Optional[SecureTunnel] = None
        self._mtu: Optional[int] = None
        self._lock = threading.Lock()

    @property
    def mtu(self) -> int:
        if self._mtu is None:
            self._mtu = plan.vxlan_mtu(sandbox.underlay_mtu(self.node_netns, self.node_addr))
        return self._mtu

    def sandboxes(self) -> list[str]:
        """Names of the sandbox namespaces of this node that exist now."""
        return netns.list_names(self.naming.sandbox_prefix)

    def apply(self, desired: DesiredState) -> ApplyResult:
        """Makes the kernel match desired; raises OverlayInputError on bad input.

        Failures on one network or task are collected in the result's errors
        (and logged); the rest is still applied.
        """
        desired.validate()
        result = ApplyResult()
        with self._lock:
            desired = self._refuse_keyless(desired, result)
            specs = plan.sandboxes(desired, self.naming, self.node_addr)
            for name in self.sandboxes():
                if name not in specs:
                    try:
                        vni = self.naming.vni_of(name)
                        if self._tunnel is not None and vni is not None:
                            self._tunnel.detach(vni)
                        sandbox.destroy(name)
                        result.removed.append(f"sandbox {name}")
                    except Exception as err:  # noqa: BLE001 - reported, others go on
                        result.errors.append(f"removing sandbox {name}: {err}")
            mesh = False
            for name, spec in sorted(specs.items()):
                try:
                    mtu = self.secure_mtu if spec.encrypted else self.mtu
                    result.created += sandbox.ensure(
                        spec, self.naming, self.node_addr, self.node_netns, mtu,
                        SECURE_GSO_MAX if spec.encrypted else None)
                    if spec.encrypted:
                        self.tunnel.ensure(spec, spec.keys, mtu, result.created)
                    if spec.ingress is not None:
                        self.ingress.ensure(spec, self.node_netns, result.created)
                        mesh = True
                except Exception as err:  # noqa: BLE001 - reported, others go on
                    log.warning("[%s] overlay: %s failed", self.node, name, exc_info=True)
                    result.errors.append(f"network {spec.network_id} (sandbox {name}): {err}")
            if not mesh and self._mesh_may_exist:
                try:
                    self.ingress.remove(self.node_netns, result.removed)
                except Exception as err:  # noqa: BLE001 - reported
                    result.errors.append(str(err))
            self._mesh_may_exist = mesh
            wanted = {path: vips for path, vips in plan.task_vips(desired).items()}
            self.vips.apply(wanted, result.created, result.errors)
        for line in result.created:
            log.info("[%s] overlay: %s", self.node, line)
        for line in result.removed:
            log.info("[%s] overlay: removed %s", self.node, line)
        for line in result.errors:
            log.error("[%s] overlay: %s", self.node, line)
        return result

    def _refuse_keyless(self, desired: DesiredState, result: ApplyResult) -> DesiredState:
        """An encrypted network without keys is not attached at all: never in plaintext."""
        refused = {n.id for n in desired.networks if n.encrypted and not n.keys}
        if not refused:
            return desired
        for net_id in sorted(refused):
            result.errors.append(f"network {net_id}: encrypted, but no overlay keys have "
                                 "arrived yet; its tasks are not attached "
                                 "(no plaintext fallback)")
        tasks = tuple(replace(t, attachments=tuple(a for a in t.attachments
                                                   if a.network_id not in refused))
                      for t in desired.tasks)
        return DesiredState(networks=tuple(n for n in desired.networks if n.id not in refused),
                            tasks=tasks)

    @property
    def tunnel(self) -> SecureTunnel:
        if self._tunnel is None:
            self._tunnel = SecureTunnel(self.node_addr, self.node_netns, self.node)
        return self._tunnel

    @property
    def secure_mtu(self) -> int:
        return self.mtu + plan.VXLAN_OVERHEAD - SECURE_OVERHEAD

    def teardown(self) -> ApplyResult:
        """Removes every sandbox, VIP table and the mesh of this node; stops the tunnel."""
        result = self.apply(DesiredState())
        if self._tunnel is not None:
            self._tunnel.close()
            self._tunnel = None
        return result
