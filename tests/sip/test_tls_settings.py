"""TLS settings are checked when loaded: one clear line naming the setting, before start-up."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.gateway.tls_certs import Authority
from trunkline.config import ConfigError, SrtpPolicy, settings_from


def test_a_usable_certificate_key_and_ca_load(tmp_path: Path) -> None:
    authority = Authority(tmp_path, "ca")
    issued = authority.issue("trunkline")
    settings = settings_from(
        {
            "data_dir": tmp_path / "data",
            "sip_tls_cert": str(issued.cert),
            "sip_tls_key": str(issued.key),
            "sip_tls_ca": str(authority.ca_file),
            "sip_srtp": "mandatory",
        }
    )
    assert settings.sip.srtp is SrtpPolicy.MANDATORY and settings.sip.tls_port == 5061


@pytest.mark.parametrize(
    ("values", "message"),
    [
        ({"sip_tls_cert": "/nowhere.pem"}, "go together"),
        ({"sip_tls_cert": "/nowhere.pem", "sip_tls_key": "/nowhere.key"}, "TLS_CERT/KEY cannot"),
        ({"sip_tls_ca": "/nowhere-ca.pem"}, "TRUNKLINE_SIP_TLS_CA cannot be loaded"),
        ({"sip_srtp": "sometimes"}, "SIP_SRTP"),
        ({"sip_max_connections": 0}, "SIP_MAX_CONNECTIONS"),
    ],
)
def test_unusable_tls_settings_are_refused(
    tmp_path: Path, values: dict[str, object], message: str
) -> None:
    with pytest.raises(ConfigError, match=message):
        settings_from({"data_dir": tmp_path / "data", **values})


def test_a_key_that_does_not_match_its_certificate_is_refused(tmp_path: Path) -> None:
    authority = Authority(tmp_path, "ca")
    one, other = authority.issue("one"), authority.issue("other")
    with pytest.raises(ConfigError, match="cannot be loaded"):
        settings_from(
            {
                "data_dir": tmp_path / "data",
                "sip_tls_cert": str(one.cert),
                "sip_tls_key": str(other.key),
            }
        )
