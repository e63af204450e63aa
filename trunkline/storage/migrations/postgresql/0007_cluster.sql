-- Several nodes on one database: who holds a delivery's lease (so finishing it
-- checks the lease is still ours), each process's heartbeat (so a survivor can
-- end the calls of a process that died), and indexes for live calls by
-- organisation (the concurrent-call limit) and by owner (sweeps and takeover).
ALTER TABLE webhook_deliveries ADD COLUMN leased_by TEXT;

CREATE TABLE nodes (
    id TEXT PRIMARY KEY,
    address TEXT,
    started_at TIMESTAMPTZ NOT NULL,
    last_seen TIMESTAMPTZ NOT NULL,
    takeover_until TIMESTAMPTZ
);
CREATE INDEX nodes_last_seen ON nodes (last_seen);

CREATE INDEX calls_live_by_org ON calls (organization_id)
    WHERE status IN ('initiated', 'ringing', 'answered');
CREATE INDEX calls_live_by_owner ON calls (owner)
    WHERE status IN ('initiated', 'ringing', 'answered');
