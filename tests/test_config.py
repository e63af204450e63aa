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


def test_defaults_match_operator_contract(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("XDG_DATA_HOME", "/srv/xdg")
    settings = load_settings(environ={})
    assert settings.data_dir == Path("/srv/xdg/trunkline")
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
        ({"TRUNKLINE_SECRET_KEY": "too-short"}, "TRUNKLINE_SECRET_KEY must be at least 32"),
        ({"TRUNKLINE_SECRET_KEY": "x" * 31 + " y"}, "without spaces"),
        ({"TRUNKLINE_SECRET_KEY": "é" * 40}, "printable ASCII"),
        ({"TRUNKLINE_OUTBOUND_CALLS_PER_DAY": "0"}, "TRUNKLINE_OUTBOUND_CALLS_PER_DAY"),
        ({"TRUNKLINE_OUTBOUND_MINUTES_PER_DAY": "-1"}, "TRUNKLINE_OUTBOUND_MINUTES_PER_DAY"),
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
    names = (*SETTING_NAMES, "config")  # TRUNKLINE_CONFIG names the file: not a setting
    missing = [n for n in names if f"`{ENV_PREFIX}{n.upper()}`" not in doc]
    assert missing == []


def test_several_workers_need_fixed_ports() -> None:
    assert settings_from({"workers": 2}).process.workers == 2
    with pytest.raises(ConfigError, match="needs fixed HTTP and SIP ports"):
        settings_from({"workers": 2, "http_port": 0})


def test_the_shared_rtp_port_is_even_and_apart_from_the_other_ports() -> None:
    media = settings_from({"rtp_shared_port": 30000, "workers": 2, "http_port": 8080}).media
    assert media.rtp_shared_port == 30000
    for values, message in (
        ({"rtp_shared_port": 30001}, "must be an even port"),
        ({"rtp_shared_port": 1000}, "must be an even port"),
        ({"rtp_shared_port": 65534, "workers": 2, "http_port": 8080}, "room for 2 worker"),
        ({"rtp_shared_port": 20000}, "overlaps the RTP port range"),  # 10000-20000
        ({"rtp_shared_port": 9998, "rtp_port_min": 9999}, "overlaps the RTP port range"),
        ({"rtp_shared_port": 5060}, "overlaps a SIP port"),
    ):
        with pytest.raises(ConfigError, match=message):
            settings_from(values)
    assert settings_from({"rtp_shared_port": 20002}).media.rtp_shared_port == 20002
    assert settings_from({"rtp_shared_port": 20002}).shared_rtp_port == 20002
    second = {"rtp_shared_port": 30000, "worker_of": 2, "worker_slot": 1, "http_port": 8080}
    assert settings_from(second).shared_rtp_port == 30002  # worker N: + 2N
    assert settings_from({}).shared_rtp_port == 0


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
    assert len(values) == len(set(values)) == 94
    assert settings_from(values) == Settings()
    with pytest.raises(ConfigError, match="unknown settings sip_prot"):
        settings_from({"sip_prot": 1})


def test_secret_key_of_the_documented_format_is_accepted() -> None:
    key = "0123456789abcdef" * 4  # what `openssl rand -hex 32` prints
    assert load_settings(environ={"TRUNKLINE_SECRET_KEY": key}).secret_key == key
    assert load_settings(environ={"TRUNKLINE_SECRET_KEY": "!~" * 16}).secret_key == "!~" * 16


def test_data_dir_default_is_xdg_data_home_never_the_current_directory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "xdg"))
    assert load_settings(environ={}).data_dir == tmp_path / "xdg" / "trunkline"
    monkeypatch.setenv("XDG_DATA_HOME", "relative/ignored")  # the XDG spec: must be absolute
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    expected = tmp_path / "home" / ".local" / "share" / "trunkline"
    assert load_settings(environ={}).data_dir == expected
    monkeypatch.delenv("XDG_DATA_HOME")
    assert load_settings(environ={}).data_dir == expected
    config = tmp_path / "trunkline.toml"
    config.write_text('data_dir = "/srv/from-file"\n')
    from_file = load_settings(config_file=config, environ={})
    assert from_file.data_dir == Path("/srv/from-file")
    from_env = load_settings(config_file=config, environ={"TRUNKLINE_DATA_DIR": "/srv/env"})
    assert from_env.data_dir == Path("/srv/env")
    flag = load_settings(
        config_file=config,
        environ={"TRUNKLINE_DATA_DIR": "/srv/env"},
        overrides={"data_dir": Path("/srv/flag")},
    )
    assert flag.data_dir == Path("/srv/flag")


def test_outbound_limits_reach_place_call_budget() -> None:
    from trunkline.control_api.usage import CallLimits

    settings = settings_from({"outbound_calls_per_day": 5, "outbound_minutes_per_day": 7})
    limits = CallLimits.from_settings(settings)
    assert (limits.calls_per_window, limits.minutes_per_window) == (5, 7)
    assert CallLimits.from_settings(Settings()) == CallLimits()  # the defaults agree


@pytest.mark.parametrize(
    ("values", "message"),
    [
        ({"jitter_max_ms": 50}, "TRUNKLINE_JITTER_MAX_MS must be a multiple of 20"),
        ({"jitter_min_ms": -20}, "TRUNKLINE_JITTER_MIN_MS must be a multiple of 20"),
        ({"jitter_max_ms": 1020}, "from 0 to 1000"),
        ({"jitter_min_ms": 80, "jitter_max_ms": 60}, "must not exceed TRUNKLINE_JITTER_MAX_MS"),
    ],
)
def test_jitter_buffer_depths_are_checked(values: dict[str, int], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        settings_from(values)


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


def test_jitter_buffer_can_be_turned_off() -> None:
    media = settings_from({"jitter_min_ms": 0, "jitter_max_ms": 0}).media
    assert (media.jitter_min_ms, media.jitter_max_ms) == (0, 0)


def test_codec_order_reads_names_in_order() -> None:
    assert settings_from({"sip_codecs": "g722, pcma"}).sip.codec_order == ("G722", "PCMA")
