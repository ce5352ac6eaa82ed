-- 0002_digests adds digests: the events collected for each digest until its period closes, and
-- the periods closed so far.

-- digest_periods records each closed period of a digest. CloseDigest serialises the closers of
-- one digest with an advisory lock; the unique end is the constraint behind it, so that a period
-- is recorded once whichever replica gets there first.
CREATE TABLE digest_periods (
	id           BIGINT  GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
	digest       TEXT    NOT NULL,
	period_start BIGINT  NOT NULL,
	period_end   BIGINT  NOT NULL,
	items        INTEGER NOT NULL,
	closed_at    BIGINT  NOT NULL,
	CONSTRAINT digest_periods_once UNIQUE (digest, period_end)
);

-- digest_items holds one row per event transition collected for a digest: a terminal status
-- that arrives in two messages is collected once. period_id is NULL until the item's period
-- closes; then the item belongs to exactly that period.
CREATE TABLE digest_items (
	id          BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
	digest      TEXT   NOT NULL,
	event_id    BIGINT NOT NULL REFERENCES events (id),
	kind        TEXT   NOT NULL,
	subject_id  TEXT   NOT NULL,
	status      TEXT   NOT NULL,
	received_at BIGINT NOT NULL,
	period_id   BIGINT REFERENCES digest_periods (id),
	CONSTRAINT digest_items_transition UNIQUE (digest, kind, subject_id, status)
);

-- digest_items_open serves closing a period (and previews): the open items of a digest in
-- order of arrival. digest_items_event protects events from pruning while an item needs them,
-- digest_items_period and digest_periods_end find the items of old periods for pruning.
CREATE INDEX digest_items_open ON digest_items (digest, received_at, id) WHERE period_id IS NULL;
CREATE INDEX digest_items_event ON digest_items (event_id);
CREATE INDEX digest_items_period ON digest_items (period_id) WHERE period_id IS NOT NULL;
CREATE INDEX digest_periods_end ON digest_periods (period_end);
