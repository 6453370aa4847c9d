CREATE TABLE notes (id INTEGER PRIMARY KEY, title TEXT NOT NULL, body TEXT);
CREATE INDEX notes_title ON notes (title);
INSERT INTO notes (title) VALUES ('first');
