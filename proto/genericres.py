"""Generic resources (Docker's GenericResources): their text forms and the env they give.

Owns the pure rules every package shares about `pb.GenericResource`:

- `parse_node(terms)`: what a node offers, from `KIND=VALUE` terms (`swarm daemon
  --node-generic-resource`, dockerd's `node-generic-resources`). A VALUE that is an
  integer is a discrete count (`ssd=3`, one term per kind); any other VALUE names one
  instance of the kind (`gpu=GPU-1`, one term per id, repeated). A kind is either
  discrete or named, never both.
- `parse_request(terms)`: what a service reserves (`service create --generic-resource`):
  discrete counts only, as Docker (a service asks for `gpu=2`, never for `gpu=GPU-1`).
- `env(assigned)`: the variables a task's container gets for what the scheduler gave
  it, Docker's `DOCKER_RESOURCE_<KIND>=v1,v2` (the kind upper-cased; named ids joined
  with commas in the order assigned, a discrete count as its number).
- `terms(resources)`: the `KIND=VALUE` text of a list, for display and node.json.

Imports nothing of ours but the generated modules.
"""
from __future__ import annotations

from typing import Iterable, Sequence

from proto import objects_pb2 as pb

ENV_PREFIX = "DOCKER_RESOURCE"


def named(kind: str, value: str) -> pb.GenericResource:
    return pb.GenericResource(named_resource_spec=pb.NamedGenericResource(kind=kind, value=value))


def discrete(kind: str, value: int) -> pb.GenericResource:
    return pb.GenericResource(
        discrete_resource_spec=pb.DiscreteGenericResource(kind=kind, value=value))


def kind_of(res: pb.GenericResource) -> str:
    if res.WhichOneof("resource") == "named_resource_spec":
        return res.named_resource_spec.kind
    return res.discrete_resource_spec.kind


def value_of(res: pb.GenericResource) -> str:
    """The value as text: a named resource's id, a discrete one's count."""
    if res.WhichOneof("resource") == "named_resource_spec":
        return res.named_resource_spec.value
    return str(res.discrete_resource_spec.value)


def is_named(res: pb.GenericResource) -> bool:
    return res.WhichOneof("resource") == "named_resource_spec"


def valid_kind(kind: str) -> bool:
    """The one rule for a kind's name, wherever it comes from (flags, compose files,
    specs sent to the manager): not empty, no `=`, no spaces, no commas (they would
    break the `KIND=VALUE` terms and the comma-joined env values)."""
    return bool(kind) and not any(c.isspace() or c in "=," for c in kind)


def _split(term: str, flag: str) -> tuple[str, str]:
    kind, sep, value = term.partition("=")
    kind, value = kind.strip(), value.strip()
    if not sep or not kind or not value or "=" in value:
        raise ValueError(f"invalid {flag} {term!r}: expected KIND=VALUE (e.g. gpu=GPU-1 "
                         "or ssd=3)")
    if not valid_kind(kind):
        raise ValueError(f"invalid {flag} {term!r}: the kind {kind!r} may hold no spaces "
                         "or commas")
    if "," in value:
        raise ValueError(f"invalid {flag} {term!r}: one value per term (repeat the flag "
                         f"for each: {kind}=ID1 {flag} {kind}=ID2)")
    return kind, value


def _integer(value: str) -> int | None:
    try:
        return int(value, 10)
    except ValueError:
        return None


def parse_node(terms: Iterable[str],
               flag: str = "--node-generic-resource") -> list[pb.GenericResource]:
    """What a node offers, from its `KIND=VALUE` terms, in the order given.
    ValueError (one line, naming the term) for a malformed term, a negative count, a
    kind given both a count and ids or two counts, or an id given twice."""
    by_kind: dict[str, list[str]] = {}
    for term in terms:
        kind, value = _split(term, flag)
        by_kind.setdefault(kind, []).append(value)
    out: list[pb.GenericResource] = []
    for kind, values in by_kind.items():
        counts = [v for v in values if _integer(v) is not None]
        if counts and len(values) > 1:
            raise ValueError(
                f"invalid {flag} for {kind!r}: {', '.join(values)}: a kind is either one "
                f"count ({kind}=3) or named ids ({kind}=ID1, {kind}=ID2, ...), not both "
                "nor two counts")
        if counts:
            count = _integer(counts[0])
            assert count is not None
            if count < 0:
                raise ValueError(f"invalid {flag} {kind}={counts[0]}: a count cannot be "
                                 "negative")
            out.append(discrete(kind, count))
            continue
        seen: set[str] = set()
        for value in values:
            if value in seen:
                raise ValueError(f"invalid {flag} {kind}={value}: the id {value!r} is "
                                 "given twice")
            seen.add(value)
            out.append(named(kind, value))
    return out


def parse_request(terms: Iterable[str],
                  flag: str = "--generic-resource") -> list[pb.GenericResource]:
    """A service's reservation, from `KIND=COUNT` terms (discrete only; a kind at most
    once). ValueError (one line) otherwise."""
    out: dict[str, pb.GenericResource] = {}
    for term in terms:
        kind, value = _split(term, flag)
        count = _integer(value)
        if count is None:
            raise ValueError(f"invalid {flag} {term!r}: a service reserves a count of a "
                             f"kind ({kind}=1), not a named resource: the scheduler picks "
                             "the ids")
        if count <= 0:
            raise ValueError(f"invalid {flag} {term!r}: the count must be a positive "
                             "integer")
        if kind in out:
            raise ValueError(f"invalid {flag}: {kind!r} is given twice")
        out[kind] = discrete(kind, count)
    return list(out.values())


def check_request(resources: Sequence[pb.GenericResource]) -> str:
    """Why a reservation is not valid ("" when it is): what the manager checks of a
    spec that did not come from `parse_request`."""
    kinds: set[str] = set()
    for res in resources:
        if is_named(res):
            return (f"invalid generic resource {res.named_resource_spec.kind}: a service "
                    "reserves counts (discrete resources), not named ones")
        if res.WhichOneof("resource") is None:
            return "invalid generic resource: neither named nor discrete"
        kind, count = res.discrete_resource_spec.kind, res.discrete_resource_spec.value
        if not valid_kind(kind):
            return (f"invalid generic resource kind {kind!r}: it must be non-empty, with "
                    "no '=', spaces or commas")
        if count <= 0:
            return f"invalid generic resource {kind}={count}: the count must be positive"
        if kind in kinds:
            return f"invalid generic resources: {kind!r} is given twice"
        kinds.add(kind)
    return ""


def terms(resources: Iterable[pb.GenericResource]) -> list[str]:
    """`KIND=VALUE` for each resource, in order."""
    return [f"{kind_of(r)}={value_of(r)}" for r in resources]


def summary(resources: Iterable[pb.GenericResource]) -> list[str]:
    """One `KIND=VALUE[,VALUE...]` per kind (named ids joined), kinds in first-seen order."""
    by_kind: dict[str, list[str]] = {}
    for r in resources:
        by_kind.setdefault(kind_of(r), []).append(value_of(r))
    return [f"{kind}={','.join(values)}" for kind, values in by_kind.items()]


def env(assigned: Iterable[pb.GenericResource], prefix: str = ENV_PREFIX) -> list[str]:
    """The container's variables for the resources assigned to its task:
    `DOCKER_RESOURCE_GPU=GPU-1,GPU-2`, `DOCKER_RESOURCE_SSD=2` (swarmkit's EnvFormat:
    the whole name upper-cased, values of a kind joined by commas)."""
    return [f"{prefix}_{item.partition('=')[0]}".upper() + "=" + item.partition("=")[2]
            for item in summary(assigned)]
