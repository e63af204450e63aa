-- trunkline schema v1 (PostgreSQL).
CREATE TABLE organizations (
    id TEXT PRIMARY KEY,
    name TEXT NOT NULL,
    created_at TIMESTAMPTZ NOT NULL
);

CREATE TABLE agent_identities (
    id TEXT PRIMARY KEY,
    organization_id TEXT NOT NULL REFERENCES organizations(id),
    agent_handle TEXT NOT NULL,
    display_name TEXT,
    signing_key_encrypted TEXT,
    created_at TIMESTAMPTZ NOT NULL,
    updated_at TIMESTAMPTZ NOT NULL,
    UNIQUE (organization_id, agent_handle)
);

CREATE TABLE api_tokens (
    id TEXT PRIMARY KEY,
    organization_id TEXT NOT NULL REFERENCES organizations(id),
    agent_identity_id TEXT REFERENCES agent_identities(id),
    token_hash TEXT NOT NULL UNIQUE,
    created_at TIMESTAMPTZ NOT NULL
);

CREATE TABLE phone_numbers (
    id TEXT PRIMARY KEY,
    organization_id TEXT NOT NULL REFERENCES organizations(id),
    number TEXT NOT NULL,
    type TEXT NOT NULL,
    status TEXT NOT NULL,
    incoming_call_action TEXT NOT NULL,
    client_websocket_url TEXT,
    incoming_call_webhook_url TEXT,
    agent_identity_id TEXT REFERENCES agent_identities(id),
    state TEXT,
    country TEXT NOT NULL,
    sms_status TEXT NOT NULL,
    filter_mode TEXT NOT NULL,
    provider TEXT,
    friendly_name TEXT,
    trunk_address TEXT,
    auth_username TEXT,
    auth_password_encrypted TEXT,
    inbound_routing JSONB,
    agent_protocol TEXT NOT NULL,
    agent_audio TEXT NOT NULL,
    recording_enabled BOOLEAN NOT NULL,
    carrier_order_id TEXT,
    created_at TIMESTAMPTZ NOT NULL,
    updated_at TIMESTAMPTZ NOT NULL
);
CREATE UNIQUE INDEX phone_numbers_live_number ON phone_numbers (number) WHERE status <> 'released';
CREATE INDEX phone_numbers_org ON phone_numbers (organization_id, created_at);

CREATE TABLE incoming_call_configs (
    agent_identity_id TEXT PRIMARY KEY REFERENCES agent_identities(id),
    incoming_call_action TEXT NOT NULL,
    client_websocket_url TEXT,
    incoming_call_webhook_url TEXT,
    created_at TIMESTAMPTZ NOT NULL,
    updated_at TIMESTAMPTZ NOT NULL
);

CREATE TABLE calls (
    id TEXT PRIMARY KEY,
    organization_id TEXT NOT NULL REFERENCES organizations(id),
    phone_number_id TEXT NOT NULL REFERENCES phone_numbers(id),
    local_phone_number TEXT NOT NULL,
    remote_phone_number TEXT NOT NULL,
    direction TEXT NOT NULL,
    status TEXT NOT NULL,
    client_websocket_url TEXT,
    use_inkbox_tts BOOLEAN,
    use_inkbox_stt BOOLEAN,
    hangup_reason TEXT,
    started_at TIMESTAMPTZ,
    ended_at TIMESTAMPTZ,
    sip_call_id TEXT,
    owner TEXT,
    recording_key TEXT,
    failure_detail TEXT,
    created_at TIMESTAMPTZ NOT NULL,
    updated_at TIMESTAMPTZ NOT NULL
);
CREATE INDEX calls_org_created ON calls (organization_id, created_at DESC);
CREATE INDEX calls_number_created ON calls (phone_number_id, created_at DESC);

CREATE TABLE transcript_segments (
    id TEXT PRIMARY KEY,
    call_id TEXT NOT NULL REFERENCES calls(id),
    seq BIGINT NOT NULL,
    ts_ms BIGINT NOT NULL,
    party TEXT NOT NULL,
    text TEXT NOT NULL,
    created_at TIMESTAMPTZ NOT NULL,
    search TSVECTOR GENERATED ALWAYS AS (to_tsvector('english', text)) STORED,
    UNIQUE (call_id, seq)
);
CREATE INDEX transcript_segments_search ON transcript_segments USING GIN (search);

CREATE TABLE texts (
    id TEXT PRIMARY KEY,
    organization_id TEXT NOT NULL REFERENCES organizations(id),
    phone_number_id TEXT NOT NULL REFERENCES phone_numbers(id),
    direction TEXT NOT NULL,
    local_phone_number TEXT NOT NULL,
    remote_phone_number TEXT NOT NULL,
    text TEXT,
    type TEXT NOT NULL,
    media JSONB,
    status TEXT NOT NULL,
    is_read BOOLEAN NOT NULL,
    carrier_message_id TEXT,
    delivery_status TEXT,
    created_at TIMESTAMPTZ NOT NULL,
    updated_at TIMESTAMPTZ NOT NULL,
    search TSVECTOR GENERATED ALWAYS AS (to_tsvector('english', coalesce(text, ''))) STORED
);
CREATE INDEX texts_search ON texts USING GIN (search);
CREATE UNIQUE INDEX texts_carrier_message ON texts (phone_number_id, carrier_message_id)
    WHERE carrier_message_id IS NOT NULL;
CREATE INDEX texts_number_created ON texts (phone_number_id, created_at DESC);
CREATE INDEX texts_conversation ON texts (phone_number_id, remote_phone_number, created_at DESC);

CREATE TABLE events (
    id TEXT PRIMARY KEY,
    event_type TEXT NOT NULL,
    organization_id TEXT NOT NULL,
    phone_number_id TEXT,
    agent_identity_id TEXT,
    data JSONB NOT NULL,
    created_at TIMESTAMPTZ NOT NULL
);
CREATE INDEX events_org_created ON events (organization_id, created_at DESC);
