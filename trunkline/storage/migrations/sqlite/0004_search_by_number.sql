-- Full-text indexes carry the owning number as a single token, so a search
-- intersects "this number" with the query words inside the index instead of
-- filtering every match of a common word afterwards.
DROP TRIGGER transcript_segments_fts_insert;
DROP TRIGGER transcript_segments_fts_delete;
DROP TABLE transcript_segments_fts;
DROP TRIGGER texts_fts_insert;
DROP TRIGGER texts_fts_delete;
DROP TABLE texts_fts;

CREATE VIEW texts_search_source AS
SELECT rowid AS source_rowid, coalesce(text, '') AS text,
    'n' || replace(phone_number_id, '-', '') AS number_key
FROM texts;
CREATE VIRTUAL TABLE texts_fts USING fts5(
    text, number_key, content='texts_search_source', content_rowid='source_rowid',
    tokenize='porter unicode61'
);
CREATE TRIGGER texts_fts_insert AFTER INSERT ON texts BEGIN
    INSERT INTO texts_fts (rowid, text, number_key)
    VALUES (new.rowid, coalesce(new.text, ''), 'n' || replace(new.phone_number_id, '-', ''));
END;
CREATE TRIGGER texts_fts_delete AFTER DELETE ON texts BEGIN
    INSERT INTO texts_fts (texts_fts, rowid, text, number_key)
    VALUES ('delete', old.rowid, coalesce(old.text, ''), 'n' || replace(old.phone_number_id, '-', ''));
END;
INSERT INTO texts_fts (rowid, text, number_key)
SELECT rowid, coalesce(text, ''), 'n' || replace(phone_number_id, '-', '') FROM texts;

CREATE VIEW transcript_segments_search_source AS
SELECT s.rowid AS source_rowid, s.text AS text,
    'n' || replace(c.phone_number_id, '-', '') AS number_key
FROM transcript_segments s JOIN calls c ON c.id = s.call_id;
CREATE VIRTUAL TABLE transcript_segments_fts USING fts5(
    text, number_key, content='transcript_segments_search_source', content_rowid='source_rowid',
    tokenize='porter unicode61'
);
CREATE TRIGGER transcript_segments_fts_insert AFTER INSERT ON transcript_segments BEGIN
    INSERT INTO transcript_segments_fts (rowid, text, number_key)
    VALUES (new.rowid, new.text, (
        SELECT 'n' || replace(phone_number_id, '-', '') FROM calls WHERE id = new.call_id));
END;
CREATE TRIGGER transcript_segments_fts_delete AFTER DELETE ON transcript_segments BEGIN
    INSERT INTO transcript_segments_fts (transcript_segments_fts, rowid, text, number_key)
    VALUES ('delete', old.rowid, old.text, (
        SELECT 'n' || replace(phone_number_id, '-', '') FROM calls WHERE id = old.call_id));
END;
INSERT INTO transcript_segments_fts (rowid, text, number_key)
SELECT s.rowid, s.text, 'n' || replace(c.phone_number_id, '-', '')
FROM transcript_segments s JOIN calls c ON c.id = s.call_id;
