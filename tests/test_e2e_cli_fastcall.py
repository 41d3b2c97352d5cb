"""End to end: the CLI's fast path (cli.fastcall) against a real node's Control API.

Every read the fast path may make answers what grpcio gets for the same
request, through the fast path itself (no fallback); `swarm node ls` and
`swarm service ls` run without loading grpc.
"""
from __future__ import annotations

from typing import Any

import pytest

from cli.client import FAST_METHODS, Client, RpcFailure
from lab import images
from proto import control_pb2 as cpb
from proto import objects_pb2 as pb
from tests.cluster import SingleNode
from tests.test_cli_startup import run_fresh

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def node(tmp_path_factory):
    image = images.ensure_demo_image()
    n = SingleNode(tmp_path_factory.mktemp("fastcall"))
    try:
        n.init()
        for name in ("web", "db"):
            spec = pb.ServiceSpec()
            spec.annotations.name = name
            spec.replicated.replicas = 0
            spec.task.container.image = image
            n.api().CreateService(cpb.CreateServiceRequest(spec=spec), timeout=10)
        n.close_channel()
        yield n
    finally:
        n.destroy()


def host_of(node: SingleNode) -> str:
    return f"unix://{node.data_dir}/swarm.sock"


def test_every_fast_read_answers_as_grpcio_does(node: SingleNode) -> None:
    with Client(host_of(node)) as client:
        cluster_id = client.call("ListClusters", cpb.ListClustersRequest()).clusters[0].id
        requests: dict[str, Any] = {
            "Info": cpb.InfoRequest(), "ListNodes": cpb.ListNodesRequest(),
            "GetNode": cpb.GetNodeRequest(node_id=node.node_id),
            "ListServices": cpb.ListServicesRequest(),
            "GetService": cpb.GetServiceRequest(service_id="web"),
            "ListTasks": cpb.ListTasksRequest(), "ListNetworks": cpb.ListNetworksRequest(),
            "GetNetwork": cpb.GetNetworkRequest(network_id="ingress"),
            "ListSecrets": cpb.ListSecretsRequest(), "ListConfigs": cpb.ListConfigsRequest(),
            "ListClusters": cpb.ListClustersRequest(),
            "GetCluster": cpb.GetClusterRequest(cluster_id=cluster_id),
        }
        for method, request in requests.items():
            assert method in FAST_METHODS
            before = client.fast_calls
            fast = client.call(method, request)
            assert client.fast_calls == before + 1, method
            assert fast == client.channel.call(client.channel.control, method, request, 10), \
                method
        assert client.fallbacks == []
        assert {s.spec.annotations.name for s in
                client.call("ListServices", cpb.ListServicesRequest()).services} >= {"web", "db"}


@pytest.mark.parametrize("method, request_", [
    ("GetService", cpb.GetServiceRequest(service_id="no such thing ü 100%")),
    ("GetTask", cpb.GetTaskRequest(task_id="nope")),
    ("GetSecret", cpb.GetSecretRequest(secret_id="nope")),
])
def test_errors_answer_as_grpcio_does(node: SingleNode, method: str, request_: Any) -> None:
    with Client(host_of(node)) as client:
        with pytest.raises(RpcFailure) as fast:
            client.call(method, request_)
        with pytest.raises(RpcFailure) as slow:
            client.channel.call(client.channel.control, method, request_, 10)
        assert (fast.value.code(), fast.value.details()) == (slow.value.code(),
                                                             slow.value.details())
        assert fast.value.code() == "NOT_FOUND"
        assert client.fallbacks == []


@pytest.mark.parametrize("argv, expect", [(["node", "ls"], "Ready"),
                                          (["service", "ls"], "web")])
def test_list_commands_run_without_grpc(node: SingleNode, argv: list[str],
                                        expect: str) -> None:
    code, modules, err = run_fresh(["-H", host_of(node), "-D", *argv])
    assert code == 0, err
    assert "grpc" not in modules and "cli.grpc_transport" not in modules
    assert "made through grpcio" not in err
    res = node.swarm(*argv)
    assert expect in res.stdout
