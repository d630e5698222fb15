-- Each agent's seats in live chats, counted (engine/store/journal.py, Rule 6): triggers on
-- live_members keep the count, so that checking a seat against the agent's capacity reads one row
-- instead of counting every chat the agent holds. Filled from live_members as it stands.
CREATE TABLE IF NOT EXISTS agent_seats (
    agent_id TEXT PRIMARY KEY,
    seats INTEGER NOT NULL
);
INSERT OR REPLACE INTO agent_seats (agent_id, seats)
    SELECT agent_id, count(*) FROM live_members GROUP BY agent_id;
CREATE TRIGGER IF NOT EXISTS live_members_seat_taken AFTER INSERT ON live_members
BEGIN
    INSERT OR IGNORE INTO agent_seats (agent_id, seats) VALUES (NEW.agent_id, 0);
    UPDATE agent_seats SET seats = seats + 1 WHERE agent_id = NEW.agent_id;
END;
CREATE TRIGGER IF NOT EXISTS live_members_seat_freed AFTER DELETE ON live_members
BEGIN
    UPDATE agent_seats SET seats = seats - 1 WHERE agent_id = OLD.agent_id;
END;
