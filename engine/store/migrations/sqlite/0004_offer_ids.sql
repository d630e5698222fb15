-- An offer id (a chat's open offer, or its open transfer or invite) names one offer only. The
-- records are JSON; one that does not parse is left to the journal's salvage at start.
CREATE UNIQUE INDEX IF NOT EXISTS live_chats_by_offer
    ON live_chats (CASE WHEN json_valid(record) THEN json_extract(record, '$.offer.id') END);
CREATE UNIQUE INDEX IF NOT EXISTS live_chats_by_handoff
    ON live_chats (CASE WHEN json_valid(record) THEN json_extract(record, '$.handoff.id') END);
