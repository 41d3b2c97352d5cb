"""Network allocation: subnets and VNIs, task addresses, service VIPs, published ports.

Pure decisions over store snapshots (DESIGN §1): `networks` builds network
objects at creation (control API, `swarm init`), `assign.allocate(work)`
runs in the leader's reconcile pass before scheduling, `ipam` and `ports` are
the arithmetic both use. Nothing here keeps state between passes: what is in
use is read from the snapshot every time.
"""
from manager.allocator.assign import allocate
from manager.allocator.ipam import AllocationError

__all__ = ["AllocationError", "allocate"]
