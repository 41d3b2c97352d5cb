"""`swarm stack config` end to end through cli.main.main, and seed 001's AtSea stack."""
from __future__ import annotations

import io
from pathlib import Path

import pytest

from cli.main import main
from tests.compose_helpers import ATSEA, load_texts
from tests.test_cli_startup import NOWHERE, SERVER_CODE, run_fresh, within

BASE = """\
version: "3.8"
services:
  web:
    image: "nginx:${TAG:-1.25}"
    command: nginx -g "daemon off;"
    environment:
      - MODE=${MODE}
      - PLAIN=x
    ports:
      - "8080:80"
    secrets:
      - source: token
        target: api_token
        mode: 0400
    volumes:
      - data:/usr/share/nginx/html:ro
    healthcheck:
      test: ["CMD", "curl", "-f", "http://localhost"]
      interval: 30s
      retries: 3
    stop_grace_period: 90s
    ulimits:
      nofile: {soft: 1024, hard: 2048}
    deploy:
      replicas: 2
      update_config:
        parallelism: 1
        failure_action: rollback
      resources:
        limits: {cpus: "0.5", memory: 64M}
      placement:
        constraints: ["node.role == worker"]
    networks:
      front:
        aliases: [www]
networks:
  front:
    driver: overlay
    driver_opts:
      encrypted: ""
volumes:
  data:
secrets:
  token:
    file: ./token.txt
"""
OVERRIDE = """\
services:
  web:
    deploy:
      replicas: 4
  cache:
    image: redis:7-alpine
    networks: [front]
"""
EXPECTED = """\
version: "3.8"
services:
  cache:
    image: redis:7-alpine
    networks:
      front: null
  web:
    command:
      - nginx
      - -g
      - daemon off;
    deploy:
      replicas: 4
      update_config:
        parallelism: 1
        failure_action: rollback
      resources:
        limits:
          cpus: "0.5"
          memory: "67108864"
      placement:
        constraints:
          - node.role == worker
    environment:
      MODE: ""
      PLAIN: x
    healthcheck:
      test:
        - CMD
        - curl
        - -f
        - http://localhost
      interval: 30s
      retries: 3
    image: nginx:1.25
    networks:
      front:
        aliases:
          - www
    ports:
      - mode: ingress
        target: 80
        published: 8080
        protocol: tcp
    secrets:
      - source: token
        target: api_token
        mode: 256
    stop_grace_period: 1m30s
    ulimits:
      nofile:
        soft: 1024
        hard: 2048
    volumes:
      - type: volume
        source: data
        target: /usr/share/nginx/html
        read_only: true
networks:
  front:
    driver: overlay
    driver_opts:
      encrypted: ""
volumes:
  data: {}
secrets:
  token:
    file: {folder}/token.txt
"""
MODE_WARNING = 'WARN[0000] The "MODE" variable is not set. Defaulting to a blank string.\n'


@pytest.fixture
def stack_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    (tmp_path / "base.yml").write_text(BASE)
    (tmp_path / "override.yml").write_text(OVERRIDE)
    monkeypatch.delenv("TAG", raising=False)
    monkeypatch.delenv("MODE", raising=False)
    return tmp_path


def test_config_prints_the_merged_interpolated_file(stack_dir: Path, capsys) -> None:
    code = main(["stack", "config", "-c", str(stack_dir / "base.yml"),
                 "--compose-file", str(stack_dir / "override.yml")])
    out, err = capsys.readouterr()
    assert code == 0, err
    assert out == EXPECTED.replace("{folder}", str(stack_dir))
    assert err == MODE_WARNING


def test_config_reads_standard_input(stack_dir: Path, capsys,
                                     monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(stack_dir)
    monkeypatch.setenv("MODE", "prod")
    monkeypatch.setattr("sys.stdin", io.StringIO(BASE))
    code = main(["stack", "config", "-c", "-", "-c", "override.yml"])
    out, err = capsys.readouterr()
    assert code == 0, err
    assert out == EXPECTED.replace("{folder}", str(stack_dir)).replace('MODE: ""',
                                                                       "MODE: prod")
    assert err == ""


def test_config_output_loads_back_to_the_same_stack(stack_dir: Path, capsys) -> None:
    main(["stack", "config", "-c", str(stack_dir / "base.yml"), "-c",
          str(stack_dir / "override.yml")])
    first = capsys.readouterr().out
    (stack_dir / "merged.yml").write_text(first)
    assert main(["stack", "config", "-c", str(stack_dir / "merged.yml")]) == 0
    assert capsys.readouterr().out == first


def test_config_refuses_a_bad_file_with_its_path(tmp_path: Path, capsys) -> None:
    (tmp_path / "bad.yml").write_text("services:\n  web:\n    image: a\n    deploy:\n"
                                      "      replicas: lots\n")
    code = main(["stack", "config", "-c", str(tmp_path / "bad.yml")])
    out, err = capsys.readouterr()
    assert code == 1 and out == ""
    assert err == (f"Error: {tmp_path / 'bad.yml'}, services.web.deploy.replicas: must be an "
                   "integer, not a string ('lots')\n")


def test_config_prints_the_ignored_options_warning(tmp_path: Path, capsys) -> None:
    (tmp_path / "c.yml").write_text("services:\n  web:\n    image: a\n    build: .\n")
    assert main(["stack", "config", "-c", str(tmp_path / "c.yml")]) == 0
    out, err = capsys.readouterr()
    assert err == "Ignoring unsupported options: build\n\n"
    assert out == 'version: "3.13"\nservices:\n  web:\n    image: a\n'


def test_config_needs_a_file(capsys) -> None:
    assert main(["stack", "config"]) == 1
    assert capsys.readouterr().err == "Error: specify a Compose file (with --compose-file)\n"


def test_config_names_a_missing_file(tmp_path: Path, capsys) -> None:
    assert main(["stack", "config", "-c", str(tmp_path / "nope.yml")]) == 1
    assert capsys.readouterr().err == (f"Error: cannot read compose file "
                                       f"{tmp_path / 'nope.yml'}: No such file or directory\n")


def test_stack_has_only_the_commands_that_work(capsys) -> None:
    """`stack deploy` exists now (it reads its files first); `stack rollback` too, now that
    RollbackStack exists (tests/test_cli_stack_rollback.py); an unknown verb is refused."""
    assert main(["stack", "deploy", "-c", "x.yml", "app"]) == 1
    assert "cannot read compose file x.yml" in capsys.readouterr().err
    with pytest.raises(SystemExit) as done:
        main(["stack", "rollback", "--help"])
    assert done.value.code == 0
    assert "to its previous definition" in " ".join(capsys.readouterr().out.split())
    with pytest.raises(SystemExit):
        main(["stack", "undo", "app"])
    assert "invalid choice: 'undo'" in capsys.readouterr().err


# ------------------------------------------------------------------ AtSea ----

def test_atsea_stack_loads_and_validates() -> None:
    loaded = load_texts(ATSEA)
    stack = loaded.stack
    assert loaded.warnings == []
    assert stack.version == "3.2"
    assert sorted(stack.services) == ["appserver", "database", "payment_gateway",
                                      "reverse_proxy", "visualizer"]
    assert sorted(stack.networks) == ["back-tier", "front-tier", "payment"]
    assert stack.networks["payment"].driver == "overlay"
    assert stack.networks["payment"].driver_opts == {"encrypted": "yes"}
    assert all(net.driver is None for name, net in stack.networks.items() if name != "payment")
    assert all(secret.external for secret in stack.secrets.values())
    assert len(stack.secrets) == 4

    gateway = stack.services["payment_gateway"]
    assert gateway.secrets is not None
    assert (gateway.secrets[0].source, gateway.secrets[0].target) == ("staging_token",
                                                                      "payment_token")
    assert gateway.deploy.placement is not None
    assert gateway.deploy.placement.constraints == ["node.role == worker",
                                                    "node.labels.pcidss == yes"]
    assert gateway.deploy.update_config is not None
    assert gateway.deploy.update_config.failure_action == "rollback"

    appserver = stack.services["appserver"]
    assert appserver.deploy.replicas == 2
    assert appserver.networks is not None
    assert sorted(appserver.networks) == ["back-tier", "front-tier", "payment"]
    assert appserver.deploy.restart_policy is not None
    assert appserver.deploy.restart_policy.window == 120 * 10**9

    proxy = stack.services["reverse_proxy"]
    assert proxy.ports is not None and [(p.published, p.target) for p in proxy.ports] == [
        (80, 80), (443, 443)]
    visualizer = stack.services["visualizer"]
    assert visualizer.stop_grace_period == 90 * 10**9
    assert visualizer.volumes is not None and visualizer.volumes[0].type == "bind"
    assert stack.services["database"].environment["POSTGRES_DB"] == "atsea"


def test_atsea_through_stack_config(tmp_path: Path, capsys) -> None:
    (tmp_path / "docker-stack.yml").write_text(ATSEA)
    assert main(["stack", "config", "-c", str(tmp_path / "docker-stack.yml")]) == 0
    out, err = capsys.readouterr()
    assert err == ""
    assert out.startswith('version: "3.2"\nservices:\n  appserver:\n')
    assert "      encrypted: \"yes\"\n" in out


def test_stack_config_loads_no_server_code_and_no_grpc(tmp_path: Path) -> None:
    (tmp_path / "s.yml").write_text(ATSEA)
    code, modules, err = run_fresh(["stack", "config", "-c", str(tmp_path / "s.yml")])
    assert code == 0, err
    assert "cli.compose.loader" in modules
    assert within(modules, [*SERVER_CODE, "grpc"]) == []


def test_other_commands_do_not_load_the_compose_loader() -> None:
    _, modules, _ = run_fresh([*NOWHERE, "service", "ls"])
    assert within(modules, ["cli.compose", "cli.commands_stack", "yaml"]) == []
