-- A canned message's title, the shortcut an agent types after '#', and the title's reading (the
-- kana of a Japanese title), all searched by suggestions; empty when the message has none.
ALTER TABLE canned_messages ADD COLUMN title TEXT NOT NULL DEFAULT '';
ALTER TABLE canned_messages ADD COLUMN shortcut TEXT NOT NULL DEFAULT '';
ALTER TABLE canned_messages ADD COLUMN reading TEXT NOT NULL DEFAULT '';
