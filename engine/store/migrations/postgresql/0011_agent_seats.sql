-- Each agent's seats in live chats, counted (engine/store/journal.py, Rule 6): a trigger on
-- live_members keeps the count, so that checking a seat against the agent's capacity reads one row
-- instead of counting every chat the agent holds. Filled from live_members as it stands.
CREATE TABLE agent_seats (
    agent_id TEXT PRIMARY KEY,
    seats INTEGER NOT NULL
);
INSERT INTO agent_seats (agent_id, seats)
    SELECT agent_id, count(*) FROM live_members GROUP BY agent_id;
CREATE FUNCTION helpline_count_seats() RETURNS trigger
    LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'INSERT' THEN
        INSERT INTO agent_seats (agent_id, seats) VALUES (NEW.agent_id, 1)
            ON CONFLICT (agent_id) DO UPDATE SET seats = agent_seats.seats + 1;
    ELSE
        UPDATE agent_seats SET seats = seats - 1 WHERE agent_id = OLD.agent_id;
    END IF;
    RETURN NULL;
END;
$$;
CREATE TRIGGER live_members_seats AFTER INSERT OR DELETE ON live_members
    FOR EACH ROW EXECUTE FUNCTION helpline_count_seats();
