-- 0003_launches records the predictions started from chat, and where their results go back to.
-- Any replica may receive the completion webhook, so every replica must find the launch here.
CREATE TABLE launches (
	prediction_id TEXT   PRIMARY KEY,
	model         TEXT   NOT NULL,
	guild_id      TEXT   NOT NULL,
	channel_id    TEXT   NOT NULL,
	user_id       TEXT   NOT NULL,
	token         TEXT   NOT NULL,
	token_expires BIGINT NOT NULL,
	created_at    BIGINT NOT NULL
);

CREATE INDEX launches_created_at ON launches (created_at);
