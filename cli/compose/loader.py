"""Loading compose files into one validated `model.Stack`.

Owns the order of a load, Docker's: for each file, parse the YAML, check the
version (missing, "3" or "3.0" to "3.13"; every file that gives one the same), refuse the
keys Docker refuses, drop (with Docker's warnings) the keys a swarm ignores,
drop `x-` extension fields, substitute variables, then validate each section;
then merge the files in order and check what only the whole stack can tell
(every service has an image; every network, volume, secret and config a
service names is declared; no reservation above its limit). The caller reads the compose files and passes
their text; other files (env files) are read through `reader`. Every
independent problem is collected and all are raised in one ComposeError; only
a YAML error, a bad version or a top level that is not a mapping stops at once.
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any, Callable, Mapping, Optional, Sequence, TypeVar

from cli.compose import values as v
from cli.compose.errors import Collector, ComposeError, Warnings, join_path
from cli.compose.interpolate import interpolate
from cli.compose.merge import merge_stacks
from cli.compose.model import FileObject, Network, Service, Stack, Volume
from cli.compose.service import (DEPENDS_ON_WARNING, DEPRECATED, FORBIDDEN, NOT_REPRESENTABLE,
                                 UNSUPPORTED, read_service)
from cli.compose.toplevel import read_file_object, read_network, read_section, read_volume
from cli.compose.yamlload import parse_yaml
from proto import imageref

T = TypeVar("T")
Reader = Callable[[str], str]
LATEST = "3.13"
VERSIONS = tuple(f"3.{minor}" for minor in range(14))
TOP_KEYS = ("version", "services", "networks", "volumes", "secrets", "configs")
_SECTIONS = ("services", "networks", "volumes", "secrets", "configs")
_NAME = re.compile(r"^[a-zA-Z0-9._-]+$")
@dataclass
class Source:
    """One compose file: the name it is shown by (a path, or "-") and its text."""
    name: str
    text: str


@dataclass
class Loaded:
    stack: Stack
    warnings: list[str] = field(default_factory=list)


def load(sources: Sequence[Source], env: Mapping[str, str], workdir: str,
         reader: Reader, warnings: Optional[Warnings] = None) -> Loaded:
    """The merged stack of `sources`, or ComposeError listing every problem found. `workdir`
    resolves relative paths; the warnings go to `warnings` (also when the load fails) and
    into the result."""
    if not sources:
        raise ComposeError("specify a Compose file (with --compose-file)")
    warnings = Warnings() if warnings is None else warnings
    files = [source.name for source in sources]
    errors = Collector()
    unknown: set[str] = set()
    ignored: set[str] = set()
    deprecated: dict[str, str] = {}
    stacks: list[Stack] = []
    origin: dict[str, str] = {}
    version: Optional[str] = None
    for source in sources:
        found = Collector()
        try:
            stack = _load_one(source, env, workdir, reader, warnings, ignored, deprecated,
                              found, unknown)
        except ComposeError as exc:     # nothing more of this load can be checked
            errors.add(exc)
            raise ComposeError.several([error.located(source.name) for error in
                                        found.errors + errors.errors], files) from None
        for error in found.errors:
            errors.add(error.located(source.name))
        if stack.version:
            if version is not None and stack.version != version:
                errors.add(ComposeError(f"version mismatched between two composefiles : "
                                        f"{version} and {stack.version}", source.name,
                                        "version"))
            else:
                version = stack.version
        origin.update({name: source.name for name in stack.services})
        stacks.append(stack)
    if ignored:
        warnings.add(f"Ignoring unsupported options: {', '.join(sorted(ignored))}")
    if deprecated:
        described = "\n\n".join(sorted(f"{k}: {d}" for k, d in deprecated.items()))
        warnings.add(f"Ignoring deprecated options:\n\n{described}")
    stack = merge_stacks(stacks)
    stack.version = version or LATEST
    problems = _check_references(stack, origin, unknown)
    for problem in [p for p in problems if not errors.failed_at(p.path)]:
        errors.add(problem)     # (not a consequence of a problem found in a section)
    try:
        errors.check(files)
    except ComposeError as exc:
        exc.partial = stack     # what could be read, for checks against the cluster
        raise
    return Loaded(stack=stack, warnings=list(warnings.items))


def _version(document: Mapping[str, Any]) -> str:
    """The file's version, "" when it gives none (it then takes the other files' version,
    the newest 3.x when none gives one; Docker refuses a file without version beside a
    file with an older one)."""
    if "version" not in document:
        return ""
    raw = document["version"]
    if isinstance(raw, bool) or not isinstance(raw, (str, int, float)):
        raise v.wrong(raw, "version", 'a string such as "3.8"')
    text = str(raw)
    if text == "3":
        return LATEST
    if text not in VERSIONS:
        raise ComposeError(f'unsupported Compose file version: {text}; Shoal reads the Compose '
                           'file format 3 (version "3" or "3.0" to "3.13", or no version)',
                           path="version")
    return text


def _load_one(source: Source, env: Mapping[str, str], workdir: str, reader: Reader,
              warnings: Warnings, ignored: set[str], deprecated: dict[str, str],
              errors: Collector, unknown: set[str]) -> Stack:
    """One file's stack. A problem that leaves nothing to check (YAML, version) is raised;
    the others are kept in `errors` and the rest of the file is still checked (a section
    that is not a mapping is named in `unknown`: the names it declares are unknown)."""
    document = parse_yaml(source.text, source.name)
    version = _version(document)
    document = v.mapping(document, "", TOP_KEYS, errors=errors)
    sections: dict[str, dict[str, Any]] = {}
    for key in _SECTIONS:
        raw = document.get(key)
        sections[key] = {}
        try:
            sections[key] = {} if raw is None else v.mapping(raw, key, any_key=True)
        except ComposeError as exc:
            errors.add(exc)
            unknown.add(key)
    services = sections["services"]
    _refuse_forbidden(services, errors)
    for name, raw in list(services.items()):
        if not isinstance(raw, dict):
            continue
        kept = {}
        for key, item in raw.items():
            if key.startswith("x-") or key in FORBIDDEN:
                continue
            if key in UNSUPPORTED:
                ignored.add(key)
            elif key in DEPRECATED:
                deprecated[key] = DEPRECATED[key]
            elif key in NOT_REPRESENTABLE:
                errors.add(v.not_supported(key, f"services.{name}.{key}",
                                           NOT_REPRESENTABLE[key]))
            else:
                if key == "depends_on":
                    warnings.add(DEPENDS_ON_WARNING)
                kept[key] = item
        services[name] = kept
    for key in ("networks", "volumes", "secrets", "configs"):
        sections[key] = {name: _drop_extensions(item) for name, item in sections[key].items()}
    for key in _SECTIONS:
        for name in sections[key]:
            if not _NAME.match(name):
                errors.add(ComposeError(f'invalid name "{name}": use letters, digits, ".", '
                                        '"_" and "-"', path=join_path(key, name)))
    stack = Stack(version=version, files=[source.name])
    for name, raw in services.items():
        path = join_path("services", name)
        with errors:
            clean = _interpolate_service(raw, path, env, warnings, errors)
            stack.services[name] = read_service(name, {} if clean is None else clean, path,
                                                workdir, dict(env), reader, errors)

    def substituted(read: Callable[[Any, str], T]) -> Callable[[Any, str], T]:
        return lambda raw, path: read(interpolate(raw, env, warnings, path), path)

    stack.networks = read_section(
        sections["networks"], "networks",
        substituted(lambda x, p: read_network(x, p, warnings)), errors, Network)
    stack.volumes = read_section(
        sections["volumes"], "volumes",
        substituted(lambda x, p: read_volume(x, p, warnings)), errors, Volume)
    stack.secrets = read_section(
        sections["secrets"], "secrets",
        substituted(lambda x, p: read_file_object(x, p, warnings, "secret", workdir)),
        errors, FileObject)
    stack.configs = read_section(
        sections["configs"], "configs",
        substituted(lambda x, p: read_file_object(x, p, warnings, "config", workdir)),
        errors, FileObject)
    return stack


def _interpolate_service(raw: Any, path: str, env: Mapping[str, str], warnings: Warnings,
                         errors: Collector) -> Any:
    """A service with its variables substituted, key by key: a key whose substitution
    fails is a problem kept in `errors` and is left out."""
    if not isinstance(raw, dict):
        return interpolate(raw, env, warnings, path)
    clean = {}
    for key, item in raw.items():
        with errors:
            clean[key] = interpolate(item, env, warnings, join_path(path, key))
    return clean


def _drop_extensions(item: Any) -> Any:
    if isinstance(item, dict):
        return {k: x for k, x in item.items() if not k.startswith("x-") or k == "x-cluster-spec"}
    return item


def _refuse_forbidden(services: Mapping[str, Any], errors: Collector) -> None:
    """Docker's one message for the keys it refuses in any service (kept in `errors`)."""
    found: dict[str, str] = {}
    first = ""
    for name, raw in services.items():
        if isinstance(raw, dict):
            for key in raw:
                if key in FORBIDDEN:
                    found[key] = FORBIDDEN[key]
                    first = first or f"services.{name}.{key}"
    if found:
        listed = "\n\n".join(sorted(f"{k}: {d}" for k, d in found.items()))
        errors.add(ComposeError(f"compose file contains unsupported options:\n\n{listed}\n",
                                path=first))


def _valid_image(image: str) -> bool:
    """Whether `image` is a reference Docker accepts (`proto.imageref`'s rules)."""
    try:
        imageref.parse_reference(image)
    except ValueError:
        return False
    return True


def _check_references(stack: Stack, origin: Mapping[str, str],
                      unknown: set[str]) -> list[ComposeError]:
    """What one file cannot tell: images given, and every name a service uses declared
    (unless a section that would declare it could not be read: `unknown`)."""
    problems = []
    for name, svc in sorted(stack.services.items()):
        path = join_path("services", name)
        file = origin.get(name, "")
        if not svc.image:
            problems.append(ComposeError(f"invalid image reference for service {name}: no "
                                         "image specified", file, join_path(path, "image")))
        elif not _valid_image(svc.image):
            problems.append(ComposeError(
                f'invalid image reference for service {name}: "{svc.image}" is not a valid '
                "image name such as redis:7 or registry:5000/team/app@sha256:...", file,
                join_path(path, "image")))
        if svc.deploy.replicas is not None and svc.deploy.mode in ("global", "global-job"):
            problems.append(ComposeError("replicas can only be used with replicated or "
                                         "replicated-job mode", file,
                                         join_path(path, "deploy.replicas")))
        problems.extend(_check_reservations(svc, file, join_path(path, "deploy.resources")))
        for network in svc.networks or {}:
            if network != "default" and network not in stack.networks \
                    and "networks" not in unknown:
                problems.append(ComposeError(f'service "{name}" references network '
                                             f'"{network}", which is not declared', file,
                                             join_path(path, "networks")))
        for kind in ("secrets", "configs"):
            declared = getattr(stack, kind)
            for index, ref in enumerate(getattr(svc, kind) or ()):
                if ref.source not in declared and kind not in unknown:
                    problems.append(ComposeError(
                        f'undefined {kind[:-1]} "{ref.source}": declare it in the top-level '
                        f"{kind}", file, join_path(join_path(path, kind), index)))
        for index, mount in enumerate(svc.volumes or ()):
            if mount.type == "volume" and mount.source and mount.source not in stack.volumes \
                    and "volumes" not in unknown:
                problems.append(ComposeError(
                    f'undefined volume "{mount.source}": declare it in the top-level volumes',
                    file, join_path(join_path(path, "volumes"), index)))
    return problems


def _check_reservations(svc: Service, file: str, path: str) -> list[ComposeError]:
    """A reservation above its limit (the manager refuses it; the files may give the two
    in different files)."""
    limits, reserved = svc.deploy.limits, svc.deploy.reservations
    if limits is None or reserved is None:
        return []
    problems = []
    if limits.memory and reserved.memory and reserved.memory > limits.memory:
        problems.append(ComposeError(
            f"the memory reservation ({reserved.memory} bytes) is larger than the memory "
            f"limit ({limits.memory} bytes): reserve at most the limit", file,
            join_path(path, "reservations.memory")))
    if limits.nano_cpus and reserved.nano_cpus and reserved.nano_cpus > limits.nano_cpus:
        problems.append(ComposeError(
            f"the CPU reservation ({reserved.cpus}) is larger than the CPU limit "
            f"({limits.cpus}): reserve at most the limit", file,
            join_path(path, "reservations.cpus")))
    return problems
