"""Container spec checks of the Control API that the worker's behaviour dictates: a
health check test the worker would run, a stop signal it can send, DNS settings it can
write. They were stored, then ignored (no check ran), fatal to every task or written
into the task's resolv.conf as they came (found while auditing what the
Control API fuzz tests, tests/test_fuzz_controlapi.py, saw accepted)."""
from __future__ import annotations

import pytest

from manager.controlapi import services
from manager.controlapi.common import Code
from tests.test_controlapi_rules import create, refused, spec


@pytest.mark.parametrize("test", [["BOGUS", "true"], ["CMD"], ["CMD-SHELL"], [""]])
def test_a_health_check_test_the_worker_would_not_run_is_refused(test: list[str]) -> None:
    """These were stored, then the worker ran no check at all (worker/health.py)."""
    s = spec()
    s.task.container.healthcheck.test.extend(test)
    refused(Code.INVALID_ARGUMENT, f"invalid health check test {test!r}: expected [\"CMD\", "
            "command, arg...], [\"CMD-SHELL\", command] or [\"NONE\"] (--health-cmd, "
            "--no-healthcheck)", lambda: services.new_service(create(s), services.Refs()))
    for good in (["NONE"], ["CMD", "true"], ["CMD-SHELL", "exit 0"], []):
        s.task.container.healthcheck.ClearField("test")
        s.task.container.healthcheck.test.extend(good)
        services.new_service(create(s), services.Refs())


@pytest.mark.parametrize("name", ["bogus", "SIGBOGUS", "0", "65", " "])
def test_a_stop_signal_the_worker_cannot_send_is_refused(name: str) -> None:
    """It was stored, then every task failed at container creation ("unknown signal")."""
    s = spec()
    s.task.container.stop_signal = name
    refused(Code.INVALID_ARGUMENT, f'invalid stop signal "{name}": expected a signal name '
            "such as SIGTERM or SIGQUIT, or a number from 1 to 64",
            lambda: services.new_service(create(s), services.Refs()))
    for good in ("SIGQUIT", "term", "9", "SIGRTMAX", ""):
        s.task.container.stop_signal = good
        services.new_service(create(s), services.Refs())


@pytest.mark.parametrize("field,value,message", [
    ("dns_nameservers", "bogus", 'invalid DNS server "bogus": expected an IP address such '
     "as 10.0.0.2 (--dns)"),
    ("dns_nameservers", "1.1.1.1\noptions ndots:9", 'invalid DNS server "1.1.1.1\noptions '
     'ndots:9": expected an IP address such as 10.0.0.2 (--dns)'),
    ("dns_search", "a b", 'invalid DNS search domain "a b": it must not be empty nor contain '
     "white space (--dns-search)"),
    ("dns_options", "", 'invalid DNS option "": it must not be empty nor contain white space '
     "(--dns-option)"),
])
def test_dns_settings_a_resolv_conf_cannot_hold_are_refused(field: str, value: str,
                                                            message: str) -> None:
    s = spec()
    getattr(s.task.container, field).append(value)
    refused(Code.INVALID_ARGUMENT, message,
            lambda: services.new_service(create(s), services.Refs()))
    s = spec()
    s.task.container.dns_nameservers.extend(["10.0.0.2", "::1"])
    s.task.container.dns_search.append("example.com")
    s.task.container.dns_options.append("ndots:2")
    services.new_service(create(s), services.Refs())
