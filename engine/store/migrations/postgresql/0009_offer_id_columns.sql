-- The offer ids of a live chat's record (its open offer, its open transfer or invite) in columns of
-- their own, written beside the record, with UNIQUE indexes over only the rows that hold one: the
-- same guard as the indexes over the record's JSON (0001), without parsing the record at every
-- write, and indexes as small as the number of open offers.
ALTER TABLE live_chats ADD COLUMN offer_id TEXT;
ALTER TABLE live_chats ADD COLUMN handoff_id TEXT;
UPDATE live_chats SET
    offer_id = helpline_offer_id(record, 'offer'),
    handoff_id = helpline_offer_id(record, 'handoff');
DROP INDEX live_chats_by_offer;
DROP INDEX live_chats_by_handoff;
DROP FUNCTION helpline_offer_id(TEXT, TEXT);
CREATE UNIQUE INDEX live_chats_by_offer ON live_chats (offer_id) WHERE offer_id IS NOT NULL;
CREATE UNIQUE INDEX live_chats_by_handoff ON live_chats (handoff_id) WHERE handoff_id IS NOT NULL;
