"""docker-compose.cluster.yml, checked without Docker (no engine runs in CI): it parses, has
every service the cluster needs, and its nodes, Kamailio and Prometheus agree with each other
and with trunkline's settings."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.cluster.harness import KAMAILIO_CFG, REPO, kamailio_binary
from tests.conftest import require
from trunkline.config.loading import SETTING_NAMES
from trunkline.gateway.sip.header_values import SipUri

COMPOSE = REPO / "docker-compose.cluster.yml"
NODES = ("node-a", "node-b")


def compose() -> dict[str, Any]:
    document = yaml.safe_load(COMPOSE.read_text())
    assert isinstance(document, dict)
    return document


def environment(service: dict[str, Any]) -> dict[str, str]:
    values = service["environment"]
    assert isinstance(values, dict), "environment as a mapping"
    return {str(k): str(v) for k, v in values.items()}


def mounted(service: dict[str, Any], target: str) -> Path:
    for volume in service["volumes"]:
        source, _, rest = volume.partition(":")
        if rest.split(":")[0] == target:
            return REPO / source
    raise AssertionError(f"nothing mounted at {target}")


def test_the_cluster_has_kamailio_two_nodes_postgres_minio_and_prometheus() -> None:
    services = compose()["services"]
    assert {"kamailio", *NODES, "postgres", "minio", "prometheus"} <= set(services)
    assert (REPO / services["kamailio"]["build"] / "Dockerfile").exists()


def test_every_node_setting_is_a_trunkline_setting() -> None:
    known = {f"TRUNKLINE_{name.upper()}" for name in SETTING_NAMES}
    for name in NODES:
        unknown = set(environment(compose()["services"][name])) - known
        assert not unknown, f"{name}: not trunkline settings: {sorted(unknown)}"


def test_nodes_share_the_database_key_and_blob_store_and_nothing_that_must_differ() -> None:
    services = compose()["services"]
    a, b = (environment(services[name]) for name in NODES)
    for shared in ("DATABASE_URL", "SECRET_KEY", "S3_BUCKET", "S3_ENDPOINT_URL"):
        assert a[f"TRUNKLINE_{shared}"] == b[f"TRUNKLINE_{shared}"], shared
    assert a["TRUNKLINE_DATABASE_URL"].startswith("postgresql://")
    for own in ("HTTP_PORT", "SIP_PORT", "PUBLIC_URL"):
        assert a[f"TRUNKLINE_{own}"] != b[f"TRUNKLINE_{own}"], own
    ranges = [
        range(int(env["TRUNKLINE_RTP_PORT_MIN"]), int(env["TRUNKLINE_RTP_PORT_MAX"]) + 1)
        for env in (a, b)
    ]
    assert not set(ranges[0]) & set(ranges[1]), "the nodes share the host: RTP ranges overlap"
    assert services["node-a"]["volumes"] != services["node-b"]["volumes"], "own data directories"


def test_kamailio_dispatches_to_both_nodes_and_prometheus_scrapes_both() -> None:
    services = compose()["services"]
    kamailio = services["kamailio"]
    assert KAMAILIO_CFG.read_text().startswith("#!KAMAILIO")
    listed = mounted(kamailio, "/etc/kamailio/dispatcher.list").read_text()
    targets = set(re.findall(r"^1 sip:[^:\s]+:(\d+)", listed, re.MULTILINE))
    scraped = yaml.safe_load(
        mounted(services["prometheus"], "/etc/prometheus/prometheus.yml").read_text()
    )
    scrape_ports = {
        target.rsplit(":", 1)[1]
        for job in scraped["scrape_configs"]
        for config in job["static_configs"]
        for target in config["targets"]
    }
    for name in NODES:
        env = environment(services[name])
        assert env["TRUNKLINE_SIP_PORT"] in targets, f"{name} is not in the dispatcher list"
        assert env["TRUNKLINE_HTTP_PORT"] in scrape_ports, f"Prometheus does not scrape {name}"


def test_prometheus_accepts_the_cluster_scrape_configuration() -> None:
    promtool = shutil.which("promtool")
    require(promtool is not None, "promtool (Debian package prometheus)")
    assert promtool is not None
    checked = subprocess.run(
        [promtool, "check", "config", str(REPO / "deploy" / "prometheus-cluster.yml")],
        capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert checked.returncode == 0, checked.stdout + checked.stderr


def test_kamailio_accepts_its_configuration() -> None:
    binary = kamailio_binary()
    require(binary is not None, "kamailio (Debian package kamailio)")
    assert binary is not None
    checked = subprocess.run(
        [binary, "-c", "-f", str(KAMAILIO_CFG),
         "-A", f'DISPATCHER_LIST="{KAMAILIO_CFG.parent / "dispatcher.list"}"'],
        capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert checked.returncode == 0, checked.stdout + checked.stderr


@pytest.mark.parametrize("listing", ["dispatcher.list", "dispatcher.compose.list"])
def test_each_shipped_dispatcher_list_names_nodes_of_set_1(listing: str) -> None:
    # kamailio -c does not read the list; its format is checked here.
    entries = [
        line.split()
        for line in (KAMAILIO_CFG.parent / listing).read_text().splitlines()
        if line.strip() and not line.lstrip().startswith("#")
    ]
    assert len(entries) >= 2
    for setid, destination, flags, priority, *attributes in entries:
        assert setid == "1" and flags.isdigit() and priority.isdigit()
        uri = SipUri.parse(destination)
        assert uri.scheme == "sip" and uri.host and uri.port
        assert all("=" in attribute for attribute in attributes)
