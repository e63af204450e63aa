-- One summary row per (number, remote party), kept current by the repository,
-- so listing conversations does not aggregate every text of a busy number.
CREATE TABLE conversations (
    phone_number_id TEXT NOT NULL REFERENCES phone_numbers(id),
    remote_phone_number TEXT NOT NULL,
    latest_text_id TEXT NOT NULL,
    latest_message_at TIMESTAMPTZ_ISO NOT NULL,
    unread_count INTEGER NOT NULL,
    total_count INTEGER NOT NULL,
    PRIMARY KEY (phone_number_id, remote_phone_number)
);
CREATE INDEX conversations_latest ON conversations (phone_number_id, latest_message_at DESC);
CREATE INDEX texts_unread ON texts (phone_number_id, is_read, created_at DESC);
INSERT INTO conversations
SELECT phone_number_id, remote_phone_number, id, created_at, unread, total FROM (
    SELECT phone_number_id, remote_phone_number, id, created_at,
        ROW_NUMBER() OVER (PARTITION BY phone_number_id, remote_phone_number
            ORDER BY created_at DESC, id DESC) AS position,
        SUM(CASE WHEN is_read THEN 0 ELSE 1 END)
            OVER (PARTITION BY phone_number_id, remote_phone_number) AS unread,
        COUNT(*) OVER (PARTITION BY phone_number_id, remote_phone_number) AS total
    FROM texts WHERE status <> 'deleted'
) ranked WHERE position = 1;
