"""One typed settings object, loaded from defaults, a TOML file, the environment and flags.

Precedence, lowest to highest: built-in defaults < TOML file (``--config``) <
``TRUNKLINE_*`` environment variables < command-line flags. The environment and
TOML names are part of the operator contract (docs/configuration.md): keep them.

In the TOML file a setting is written with its environment name lower-cased and
without the ``TRUNKLINE_`` prefix (``http_port = 8080``), at top level.
"""

from __future__ import annotations

import base64
import binascii
import dataclasses
import ipaddress
import os
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ENV_PREFIX = "TRUNKLINE_"
LOG_LEVELS = ("debug", "info", "warning", "error", "critical")
LOG_FORMATS = ("text", "json")
TRANSCRIPTION_ENGINES = ("whisper", "http", "off")
SPEECH_ENGINES = ("piper", "espeak", "off")


class ConfigError(ValueError):
    """A setting has a value trunkline cannot use; the message names the setting."""


@dataclass(slots=True)
class Settings:
    """Every operator-facing setting. Field name = env name minus prefix, lower-cased."""

    data_dir: Path = field(default_factory=lambda: Path("./trunkline-data"))
    host: str = "0.0.0.0"
    http_port: int = 8080
    public_url: str = ""
    sip_host: str = "0.0.0.0"
    sip_port: int = 5060
    rtp_port_min: int = 10000
    rtp_port_max: int = 20000
    sip_trusted_sources: str = "127.0.0.0/8,::1/128"
    sip_trunk_address: str = ""
    sip_trunk_username: str = ""
    sip_trunk_password: str = ""
    sip_ring_timeout_seconds: float = 60.0
    sip_unauthenticated_rate: float = 10.0
    sip_nonce_lifetime_seconds: float = 30.0
    agent_reconnect_grace_seconds: float = 5.0
    playout_max_seconds: float = 60.0
    max_call_seconds: float = 14_400.0
    max_calls_per_org: int = 0
    api_rate_per_second: float = 50.0
    api_rate_burst: int = 100
    api_unauthenticated_rate_per_second: float = 1.0
    api_unauthenticated_burst: int = 20
    api_unauthenticated_max_addresses: int = 10_000
    media_address: str = ""
    database_url: str = ""
    database_queue_per_org: int = 256
    database_sheddable_per_org: int = 64
    database_stall_seconds: float = 5.0
    rejected_call_record_rate: float = 1.0
    allow_insecure_urls: bool = False
    allow_private_targets: bool = False
    max_numbers_per_org: int = 3
    log_level: str = "info"
    log_format: str = "text"
    secret_key: str = ""
    twilio_auth_token: str = ""
    twilio_stream_token_seconds: float = 60.0
    telnyx_api_key: str = ""
    telnyx_api_url: str = "https://api.telnyx.com"
    telnyx_public_key: str = ""
    telnyx_stream_token: str = ""
    workers: int = 1
    worker_of: int = 0
    worker_slot: int = 0
    number_pool: str = "+15550100000-+15550100999"
    toll_free_pool: str = "+18885550000-+18885550999"
    shutdown_timeout_seconds: float = 30.0
    s3_bucket: str = ""
    s3_endpoint_url: str = ""
    s3_region: str = "us-east-1"
    s3_access_key_id: str = ""
    s3_secret_access_key: str = ""
    transcription: str = "whisper"
    transcription_workers: int = 1
    transcription_threads: int = 1
    transcription_queue: int = 256
    transcription_api_url: str = "https://api.openai.com"
    transcription_api_key: str = ""
    transcription_api_model: str = "whisper-1"
    text_to_speech: str = "piper"
    speech_workers: int = 1
    voicemail_max_seconds: float = 120.0

    @property
    def effective_public_url(self) -> str:
        if self.public_url:
            return self.public_url.rstrip("/")
        host = "127.0.0.1" if self.host in ("0.0.0.0", "::", "") else self.host
        return f"http://{host}:{self.http_port}"

    @property
    def effective_database_url(self) -> str:
        if self.database_url:
            return self.database_url
        return f"sqlite:///{(self.data_dir / 'trunkline.db').as_posix()}"

    def trusted_networks(self) -> list[ipaddress.IPv4Network | ipaddress.IPv6Network]:
        """Carrier source networks whose INVITEs need no digest authentication."""
        items = [item.strip() for item in self.sip_trusted_sources.split(",")]
        return [ipaddress.ip_network(item, strict=False) for item in items if item]

    def validate(self) -> None:
        """Raise ConfigError naming the first bad setting."""
        for name in ("http_port", "sip_port", "rtp_port_min", "rtp_port_max"):
            value = getattr(self, name)
            if not 0 <= value <= 65535:
                raise ConfigError(f"{ENV_PREFIX}{name.upper()} must be 0-65535, got {value}")
        if self.rtp_port_min > self.rtp_port_max:
            raise ConfigError("TRUNKLINE_RTP_PORT_MIN must not exceed TRUNKLINE_RTP_PORT_MAX")
        try:
            self.trusted_networks()
        except ValueError as exc:
            raise ConfigError(f"TRUNKLINE_SIP_TRUSTED_SOURCES: {exc}") from None
        if self.sip_ring_timeout_seconds <= 0:
            raise ConfigError("TRUNKLINE_SIP_RING_TIMEOUT_SECONDS must be positive")
        if self.api_rate_per_second <= 0 or self.api_rate_burst < 1:
            raise ConfigError(
                "TRUNKLINE_API_RATE_PER_SECOND must be positive and TRUNKLINE_API_RATE_BURST >= 1"
            )
        if self.api_unauthenticated_rate_per_second <= 0 or self.api_unauthenticated_burst < 1:
            raise ConfigError(
                "TRUNKLINE_API_UNAUTHENTICATED_RATE_PER_SECOND must be positive and"
                " TRUNKLINE_API_UNAUTHENTICATED_BURST >= 1"
            )
        if self.api_unauthenticated_max_addresses < 1:
            raise ConfigError("TRUNKLINE_API_UNAUTHENTICATED_MAX_ADDRESSES must be at least 1")
        if self.max_calls_per_org < 0:
            raise ConfigError("TRUNKLINE_MAX_CALLS_PER_ORG must not be negative")
        if self.twilio_stream_token_seconds <= 0:
            raise ConfigError("TRUNKLINE_TWILIO_STREAM_TOKEN_SECONDS must be positive")
        if self.max_call_seconds <= 0:
            raise ConfigError("TRUNKLINE_MAX_CALL_SECONDS must be positive")
        if self.playout_max_seconds < 1:
            raise ConfigError("TRUNKLINE_PLAYOUT_MAX_SECONDS must be at least 1")
        if self.agent_reconnect_grace_seconds < 0:
            raise ConfigError("TRUNKLINE_AGENT_RECONNECT_GRACE_SECONDS must not be negative")
        if self.sip_unauthenticated_rate <= 0:
            raise ConfigError("TRUNKLINE_SIP_UNAUTHENTICATED_RATE must be positive")
        if self.sip_nonce_lifetime_seconds <= 0:
            raise ConfigError("TRUNKLINE_SIP_NONCE_LIFETIME_SECONDS must be positive")
        if self.sip_trunk_username and not self.sip_trunk_password:
            raise ConfigError("TRUNKLINE_SIP_TRUNK_PASSWORD is required with a trunk username")
        if self.log_level not in LOG_LEVELS:
            raise ConfigError(f"TRUNKLINE_LOG_LEVEL must be one of {', '.join(LOG_LEVELS)}")
        if self.log_format not in LOG_FORMATS:
            raise ConfigError(f"TRUNKLINE_LOG_FORMAT must be one of {', '.join(LOG_FORMATS)}")
        if self.workers < 1:
            raise ConfigError("TRUNKLINE_WORKERS must be at least 1")
        if self.workers > 1 and (self.http_port == 0 or self.sip_port == 0):
            raise ConfigError("TRUNKLINE_WORKERS above 1 needs fixed HTTP and SIP ports")
        if self.worker_of < 0:
            raise ConfigError("TRUNKLINE_WORKER_OF must not be negative")
        if self.worker_slot < 0 or (self.worker_of and self.worker_slot >= self.worker_of):
            raise ConfigError("TRUNKLINE_WORKER_SLOT must be 0 to TRUNKLINE_WORKER_OF - 1")
        if self.max_numbers_per_org < 0:
            raise ConfigError("TRUNKLINE_MAX_NUMBERS_PER_ORG must not be negative")
        if self.telnyx_public_key:
            try:
                raw = base64.b64decode(self.telnyx_public_key, validate=True)
            except binascii.Error:
                raw = b""
            if len(raw) != 32:
                raise ConfigError("TRUNKLINE_TELNYX_PUBLIC_KEY must be base64 of a 32-byte key")
        if self.transcription not in TRANSCRIPTION_ENGINES:
            raise ConfigError(
                f"TRUNKLINE_TRANSCRIPTION must be one of {', '.join(TRANSCRIPTION_ENGINES)}"
            )
        if self.text_to_speech not in SPEECH_ENGINES:
            raise ConfigError(
                f"TRUNKLINE_TEXT_TO_SPEECH must be one of {', '.join(SPEECH_ENGINES)}"
            )
        for name in ("transcription_workers", "transcription_threads", "speech_workers"):
            if getattr(self, name) < 1:
                raise ConfigError(f"{ENV_PREFIX}{name.upper()} must be at least 1")
        if self.transcription_queue < 1:
            raise ConfigError("TRUNKLINE_TRANSCRIPTION_QUEUE must be at least 1")
        if self.voicemail_max_seconds <= 0:
            raise ConfigError("TRUNKLINE_VOICEMAIL_MAX_SECONDS must be positive")
        for name in ("database_queue_per_org", "database_sheddable_per_org"):
            if getattr(self, name) < 1:
                raise ConfigError(f"{ENV_PREFIX}{name.upper()} must be at least 1")
        if self.database_stall_seconds <= 0:
            raise ConfigError("TRUNKLINE_DATABASE_STALL_SECONDS must be positive")
        if self.rejected_call_record_rate < 0:
            raise ConfigError("TRUNKLINE_REJECTED_CALL_RECORD_RATE must not be negative")
        url = self.database_url
        if url and not url.startswith(("sqlite:///", "postgresql://", "postgres://")):
            raise ConfigError("TRUNKLINE_DATABASE_URL must start with sqlite:/// or postgresql://")


SETTING_NAMES: tuple[str, ...] = tuple(f.name for f in dataclasses.fields(Settings))

SETTING_HELP: dict[str, str] = {
    "data_dir": "database file, recordings, media",
    "host": "control API and media-stream WebSocket listen address",
    "http_port": "control API and media-stream WebSocket port",
    "public_url": "base URL used in presigned links (default http://HOST:PORT)",
    "sip_host": "SIP over UDP listen address",
    "sip_port": "SIP over UDP port",
    "rtp_port_min": "lowest RTP port (one port per call)",
    "rtp_port_max": "highest RTP port",
    "sip_trusted_sources": "carrier networks (CIDR, comma-separated) that need no digest auth",
    "sip_trunk_address": "default SIP trunk host[:port] for outbound calls",
    "sip_trunk_username": "digest username for the default trunk (both directions)",
    "sip_trunk_password": "digest password for the default trunk",
    "sip_ring_timeout_seconds": "outbound calls not answered within this are cancelled",
    "api_rate_per_second": "API requests per second per valid service token",
    "api_rate_burst": "API requests a token may make at once before the rate applies",
    "api_unauthenticated_rate_per_second": "API requests per second one client address may make without a valid token",
    "api_unauthenticated_burst": "API requests without a valid token one address may make at once",
    "api_unauthenticated_max_addresses": "client addresses whose unauthenticated budget is tracked (least recent forgotten)",
    "max_calls_per_org": "concurrent calls one organisation may have (0: no limit)",
    "max_call_seconds": "answered calls are ended after this long (hangup_reason max_duration)",
    "playout_max_seconds": "agent audio queued per call beyond this is dropped (oldest first)",
    "agent_reconnect_grace_seconds": "a call whose agent socket drops is redialled this long, then ended",
    "sip_unauthenticated_rate": "SIP requests per second one untrusted source may send",
    "sip_nonce_lifetime_seconds": "seconds a SIP digest nonce is good for (then stale=true)",
    "media_address": "address written into SDP (default: SIP host or first non-loopback)",
    "database_url": "sqlite:///path or postgresql://... (default: SQLite in the data dir)",
    "database_queue_per_org": "database jobs one organisation may have waiting (beyond: 503)",
    "database_sheddable_per_org": "rejected-call records / transcript writes waiting per org",
    "database_stall_seconds": "/readyz is 503 while a database job has waited longer than this",
    "rejected_call_record_rate": "rejected calls stored per second per number (burst 10)",
    "allow_insecure_urls": "accept ws:// and http:// agent/webhook URLs (development)",
    "allow_private_targets": "allow agent/webhook URLs resolving to private/loopback addresses",
    "max_numbers_per_org": "active phone numbers one organisation may hold",
    "log_level": "debug, info, warning, error or critical",
    "log_format": "text or json (one JSON object per line)",
    "secret_key": "encrypts stored secrets, signs presigned URLs (default: generated in data dir)",
    "twilio_auth_token": "verifies X-Twilio-Signature (unset: Twilio ingress refused)",
    "twilio_stream_token_seconds": "how long the stream token in trunkline's TwiML may open a media stream",
    "telnyx_api_key": "Telnyx REST API key (unset: local number pool)",
    "telnyx_api_url": "Telnyx REST API base URL",
    "telnyx_public_key": "Telnyx Ed25519 webhook public key, base64 (unset: Telnyx ingress refused)",
    "telnyx_stream_token": "x-telnyx-streaming-auth-token Telnyx media streams must present (unset: refused)",
    "workers": "event-loop processes sharing the HTTP and SIP ports (SO_REUSEPORT)",
    "worker_of": "set by serve --workers for each worker process (not set by hand)",
    "worker_slot": "set by serve --workers: this worker's slot, 0..N-1 (not set by hand)",
    "number_pool": "local numbers the embedded inventory hands out (FIRST-LAST[,FIRST-LAST])",
    "toll_free_pool": "toll-free numbers of the embedded inventory (FIRST-LAST[,...])",
    "s3_bucket": "keep media and recordings in this S3 bucket (unset: the data directory)",
    "s3_endpoint_url": "S3-compatible endpoint, e.g. MinIO (unset: AWS)",
    "s3_region": "S3 region",
    "s3_access_key_id": "S3 access key id (unset: the standard AWS credential chain)",
    "s3_secret_access_key": "S3 secret access key",
    "shutdown_timeout_seconds": "how long live calls may finish after SIGTERM",
    "transcription": "speech to text: whisper (embedded tiny.en), http (OpenAI-compatible) or off",
    "transcription_workers": "transcription worker threads (each runs one utterance at a time)",
    "transcription_threads": "CPU threads each Whisper transcription may use",
    "transcription_queue": "utterances waiting for transcription beyond this are dropped (counted)",
    "transcription_api_url": "base URL of the OpenAI-compatible /v1/audio/transcriptions API",
    "transcription_api_key": "bearer key for the transcription API",
    "transcription_api_model": "model name sent to the transcription API",
    "text_to_speech": "speech engine: piper (embedded en_US-joe-medium), espeak (espeak-ng) or off",
    "speech_workers": "text-to-speech worker threads",
    "voicemail_max_seconds": "a voicemail message is recorded for at most this long",
}


def describe_settings() -> str:
    """The environment variables with their defaults, for ``--help``."""
    defaults = Settings()
    lines = ["environment variables (also TOML keys, lower-case without TRUNKLINE_):"]
    for name in SETTING_NAMES:
        default = getattr(defaults, name)
        shown = "unset" if default == "" else str(default)
        lines.append(f"  {ENV_PREFIX}{name.upper():<26} {SETTING_HELP[name]} [{shown}]")
    return "\n".join(lines)


def _coerce(name: str, raw: Any, target: Any) -> Any:
    """Turn a TOML value or environment string into the field's type."""
    try:
        if isinstance(target, bool):
            if isinstance(raw, bool):
                return raw
            text = str(raw).strip().lower()
            if text in ("1", "true", "yes", "on"):
                return True
            if text in ("0", "false", "no", "off", ""):
                return False
            raise ValueError(raw)
        if isinstance(target, int):
            if isinstance(raw, bool):
                raise ValueError(raw)
            return int(raw)
        if isinstance(target, float):
            return float(raw)
        if isinstance(target, Path):
            return Path(str(raw))
        return str(raw)
    except (TypeError, ValueError):
        kind = type(target).__name__
        raise ConfigError(f"{ENV_PREFIX}{name.upper()}: expected {kind}, got {raw!r}") from None


def load_settings(
    config_file: Path | None = None,
    environ: Mapping[str, str] | None = None,
    overrides: Mapping[str, Any] | None = None,
) -> Settings:
    """Build Settings from a TOML file, the environment and explicit overrides."""
    environ = os.environ if environ is None else environ
    settings = Settings()
    values: dict[str, Any] = {}
    if config_file is None and environ.get(f"{ENV_PREFIX}CONFIG"):
        config_file = Path(environ[f"{ENV_PREFIX}CONFIG"])
    if config_file is not None:
        try:
            with open(config_file, "rb") as handle:
                document = tomllib.load(handle)
        except OSError as exc:
            raise ConfigError(f"cannot read config file {config_file}: {exc.strerror}") from None
        except tomllib.TOMLDecodeError as exc:
            raise ConfigError(f"config file {config_file} is not valid TOML: {exc}") from None
        unknown = sorted(set(document) - set(SETTING_NAMES))
        if unknown:
            raise ConfigError(f"config file {config_file}: unknown settings {', '.join(unknown)}")
        values.update(document)
    for name in SETTING_NAMES:
        env_name = f"{ENV_PREFIX}{name.upper()}"
        if env_name in environ:
            values[name] = environ[env_name]
    for name, value in (overrides or {}).items():
        if value is not None:
            values[name] = value
    for name, raw in values.items():
        setattr(settings, name, _coerce(name, raw, getattr(settings, name)))
    settings.validate()
    return settings
