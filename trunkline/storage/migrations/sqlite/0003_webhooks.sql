-- Event webhook subscriptions, the delivery queue fed by the outbox, and the attempt log.
CREATE TABLE webhook_subscriptions (
    id TEXT PRIMARY KEY,
    organization_id TEXT NOT NULL REFERENCES organizations(id),
    agent_identity_id TEXT REFERENCES agent_identities(id),
    phone_number_id TEXT REFERENCES phone_numbers(id),
    url TEXT NOT NULL,
    event_types TEXT NOT NULL,
    status TEXT NOT NULL,
    auth_token_encrypted TEXT,
    disabled_reason TEXT,
    created_at TIMESTAMPTZ_ISO NOT NULL,
    updated_at TIMESTAMPTZ_ISO NOT NULL
);
CREATE INDEX webhook_subscriptions_org ON webhook_subscriptions (organization_id, status);

CREATE TABLE webhook_deliveries (
    id TEXT PRIMARY KEY,
    event_id TEXT NOT NULL REFERENCES events(id),
    subscription_id TEXT NOT NULL REFERENCES webhook_subscriptions(id),
    organization_id TEXT NOT NULL,
    state TEXT NOT NULL,
    attempts INTEGER NOT NULL,
    next_attempt_at TIMESTAMPTZ_ISO NOT NULL,
    leased_until TIMESTAMPTZ_ISO,
    updated_at TIMESTAMPTZ_ISO NOT NULL,
    UNIQUE (event_id, subscription_id)
);
CREATE INDEX webhook_deliveries_due ON webhook_deliveries (state, next_attempt_at);

CREATE TABLE webhook_attempts (
    id TEXT PRIMARY KEY,
    organization_id TEXT NOT NULL,
    subscription_id TEXT,
    phone_number_id TEXT,
    event_id TEXT NOT NULL,
    event_type TEXT NOT NULL,
    url TEXT NOT NULL,
    request_payload TEXT NOT NULL,
    response_status INTEGER,
    response_body TEXT,
    error_detail TEXT,
    duration_ms INTEGER,
    is_replay BOOLEAN NOT NULL,
    created_at TIMESTAMPTZ_ISO NOT NULL
);
CREATE INDEX webhook_attempts_org ON webhook_attempts (organization_id, created_at DESC);
CREATE INDEX webhook_attempts_subscription ON webhook_attempts (subscription_id, created_at DESC);
