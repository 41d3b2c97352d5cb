"""Shared helpers of the compose loader tests: loading texts with an in-memory reader."""
from __future__ import annotations

from typing import Mapping, Optional

import pytest

from cli.compose.errors import ComposeError
from cli.compose.loader import Loaded, Source, load

WORKDIR = "/stacks/app"


def load_texts(*texts: str, env: Optional[Mapping[str, str]] = None,
               files: Optional[Mapping[str, str]] = None) -> Loaded:
    """Loads compose texts named a.yml, b.yml, ...; other files come from `files`."""
    stored = dict(files or {})

    def reader(path: str) -> str:
        if path not in stored:
            raise FileNotFoundError(2, "No such file or directory", path)
        return stored[path]

    sources = [Source(name=f"{chr(ord('a') + i)}.yml", text=t) for i, t in enumerate(texts)]
    return load(sources, dict(env or {}), WORKDIR, reader)


def refused(*texts: str, env: Optional[Mapping[str, str]] = None,
            files: Optional[Mapping[str, str]] = None) -> ComposeError:
    with pytest.raises(ComposeError) as info:
        load_texts(*texts, env=env, files=files)
    return info.value


def service(body: str) -> str:
    """A one-service file: `body` is the service's keys, indented by 4."""
    return "services:\n  web:\n    image: nginx:1\n" + body


ATSEA = """\
version: "3.2"

services:
  reverse_proxy:
    image: dockersamples/atseasampleshopapp_reverse_proxy
    ports:
      - "80:80"
      - "443:443"
    secrets:
      - source: revprox_cert
        target: revprox_cert
      - source: revprox_key
        target: revprox_key
    networks:
      - front-tier

  database:
    image: dockersamples/atsea_db
    environment:
      POSTGRES_USER: gordonuser
      POSTGRES_DB_PASSWORD_FILE: /run/secrets/postgres_password
      POSTGRES_DB: atsea
    networks:
      - back-tier
    secrets:
      - postgres_password
    deploy:
      placement:
        constraints:
          - 'node.role == worker'

  appserver:
    image: dockersamples/atsea_app
    networks:
      - front-tier
      - back-tier
      - payment
    deploy:
      replicas: 2
      update_config:
        parallelism: 2
        failure_action: rollback
      placement:
        constraints:
          - 'node.role == worker'
      restart_policy:
        condition: on-failure
        delay: 5s
        max_attempts: 3
        window: 120s
    secrets:
      - postgres_password

  visualizer:
    image: dockersamples/visualizer:stable
    ports:
      - "8001:8080"
    stop_grace_period: 1m30s
    volumes:
      - "/var/run/docker.sock:/var/run/docker.sock"
    deploy:
      update_config:
        failure_action: rollback
      placement:
        constraints:
          - 'node.role == manager'

  payment_gateway:
    image: dockersamples/atseasampleshopapp_payment_gateway
    secrets:
      - source: staging_token
        target: payment_token
    networks:
      - payment
    deploy:
      update_config:
        failure_action: rollback
      placement:
        constraints:
          - 'node.role == worker'
          - 'node.labels.pcidss == yes'

networks:
  front-tier:
  back-tier:
  payment:
    driver: overlay
    driver_opts:
      encrypted: 'yes'

secrets:
  postgres_password:
    external: true
  staging_token:
    external: true
  revprox_key:
    external: true
  revprox_cert:
    external: true
"""
