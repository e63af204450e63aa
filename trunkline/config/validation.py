"""Checks across settings that their types alone cannot express; errors name the setting."""

from __future__ import annotations

import base64
import binascii
import ssl

from trunkline.config.groups import Settings

ENV_PREFIX = "TRUNKLINE_"
SECRET_KEY_MIN_LENGTH = 32
SECRET_KEY_FORMAT = (
    f"TRUNKLINE_SECRET_KEY must be at least {SECRET_KEY_MIN_LENGTH} printable ASCII characters"
    " without spaces (e.g. the output of `openssl rand -hex 32`)"
)


class ConfigError(ValueError):
    """A setting has a value trunkline cannot use; the message names the setting."""


def _positive(value: float, name: str) -> None:
    if value <= 0:
        raise ConfigError(f"{ENV_PREFIX}{name.upper()} must be positive")


def _at_least_one(value: int, name: str) -> None:
    if value < 1:
        raise ConfigError(f"{ENV_PREFIX}{name.upper()} must be at least 1")


def _not_negative(value: float, name: str) -> None:
    if value < 0:
        raise ConfigError(f"{ENV_PREFIX}{name.upper()} must not be negative")


def validate(settings: Settings) -> None:
    """Raise ConfigError naming the first bad setting."""
    _check_network(settings)
    _check_limits(settings)
    _check_process(settings)
    _check_credentials(settings)
    _check_speech_and_storage(settings)
    _at_least_one(settings.calls.outbound_calls_per_day, "outbound_calls_per_day")
    _at_least_one(settings.calls.outbound_minutes_per_day, "outbound_minutes_per_day")


def _check_network(settings: Settings) -> None:
    api, sip, media = settings.api, settings.sip, settings.media
    ports = {
        "http_port": api.port,
        "sip_port": sip.port,
        "sip_tls_port": sip.tls_port,
        "rtp_port_min": media.rtp_port_min,
        "rtp_port_max": media.rtp_port_max,
    }
    for name, value in ports.items():
        if not 0 <= value <= 65535:
            raise ConfigError(f"{ENV_PREFIX}{name.upper()} must be 0-65535, got {value}")
    if media.rtp_port_min > media.rtp_port_max:
        raise ConfigError("TRUNKLINE_RTP_PORT_MIN must not exceed TRUNKLINE_RTP_PORT_MAX")
    _check_shared_port(settings)
    _positive(sip.ring_timeout_seconds, "sip_ring_timeout_seconds")
    _positive(sip.unauthenticated_rate, "sip_unauthenticated_rate")
    _positive(sip.nonce_lifetime_seconds, "sip_nonce_lifetime_seconds")
    _check_registration_and_codecs(settings)
    _at_least_one(sip.max_connections, "sip_max_connections")
    _positive(sip.connection_idle_seconds, "sip_connection_idle_seconds")
    _check_tls_files(settings)


def _check_shared_port(settings: Settings) -> None:
    """The shared RTP ports (one pair per worker) are even, in range and apart from the others."""
    shared = settings.media.rtp_shared_port
    if shared == 0:
        return
    workers = max(settings.process.workers, settings.process.worker_of, 1)
    last = shared + 2 * workers - 1  # the last worker's RTCP port
    if shared % 2 or shared < 1024 or last > 65535:
        raise ConfigError(
            f"TRUNKLINE_RTP_SHARED_PORT must be an even port from 1024 with room for {workers}"
            f" worker(s)' RTP and RTCP ports up to 65535, got {shared}"
        )
    media = settings.media
    if shared <= media.rtp_port_max and last >= media.rtp_port_min:
        raise ConfigError(
            f"TRUNKLINE_RTP_SHARED_PORT {shared}-{last} overlaps the RTP port range"
            f" {media.rtp_port_min}-{media.rtp_port_max} (TRUNKLINE_RTP_PORT_MIN/MAX)"
        )
    sip_ports = (settings.sip.port, settings.sip.tls_port if settings.sip.tls_cert else 0)
    if any(shared <= port <= last for port in sip_ports):
        raise ConfigError(f"TRUNKLINE_RTP_SHARED_PORT {shared}-{last} overlaps a SIP port")


def _check_tls_files(settings: Settings) -> None:
    """The TLS certificate, key and CA load (read once here, again when the listener starts)."""
    sip = settings.sip
    if bool(sip.tls_cert) != bool(sip.tls_key):
        raise ConfigError("TRUNKLINE_SIP_TLS_CERT and TRUNKLINE_SIP_TLS_KEY go together")
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    if sip.tls_cert:
        try:
            context.load_cert_chain(sip.tls_cert, sip.tls_key)
        except (OSError, ssl.SSLError) as exc:
            raise ConfigError(f"TRUNKLINE_SIP_TLS_CERT/KEY cannot be loaded: {exc}") from None
    if sip.tls_ca:
        try:
            context.load_verify_locations(cafile=sip.tls_ca)
        except (OSError, ssl.SSLError) as exc:
            raise ConfigError(f"TRUNKLINE_SIP_TLS_CA cannot be loaded: {exc}") from None


SUPPORTED_CODECS = ("PCMU", "PCMA", "G722")


def _check_registration_and_codecs(settings: Settings) -> None:
    sip = settings.sip
    codecs = sip.codec_order
    unknown = [name for name in codecs if name not in SUPPORTED_CODECS]
    if not codecs or unknown or len(set(codecs)) != len(codecs):
        raise ConfigError(
            "TRUNKLINE_SIP_CODECS must list distinct codecs of " + ", ".join(SUPPORTED_CODECS)
        )
    _at_least_one(sip.register_expires_seconds, "sip_register_expires_seconds")
    _positive(sip.register_retry_min_seconds, "sip_register_retry_min_seconds")
    _positive(sip.register_sync_seconds, "sip_register_sync_seconds")
    if sip.register_retry_max_seconds < sip.register_retry_min_seconds:
        raise ConfigError(
            "TRUNKLINE_SIP_REGISTER_RETRY_MAX_SECONDS must not be below"
            " TRUNKLINE_SIP_REGISTER_RETRY_MIN_SECONDS"
        )


def _check_limits(settings: Settings) -> None:
    api, calls = settings.api, settings.calls
    if api.rate_per_second <= 0 or api.rate_burst < 1:
        raise ConfigError(
            "TRUNKLINE_API_RATE_PER_SECOND must be positive and TRUNKLINE_API_RATE_BURST >= 1"
        )
    if api.unauthenticated_rate_per_second <= 0 or api.unauthenticated_burst < 1:
        raise ConfigError(
            "TRUNKLINE_API_UNAUTHENTICATED_RATE_PER_SECOND must be positive and"
            " TRUNKLINE_API_UNAUTHENTICATED_BURST >= 1"
        )
    _at_least_one(api.unauthenticated_max_addresses, "api_unauthenticated_max_addresses")
    _not_negative(api.max_numbers_per_org, "max_numbers_per_org")
    _not_negative(calls.max_calls_per_org, "max_calls_per_org")
    _positive(calls.max_call_seconds, "max_call_seconds")
    _not_negative(calls.agent_reconnect_grace_seconds, "agent_reconnect_grace_seconds")
    _not_negative(calls.rejected_call_record_rate, "rejected_call_record_rate")
    _positive(calls.voicemail_max_seconds, "voicemail_max_seconds")
    if settings.media.playout_max_seconds < 1:
        raise ConfigError("TRUNKLINE_PLAYOUT_MAX_SECONDS must be at least 1")
    _check_jitter(settings.media.jitter_min_ms, settings.media.jitter_max_ms)


def _check_jitter(low: int, high: int) -> None:
    for name, value in (("jitter_min_ms", low), ("jitter_max_ms", high)):
        if not 0 <= value <= 1000 or value % 20:
            raise ConfigError(
                f"{ENV_PREFIX}{name.upper()} must be a multiple of 20 from 0 to 1000, got {value}"
            )
    if low > high:
        raise ConfigError("TRUNKLINE_JITTER_MIN_MS must not exceed TRUNKLINE_JITTER_MAX_MS")


def _check_process(settings: Settings) -> None:
    process = settings.process
    _at_least_one(process.workers, "workers")
    if process.workers > 1 and (settings.api.port == 0 or settings.sip.port == 0):
        raise ConfigError("TRUNKLINE_WORKERS above 1 needs fixed HTTP and SIP ports")
    _not_negative(process.worker_of, "worker_of")
    if process.worker_slot < 0 or (process.worker_of and process.worker_slot >= process.worker_of):
        raise ConfigError("TRUNKLINE_WORKER_SLOT must be 0 to TRUNKLINE_WORKER_OF - 1")


def check_secret_key(secret_key: str) -> None:
    """The configured master secret: long enough to be a key, and typeable as one."""
    if not secret_key:
        return  # generated into the data directory
    if len(secret_key) < SECRET_KEY_MIN_LENGTH or not all(
        "!" <= character <= "~" for character in secret_key
    ):
        raise ConfigError(SECRET_KEY_FORMAT)


def _check_credentials(settings: Settings) -> None:
    check_secret_key(settings.secret_key)
    if settings.sip.trunk_username and not settings.sip.trunk_password:
        raise ConfigError("TRUNKLINE_SIP_TRUNK_PASSWORD is required with a trunk username")
    carriers = settings.carriers
    _positive(carriers.twilio_stream_token_seconds, "twilio_stream_token_seconds")
    if carriers.telnyx_public_key:
        try:
            raw = base64.b64decode(carriers.telnyx_public_key, validate=True)
        except binascii.Error:
            raw = b""
        if len(raw) != 32:
            raise ConfigError("TRUNKLINE_TELNYX_PUBLIC_KEY must be base64 of a 32-byte key")


def _check_speech_and_storage(settings: Settings) -> None:
    speech, storage = settings.speech, settings.storage
    _not_negative(speech.transcription_workers, "transcription_workers")
    _at_least_one(speech.transcription_batch, "transcription_batch")
    if not 1 <= speech.transcription_window_seconds <= 30:
        raise ConfigError(f"{ENV_PREFIX}TRANSCRIPTION_WINDOW_SECONDS must be 1 to 30")
    _not_negative(speech.transcription_partial_ms, "transcription_partial_ms")
    _at_least_one(speech.transcription_threads, "transcription_threads")
    _at_least_one(speech.speech_workers, "speech_workers")
    _at_least_one(speech.transcription_queue, "transcription_queue")
    _at_least_one(storage.queue_per_org, "database_queue_per_org")
    _at_least_one(storage.sheddable_per_org, "database_sheddable_per_org")
    _positive(storage.stall_seconds, "database_stall_seconds")
    _positive(storage.node_lease_seconds, "node_lease_seconds")
    _positive(storage.webhook_timeout_seconds, "webhook_timeout_seconds")
    if storage.webhook_timeout_seconds >= storage.webhook_lease_seconds:
        raise ConfigError(
            "TRUNKLINE_WEBHOOK_TIMEOUT_SECONDS must be below TRUNKLINE_WEBHOOK_LEASE_SECONDS"
        )
    url = storage.database_url
    if url and not url.startswith(("sqlite:///", "postgresql://", "postgres://")):
        raise ConfigError("TRUNKLINE_DATABASE_URL must start with sqlite:/// or postgresql://")
