-- The visitor's score of a chat, 1 to 5, beside its rating word; NULL when none was given.
ALTER TABLE tickets ADD COLUMN score INTEGER CHECK (score BETWEEN 1 AND 5);
