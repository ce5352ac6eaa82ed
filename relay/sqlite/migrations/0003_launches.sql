-- 0003_launches records the predictions started from chat, and where their results go back to.
CREATE TABLE launches (
	prediction_id TEXT    PRIMARY KEY,
	model         TEXT    NOT NULL,
	guild_id      TEXT    NOT NULL,
	channel_id    TEXT    NOT NULL,
	user_id       TEXT    NOT NULL,
	token         TEXT    NOT NULL,
	token_expires INTEGER NOT NULL,
	created_at    INTEGER NOT NULL
) WITHOUT ROWID;

CREATE INDEX launches_created_at ON launches (created_at);
