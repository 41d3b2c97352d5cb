"""The Control gRPC service: reads from the local store, writes through the rules.

Thin by design: each RPC reads what its rule needs from the store, calls the
pure rule of its resource module (nodes, services, tasks, networks, secrets
and configs, cluster; stacks, volumes and logs through `stackcalls`,
`volumecalls` and `logcalls`), commits the actions the rule returned as one transaction, and
answers. A `Refusal` from a rule, a look-up or the commit
becomes a gRPC status here (`STATUS`), its message cut to what a status can
carry (`common.fitted`); a refused request changes nothing.
"""
from __future__ import annotations

import asyncio
import functools
import logging
from typing import Any, AsyncIterator, Awaitable, Callable, Optional, Sequence, TypeAlias, TypeVar

import grpc

from manager import redact
from manager.controlapi import cluster as clusterrules
from manager.controlapi import networks, nodes, secrets, services, tasks
from manager.controlapi.common import (NO_LEADER, Code, Refusal, disk_refusal, find, fitted,
                                      invalid, listed)
from manager.controlapi.logcalls import LogCalls
from manager.controlapi.stackcalls import StackCalls
from manager.controlapi.volumecalls import VolumeCalls
from manager.logbroker import LogBroker
from manager import ca, externalca
from pki import givenroot
from pki import node as pkinode
from pki.ca import POLICY_MIN_EXPIRY, RootCA
from proto import control_pb2 as cpb
from proto import control_pb2_grpc
from proto import model
from proto import objects_pb2 as pb
from proto import store_pb2
from raft import actions, errors
from raft.api import ObjectStore
from raft.state import view_digest

VERSION = "0.1.0"

STATUS = {
    Code.INVALID_ARGUMENT: grpc.StatusCode.INVALID_ARGUMENT,
    Code.NOT_FOUND: grpc.StatusCode.NOT_FOUND,
    Code.ALREADY_EXISTS: grpc.StatusCode.ALREADY_EXISTS,
    Code.FAILED_PRECONDITION: grpc.StatusCode.FAILED_PRECONDITION,
    Code.UNAVAILABLE: grpc.StatusCode.UNAVAILABLE,
}

Context: TypeAlias = "grpc.aio.ServicerContext[Any, Any]"
R = TypeVar("R")
Handler = Callable[[Any, Any, Context], Awaitable[R]]


def refusals(handler: Handler[R]) -> Handler[R]:
    """Answers a `Refusal` raised inside a unary RPC with its gRPC status and message."""
    @functools.wraps(handler)
    async def serve(self: Any, request: Any, context: Context) -> R:
        try:
            return await handler(self, request, context)
        except Refusal as refusal:
            await context.abort(STATUS[refusal.code], fitted(refusal.message))
            raise  # abort raises; this line is never reached
    return serve


def _filters(request: Any) -> Optional[cpb.ListFilters]:
    return request.filters if request.HasField("filters") else None


class ControlServicer(control_pb2_grpc.ControlServicer):
    """Serves the Control API of one manager."""

    def __init__(self, store: ObjectStore, node_id: str, data_dir: str, logs: LogBroker,
                 node_addr: Callable[[], str]) -> None:
        self.store = store
        self.node_id = node_id
        self.data_dir = data_dir
        self.logs = logs
        self.node_addr = node_addr
        self.key_passphrase: Optional[bytes] = None  # a manager's private-key passphrase
        self.min_cert_expiry = POLICY_MIN_EXPIRY  # shortest --cert-expiry (node config)
        self.volumes = VolumeCalls(store, node_id)  # the node sets its broker and leader channel
        self.stacks = StackCalls(store, node_id)
        self.logcalls = LogCalls(store, node_id, logs)  # the node sets its leader channel
        self.log = logging.LoggerAdapter(logging.getLogger(__name__), {"node": node_id})

    # ------------------------------------------------------------ helpers --

    def _find(self, kind: str, ref: str) -> Any:
        return find(self.store.list(kind), kind, ref)

    def _get(self, kind: str, obj_id: str) -> Any:
        """The stored object after a commit (read-your-writes on this manager)."""
        return self.store.get(kind, obj_id)

    async def _commit(self, acts: Sequence[store_pb2.StoreAction]) -> int:
        try:
            return await self.store.acommit(acts)
        except errors.NameConflict as exc:
            # the name was free when this manager checked it; another request for the
            # same name committed first (Docker answers AlreadyExists here too)
            raise Refusal(Code.ALREADY_EXISTS, f"{exc}: another request took the name first"
                          ) from None
        except errors.Conflict as exc:
            raise Refusal(Code.FAILED_PRECONDITION,
                          f"update out of sequence: {exc}; read the object again and retry"
                          ) from None
        except errors.DiskError as exc:   # (an Unavailable: the leader's disk is full)
            raise disk_refusal(exc) from None
        except (errors.NotLeader, errors.Unavailable):
            raise Refusal(Code.UNAVAILABLE, NO_LEADER) from None

    async def _created(self, kind: str, obj: Any) -> Any:
        """Commits a new object; the stored object after."""
        await self._commit([actions.create(obj)])
        return self._get(kind, obj.id)

    async def _relabelled(self, kind: str, ref: str, spec: Any, version: int) -> Any:
        """Commits the new labels of a secret or config; the stored object after."""
        obj = self._find(kind, ref)
        await self._commit([actions.update(secrets.relabelled(kind, obj, spec, version))])
        return self._get(kind, obj.id)

    async def _remove_unused(self, kind: str, ref: str) -> None:
        """Removes a secret or config that no service uses."""
        obj = self._find(kind, ref)
        secrets.check_unused(kind, obj, self.store.list("service"))
        await self._commit([actions.remove(obj)])

    def _refs(self) -> services.Refs:
        return services.Refs(networks=self.store.list("network"),
                             secrets=self.store.list("secret"),
                             configs=self.store.list("config"),
                             services=self.store.list("service"))

    # --------------------------------------------------------------- info --

    async def Info(self, request: cpb.InfoRequest, context: Context) -> cpb.InfoResponse:
        all_nodes = self.store.list("node")
        cluster = ca.cluster_of(self.store)
        leader = next((n.id for n in all_nodes if n.manager_status.leader), "")
        running = sum(1 for t in self.store.list("task") if t.status.state == pb.RUNNING)
        local: dict[str, Any] = {}
        if request.store_digest:
            view = self.store.snapshot()
            local = {"store_version": view.version,
                     "store_digest": await asyncio.to_thread(view_digest, view),
                     "raft_applied_index": int(self.store.status().get("last_applied") or 0)}
        return cpb.InfoResponse(
            node_id=self.node_id, node_addr=self.node_addr(), is_manager=True,
            cluster_id=cluster.id if cluster else "",
            managers=sum(1 for n in all_nodes if n.role == pb.MANAGER), nodes=len(all_nodes),
            version=VERSION, raft_leader_id=leader, data_dir=self.data_dir,
            services=len(self.store.list("service")), tasks_running=running,
            **clusterrules.security_info(cluster), **local)

    # -------------------------------------------------------------- nodes --

    @refusals
    async def GetNode(self, request: cpb.GetNodeRequest, context: Context) -> cpb.GetNodeResponse:
        return cpb.GetNodeResponse(node=self._find("node", request.node_id))

    async def ListNodes(self, request: cpb.ListNodesRequest,
                        context: Context) -> cpb.ListNodesResponse:
        return cpb.ListNodesResponse(nodes=listed(self.store.list("node"), _filters(request)))

    @refusals
    async def UpdateNode(self, request: cpb.UpdateNodeRequest,
                         context: Context) -> cpb.UpdateNodeResponse:
        node = self._find("node", request.node_id)
        managers = [n for n in self.store.list("node") if n.role == pb.MANAGER]
        new = nodes.updated_node(node, request, managers, self.node_id)
        await self._commit([actions.update(new)])
        if new.spec.desired_role != node.spec.desired_role and new.spec.desired_role == pb.WORKER:
            self.log.info("node %s is to be demoted: the leader's role manager takes it out "
                          "of raft", node.id)
        return cpb.UpdateNodeResponse(node=self._get("node", node.id))

    @refusals
    async def RemoveNode(self, request: cpb.RemoveNodeRequest,
                         context: Context) -> cpb.RemoveNodeResponse:
        node = self._find("node", request.node_id)
        acts = nodes.removal(node, self.store.list("task"), request.force, self.node_id)
        await self._commit(acts)
        return cpb.RemoveNodeResponse()

    # ----------------------------------------------------------- services --

    @refusals
    async def CreateService(self, request: cpb.CreateServiceRequest,
                            context: Context) -> cpb.CreateServiceResponse:
        svc = services.new_service(request, self._refs())
        stored = await self._created("service", svc)
        self.log.info("service %s (%s) created", svc.spec.annotations.name, svc.id)
        return cpb.CreateServiceResponse(service=redact.service(stored))

    @refusals
    async def GetService(self, request: cpb.GetServiceRequest,
                         context: Context) -> cpb.GetServiceResponse:
        return cpb.GetServiceResponse(
            service=redact.service(self._find("service", request.service_id)))

    async def ListServices(self, request: cpb.ListServicesRequest,
                           context: Context) -> cpb.ListServicesResponse:
        found = listed(self.store.list("service"), _filters(request))
        response = cpb.ListServicesResponse(services=[redact.service(s) for s in found])
        if request.status and found:
            down = [n.id for n in self.store.list("node") if n.status.state == pb.NodeStatus.DOWN]
            for svc in found:
                listed_tasks = [t for t in self.store.tasks_of(service_id=svc.id)
                                if t.desired_state in model.LISTED_DESIRED_STATES]
                running, desired, completed, total = model.replica_status(
                    svc, listed_tasks, down)
                response.statuses[svc.id].CopyFrom(cpb.ServiceStatus(
                    running_tasks=running, desired_tasks=desired, completed_tasks=completed,
                    total_completions=total))
        return response

    @refusals
    async def UpdateService(self, request: cpb.UpdateServiceRequest,
                            context: Context) -> cpb.UpdateServiceResponse:
        svc = self._find("service", request.service_id)
        new = services.updated_service(svc, request, self._refs())
        if new is not None:
            await self._commit([actions.update(new)])
            self.log.info("service %s updated (spec version %d)", new.spec.annotations.name,
                          new.spec_version)
        return cpb.UpdateServiceResponse(service=redact.service(self._get("service", svc.id)))

    @refusals
    async def RemoveService(self, request: cpb.RemoveServiceRequest,
                            context: Context) -> cpb.RemoveServiceResponse:
        svc = self._find("service", request.service_id)
        await self._commit([actions.remove(svc)])
        self.log.info("service %s (%s) removed", svc.spec.annotations.name, svc.id)
        return cpb.RemoveServiceResponse()

    async def ServiceLogs(self, request: cpb.ServiceLogsRequest,
                          context: Context) -> AsyncIterator[cpb.ServiceLogsResponse]:
        try:
            async for response in self.logcalls.stream(request, context):
                yield response
        except Refusal as refusal:
            await context.abort(STATUS[refusal.code], fitted(refusal.message))

    # -------------------------------------------------------------- tasks --

    @refusals
    async def GetTask(self, request: cpb.GetTaskRequest, context: Context) -> cpb.GetTaskResponse:
        return cpb.GetTaskResponse(task=redact.task(self._find("task", request.task_id)))

    async def ListTasks(self, request: cpb.ListTasksRequest,
                        context: Context) -> cpb.ListTasksResponse:
        filters = _filters(request)
        return cpb.ListTasksResponse(tasks=[
            redact.task(t) for t in tasks.listed(self._candidate_tasks(filters), filters)])

    def _candidate_tasks(self, filters: Optional[cpb.ListFilters]) -> list:
        """Every task that may pass `filters`: from the store's index when they name
        services or nodes (`service ps` of one service must not read every task)."""
        if filters is None or not (filters.service_ids or filters.node_ids) \
                or "" in filters.service_ids or "" in filters.node_ids:
            return self.store.list("task")  # (tasks with an empty ID are not indexed)
        found: dict[str, Any] = {}
        if filters.service_ids:
            for sid in set(filters.service_ids):
                found.update((t.id, t) for t in self.store.tasks_of(service_id=sid))
        else:
            for nid in set(filters.node_ids):
                found.update((t.id, t) for t in self.store.tasks_of(node_id=nid))
        return list(found.values())

    # ----------------------------------------------------------- networks --

    @refusals
    async def CreateNetwork(self, request: cpb.CreateNetworkRequest,
                            context: Context) -> cpb.CreateNetworkResponse:
        net = networks.new_network(request, self.store.list("network"), ca.cluster_of(self.store))
        stored = await self._created("network", net)
        if net.spec.config_only:
            self.log.info("configuration-only network %s (%s) created",
                          net.spec.annotations.name, net.id)
        else:
            self.log.info("network %s (%s) created: subnet %s, VNI %d",
                          net.spec.annotations.name, net.id, net.ipam[0].subnet, net.vni)
        return cpb.CreateNetworkResponse(network=stored)

    @refusals
    async def GetNetwork(self, request: cpb.GetNetworkRequest,
                         context: Context) -> cpb.GetNetworkResponse:
        return cpb.GetNetworkResponse(network=self._find("network", request.network_id))

    async def ListNetworks(self, request: cpb.ListNetworksRequest,
                           context: Context) -> cpb.ListNetworksResponse:
        return cpb.ListNetworksResponse(
            networks=listed(self.store.list("network"), _filters(request)))

    @refusals
    async def RemoveNetwork(self, request: cpb.RemoveNetworkRequest,
                            context: Context) -> cpb.RemoveNetworkResponse:
        net = self._find("network", request.network_id)
        networks.check_removable(net, self.store.list("service"), self.store.list("task"),
                                 self.store.list("network"))
        await self._commit([actions.remove(net)])
        self.log.info("network %s (%s) removed", net.spec.annotations.name, net.id)
        return cpb.RemoveNetworkResponse()

    # ---------------------------------------------------- secrets, configs --

    @refusals
    async def CreateSecret(self, request: cpb.CreateSecretRequest,
                           context: Context) -> cpb.CreateSecretResponse:
        sec = secrets.new_object("secret", pb.Secret(spec=request.spec), self.store.list("secret"))
        return cpb.CreateSecretResponse(secret=redact.secret(await self._created("secret", sec)))

    @refusals
    async def GetSecret(self, request: cpb.GetSecretRequest,
                        context: Context) -> cpb.GetSecretResponse:
        return cpb.GetSecretResponse(
            secret=redact.secret(self._find("secret", request.secret_id)))

    async def ListSecrets(self, request: cpb.ListSecretsRequest,
                          context: Context) -> cpb.ListSecretsResponse:
        return cpb.ListSecretsResponse(secrets=[
            redact.secret(s) for s in listed(self.store.list("secret"), _filters(request))])

    @refusals
    async def UpdateSecret(self, request: cpb.UpdateSecretRequest,
                           context: Context) -> cpb.UpdateSecretResponse:
        sec = await self._relabelled("secret", request.secret_id, request.spec,
                                     request.secret_version)
        return cpb.UpdateSecretResponse(secret=redact.secret(sec))

    @refusals
    async def RemoveSecret(self, request: cpb.RemoveSecretRequest,
                           context: Context) -> cpb.RemoveSecretResponse:
        await self._remove_unused("secret", request.secret_id)
        return cpb.RemoveSecretResponse()

    @refusals
    async def CreateConfig(self, request: cpb.CreateConfigRequest,
                           context: Context) -> cpb.CreateConfigResponse:
        cfg = secrets.new_object("config", pb.Config(spec=request.spec), self.store.list("config"))
        return cpb.CreateConfigResponse(config=await self._created("config", cfg))

    @refusals
    async def GetConfig(self, request: cpb.GetConfigRequest,
                        context: Context) -> cpb.GetConfigResponse:
        return cpb.GetConfigResponse(config=self._find("config", request.config_id))

    async def ListConfigs(self, request: cpb.ListConfigsRequest,
                          context: Context) -> cpb.ListConfigsResponse:
        return cpb.ListConfigsResponse(
            configs=listed(self.store.list("config"), _filters(request)))

    @refusals
    async def UpdateConfig(self, request: cpb.UpdateConfigRequest,
                           context: Context) -> cpb.UpdateConfigResponse:
        cfg = await self._relabelled("config", request.config_id, request.spec,
                                     request.config_version)
        return cpb.UpdateConfigResponse(config=cfg)

    @refusals
    async def RemoveConfig(self, request: cpb.RemoveConfigRequest,
                           context: Context) -> cpb.RemoveConfigResponse:
        await self._remove_unused("config", request.config_id)
        return cpb.RemoveConfigResponse()

    # ------------------------------------------------------------- stacks --

    @refusals
    async def DeployStack(self, request: cpb.DeployStackRequest,
                          context: Context) -> cpb.DeployStackResponse:
        return await self.stacks.deploy(request)

    async def ListStacks(self, request: cpb.ListStacksRequest,
                         context: Context) -> cpb.ListStacksResponse:
        return self.stacks.list()

    @refusals
    async def RemoveStack(self, request: cpb.RemoveStackRequest,
                          context: Context) -> cpb.RemoveStackResponse:
        return await self.stacks.remove(request)

    @refusals
    async def RollbackStack(self, request: cpb.RollbackStackRequest,
                            context: Context) -> cpb.RollbackStackResponse:
        return await self.stacks.rollback(request)

    # ------------------------------------------------------------ volumes --

    @refusals
    async def ListVolumes(self, request: cpb.ListVolumesRequest,
                          context: Context) -> cpb.ListVolumesResponse:
        return self.volumes.list(request)

    @refusals
    async def RemoveVolume(self, request: cpb.RemoveVolumeRequest,
                           context: Context) -> cpb.RemoveVolumeResponse:
        return await self.volumes.remove(request, context)

    @refusals
    async def PruneVolumes(self, request: cpb.PruneVolumesRequest,
                           context: Context) -> cpb.PruneVolumesResponse:
        return await self.volumes.prune(request, context)

    # ------------------------------------------------------------ cluster --

    @staticmethod
    def _cluster_out(cluster: pb.Cluster) -> pb.Cluster:
        """The cluster as the API returns it: without root, overlay or unlock keys
        (only GetUnlockKey returns the unlock key)."""
        return redact.cluster(cluster)

    @refusals
    async def GetCluster(self, request: cpb.GetClusterRequest,
                         context: Context) -> cpb.GetClusterResponse:
        cluster = self._find("cluster", request.cluster_id or "default")
        return cpb.GetClusterResponse(cluster=self._cluster_out(cluster))

    async def ListClusters(self, request: cpb.ListClustersRequest,
                           context: Context) -> cpb.ListClustersResponse:
        return cpb.ListClustersResponse(
            clusters=[self._cluster_out(c) for c in self.store.list("cluster")])

    @refusals
    async def GetUnlockKey(self, request: cpb.GetUnlockKeyRequest,
                           context: Context) -> cpb.GetUnlockKeyResponse:
        cluster = self._find("cluster", "default")
        return cpb.GetUnlockKeyResponse(unlock_key=clusterrules.unlock_key(cluster))

    @refusals
    async def UpdateCluster(self, request: cpb.UpdateClusterRequest,
                            context: Context) -> cpb.UpdateClusterResponse:
        cluster = self._find("cluster", request.cluster_id or "default")
        new = clusterrules.updated_cluster(cluster, request, self._start_rotation,
                                             self.min_cert_expiry)
        await self._check_external_cas(cluster, new)
        await self._commit([actions.update(new)])
        return cpb.UpdateClusterResponse(
            cluster=self._cluster_out(self._get("cluster", cluster.id)))

    async def _check_external_cas(self, old: pb.Cluster, new: pb.Cluster) -> None:
        """As Docker: a root whose key the cluster does not hold is accepted (or its
        external CAs changed) only when one of its CAs is reachable and presents a
        certificate from that root."""
        signer = externalca.keyless_signer(new)
        if not signer:
            return
        cas = externalca.for_root(new, signer)
        if givenroot.same_certificate(signer, externalca.keyless_signer(old)) and \
                cas == externalca.for_root(old, signer):
            return
        problem = await asyncio.get_running_loop().run_in_executor(
            None, externalca.unreachable, cas, signer)
        if problem is not None:
            raise invalid("there must be at least one valid, reachable external CA for the "
                          f"root CA certificate that signs: {problem}")

    def _start_rotation(self, cluster: pb.Cluster, new_root: Optional[RootCA]) -> pb.RootRotation:
        """A rotation to `new_root` (the operator's) or a generated root, cross-signed
        by this manager's root CA from disk (its key is encrypted with the key
        passphrase the node sets, pki.keystore)."""
        disk_root = RootCA.load(pkinode.cert_dir(self.data_dir), kek=self.key_passphrase)
        rotation = ca.start_rotation(cluster, disk_root, new_root)
        self.log.info("root CA rotation started (to %s)",
                      "the operator's root" if new_root is not None else "a generated root")
        return rotation
