-- The offer ids of a live chat's record (its open offer, its open transfer or invite) in columns of
-- their own, written beside the record, with UNIQUE indexes over only the rows that hold one: the
-- same guard as the indexes over the record's JSON (0004), at a fraction of the cost of a write
-- (no JSON parsed by SQLite, and indexes as small as the number of open offers).
ALTER TABLE live_chats ADD COLUMN offer_id TEXT;
ALTER TABLE live_chats ADD COLUMN handoff_id TEXT;
UPDATE live_chats SET
    offer_id = CASE WHEN json_valid(record) THEN json_extract(record, '$.offer.id') END,
    handoff_id = CASE WHEN json_valid(record) THEN json_extract(record, '$.handoff.id') END;
DROP INDEX IF EXISTS live_chats_by_offer;
DROP INDEX IF EXISTS live_chats_by_handoff;
CREATE UNIQUE INDEX live_chats_by_offer ON live_chats (offer_id) WHERE offer_id IS NOT NULL;
CREATE UNIQUE INDEX live_chats_by_handoff ON live_chats (handoff_id) WHERE handoff_id IS NOT NULL;
