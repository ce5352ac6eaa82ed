-- 0001_init creates the relay's durable state: message ids seen, subject stages, the events that
-- deliveries refer to, the outbox of deliveries, and settings.
--
-- Times are unix nanoseconds (UTC) in BIGINT columns rather than timestamptz, which keeps only
-- microseconds: a lease's end is the token that Settle and Release present, and it must come back
-- exactly as Claim computed it. Every time is the caller's, never the server's clock.

-- seen records every webhook-id ingested, so that a retried message is recognised. Its primary
-- key is what makes a message count once, however many replicas receive it at the same time.
CREATE TABLE seen (
	message_id TEXT   PRIMARY KEY,
	seen_at    BIGINT NOT NULL
);

CREATE INDEX seen_seen_at ON seen (seen_at);

-- subjects records the highest lifecycle stage seen for each prediction or training, so that
-- an event older than one already seen is recognised as stale.
CREATE TABLE subjects (
	kind       TEXT    NOT NULL,
	subject_id TEXT    NOT NULL,
	stage      INTEGER NOT NULL,
	updated_at BIGINT  NOT NULL,
	PRIMARY KEY (kind, subject_id)
);

CREATE INDEX subjects_updated_at ON subjects (updated_at);

-- events holds the events that deliveries and digest items are about; an event that creates
-- neither is not kept.
CREATE TABLE events (
	id          BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
	message_id  TEXT   NOT NULL,
	kind        TEXT   NOT NULL,
	subject_id  TEXT   NOT NULL,
	status      TEXT   NOT NULL,
	received_at BIGINT NOT NULL,
	meta        JSONB  NOT NULL,
	body        BYTEA  NOT NULL
);

-- deliveries is the outbox: one row per event transition, rule and notifier, which the unique
-- constraint guarantees across replicas. Identity ids come from a sequence and are never reused
-- after a prune, so that a late Settle can never hit another delivery. lease_until is set while
-- the delivery is sending: it is the token of the claim that holds it.
CREATE TABLE deliveries (
	id          BIGINT  GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
	event_id    BIGINT  NOT NULL REFERENCES events (id),
	kind        TEXT    NOT NULL,
	subject_id  TEXT    NOT NULL,
	status      TEXT    NOT NULL,
	rule        TEXT    NOT NULL,
	notifier    TEXT    NOT NULL,
	template    TEXT    NOT NULL,
	state       TEXT    NOT NULL CHECK (state IN ('pending', 'sending', 'sent', 'dead')),
	attempts    INTEGER NOT NULL DEFAULT 0,
	next_at     BIGINT  NOT NULL,
	lease_until BIGINT,
	last_error  TEXT    NOT NULL DEFAULT '',
	ref         TEXT    NOT NULL DEFAULT '',
	created_at  BIGINT  NOT NULL,
	updated_at  BIGINT  NOT NULL,
	CONSTRAINT deliveries_transition UNIQUE (kind, subject_id, status, rule, notifier)
);

-- deliveries_due serves Claim's pending branch in (next_at, id) order, deliveries_lease its
-- expired-lease branch, and deliveries_done Prune. Each is partial, so that it holds only the
-- rows its query looks for: the many sent rows do not weigh on the claims.
-- deliveries_event finds an event's deliveries (pruning, and the foreign key).
CREATE INDEX deliveries_due ON deliveries (next_at, id) WHERE state = 'pending';
CREATE INDEX deliveries_lease ON deliveries (lease_until) WHERE state = 'sending';
CREATE INDEX deliveries_done ON deliveries (updated_at) WHERE state IN ('sent', 'dead');
CREATE INDEX deliveries_event ON deliveries (event_id);

-- settings holds values that must stay the same across restarts and replicas once chosen.
CREATE TABLE settings (
	key   TEXT PRIMARY KEY,
	value TEXT NOT NULL
);
