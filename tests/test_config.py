from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from trunkline.config import (
    ConfigError,
    LogFormat,
    Settings,
    TranscriptionEngine,
    load_settings,
    setting_values,
    settings_from,
)


def test_defaults_match_operator_contract() -> None:
    settings = load_settings(environ={})
    assert settings.data_dir == Path("./trunkline-data")
    assert (settings.api.host, settings.api.port) == ("0.0.0.0", 8080)
    assert (settings.sip.host, settings.sip.port) == ("0.0.0.0", 5060)
    assert (settings.media.rtp_port_min, settings.media.rtp_port_max) == (10000, 20000)
    assert settings.api.max_numbers_per_org == 3
    assert settings.database_url.startswith("sqlite:///")


def test_precedence_toml_then_environment_then_flags(tmp_path: Path) -> None:
    config = tmp_path / "trunkline.toml"
    config.write_text('http_port = 9000\nsip_port = 5070\nlog_format = "json"\n')
    settings = load_settings(
        config_file=config,
        environ={"TRUNKLINE_SIP_PORT": "5080", "TRUNKLINE_ALLOW_INSECURE_URLS": "true"},
        overrides={"sip_port": 5090, "host": None},
    )
    assert settings.api.port == 9000
    assert settings.sip.port == 5090
    assert settings.process.log_format is LogFormat.JSON
    assert settings.allow_insecure_urls is True
    assert settings.api.host == "0.0.0.0"


@pytest.mark.parametrize(
    ("environ", "message"),
    [
        ({"TRUNKLINE_HTTP_PORT": "70000"}, "TRUNKLINE_HTTP_PORT"),
        ({"TRUNKLINE_RTP_PORT_MIN": "30000"}, "TRUNKLINE_RTP_PORT_MIN"),
        ({"TRUNKLINE_LOG_LEVEL": "loud"}, "TRUNKLINE_LOG_LEVEL"),
        ({"TRUNKLINE_ALLOW_PRIVATE_TARGETS": "perhaps"}, "TRUNKLINE_ALLOW_PRIVATE_TARGETS"),
        ({"TRUNKLINE_DATABASE_URL": "mysql://x"}, "TRUNKLINE_DATABASE_URL"),
        ({"TRUNKLINE_TRANSCRIPTION": "vosk"}, "TRUNKLINE_TRANSCRIPTION must be one of"),
        ({"TRUNKLINE_SIP_TRUSTED_SOURCES": "10.0.0.0/33"}, "TRUNKLINE_SIP_TRUSTED_SOURCES"),
        ({"TRUNKLINE_WORKER_OF": "2", "TRUNKLINE_WORKER_SLOT": "2"}, "TRUNKLINE_WORKER_SLOT"),
    ],
)
def test_bad_values_name_the_setting(environ: dict[str, str], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        load_settings(environ=environ)


def test_unknown_toml_key_is_refused(tmp_path: Path) -> None:
    config = tmp_path / "trunkline.toml"
    config.write_text("htp_port = 1\n")
    with pytest.raises(ConfigError, match="htp_port"):
        load_settings(config_file=config, environ={})


def test_configuration_doc_lists_every_setting() -> None:
    from trunkline.config import ENV_PREFIX, SETTING_NAMES

    doc = (Path(__file__).parent.parent / "docs" / "configuration.md").read_text()
    missing = [n for n in SETTING_NAMES if f"`{ENV_PREFIX}{n.upper()}`" not in doc]
    assert missing == []


def test_several_workers_need_fixed_ports() -> None:
    assert settings_from({"workers": 2}).process.workers == 2
    with pytest.raises(ConfigError, match="needs fixed HTTP and SIP ports"):
        settings_from({"workers": 2, "http_port": 0})


def test_settings_are_frozen_and_parsed_once() -> None:
    settings = load_settings(
        environ={
            "TRUNKLINE_SIP_TRUSTED_SOURCES": "10.0.0.0/8, 192.0.2.7",
            "TRUNKLINE_TRANSCRIPTION": "off",
        }
    )
    assert [str(n) for n in settings.sip.trusted_sources] == ["10.0.0.0/8", "192.0.2.7/32"]
    assert settings.speech.transcription is TranscriptionEngine.OFF
    with pytest.raises(AttributeError):
        settings.sip.port = 1  # type: ignore[misc]
    with pytest.raises(AttributeError):
        settings.data_dir = Path("/elsewhere")  # type: ignore[misc]


def test_every_setting_round_trips_through_its_environment_name() -> None:
    values = setting_values(Settings())
    assert len(values) == len(set(values)) == 68
    assert settings_from(values) == Settings()
    with pytest.raises(ConfigError, match="unknown settings sip_prot"):
        settings_from({"sip_prot": 1})


@pytest.mark.parametrize(
    ("values", "message"),
    [
        ({"sip_codecs": "PCMU,OPUS"}, "TRUNKLINE_SIP_CODECS"),
        ({"sip_codecs": "PCMU,pcmu"}, "TRUNKLINE_SIP_CODECS"),
        ({"sip_codecs": " "}, "TRUNKLINE_SIP_CODECS"),
        ({"sip_register_expires_seconds": 0}, "TRUNKLINE_SIP_REGISTER_EXPIRES_SECONDS"),
        (
            {"sip_register_retry_min_seconds": 60, "sip_register_retry_max_seconds": 30},
            "TRUNKLINE_SIP_REGISTER_RETRY_MAX_SECONDS",
        ),
    ],
)
def test_codec_and_registration_settings_are_checked(values: dict[str, Any], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        settings_from(values)


def test_codec_order_reads_names_in_order() -> None:
    assert settings_from({"sip_codecs": "g722, pcma"}).sip.codec_order == ("G722", "PCMA")
