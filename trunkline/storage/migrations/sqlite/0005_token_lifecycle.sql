-- Tokens get a display prefix (the first characters, enough to recognise one,
-- never enough to use it), an optional expiry and a revocation time.
ALTER TABLE api_tokens ADD COLUMN prefix TEXT;
ALTER TABLE api_tokens ADD COLUMN expires_at TIMESTAMPTZ_ISO;
ALTER TABLE api_tokens ADD COLUMN revoked_at TIMESTAMPTZ_ISO;
CREATE INDEX api_tokens_by_organization ON api_tokens (organization_id, created_at);
CREATE INDEX api_tokens_by_prefix ON api_tokens (prefix);
