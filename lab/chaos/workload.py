"""The soak's operations: services, secrets, networks and a stack, changed at random.

Owns the `Operator` thread: every 0.3-1.5 s (drawn from its own seeded
generator) it creates, scales, updates (image, environment, placement), rolls
back or removes a service (replicated or global, some with a secret, an
overlay network or a published port), creates or removes a secret or an
overlay network, or deploys/redeploys the stack `chaos` with `swarm stack
deploy` on a live manager. Each operation and its answer go on the timeline;
a refusal the operation can expect (a secret in use, nothing to roll back to,
no leader) is fine, an INTERNAL or UNKNOWN answer is a bug and is counted.
`pause()` holds the operator between two operations (while the injector
measures convergence); the writers (lab.chaos.writers) are not paused.
"""
from __future__ import annotations

import random
import shutil
import tempfile
import threading
from pathlib import Path
from typing import Callable, Optional

import grpc

from lab.chaos.access import CALL_TIMEOUT, Access, NoManager
from lab.chaos.timeline import Timeline
from lab.images import DEMO_IMAGE
from proto import control_pb2 as cpb
from proto import objects_pb2 as pb

LABEL = "com.shoal.chaos"
STACK = "chaos"
SECRET_MARK = "CHAOSPLAINTEXT"      # every secret's data starts with it (invariant 5 looks for it)
MAX_SERVICES = 6
PORT_BASE = 18000
EXPECTED = {grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED,
            grpc.StatusCode.FAILED_PRECONDITION, grpc.StatusCode.NOT_FOUND,
            grpc.StatusCode.ALREADY_EXISTS}
PLACEMENTS: tuple[tuple[str, ...], ...] = ((), ("node.role==worker",), ("node.role==manager",))
WEIGHTS = {"create": 3, "scale": 3, "image": 2, "env": 2, "placement": 2, "rollback": 1,
           "remove": 2, "secret-create": 1, "secret-remove": 1, "network-create": 1,
           "network-remove": 1, "stack-deploy": 2}


def _secret_plaintext(seed: int, k: int, rng: random.Random) -> bytes:
    return f"{SECRET_MARK}-{seed}-{k}-{rng.getrandbits(64):016x}".encode()


class Operator:
    """The workload thread; `images` are the two images updates alternate between."""

    def __init__(self, access: Access, timeline: Timeline, seed: int,
                 images: tuple[str, str] = (DEMO_IMAGE, DEMO_IMAGE)) -> None:
        self.access, self.timeline, self.images = access, timeline, images
        self.seed = seed
        self.rng = random.Random(seed)
        self.count = 0                     # operations attempted
        self.done = 0                      # ... and acknowledged
        self.bugs: list[str] = []          # INTERNAL/UNKNOWN answers
        self.plaintexts: list[bytes] = []  # every secret's data, for invariant 5
        self._stop = threading.Event()
        self._run = threading.Event()
        self._run.set()
        self._busy = threading.Lock()
        self._thread: Optional[threading.Thread] = None
        self._next = {"service": 0, "secret": 0, "network": 0, "stack": 0}
        self._dir = Path(tempfile.mkdtemp(prefix="shoal-chaos-stack-"))

    # ---- control

    def start(self) -> None:
        self._thread = threading.Thread(target=self._loop, name="chaos-operator", daemon=True)
        self._thread.start()

    def stop(self, timeout: float = 120.0) -> bool:
        """Stops after the current operation; False if it did not stop in time."""
        self._stop.set()
        self._run.set()
        stopped = True
        if self._thread is not None:
            self._thread.join(timeout)
            stopped = not self._thread.is_alive()
        if stopped:
            shutil.rmtree(self._dir, ignore_errors=True)   # it holds a secret's plaintext
        return stopped

    def pause(self) -> None:
        """Returns once no operation runs and none will start until `resume()`."""
        self._run.clear()
        with self._busy:
            pass

    def resume(self) -> None:
        self._run.set()

    def _loop(self) -> None:
        kinds = list(WEIGHTS)
        weights = [WEIGHTS[k] for k in kinds]
        while not self._stop.is_set():
            self._run.wait()
            if self._stop.is_set():
                return
            with self._busy:
                if not self._run.is_set():
                    continue
                kind = self.rng.choices(kinds, weights)[0]
                self._do(kind)
            self._stop.wait(self.rng.uniform(0.3, 1.5))

    def _do(self, kind: str) -> None:
        handler: Callable[[], Optional[str]] = getattr(self, "_" + kind.replace("-", "_"))
        self.count += 1
        try:
            what = handler()
        except NoManager as err:
            self.timeline.add("op", kind, f"no manager: {err}", ok=True)
            return
        except grpc.RpcError as err:
            code = err.code()
            # reads are local: a manager behind (or cut off) may list a secret or network
            # already removed, and the leader then refuses the reference to it
            expected = code in EXPECTED or (code == grpc.StatusCode.INVALID_ARGUMENT
                                            and "not found" in (err.details() or ""))
            if not expected:
                self.bugs.append(f"{kind}: {code.name}: {err.details()}")
            self.timeline.add("op", kind, f"{code.name}: {(err.details() or '')[:120]}",
                              ok=expected)
            return
        except Exception as err:  # noqa: BLE001 - e.g. a CLI that hangs: counted, run goes on
            self.bugs.append(f"{kind}: {err!r}")
            self.timeline.add("op", kind, f"failed: {err!r}"[:160], ok=False)
            return
        if what is not None:        # None: the operation put its own line on the timeline
            self.done += 1
            self.timeline.add("op", what, "ok")

    # ---- reading

    def _call(self, fn: Callable) -> object:
        return self.access.call(self.rng, fn)

    def _services(self) -> list[pb.Service]:
        res = self._call(lambda api: api.ListServices(cpb.ListServicesRequest(
            filters=cpb.ListFilters(labels={LABEL: ""})), timeout=CALL_TIMEOUT))
        return sorted(res.services, key=lambda s: s.spec.annotations.name)  # type: ignore[attr-defined]

    def _secrets(self) -> list[pb.Secret]:
        res = self._call(lambda api: api.ListSecrets(cpb.ListSecretsRequest(
            filters=cpb.ListFilters(labels={LABEL: ""})), timeout=CALL_TIMEOUT))
        return sorted(res.secrets, key=lambda s: s.spec.annotations.name)  # type: ignore[attr-defined]

    def _networks(self) -> list[pb.Network]:
        res = self._call(lambda api: api.ListNetworks(cpb.ListNetworksRequest(
            filters=cpb.ListFilters(labels={LABEL: ""})), timeout=CALL_TIMEOUT))
        return sorted(res.networks, key=lambda n: n.spec.annotations.name)  # type: ignore[attr-defined]

    def _pick_service(self) -> Optional[pb.Service]:
        found = self._services()
        return self.rng.choice(found) if found else None

    def _update(self, svc: pb.Service, spec: pb.ServiceSpec, what: str) -> str:
        self._call(lambda api: api.UpdateService(cpb.UpdateServiceRequest(
            service_id=svc.id, service_version=svc.meta.version, spec=spec),
            timeout=CALL_TIMEOUT))
        return what

    # ---- operations (each returns what it did, for the timeline)

    def _create(self) -> str:
        if len(self._services()) >= MAX_SERVICES:
            return self._remove()
        self._next["service"] += 1
        k = self._next["service"]
        name = f"chaos-s{k}"
        spec = pb.ServiceSpec()
        spec.annotations.name = name
        spec.annotations.labels[LABEL] = "1"
        c = spec.task.container
        c.image = self.images[0]
        c.args.extend(["httpd", "-f", "-p", "8080"])
        c.stop_grace_period.nanos = 1_000_000_000
        c.env.append("GEN=0")
        is_global = self.rng.random() < 0.2
        if is_global:
            getattr(spec, "global").SetInParent()
        else:
            spec.replicated.replicas = self.rng.randint(1, 3)
        extras = []
        secrets = self._secrets()
        if secrets and self.rng.random() < 0.5:
            secret = self.rng.choice(secrets)
            c.secrets.add(secret_id=secret.id, secret_name=secret.spec.annotations.name,
                          target="token", mode=0o400)
            extras.append(f"secret {secret.spec.annotations.name}")
        networks = self._networks()
        if networks and self.rng.random() < 0.5:
            net = self.rng.choice(networks)
            spec.task.networks.add(target=net.id)
            extras.append(f"network {net.spec.annotations.name}")
        if self.rng.random() < 0.3:
            spec.endpoint.ports.add(target_port=8080, published_port=PORT_BASE + k)
            extras.append(f"port {PORT_BASE + k}")
        self._call(lambda api: api.CreateService(cpb.CreateServiceRequest(spec=spec),
                                                 timeout=CALL_TIMEOUT))
        mode = "global" if is_global else f"{spec.replicated.replicas} replicas"
        return f"create {name} ({', '.join([mode, *extras])})"

    def _scale(self) -> str:
        svc = self._pick_service()
        if svc is None or not svc.spec.HasField("replicated"):
            return self._create()
        spec = pb.ServiceSpec()
        spec.CopyFrom(svc.spec)
        spec.replicated.replicas = self.rng.randint(0, 4)
        return self._update(svc, spec, f"scale {svc.spec.annotations.name} to "
                                       f"{spec.replicated.replicas}")

    def _image(self) -> str:
        svc = self._pick_service()
        if svc is None:
            return self._create()
        spec = pb.ServiceSpec()
        spec.CopyFrom(svc.spec)
        now = spec.task.container.image
        spec.task.container.image = self.images[1] if now == self.images[0] else self.images[0]
        return self._update(svc, spec, f"image {svc.spec.annotations.name} "
                                       f"{spec.task.container.image}")

    def _env(self) -> str:
        svc = self._pick_service()
        if svc is None:
            return self._create()
        spec = pb.ServiceSpec()
        spec.CopyFrom(svc.spec)
        del spec.task.container.env[:]
        gen = self.rng.randint(1, 10**6)
        spec.task.container.env.append(f"GEN={gen}")
        return self._update(svc, spec, f"env {svc.spec.annotations.name} GEN={gen}")

    def _placement(self) -> str:
        svc = self._pick_service()
        if svc is None:
            return self._create()
        spec = pb.ServiceSpec()
        spec.CopyFrom(svc.spec)
        chosen = self.rng.choice(PLACEMENTS)
        del spec.task.placement.constraints[:]
        spec.task.placement.constraints.extend(chosen)
        return self._update(svc, spec, f"placement {svc.spec.annotations.name} "
                                       f"{list(chosen) or 'anywhere'}")

    def _rollback(self) -> str:
        svc = self._pick_service()
        if svc is None:
            return self._create()
        self._call(lambda api: api.UpdateService(cpb.UpdateServiceRequest(
            service_id=svc.id, service_version=svc.meta.version, rollback=True),
            timeout=CALL_TIMEOUT))
        return f"rollback {svc.spec.annotations.name}"

    def _remove(self) -> str:
        svc = self._pick_service()
        if svc is None:
            return self._create()
        self._call(lambda api: api.RemoveService(cpb.RemoveServiceRequest(service_id=svc.id),
                                                 timeout=CALL_TIMEOUT))
        return f"remove {svc.spec.annotations.name}"

    def _secret_create(self) -> str:
        self._next["secret"] += 1
        k = self._next["secret"]
        data = _secret_plaintext(self.seed, k, self.rng)
        self.plaintexts.append(data)
        spec = pb.SecretSpec(data=data)
        spec.annotations.name = f"chaos-secret-{k}"
        spec.annotations.labels[LABEL] = "1"
        self._call(lambda api: api.CreateSecret(cpb.CreateSecretRequest(spec=spec),
                                                timeout=CALL_TIMEOUT))
        return f"secret-create {spec.annotations.name}"

    def _secret_remove(self) -> str:
        secrets = self._secrets()
        if not secrets:
            return self._secret_create()
        secret = self.rng.choice(secrets)
        self._call(lambda api: api.RemoveSecret(cpb.RemoveSecretRequest(secret_id=secret.id),
                                                timeout=CALL_TIMEOUT))
        return f"secret-remove {secret.spec.annotations.name}"

    def _network_create(self) -> str:
        self._next["network"] += 1
        spec = pb.NetworkSpec(driver="overlay")
        spec.annotations.name = f"chaos-net-{self._next['network']}"
        spec.annotations.labels[LABEL] = "1"
        self._call(lambda api: api.CreateNetwork(cpb.CreateNetworkRequest(spec=spec),
                                                 timeout=CALL_TIMEOUT))
        return f"network-create {spec.annotations.name}"

    def _network_remove(self) -> str:
        networks = self._networks()
        if not networks:
            return self._network_create()
        net = self.rng.choice(networks)
        self._call(lambda api: api.RemoveNetwork(cpb.RemoveNetworkRequest(network_id=net.id),
                                                 timeout=CALL_TIMEOUT))
        return f"network-remove {net.spec.annotations.name}"

    def _stack_deploy(self) -> Optional[str]:
        self._next["stack"] += 1
        gen = self._next["stack"]
        replicas = self.rng.randint(1, 3)
        secret = _secret_plaintext(self.seed, 1000 + gen, self.rng)
        self.plaintexts.append(secret)
        (self._dir / "token.txt").write_bytes(secret)
        (self._dir / "chaos.yml").write_text(compose_file(self.images[gen % 2], replicas, gen))
        managers = self.access.live_managers()
        if not managers:
            raise NoManager("no live manager for stack deploy")
        on = self.rng.choice(managers)
        res = self.access.lab.swarm(on, "stack", "deploy", "-c", str(self._dir / "chaos.yml"),
                                    STACK, check=False, timeout=90)
        what = f"stack-deploy {STACK} gen {gen} ({replicas} web replicas) on {on}"
        if res.returncode != 0:
            text = (res.stderr or res.stdout).strip().splitlines()
            last = text[-1] if text else f"exit {res.returncode}"
            # a deploy without a leader fails like any write; a traceback or an internal
            # error is a bug
            bug = any(mark in res.stderr for mark in ("Traceback", "INTERNAL", "code = Unknown"))
            if bug:
                self.bugs.append(f"{what}: {res.stderr[-400:]}")
            self.timeline.add("op", what, f"exit {res.returncode}: {last[:120]}", ok=not bug)
            return None
        return what


def compose_file(image: str, replicas: int, gen: int) -> str:
    """The chaos stack: a web service on an overlay network with a secret, and a
    global service; each deploy changes the replicas and the environment."""
    return f"""version: "3.8"
services:
  web:
    image: {image}
    command: ["httpd", "-f", "-p", "8080"]
    environment:
      GEN: "{gen}"
    networks: [back]
    secrets:
      - source: token
        target: token
    stop_grace_period: 1s
    deploy:
      replicas: {replicas}
  agent:
    image: {image}
    command: ["sleep", "1000000"]
    stop_grace_period: 1s
    networks: [back]
    deploy:
      mode: global
      placement:
        constraints: ["node.role==worker"]
networks:
  back:
    driver: overlay
secrets:
  token:
    file: ./token.txt
"""
