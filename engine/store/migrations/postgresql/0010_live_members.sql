-- Who is in each live chat, one row per agent and chat (engine/store/journal.py, Rule 6): an
-- agent's load across every department is a count of its rows, which the transaction that gives
-- it a chat checks against its capacity. Filled from the records journaled before it existed (a
-- record that does not parse is left to the journal's salvage at start).
CREATE TABLE live_members (
    agent_id TEXT NOT NULL,
    chat_id TEXT NOT NULL,
    PRIMARY KEY (agent_id, chat_id)
);
CREATE INDEX live_members_by_chat ON live_members (chat_id);
CREATE FUNCTION helpline_members(doc TEXT) RETURNS SETOF TEXT
    LANGUAGE plpgsql IMMUTABLE AS $$
BEGIN
    IF jsonb_typeof(doc::jsonb -> 'members') = 'array' THEN
        RETURN QUERY SELECT jsonb_array_elements_text(doc::jsonb -> 'members');
    END IF;
EXCEPTION WHEN others THEN
    RETURN;
END;
$$;
INSERT INTO live_members (agent_id, chat_id)
    SELECT m, c.chat_id FROM live_chats c, helpline_members(c.record) m
    ON CONFLICT DO NOTHING;
DROP FUNCTION helpline_members(TEXT);
