"""The Control API, split by resource as swarmkit's controlapi is.

* `common`: the `Refusal` a rule raises (a gRPC-agnostic code and the exact
  message), object look-up and list order;
* `nodes`, `services`, `tasks`, `networks`, `secrets` (secrets and configs),
  `cluster`, `volumes` (the nodes' named volumes): the pure rules of each
  resource, from (current objects, request) to the objects to write or a
  refusal; no I/O, no gRPC, no store access;
* `server`: the thin `ControlServicer` that reads the store, calls a rule,
  commits its actions and maps refusals to gRPC status codes;
* `stacks`: a whole stack deploy (every object, one transaction) and removal,
  with `specdiff` (the dotted paths of the spec fields an update changes);
  `stackcalls` runs them against the store (retries, the wait before a stack's
  networks go);
* `volumecalls`: the volume calls, which reach a node's agent (through the
  volume broker, or the leader when this manager does not lead).
"""
