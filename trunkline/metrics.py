"""Process-wide Prometheus metrics updated per event (not per media frame).

Per-frame media figures are counted without allocation in ``media.counters``
and reported at scrape time by ``gateway.collector``; what is here changes a
few times per call or per webhook, where a prometheus-client metric costs
nothing that matters.
Label sets are small and fixed (no per-call labels).
"""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram

SIP_METHODS = frozenset({"INVITE", "ACK", "BYE", "CANCEL", "OPTIONS"})

CALLS = Counter(
    "trunkline_calls",
    "Calls that ended, by final status and hang-up reason",
    ["status", "hangup_reason"],
)
SIP_REQUESTS = Counter(
    "trunkline_sip_requests_received", "SIP requests received, by method", ["method"]
)
SIP_RESPONSES = Counter("trunkline_sip_responses_sent", "SIP responses sent, by code", ["code"])
MEDIA_TICK_ERRORS = Counter(
    "trunkline_media_tick_errors",
    "Media clock subscribers that raised and were removed (each ends its call)",
)
AGENT_CONNECT = Histogram(
    "trunkline_agent_connect_seconds",
    "Time to open an agent WebSocket (successful attempts)",
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0),
)
WEBHOOK_DELIVERIES = Counter(
    "trunkline_webhook_deliveries",
    "Webhook delivery attempts, by outcome (delivered, retry, failed)",
    ["outcome"],
)
WEBHOOK_SECONDS = Histogram(
    "trunkline_webhook_delivery_seconds",
    "Duration of webhook delivery attempts",
    buckets=(0.01, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 15.0),
)
API_REQUESTS_REFUSED = Counter(
    "trunkline_api_requests_refused",
    "API requests answered 429 by the request-rate limit, by bucket"
    " (token: a valid service token; address: a client address without one)",
    ["bucket"],
)
API_RATE_BUCKETS_EVICTED = Counter(
    "trunkline_api_rate_buckets_evicted",
    "API rate-limit buckets forgotten because their table was full, by table (token, address)",
    ["table"],
)
LOOP_LAG = Histogram(
    "trunkline_event_loop_lag_seconds",
    "How late the media clock's timer fired (event-loop lag; drives pacing jitter)",
    buckets=(0.0005, 0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.5),
)
SPEECH_QUEUE_DEPTH = Gauge(
    "trunkline_speech_queue_depth",
    "Speech jobs waiting for a worker, by pool (transcription, synthesis)",
    ["pool"],
)
SPEECH_JOBS_REFUSED = Counter(
    "trunkline_speech_jobs_refused",
    "Speech jobs refused because the pool's queue was full, by pool",
    ["pool"],
)
SPEECH_JOBS_SHED = Counter(
    "trunkline_speech_jobs_shed",
    "Queued background jobs (partial transcripts) dropped to make room for urgent ones, by pool",
    ["pool"],
)
SPEECH_BATCH_SIZE = Histogram(
    "trunkline_speech_batch_size",
    "Jobs run together in one model call, by pool",
    ["pool"],
    buckets=(1, 2, 3, 4, 6, 8, 12, 16),
)
TRANSCRIPTION_RTF = Histogram(
    "trunkline_transcription_real_time_factor",
    "Seconds of transcription work per second of audio, per utterance",
    buckets=(0.01, 0.02, 0.05, 0.1, 0.2, 0.3, 0.5, 1.0, 2.0),
)
TRANSCRIPTS = Counter(
    "trunkline_transcript_segments",
    "Transcript segments produced, by party and source (engine or agent)",
    ["party", "source"],
)
ECHO_UTTERANCES_DROPPED = Counter(
    "trunkline_speech_echo_utterances_dropped",
    "Caller utterances not transcribed because they were echo of the agent's own audio",
)
BARGE_IN_ECHO_FRAMES = Counter(
    "trunkline_barge_in_echo_frames",
    "Voiced caller frames judged echo of the agent's audio (not counted towards barge-in)",
)
SPEECH_FAILURES = Counter(
    "trunkline_speech_failures",
    "Transcription or synthesis jobs that failed, by pool",
    ["pool"],
)
TTS_FIRST_AUDIO = Histogram(
    "trunkline_tts_first_audio_seconds",
    "Time from an agent response's first text delta to its first synthesized audio",
    buckets=(0.05, 0.1, 0.2, 0.3, 0.5, 0.75, 1.0, 2.0, 5.0),
)
AGENT_FRAMES_REJECTED = Counter(
    "trunkline_agent_frames_rejected",
    "Agent frames dropped because they broke the agent protocol, by persona (inkbox, twilio) "
    "and reason (not_json, too_large, too_deep, not_object, unknown_event, flat_media, "
    "bad_media, bad_base64, bad_mark, bad_field, too_many_marks, text_without_tts)",
    ["persona", "reason"],
)
AGENT_SEND_OVERFLOWS = Counter(
    "trunkline_agent_send_overflow",
    "Calls ended because their agent stopped reading: unsent data passed the cap "
    "with more than media to send",
)
AGENT_SOCKET_FAILURES = Counter(
    "trunkline_agent_socket_failures",
    "Agent WebSockets failed because what the agent sent broke RFC 6455, by the close code "
    "sent (1002 protocol error, 1007 text that is not UTF-8, 1009 message over 1 MiB)",
    ["code"],
)
CARRIER_STREAMS_REFUSED = Counter(
    "trunkline_carrier_streams_refused",
    "Carrier media streams refused, by reason (unauthenticated, token_missing, "
    "token_invalid, token_expired, replayed)",
    ["reason"],
)
CARRIER_FRAMES_DROPPED = Counter(
    "trunkline_carrier_stream_frames_dropped",
    "Carrier media-stream audio frames dropped, by dialect and reason (late: behind the "
    "re-order window; unsent: the carrier's socket was too far behind); added at hang-up",
    ["dialect", "reason"],
)
CARRIER_FRAMES_REJECTED = Counter(
    "trunkline_carrier_stream_frames_rejected",
    "Carrier media-stream frames that could not be used (dropped), by dialect",
    ["dialect"],
)

DB_QUEUE_WAIT = Gauge(
    "trunkline_db_queue_wait_seconds",
    "How long the oldest queued database job has waited for a slot (0 when none waits)",
)
DB_QUEUE_DEPTH = Gauge("trunkline_db_queue_depth", "Database jobs waiting for a slot")
DB_SHED = Counter(
    "trunkline_db_shed",
    "Sheddable database work dropped because its organisation's queue was full, by kind",
    ["kind"],
)
DB_REFUSED = Counter(
    "trunkline_db_refused",
    "Essential database work refused because its organisation's queue was full",
)
REJECTED_CALLS_UNRECORDED = Counter(
    "trunkline_rejected_calls_unrecorded",
    "Rejected inbound calls answered but not stored, beyond the per-number record rate",
)


def sip_method_label(method: str) -> str:
    return method if method in SIP_METHODS else "OTHER"


API_TOKENS_REFUSED = Counter(
    "trunkline_api_tokens_refused",
    "API requests refused because their token is revoked or expired, by reason",
    ["reason"],
)
API_KEY_CREATIONS_REFUSED = Counter(
    "trunkline_api_key_creations_refused",
    "API key creations refused because the organisation holds the maximum of usable keys",
)
SIP_CONNECTIONS = Gauge(
    "trunkline_sip_connections", "Open SIP connections, by transport (tcp, tls)", ["transport"]
)
SIP_CONNECTIONS_CLOSED = Counter(
    "trunkline_sip_connections_closed",
    "SIP connections trunkline closed, by transport and reason (framing, idle, limit, "
    "write_buffer, replaced, shutdown)",
    ["transport", "reason"],
)
SRTP_DROPPED = Counter(
    "trunkline_srtp_packets_dropped",
    "SRTP or SRTCP packets dropped because they failed to unprotect, by kind (rtp, rtcp) and "
    "reason (auth: authentication failed, replay: seen before or too old, other)",
    ["kind", "reason"],
)
SIP_REGISTRATIONS = Gauge(
    "trunkline_sip_registrations",
    "Numbers' SIP registrations kept by this process, by state (pending, registered, failed)",
    ["state"],
)
SIP_REGISTRATION_ATTEMPTS = Counter(
    "trunkline_sip_registration_attempts",
    "REGISTER attempts that ended, by result (registered, rejected, timeout, unregistered)",
    ["result"],
)
WEBHOOK_LEASES_LOST = Counter(
    "trunkline_webhook_leases_lost",
    "Deliveries whose lease ran out in this process, by stage: before_send (not sent, left"
    " for the next claim) or after_send (sent, but another worker had taken it over)",
    ["stage"],
)
NODES_TAKEN_OVER = Counter(
    "trunkline_nodes_taken_over",
    "Processes whose heartbeat stopped and whose live calls this process ended",
)
CALLS_AT_LIMIT = Counter(
    "trunkline_calls_refused_at_limit",
    "New calls refused because the organisation had its maximum of concurrent calls"
    " (counted across every process on the database)",
)
