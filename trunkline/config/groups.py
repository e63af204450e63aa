"""The settings, frozen and grouped by the part of trunkline that reads them.

Each field names its operator-facing setting in its metadata (``env``: the
environment name without ``TRUNKLINE_``, also the TOML key) with a one-line
``help``. Values are parsed once, when the settings are loaded
(``config.loading``); nothing changes them afterwards.
"""

from __future__ import annotations

import ipaddress
import os
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path
from typing import Any

IpNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network


class LogLevel(StrEnum):
    DEBUG = "debug"
    INFO = "info"
    WARNING = "warning"
    ERROR = "error"
    CRITICAL = "critical"


class SrtpPolicy(StrEnum):
    OFF = "off"  # plain RTP only; offers of RTP/SAVP are refused (488)
    OPTIONAL = "optional"  # SRTP (SDES) when the peer offers or accepts it, over TLS only
    MANDATORY = "mandatory"  # every call over TLS uses SRTP; plain RTP offers are refused


class LogFormat(StrEnum):
    TEXT = "text"
    JSON = "json"


class TranscriptionEngine(StrEnum):
    MOONSHINE = "moonshine"  # the embedded Moonshine tiny model (onnxruntime)
    WHISPER = "whisper"  # the embedded faster-whisper model (tiny.en)
    HTTP = "http"  # an OpenAI-compatible transcription API
    OFF = "off"


class WorkerPriority(StrEnum):
    IDLE = "idle"  # Linux SCHED_IDLE: the CPU time no other thread wants
    LOW = "low"  # niceness 10
    NORMAL = "normal"  # as the event loop


class VadEngine(StrEnum):
    SILERO = "silero"  # the neural Silero VAD shipped inside faster-whisper (onnxruntime)
    WEBRTC = "webrtc"  # WebRTC's GMM VAD


class SpeechEngine(StrEnum):
    PIPER = "piper"  # the embedded Piper voice
    ESPEAK = "espeak"  # espeak-ng
    OFF = "off"


def setting(env: str, default: Any, help: str) -> Any:
    """A field bound to the operator setting ``env`` (lower case, no prefix)."""
    if isinstance(default, tuple | Path):
        return field(default_factory=lambda: default, metadata={"env": env, "help": help})
    return field(default=default, metadata={"env": env, "help": help})


def default_data_dir() -> Path:
    """Where the data lives when no setting names it: ``$XDG_DATA_HOME/trunkline``.

    Read when the settings are built, not at import, and never the current
    directory: a command run from elsewhere finds the same database.
    """
    base = os.environ.get("XDG_DATA_HOME", "").strip()
    if not base or not os.path.isabs(base):  # the XDG spec: a relative value is ignored
        base = os.path.join(os.path.expanduser("~"), ".local", "share")
    return Path(base) / "trunkline"


DATA_DIR_SHOWN = "$XDG_DATA_HOME/trunkline, else ~/.local/share/trunkline"


def parse_networks(text: str) -> tuple[IpNetwork, ...]:
    """Comma-separated CIDRs (or addresses) as networks; ValueError names a bad one."""
    items = [item.strip() for item in text.split(",")]
    return tuple(ipaddress.ip_network(item, strict=False) for item in items if item)


@dataclass(frozen=True, slots=True)
class ApiSettings:
    """The HTTP listener: control API, carrier webhooks and media-stream WebSockets."""

    host: str = setting(
        "host", "0.0.0.0", "HTTP listen address: API, /metrics, media streams (0.0.0.0: all)"
    )
    port: int = setting("http_port", 8080, "control API and media-stream WebSocket port")
    public_url: str = setting(
        "public_url", "", "base URL used in presigned links (default http://HOST:PORT)"
    )
    rate_per_second: float = setting(
        "api_rate_per_second", 50.0, "API requests per second per valid service token"
    )
    rate_burst: int = setting(
        "api_rate_burst", 100, "API requests a token may make at once before the rate applies"
    )
    unauthenticated_rate_per_second: float = setting(
        "api_unauthenticated_rate_per_second",
        1.0,
        "API requests per second one client address may make without a valid token",
    )
    unauthenticated_burst: int = setting(
        "api_unauthenticated_burst",
        20,
        "API requests without a valid token one address may make at once",
    )
    unauthenticated_max_addresses: int = setting(
        "api_unauthenticated_max_addresses",
        10_000,
        "client addresses whose unauthenticated budget is tracked (least recent forgotten)",
    )
    max_numbers_per_org: int = setting(
        "max_numbers_per_org", 3, "active phone numbers one organisation may hold"
    )
    number_pool: str = setting(
        "number_pool",
        "+15550100000-+15550100999",
        "local numbers the embedded inventory hands out (FIRST-LAST[,FIRST-LAST])",
    )
    toll_free_pool: str = setting(
        "toll_free_pool",
        "+18885550000-+18885550999",
        "toll-free numbers of the embedded inventory (FIRST-LAST[,...])",
    )
    console: bool = setting("console", True, "serve the web console at /console")
    console_process_metrics: bool = setting(
        "console_process_metrics",
        True,
        "show process-wide media charts to organisation admin tokens in the console",
    )

    @property
    def effective_public_url(self) -> str:
        """The base URL peers reach this process at: configured, else from host and port."""
        if self.public_url:
            return self.public_url.rstrip("/")
        host = "127.0.0.1" if self.host in ("0.0.0.0", "::", "") else self.host
        return f"http://{host}:{self.port}"


@dataclass(frozen=True, slots=True)
class SipSettings:
    """The SIP trunk side: listener, trusted carriers, digest credentials, timers."""

    host: str = setting("sip_host", "0.0.0.0", "SIP listen address (UDP; TCP and TLS when enabled)")
    port: int = setting("sip_port", 5060, "SIP port (UDP; TCP too with TRUNKLINE_SIP_TCP)")
    trusted_sources: tuple[IpNetwork, ...] = setting(
        "sip_trusted_sources",
        parse_networks("127.0.0.0/8,::1/128"),
        "carrier networks (CIDR, comma-separated) that need no digest auth",
    )
    trunk_address: str = setting(
        "sip_trunk_address", "", "default SIP trunk host[:port] for outbound calls"
    )
    trunk_username: str = setting(
        "sip_trunk_username", "", "digest username for the default trunk (both directions)"
    )
    trunk_password: str = setting("sip_trunk_password", "", "digest password for the default trunk")
    ring_timeout_seconds: float = setting(
        "sip_ring_timeout_seconds", 60.0, "outbound calls not answered within this are cancelled"
    )
    unauthenticated_rate: float = setting(
        "sip_unauthenticated_rate", 10.0, "SIP requests per second one untrusted source may send"
    )
    nonce_lifetime_seconds: float = setting(
        "sip_nonce_lifetime_seconds",
        30.0,
        "seconds a SIP digest nonce is good for (then stale=true)",
    )
    tcp: bool = setting("sip_tcp", False, "also accept SIP over TCP on TRUNKLINE_SIP_PORT")
    tls_port: int = setting(
        "sip_tls_port", 5061, "SIP over TLS port (listening when a certificate and key are set)"
    )
    tls_cert: str = setting(
        "sip_tls_cert", "", "PEM certificate (chain) for SIP over TLS; empty: no TLS listener"
    )
    tls_key: str = setting("sip_tls_key", "", "PEM private key of TRUNKLINE_SIP_TLS_CERT")
    tls_ca: str = setting(
        "sip_tls_ca", "", "PEM CA file trusted for TLS trunks (outbound); empty: system CAs"
    )
    srtp: SrtpPolicy = setting(
        "sip_srtp", SrtpPolicy.OPTIONAL, "SRTP (SDES) on TLS calls: off, optional or mandatory"
    )
    max_connections: int = setting(
        "sip_max_connections",
        1024,
        "open SIP connections per transport, TCP and TLS (more are closed)",
    )
    connection_idle_seconds: float = setting(
        "sip_connection_idle_seconds", 3600.0, "a SIP TCP/TLS connection idle this long is closed"
    )
    codecs: str = setting(
        "sip_codecs",
        "PCMU,PCMA",
        "audio codecs offered and accepted, in order of preference (PCMU, PCMA, G722)",
    )
    register_expires_seconds: int = setting(
        "sip_register_expires_seconds",
        3600,
        "registration lifetime asked of registrars (refreshed at 50-80 % of what they grant)",
    )
    register_retry_min_seconds: float = setting(
        "sip_register_retry_min_seconds",
        30.0,
        "first retry after a failed registration (doubling, with jitter, per failure)",
    )
    register_retry_max_seconds: float = setting(
        "sip_register_retry_max_seconds", 1800.0, "longest wait between registration retries"
    )
    register_sync_seconds: float = setting(
        "sip_register_sync_seconds",
        15.0,
        "how often numbers are re-read to start or stop their registrations",
    )

    @property
    def codec_order(self) -> tuple[str, ...]:
        """``codecs`` as upper-case names, in order."""
        return tuple(name.strip().upper() for name in self.codecs.split(",") if name.strip())


@dataclass(frozen=True, slots=True)
class MediaSettings:
    """RTP ports, the address written into SDP, and the per-call audio buffers."""

    address: str = setting(
        "media_address", "", "address written into SDP (default: SIP host or first non-loopback)"
    )
    rtp_port_min: int = setting(
        "rtp_port_min", 10000, "lowest RTP port (each call uses an even/odd pair: RTP and RTCP)"
    )
    rtp_port_max: int = setting("rtp_port_max", 20000, "highest RTP port")
    rtp_shared_port: int = setting(
        "rtp_shared_port",
        0,
        "one even port (RTCP on the next) for every inbound call whose media comes from its"
        " SDP address, worker N on this + 2N; outside the RTP range (0: a pair per call)",
    )
    playout_max_seconds: float = setting(
        "playout_max_seconds",
        60.0,
        "agent audio queued per call beyond this is dropped (oldest first)",
    )
    jitter_min_ms: int = setting(
        "jitter_min_ms", 0, "least delay the caller's RTP jitter buffer keeps (multiple of 20)"
    )
    jitter_max_ms: int = setting(
        "jitter_max_ms",
        60,
        "most delay the caller's RTP jitter buffer may add (multiple of 20; 0: no buffer)",
    )


@dataclass(frozen=True, slots=True)
class CallPolicy:
    """Limits and timers every call obeys, whatever leg it arrived on."""

    max_call_seconds: float = setting(
        "max_call_seconds",
        14_400.0,
        "answered calls are ended after this long (hangup_reason max_duration)",
    )
    max_calls_per_org: int = setting(
        "max_calls_per_org", 0, "concurrent calls one organisation may have (0: no limit)"
    )
    agent_reconnect_grace_seconds: float = setting(
        "agent_reconnect_grace_seconds",
        5.0,
        "a call whose agent socket drops is redialled this long, then ended",
    )
    rejected_call_record_rate: float = setting(
        "rejected_call_record_rate",
        1.0,
        "rejected calls stored per second per number (burst 10)",
    )
    voicemail_max_seconds: float = setting(
        "voicemail_max_seconds", 120.0, "a voicemail message is recorded for at most this long"
    )
    outbound_calls_per_day: int = setting(
        "outbound_calls_per_day",
        200,
        "outbound calls one organisation may place in a rolling 24 hours (place-call 429)",
    )
    outbound_minutes_per_day: int = setting(
        "outbound_minutes_per_day",
        1000,
        "outbound talk minutes one organisation may use in a rolling 24 hours (place-call 429)",
    )


@dataclass(frozen=True, slots=True)
class SpeechSettings:
    """Speech to text and text to speech: engines, workers and queues."""

    transcription: TranscriptionEngine = setting(
        "transcription",
        TranscriptionEngine.MOONSHINE,
        "speech to text: moonshine (embedded Moonshine tiny), whisper (embedded Whisper "
        "tiny.en), http (OpenAI-compatible) or off",
    )
    vad: VadEngine = setting(
        "vad",
        VadEngine.SILERO,
        "voice activity detection: silero (neural, model inside faster-whisper; webrtc "
        "if it cannot load) or webrtc",
    )
    transcription_workers: int = setting(
        "transcription_workers",
        0,
        "transcription worker threads, each running one batch at a time (0: one per spare core)",
    )
    speech_worker_priority: WorkerPriority = setting(
        "speech_worker_priority",
        WorkerPriority.IDLE,
        "CPU priority of the transcription and speech worker threads against the event loop: "
        "idle (Linux SCHED_IDLE), low (nice 10) or normal",
    )
    transcription_batch: int = setting(
        "transcription_batch",
        8,
        "utterances (of any calls) one transcription worker runs through the model together",
    )
    transcription_partial_ms: int = setting(
        "transcription_partial_ms",
        400,
        "while a caller speaks, a partial transcript pass this often (0: none)",
    )
    transcription_threads: int = setting(
        "transcription_threads", 1, "CPU threads each embedded-model transcription may use"
    )
    transcription_window_seconds: int = setting(
        "transcription_window_seconds",
        10,
        "audio window Whisper encodes for an utterance up to that long (30: Whisper's own)",
    )
    transcription_queue: int = setting(
        "transcription_queue",
        256,
        "utterances waiting for transcription beyond this are dropped (counted)",
    )
    transcription_api_url: str = setting(
        "transcription_api_url",
        "https://api.openai.com",
        "base URL of the OpenAI-compatible /v1/audio/transcriptions API",
    )
    transcription_api_key: str = setting(
        "transcription_api_key", "", "bearer key for the transcription API"
    )
    transcription_api_model: str = setting(
        "transcription_api_model", "whisper-1", "model name sent to the transcription API"
    )
    text_to_speech: SpeechEngine = setting(
        "text_to_speech",
        SpeechEngine.PIPER,
        "speech engine: piper (embedded en_US-joe-medium), espeak (espeak-ng) or off",
    )
    speech_workers: int = setting("speech_workers", 1, "text-to-speech worker threads")
    ready_waits_for_speech: bool = setting(
        "ready_waits_for_speech",
        False,
        "/readyz is 503 until the speech engines loaded at start-up are ready",
    )


@dataclass(frozen=True, slots=True)
class StorageSettings:
    """The database, its per-organisation queues, and the blob store."""

    database_url: str = setting(
        "database_url",
        "",
        "sqlite:///path or postgresql://... (default: SQLite in the data dir)",
    )
    queue_per_org: int = setting(
        "database_queue_per_org",
        256,
        "database jobs one organisation may have waiting (beyond: 503)",
    )
    sheddable_per_org: int = setting(
        "database_sheddable_per_org",
        64,
        "rejected-call records / transcript writes waiting per org",
    )
    stall_seconds: float = setting(
        "database_stall_seconds",
        5.0,
        "/readyz is 503 while a database job has waited longer than this",
    )
    s3_bucket: str = setting(
        "s3_bucket", "", "keep media and recordings in this S3 bucket (unset: the data directory)"
    )
    s3_endpoint_url: str = setting(
        "s3_endpoint_url", "", "S3-compatible endpoint, e.g. MinIO (unset: AWS)"
    )
    s3_region: str = setting("s3_region", "us-east-1", "S3 region")
    s3_access_key_id: str = setting(
        "s3_access_key_id", "", "S3 access key id (unset: the standard AWS credential chain)"
    )
    s3_secret_access_key: str = setting("s3_secret_access_key", "", "S3 secret access key")
    node_lease_seconds: float = setting(
        "node_lease_seconds",
        15.0,
        "a process whose heartbeat is older than this is dead: another ends its calls",
    )
    webhook_lease_seconds: float = setting(
        "webhook_lease_seconds",
        60.0,
        "how long a claimed webhook delivery stays this process's before another may take it",
    )
    webhook_timeout_seconds: float = setting(
        "webhook_timeout_seconds", 15.0, "one webhook request's time limit (below the lease)"
    )
    require_shared_blobs: bool = setting(
        "require_shared_blobs",
        False,
        "refuse to start on PostgreSQL while recordings and media stay in the data directory",
    )


@dataclass(frozen=True, slots=True)
class CarrierSettings:
    """Credentials of the carriers' REST APIs, webhooks and media streams."""

    twilio_auth_token: str = setting(
        "twilio_auth_token", "", "verifies X-Twilio-Signature (unset: Twilio ingress refused)"
    )
    twilio_stream_token_seconds: float = setting(
        "twilio_stream_token_seconds",
        60.0,
        "how long the stream token in trunkline's TwiML may open a media stream",
    )
    telnyx_api_key: str = setting(
        "telnyx_api_key", "", "Telnyx REST API key (unset: local number pool)"
    )
    telnyx_api_url: str = setting(
        "telnyx_api_url", "https://api.telnyx.com", "Telnyx REST API base URL"
    )
    telnyx_public_key: str = setting(
        "telnyx_public_key",
        "",
        "Telnyx Ed25519 webhook public key, base64 (unset: Telnyx ingress refused)",
    )
    telnyx_stream_token: str = setting(
        "telnyx_stream_token",
        "",
        "x-telnyx-streaming-auth-token Telnyx media streams must present (unset: refused)",
    )


@dataclass(frozen=True, slots=True)
class ProcessSettings:
    """The process itself: workers, shutdown and logging."""

    workers: int = setting(
        "workers", 1, "event-loop processes sharing the HTTP and SIP ports (SO_REUSEPORT)"
    )
    worker_of: int = setting(
        "worker_of", 0, "set by serve --workers for each worker process (not set by hand)"
    )
    worker_slot: int = setting(
        "worker_slot", 0, "set by serve --workers: this worker's slot, 0..N-1 (not set by hand)"
    )
    shutdown_timeout_seconds: float = setting(
        "shutdown_timeout_seconds", 30.0, "how long live calls may finish after SIGTERM"
    )
    log_level: LogLevel = setting(
        "log_level", LogLevel.INFO, "debug, info, warning, error or critical"
    )
    log_format: LogFormat = setting(
        "log_format", LogFormat.TEXT, "text or json (one JSON object per line)"
    )


@dataclass(frozen=True, slots=True)
class Settings:
    """Every operator-facing setting: a few process-wide ones, the rest in groups."""

    data_dir: Path = field(
        default_factory=default_data_dir,
        metadata={
            "env": "data_dir",
            "help": "database file, recordings, media",
            "shown": DATA_DIR_SHOWN,
        },
    )
    secret_key: str = setting(
        "secret_key",
        "",
        "32+ printable characters, no spaces; encrypts stored secrets, signs presigned URLs"
        " (default: generated in data dir)",
    )
    dev: bool = setting(
        "dev",
        False,
        "development mode (serve --dev): allows insecure and private agent/webhook URLs",
    )
    allow_insecure_urls: bool = setting(
        "allow_insecure_urls", False, "accept ws:// and http:// agent/webhook URLs (development)"
    )
    allow_private_targets: bool = setting(
        "allow_private_targets",
        False,
        "allow agent/webhook URLs resolving to private/loopback addresses",
    )
    api: ApiSettings = field(default_factory=ApiSettings)
    sip: SipSettings = field(default_factory=SipSettings)
    media: MediaSettings = field(default_factory=MediaSettings)
    calls: CallPolicy = field(default_factory=CallPolicy)
    speech: SpeechSettings = field(default_factory=SpeechSettings)
    storage: StorageSettings = field(default_factory=StorageSettings)
    carriers: CarrierSettings = field(default_factory=CarrierSettings)
    process: ProcessSettings = field(default_factory=ProcessSettings)

    def __post_init__(self) -> None:
        # Development mode is the two URL allowances under one name; they follow it.
        if self.dev:
            object.__setattr__(self, "allow_insecure_urls", True)
            object.__setattr__(self, "allow_private_targets", True)

    @property
    def shared_rtp_port(self) -> int:
        """This worker's shared RTP port: worker N of ``serve --workers`` uses
        ``rtp_shared_port`` + 2N (RTCP on the next); 0 when the setting is off."""
        first = self.media.rtp_shared_port
        return first + 2 * self.process.worker_slot if first else 0

    @property
    def database_url(self) -> str:
        """The database to open: configured, else SQLite in the data directory."""
        if self.storage.database_url:
            return self.storage.database_url
        return f"sqlite:///{(self.data_dir / 'trunkline.db').as_posix()}"
