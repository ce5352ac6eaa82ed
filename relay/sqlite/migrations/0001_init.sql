-- 0001_init creates the relay's durable state: message ids seen, subject stages, the events that
-- deliveries refer to, the outbox of deliveries, and settings. Times are unix nanoseconds (UTC).

-- seen records every webhook-id ingested, so that a retried message is recognised.
CREATE TABLE seen (
	message_id TEXT PRIMARY KEY,
	seen_at    INTEGER NOT NULL
) WITHOUT ROWID;

CREATE INDEX seen_seen_at ON seen (seen_at);

-- subjects records the highest lifecycle stage seen for each prediction or training, so that
-- an event older than one already seen is recognised as stale.
CREATE TABLE subjects (
	kind       TEXT    NOT NULL,
	subject_id TEXT    NOT NULL,
	stage      INTEGER NOT NULL,
	updated_at INTEGER NOT NULL,
	PRIMARY KEY (kind, subject_id)
) WITHOUT ROWID;

CREATE INDEX subjects_updated_at ON subjects (updated_at);

-- events holds the events that deliveries are about; an event without deliveries is not kept.
CREATE TABLE events (
	id          INTEGER PRIMARY KEY,
	message_id  TEXT    NOT NULL,
	kind        TEXT    NOT NULL,
	subject_id  TEXT    NOT NULL,
	status      TEXT    NOT NULL,
	received_at INTEGER NOT NULL,
	meta        TEXT    NOT NULL,
	body        BLOB    NOT NULL
);

-- deliveries is the outbox: one row per event transition, rule and notifier. AUTOINCREMENT keeps
-- ids from being reused after a prune, so that a late Settle can never hit another delivery.
CREATE TABLE deliveries (
	id          INTEGER PRIMARY KEY AUTOINCREMENT,
	event_id    INTEGER NOT NULL REFERENCES events (id),
	kind        TEXT    NOT NULL,
	subject_id  TEXT    NOT NULL,
	status      TEXT    NOT NULL,
	rule        TEXT    NOT NULL,
	notifier    TEXT    NOT NULL,
	template    TEXT    NOT NULL,
	state       TEXT    NOT NULL CHECK (state IN ('pending', 'sending', 'sent', 'dead')),
	attempts    INTEGER NOT NULL DEFAULT 0,
	next_at     INTEGER NOT NULL,
	lease_until INTEGER,
	last_error  TEXT    NOT NULL DEFAULT '',
	ref         TEXT    NOT NULL DEFAULT '',
	created_at  INTEGER NOT NULL,
	updated_at  INTEGER NOT NULL,
	UNIQUE (kind, subject_id, status, rule, notifier)
);

-- deliveries_due serves Claim's pending branch in (next_at, id) order, deliveries_lease its
-- expired-lease branch, and deliveries_done Prune. Each is partial, so that it holds only the
-- rows its query looks for: the many sent rows do not weigh on the claims.
-- deliveries_event finds an event's deliveries.
CREATE INDEX deliveries_due ON deliveries (next_at) WHERE state = 'pending';
CREATE INDEX deliveries_lease ON deliveries (lease_until) WHERE state = 'sending';
CREATE INDEX deliveries_done ON deliveries (updated_at) WHERE state IN ('sent', 'dead');
CREATE INDEX deliveries_event ON deliveries (event_id);

-- settings holds values that must stay the same across restarts and processes once chosen.
CREATE TABLE settings (
	key   TEXT PRIMARY KEY,
	value TEXT NOT NULL
) WITHOUT ROWID;
