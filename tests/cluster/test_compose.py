"""docker-compose.cluster.yml, checked without Docker (no engine runs in CI): it parses, has
every service the cluster needs, and its nodes, Kamailio and Prometheus agree with each other
and with trunkline's settings."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import yaml

from tests.cluster.harness import KAMAILIO_CFG, REPO
from trunkline.config.loading import SETTING_NAMES

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
