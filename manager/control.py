"""The Control gRPC service: reads and validated writes of the desired state.

Every write is one store transaction built from the request after validation;
a rejected request changes nothing. Reads are served from the local store.
"""
from __future__ import annotations

import asyncio
import logging
from typing import Any, Callable, Optional

import grpc

from manager import lookup, redact, roles, secretrefs, validation
from manager.allocator import assign, ipam, networks, ports
from manager.logbroker import LogBroker
from manager import ca
from pki import node as pkinode
from pki import tokens
from pki.ca import POLICY_MIN_EXPIRY, RootCA
from proto import control_pb2 as cpb
from proto import control_pb2_grpc
from proto import model
from proto import objects_pb2 as pb
from raft import actions, errors

HOST_NETWORK = "host"  # Docker's predefined network: tasks share their node's network stack
NO_LEADER = ("The swarm does not have a leader. It's possible that too few managers are "
             "online. Make sure more than half of the managers are online.")

VERSION = "0.1.0"


def _copy(obj: Any) -> Any:
    new = type(obj)()
    new.CopyFrom(obj)
    return new


def _security_info(cluster: Optional[pb.Cluster]) -> dict[str, Any]:
    """The InfoResponse fields that describe the cluster's security settings."""
    expiry = ca.cluster_cert_expiry(cluster)
    return {"autolock_managers": bool(cluster and cluster.spec.encryption.auto_lock_managers),
            "cert_expiry": pb.Duration(nanos=int(expiry * 1e9)),
            "root_rotation_in_progress": bool(cluster and cluster.HasField("root_rotation"))}


class ControlServicer(control_pb2_grpc.ControlServicer):
    """Serves the Control API of one manager."""

    def __init__(self, store: Any, node_id: str, data_dir: str, logs: LogBroker,
                 node_addr: Callable[[], str]) -> None:
        self.store = store
        self.node_id = node_id
        self.data_dir = data_dir
        self.logs = logs
        self.node_addr = node_addr
        self.key_passphrase: Optional[bytes] = None  # a manager's private-key passphrase
        self.min_cert_expiry = POLICY_MIN_EXPIRY  # shortest --cert-expiry (node config)
        self.log = logging.LoggerAdapter(logging.getLogger(__name__), {"node": node_id})

    # ------------------------------------------------------------ helpers --

    async def _find(self, context: grpc.aio.ServicerContext, kind: str, ref: str) -> Any:
        try:
            return lookup.resolve(self.store.list(kind), kind, ref)
        except lookup.NotFound as exc:
            await context.abort(grpc.StatusCode.NOT_FOUND, str(exc))
        except lookup.Ambiguous as exc:
            await context.abort(grpc.StatusCode.INVALID_ARGUMENT, str(exc))

    async def _commit(self, context: grpc.aio.ServicerContext, acts: list) -> int:
        try:
            return await self.store.acommit(acts)
        except errors.Conflict as exc:
            await context.abort(grpc.StatusCode.FAILED_PRECONDITION,
                                f"update out of sequence: {exc}; read the object again and retry")
        except (errors.NotLeader, errors.Unavailable):
            await context.abort(grpc.StatusCode.UNAVAILABLE, NO_LEADER)
        raise AssertionError("unreachable")

    async def _invalid(self, context: grpc.aio.ServicerContext, msg: str) -> None:
        await context.abort(grpc.StatusCode.INVALID_ARGUMENT, msg)

    async def _check_version(self, context, kind: str, obj: Any, version: int) -> None:
        if version and version != obj.meta.version:
            await context.abort(
                grpc.StatusCode.FAILED_PRECONDITION,
                f"update out of sequence: {kind} {model.object_name(obj)} is at version "
                f"{obj.meta.version}, the request read version {version}; read it again and retry")

    def _list(self, kind: str, filters: Optional[cpb.ListFilters]) -> list:
        objs = [o for o in self.store.list(kind) if lookup.matches(o, filters)]
        objs.sort(key=lambda o: (model.object_name(o), o.id))
        return objs

    # --------------------------------------------------------------- info --

    async def Info(self, request, context):
        nodes = self.store.list("node")
        clusters = self.store.list("cluster")
        leader = next((n.id for n in nodes if n.manager_status.leader), "")
        running = sum(1 for t in self.store.list("task") if t.status.state == pb.RUNNING)
        return cpb.InfoResponse(
            node_id=self.node_id, node_addr=self.node_addr(), is_manager=True,
            cluster_id=clusters[0].id if clusters else "",
            managers=sum(1 for n in nodes if n.role == pb.MANAGER), nodes=len(nodes),
            version=VERSION, raft_leader_id=leader, data_dir=self.data_dir,
            services=len(self.store.list("service")), tasks_running=running,
            **_security_info(clusters[0] if clusters else None))

    # -------------------------------------------------------------- nodes --

    async def GetNode(self, request, context):
        return cpb.GetNodeResponse(node=await self._find(context, "node", request.node_id))

    async def ListNodes(self, request, context):
        f = request.filters if request.HasField("filters") else None
        return cpb.ListNodesResponse(nodes=self._list("node", f))

    async def UpdateNode(self, request, context):
        node = await self._find(context, "node", request.node_id)
        await self._check_version(context, "node", node, request.node_version)
        for key in request.spec.annotations.labels:
            if not key:
                await self._invalid(context, "node label keys must not be empty")
        new = _copy(node)
        new.spec.CopyFrom(request.spec)
        if node.role == pb.MANAGER and request.spec.desired_role == pb.WORKER:
            await self._demote(context, node, new)
        await self._commit(context, [actions.update(new)])
        return cpb.UpdateNodeResponse(node=self.store.get("node", node.id))

    async def _demote(self, context, node: pb.Node, new: pb.Node) -> None:
        """Takes a manager out of the raft group; the node then restarts as a worker."""
        managers = [n for n in self.store.list("node") if n.role == pb.MANAGER]
        problem = roles.quorum_problem(managers, node.id)
        if problem:
            await context.abort(grpc.StatusCode.FAILED_PRECONDITION,
                                f"can't demote node {node.id}: {problem}")
        if node.id == self.node_id or node.manager_status.leader:
            await context.abort(
                grpc.StatusCode.FAILED_PRECONDITION,
                f"can't demote node {node.id}: it is the leader; demote it from another manager "
                "once another leader is elected (e.g. after 'swarm leave --force' or a restart)")
        if node.manager_status.raft_addr in self.store.members():
            try:
                await asyncio.get_running_loop().run_in_executor(
                    None, self.store.remove_member, node.manager_status.raft_addr)
            except errors.StoreError as exc:
                await context.abort(grpc.StatusCode.UNAVAILABLE,
                                    f"can't demote node {node.id}: {exc}")
        new.role = pb.WORKER
        new.ClearField("manager_status")

    async def RemoveNode(self, request, context):
        node = await self._find(context, "node", request.node_id)
        if node.id == self.node_id:
            await context.abort(grpc.StatusCode.FAILED_PRECONDITION,
                                "a node cannot remove itself: use 'swarm leave' on it instead")
        if node.role == pb.MANAGER:
            await context.abort(
                grpc.StatusCode.FAILED_PRECONDITION,
                f"node {node.id} is a cluster manager and is a member of the raft cluster. "
                "It must be demoted to worker before removal")
        if node.status.state != pb.NodeStatus.DOWN and not request.force:
            await context.abort(
                grpc.StatusCode.FAILED_PRECONDITION,
                f"node {node.id} is not down and can't be removed: stop it first or use --force")
        acts = [actions.remove(node)]
        for task in self.store.list("task"):
            if task.node_id == node.id and not model.is_terminal(task.status.state):
                t = _copy(task)
                t.status.state = pb.ORPHANED
                t.status.message = "node removed"
                t.status.timestamp.CopyFrom(model.timestamp())
                acts.append(actions.update(t))
        await self._commit(context, acts)
        return cpb.RemoveNodeResponse()

    # ----------------------------------------------------------- services --

    async def _service_refs(self, context, spec: pb.ServiceSpec, own_id: str = "") -> None:
        """Resolves names to IDs (networks, secrets, configs); checks published ports."""
        for att in spec.task.networks:
            if att.target == HOST_NETWORK:
                if len(spec.task.networks) > 1:
                    await self._invalid(context, "a service on the host network can't be "
                                        "attached to other networks")
                if spec.endpoint.ports and any(p.publish_mode == pb.PortConfig.INGRESS
                                               for p in spec.endpoint.ports):
                    await self._invalid(context, "ingress-published ports need an overlay "
                                        "network; with --network host publish mode=host")
                continue
            net = await self._find(context, "network", att.target)
            if net.spec.ingress:
                await self._invalid(context, "service cannot be explicitly attached to the "
                                    f"ingress network \"{net.spec.annotations.name}\": publish "
                                    "a port (-p) to use the routing mesh")
            att.target = net.id
        try:
            secretrefs.resolve(spec.task.container, self.store.list("secret"),
                               self.store.list("config"))
        except secretrefs.RefError as exc:
            await self._invalid(context, str(exc))
        conflict = ports.first_conflict(spec.endpoint, self.store.list("service"), own_id)
        if conflict:
            await self._invalid(context, conflict)

    async def _validated(self, context, spec: pb.ServiceSpec, own_id: str = "") -> pb.ServiceSpec:
        spec = _copy(spec)
        validation.normalise_service_spec(spec)
        try:
            validation.check_service_spec(spec)
        except validation.InvalidSpec as exc:
            await self._invalid(context, str(exc))
        await self._service_refs(context, spec, own_id)
        return spec

    async def CreateService(self, request, context):
        spec = await self._validated(context, request.spec)
        name = spec.annotations.name
        if self.store.by_name("service", name) is not None:
            await context.abort(grpc.StatusCode.ALREADY_EXISTS,
                                f"name conflicts with an existing object: service {name} "
                                "already exists")
        svc = pb.Service(id=model.new_id(), spec=spec, spec_version=1)
        svc.endpoint.spec.CopyFrom(spec.endpoint)
        svc.endpoint.ports.extend(spec.endpoint.ports)
        await self._commit(context, [actions.create(svc)])
        self.log.info("service %s (%s) created", name, svc.id)
        return cpb.CreateServiceResponse(service=self.store.get("service", svc.id))

    async def GetService(self, request, context):
        return cpb.GetServiceResponse(
            service=await self._find(context, "service", request.service_id))

    async def ListServices(self, request, context):
        f = request.filters if request.HasField("filters") else None
        return cpb.ListServicesResponse(services=self._list("service", f))

    async def UpdateService(self, request, context):
        svc = await self._find(context, "service", request.service_id)
        await self._check_version(context, "service", svc, request.service_version)
        if request.rollback:
            if not svc.HasField("previous_spec"):
                await context.abort(grpc.StatusCode.FAILED_PRECONDITION,
                                    f"service {svc.spec.annotations.name} has no previous spec "
                                    "to roll back to")
            wanted = _copy(svc.previous_spec)
        else:
            wanted = request.spec
        spec = await self._validated(context, wanted, own_id=svc.id)
        if spec.annotations.name != svc.spec.annotations.name:
            await self._invalid(context, "renaming a service is not supported")
        if spec.WhichOneof("mode") != svc.spec.WhichOneof("mode"):
            await self._invalid(context, "service mode change is not allowed")
        new = _copy(svc)
        if spec != svc.spec:
            new.previous_spec.CopyFrom(svc.spec)
            new.spec.CopyFrom(spec)
            if spec.task != svc.spec.task or spec.endpoint != svc.spec.endpoint:
                new.spec_version = svc.spec_version + 1
                state = (pb.UpdateStatus.ROLLBACK_STARTED if request.rollback
                         else pb.UpdateStatus.UPDATING)
                new.update_status.Clear()
                new.update_status.state = state
                new.update_status.started_at.CopyFrom(model.timestamp())
                new.update_status.message = ("manually requested rollback" if request.rollback
                                             else "update in progress")
            # ports as allocated and VIPs are the allocator's (it keeps assigned ports)
            new.endpoint.spec.CopyFrom(spec.endpoint)
            await self._commit(context, [actions.update(new)])
            self.log.info("service %s updated (spec version %d)", spec.annotations.name,
                          new.spec_version)
        return cpb.UpdateServiceResponse(service=self.store.get("service", svc.id))

    async def RemoveService(self, request, context):
        svc = await self._find(context, "service", request.service_id)
        await self._commit(context, [actions.remove(svc)])
        self.log.info("service %s (%s) removed", svc.spec.annotations.name, svc.id)
        return cpb.RemoveServiceResponse()

    async def ServiceLogs(self, request, context):
        svc = await self._find(context, "service", request.service_id)
        tasks = [t for t in self.store.list("task") if t.service_id == svc.id and t.node_id
                 and (not request.task_ids or t.id in request.task_ids)]
        async for batch in self.logs.subscribe(tasks, follow=request.follow, tail=request.tail):
            yield cpb.ServiceLogsResponse(messages=batch)

    # -------------------------------------------------------------- tasks --

    async def GetTask(self, request, context):
        return cpb.GetTaskResponse(task=await self._find(context, "task", request.task_id))

    async def ListTasks(self, request, context):
        f = request.filters if request.HasField("filters") else None
        tasks = [t for t in self.store.list("task") if lookup.matches(t, f)]
        tasks.sort(key=lambda t: (t.service_name, t.slot, t.node_id,
                                  -model.ts_seconds(t.meta.created_at)))
        return cpb.ListTasksResponse(tasks=tasks)

    # ------------------------------------------ networks, secrets, configs --

    def _in_use(self, field: Callable[[pb.Service], list[str]], obj_id: str) -> list[str]:
        return sorted(s.spec.annotations.name for s in self.store.list("service")
                      if obj_id in field(s))

    async def _create_named(self, context, kind: str, obj: Any) -> Any:
        name = obj.spec.annotations.name
        try:
            validation.check_name(kind, name)
        except validation.InvalidSpec as exc:
            await self._invalid(context, str(exc))
        if self.store.by_name(kind, name) is not None:
            await context.abort(grpc.StatusCode.ALREADY_EXISTS,
                                f"{kind} {name} already exists")
        obj.id = model.new_id()
        await self._commit(context, [actions.create(obj)])
        return self.store.get(kind, obj.id)

    async def _remove_unused(self, context, kind: str, ref: str,
                             field: Callable[[pb.Service], list[str]]) -> None:
        obj = await self._find(context, kind, ref)
        users = self._in_use(field, obj.id)
        if users:
            await context.abort(
                grpc.StatusCode.FAILED_PRECONDITION,
                f"{kind} '{obj.spec.annotations.name}' is in use by the following "
                f"service{'s' if len(users) > 1 else ''}: {', '.join(users)}")
        await self._commit(context, [actions.remove(obj)])

    async def CreateNetwork(self, request, context):
        try:
            validation.check_name("network", request.spec.annotations.name)
            clusters = self.store.list("cluster")
            net = networks.new_network(request.spec, self.store.list("network"),
                                       clusters[0] if clusters else None)
        except (validation.InvalidSpec, ipam.AllocationError) as exc:
            await self._invalid(context, str(exc))
        net = await self._create_named(context, "network", net)
        self.log.info("network %s (%s) created: subnet %s, VNI %d", net.spec.annotations.name,
                      net.id, net.ipam[0].subnet, net.vni)
        return cpb.CreateNetworkResponse(network=net)

    async def GetNetwork(self, request, context):
        return cpb.GetNetworkResponse(
            network=await self._find(context, "network", request.network_id))

    async def ListNetworks(self, request, context):
        f = request.filters if request.HasField("filters") else None
        return cpb.ListNetworksResponse(networks=self._list("network", f))

    async def RemoveNetwork(self, request, context):
        net = await self._find(context, "network", request.network_id)
        name = net.spec.annotations.name
        if net.spec.ingress:
            users = sorted(s.spec.annotations.name for s in self.store.list("service")
                           if ports.ingress(s.spec.endpoint.ports))
            if users:
                await context.abort(
                    grpc.StatusCode.FAILED_PRECONDITION,
                    f"ingress network '{name}' cannot be removed because service(s) "
                    f"{', '.join(users)} publish ports on it; remove them or their "
                    "published ports first")
        users = self._in_use(lambda s: [a.target for a in s.spec.task.networks], net.id)
        if users:
            await context.abort(
                grpc.StatusCode.FAILED_PRECONDITION,
                f"network '{name}' is in use by the following "
                f"service{'s' if len(users) > 1 else ''}: {', '.join(users)}")
        holders = sorted(t.annotations.name or t.id for t in self.store.list("task")
                         if not assign.releases(t)
                         and any(a.network_id == net.id for a in t.networks))
        if holders:
            await context.abort(
                grpc.StatusCode.FAILED_PRECONDITION,
                f"network '{name}' is still in use by task(s) {', '.join(holders[:5])} that "
                "are stopping; retry in a moment")
        await self._commit(context, [actions.remove(net)])
        self.log.info("network %s (%s) removed", name, net.id)
        return cpb.RemoveNetworkResponse()

    @staticmethod
    def _redacted(secret: pb.Secret) -> pb.Secret:
        return redact.secret(secret)

    async def CreateSecret(self, request, context):
        try:
            secretrefs.check_data("secret", request.spec.data)
        except secretrefs.RefError as exc:
            await self._invalid(context, str(exc))
        sec = await self._create_named(context, "secret", pb.Secret(spec=request.spec))
        return cpb.CreateSecretResponse(secret=self._redacted(sec))

    async def GetSecret(self, request, context):
        sec = await self._find(context, "secret", request.secret_id)
        return cpb.GetSecretResponse(secret=self._redacted(sec))

    async def ListSecrets(self, request, context):
        f = request.filters if request.HasField("filters") else None
        return cpb.ListSecretsResponse(secrets=[self._redacted(s) for s in self._list("secret", f)])

    async def UpdateSecret(self, request, context):
        sec = await self._find(context, "secret", request.secret_id)
        await self._check_version(context, "secret", sec, request.secret_version)
        if request.spec.data and request.spec.data != sec.spec.data:
            await self._invalid(context, "only the labels of a secret can be changed")
        new = _copy(sec)
        new.spec.annotations.labels.clear()
        new.spec.annotations.labels.update(request.spec.annotations.labels)
        await self._commit(context, [actions.update(new)])
        return cpb.UpdateSecretResponse(secret=self._redacted(self.store.get("secret", sec.id)))

    async def RemoveSecret(self, request, context):
        await self._remove_unused(context, "secret", request.secret_id,
                                  lambda s: [r.secret_id for r in s.spec.task.container.secrets])
        return cpb.RemoveSecretResponse()

    async def CreateConfig(self, request, context):
        try:
            secretrefs.check_data("config", request.spec.data)
        except secretrefs.RefError as exc:
            await self._invalid(context, str(exc))
        cfg = await self._create_named(context, "config", pb.Config(spec=request.spec))
        return cpb.CreateConfigResponse(config=cfg)

    async def GetConfig(self, request, context):
        return cpb.GetConfigResponse(config=await self._find(context, "config", request.config_id))

    async def ListConfigs(self, request, context):
        f = request.filters if request.HasField("filters") else None
        return cpb.ListConfigsResponse(configs=self._list("config", f))

    async def UpdateConfig(self, request, context):
        cfg = await self._find(context, "config", request.config_id)
        await self._check_version(context, "config", cfg, request.config_version)
        if request.spec.data and request.spec.data != cfg.spec.data:
            await self._invalid(context, "only the labels of a config can be changed")
        new = _copy(cfg)
        new.spec.annotations.labels.clear()
        new.spec.annotations.labels.update(request.spec.annotations.labels)
        await self._commit(context, [actions.update(new)])
        return cpb.UpdateConfigResponse(config=self.store.get("config", cfg.id))

    async def RemoveConfig(self, request, context):
        await self._remove_unused(context, "config", request.config_id,
                                  lambda s: [r.config_id for r in s.spec.task.container.configs])
        return cpb.RemoveConfigResponse()

    # ------------------------------------------------------------ cluster --

    @staticmethod
    def _cluster_out(cluster: pb.Cluster) -> pb.Cluster:
        """The cluster as the API returns it: without root, overlay or unlock keys
        (only GetUnlockKey returns the unlock key)."""
        return redact.cluster(cluster)

    async def GetCluster(self, request, context):
        cluster = await self._find(context, "cluster", request.cluster_id or "default")
        return cpb.GetClusterResponse(cluster=self._cluster_out(cluster))

    async def ListClusters(self, request, context):
        return cpb.ListClustersResponse(
            clusters=[self._cluster_out(c) for c in self.store.list("cluster")])

    async def GetUnlockKey(self, request, context):
        cluster = await self._find(context, "cluster", "default")
        key = cluster.unlock_key if cluster.spec.encryption.auto_lock_managers else ""
        return cpb.GetUnlockKeyResponse(unlock_key=key)

    async def UpdateCluster(self, request, context):
        cluster = await self._find(context, "cluster", request.cluster_id or "default")
        await self._check_version(context, "cluster", cluster, request.cluster_version)
        spec = request.spec
        if spec.dispatcher.heartbeat_period.nanos < 0:
            await self._invalid(context, "dispatcher heartbeat period must not be negative")
        if spec.dispatcher.heartbeat_period.nanos and \
                spec.dispatcher.heartbeat_period.nanos < 100_000_000:
            await self._invalid(context, "dispatcher heartbeat period must be at least 100ms")
        expiry = spec.ca_config.node_cert_expiry.nanos
        if expiry != cluster.spec.ca_config.node_cert_expiry.nanos and expiry and \
                expiry < self.min_cert_expiry.total_seconds() * 1e9:
            await self._invalid(context, "node certificate expiry must be at least "
                                f"{self.min_cert_expiry} (--cert-expiry)")
        new = _copy(cluster)
        new.spec.CopyFrom(spec)
        new.spec.annotations.name = cluster.spec.annotations.name
        if request.rotate_worker_token:
            new.join_tokens.worker = tokens.generate(cluster.root_ca_cert)
        if request.rotate_manager_token:
            new.join_tokens.manager = tokens.generate(cluster.root_ca_cert)
        if spec.ca_config.force_rotate != cluster.spec.ca_config.force_rotate:
            new.root_rotation.CopyFrom(ca.start_rotation(cluster, self._disk_root()))
            self.log.info("root CA rotation started")
        if new.spec.encryption.auto_lock_managers:
            if request.rotate_manager_unlock_key or not new.unlock_key:
                new.unlock_key = tokens.generate_unlock_key()
        elif request.rotate_manager_unlock_key:
            await context.abort(grpc.StatusCode.FAILED_PRECONDITION,
                                "cannot rotate because autolock is not turned on")
        else:
            new.unlock_key = ""
        await self._commit(context, [actions.update(new)])
        return cpb.UpdateClusterResponse(
            cluster=self._cluster_out(self.store.get("cluster", cluster.id)))

    def _disk_root(self) -> RootCA:
        """This manager's root CA from disk; its key is encrypted with the key
        passphrase the node sets (pki.keystore)."""
        return RootCA.load(pkinode.cert_dir(self.data_dir), kek=self.key_passphrase)

