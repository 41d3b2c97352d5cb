"""`--external-ca protocol=cfssl,url=URL[,cacert=FILE]`: the flag of `swarm init`,
`swarm update` and `swarm ca`, parsed as Docker parses it.

Owns turning one flag value (comma-separated key=value pairs) into the spec's
`ExternalCA`: `protocol` (only cfssl), `url` (an https URL: the managers post
cfssl sign requests there), `cacert` (a PEM file: the root that CA signs for,
read here). Docker passes any other pair to the CA as an option; Shoal's
managers would use none of them, so any other key is refused (a typo such as
`cacrt=` would otherwise be silently dropped). Refusals are `UsageError`s with
Docker's wording where Docker has one.
"""
from __future__ import annotations

import csv
from typing import Iterable, Optional
from urllib.parse import urlsplit

from cli.parsing import UsageError
from proto import objects_pb2 as pb

PROTOCOLS = ("cfssl",)
KEYS = ("protocol", "url", "cacert")   # the pairs a value may hold


def check_url(url: str) -> str:
    """`url` when the managers can post to it (https with a host); UsageError otherwise."""
    parts = urlsplit(url)
    if parts.scheme != "https" or not parts.hostname:
        raise UsageError(f"invalid external CA URL {url!r}: an https URL is required "
                         "(for example https://cfssl.example.com:8888/api/v1/cfssl/sign)")
    return url


def parse_external_ca(text: str) -> pb.ExternalCA:
    """One `--external-ca` value as the spec's ExternalCA (the cacert file read)."""
    try:
        fields = next(csv.reader([text]), [])
    except csv.Error as exc:
        raise UsageError(f"invalid --external-ca {text!r}: {exc}") from None
    out = pb.ExternalCA()
    for field in fields:
        key, sep, value = field.partition("=")
        if not sep:
            raise UsageError(f"invalid field '{field}' must be a key=value pair")
        key = key.strip().lower()
        if key == "protocol":
            if value.lower() not in PROTOCOLS:
                raise UsageError(f"unrecognized external CA protocol {value}: Shoal signs "
                                 "through cfssl (protocol=cfssl)")
            out.protocol = value.lower()
        elif key == "url":
            out.url = check_url(value)
        elif key == "cacert":
            try:
                with open(value, "rb") as handle:
                    out.ca_cert = handle.read()
            except OSError as exc:
                raise UsageError(f"unable to read CA cert for external CA: {value}: "
                                 f"{exc.strerror or exc}") from None
            if b"-----BEGIN CERTIFICATE-----" not in out.ca_cert:
                raise UsageError(f"unable to read CA cert for external CA: {value} holds no "
                                 "PEM certificate")
        else:
            raise UsageError(f"invalid --external-ca field '{key}': the accepted keys are "
                             f"{', '.join(KEYS)}")
    if not out.protocol:
        raise UsageError("the external-ca option needs a protocol= parameter")
    if not out.url:
        raise UsageError("the external-ca option needs a url= parameter")
    return out


def parse_external_cas(values: Optional[Iterable[str]]) -> Optional[list[pb.ExternalCA]]:
    """Every `--external-ca` given (None when the flag was not used)."""
    if values is None:
        return None
    return [parse_external_ca(v) for v in values]


def as_dict(ca: pb.ExternalCA) -> dict[str, object]:
    """An ExternalCA as JSON-ready data (node.json keeps `swarm init`'s until the cluster exists)."""
    return {"protocol": ca.protocol, "url": ca.url, "options": dict(ca.options),
            "ca_cert": ca.ca_cert.decode()}
