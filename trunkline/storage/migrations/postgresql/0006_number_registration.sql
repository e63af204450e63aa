-- Numbers whose carrier delivers calls to a registered contact: trunkline keeps a
-- REGISTER binding at the registrar (default: the trunk address) and records its status.
-- Version 0006 matches the SQLite migration of the same change.
ALTER TABLE phone_numbers ADD COLUMN sip_register BOOLEAN NOT NULL DEFAULT FALSE;
ALTER TABLE phone_numbers ADD COLUMN registrar TEXT;
ALTER TABLE phone_numbers ADD COLUMN registration_state TEXT;
ALTER TABLE phone_numbers ADD COLUMN registration_expires_at TIMESTAMPTZ;
ALTER TABLE phone_numbers ADD COLUMN registration_error TEXT;
