package postgres

import (
	"context"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/mlrelay/relay/relay"
	"github.com/mlrelay/relay/relay/replicate"
)

const (
	// claimSQL leases the deliveries due at $1, at most $2, in (next_at, id) order, until $3, in
	// one statement. Each branch (pending and due; sending with an expired lease) walks its own
	// partial index and locks what it picks with FOR UPDATE SKIP LOCKED: rows another claim is
	// taking are passed over rather than waited for, and a row another claim took since this
	// statement's snapshot fails the re-check of its branch's condition on the row's new version:
	// a delivery is held by one claim at a time, whichever replica made it. Rows a branch locked
	// that the final LIMIT leaves out are held only until the statement commits.
	claimSQL = `WITH pending AS (
			SELECT id, next_at FROM deliveries
			WHERE state = 'pending' AND next_at <= $1
			ORDER BY next_at, id LIMIT $2
			FOR UPDATE SKIP LOCKED
		), expired AS (
			SELECT id, next_at FROM deliveries
			WHERE state = 'sending' AND lease_until <= $1
			ORDER BY next_at, id LIMIT $2
			FOR UPDATE SKIP LOCKED
		), due AS (
			SELECT id FROM (SELECT * FROM pending UNION ALL SELECT * FROM expired) AS u
			ORDER BY next_at, id LIMIT $2
		), claimed AS (
			UPDATE deliveries d SET state = 'sending', lease_until = $3, updated_at = $1
			FROM due WHERE d.id = due.id
			RETURNING d.id, d.event_id, d.rule, d.notifier, d.template, d.attempts, d.next_at, d.created_at
		)
		SELECT c.id, c.rule, c.notifier, c.template, c.attempts, c.created_at,
			e.message_id, e.kind, e.meta, e.body, e.received_at
		FROM claimed c JOIN events e ON e.id = c.event_id
		ORDER BY c.next_at, c.id`

	// settleSQL records an attempt's outcome ($1) on delivery $7 while it is claimed under the
	// lease ending at $8: one that was settled or released since, or taken over by another
	// claimant after the lease expired (which gave it a later lease_until), is left alone. It
	// returns whether it recorded the outcome, and the delivery's state and lease as they were,
	// to explain a refusal.
	settleSQL = `WITH settled AS (
			UPDATE deliveries SET
				state = $1::text,
				attempts = $2,
				next_at = CASE WHEN $1::text = 'pending' THEN $3::bigint ELSE next_at END,
				last_error = CASE WHEN $1::text = 'sent' THEN '' WHEN $4::text = '' THEN last_error ELSE $4::text END,
				ref = CASE WHEN $1::text = 'sent' THEN $5::text ELSE ref END,
				lease_until = NULL,
				updated_at = $6
			WHERE id = $7 AND state = 'sending' AND lease_until = $8
			RETURNING 1
		)
		SELECT EXISTS (SELECT FROM settled), d.state, d.lease_until
		FROM (SELECT) AS one LEFT JOIN deliveries d ON d.id = $7`

	// releaseSQL returns the deliveries $2 claimed under the leases ending at $3 to pending.
	// Their next_at is left as it was: they were due when claimed, so they are due again at once
	// and keep their place ahead of later deliveries.
	releaseSQL = `UPDATE deliveries d SET state = 'pending', lease_until = NULL, updated_at = $1
		FROM unnest($2::bigint[], $3::bigint[]) AS l (id, until)
		WHERE d.id = l.id AND d.state = 'sending' AND d.lease_until = l.until`

	deliveriesSQL = `SELECT d.id, d.rule, d.notifier, d.state, d.attempts, d.next_at, d.last_error, d.ref,
			d.kind, d.subject_id, d.status, e.message_id, d.created_at, d.updated_at
		FROM deliveries d JOIN events e ON e.id = d.event_id
		WHERE $1 = '' OR d.state = $1
		ORDER BY d.id DESC
		LIMIT $2`
)

// Claim leases up to limit deliveries due at now; see relay.Store. Each one's LeaseUntil is
// now+lease to the nanosecond, as stored.
func (s *Store) Claim(ctx context.Context, now time.Time, lease time.Duration, limit int) ([]relay.Delivery, error) {
	if limit <= 0 {
		return nil, nil
	}
	if lease <= 0 {
		return nil, fmt.Errorf("postgres: claim: lease must be positive, got %v", lease)
	}
	until := now.Add(lease).UnixNano()
	var ds []relay.Delivery
	err := s.do(ctx, func(c *pgx.Conn) error {
		ds = nil
		rows, err := c.Query(ctx, claimSQL, now.UnixNano(), limit, until)
		if err != nil {
			return err
		}
		defer rows.Close()
		for rows.Next() {
			var (
				d                   relay.Delivery
				kind                string
				created, receivedAt int64
			)
			if err := rows.Scan(&d.ID, &d.Rule, &d.Notifier, &d.Template, &d.Attempts, &created,
				&d.MessageID, &kind, &d.Meta, &d.Body, &receivedAt); err != nil {
				return err
			}
			d.Kind = relay.Kind(kind)
			d.CreatedAt, d.ReceivedAt, d.LeaseUntil = fromNanos(created), fromNanos(receivedAt), fromNanos(until)
			ds = append(ds, d)
		}
		return rows.Err()
	})
	if err != nil {
		return nil, fmt.Errorf("postgres: claim: %w", err)
	}
	return ds, nil
}

// Settle records the outcomes of attempts, in one transaction (one pipeline); see relay.Store. A
// settlement whose delivery does not exist or is no longer claimed under its lease (settled or
// released since, or taken over by another claimant after the lease expired) changes nothing and
// gets an Err wrapping relay.ErrNotClaimed. A zero At means now; a Pending settlement with a zero
// NextAt is due at At.
func (s *Store) Settle(ctx context.Context, batch []*relay.Settlement) error {
	for _, st := range batch {
		switch st.State {
		case relay.Sent, relay.Pending, relay.Dead:
		default:
			return fmt.Errorf("postgres: settle delivery %d: cannot settle as %q", st.Lease.ID, st.State)
		}
	}
	if len(batch) == 0 {
		return nil
	}
	now := time.Now().UnixNano()
	err := s.do(ctx, func(c *pgx.Conn) error {
		b := &pgx.Batch{}
		for _, st := range batch {
			st.Err = nil
			l := st.Lease
			at := nanos(st.At, now)
			b.Queue(settleSQL, string(st.State), st.Attempts, nanos(st.NextAt, at), st.LastError, st.Ref, at,
				l.ID, l.Until.UnixNano()).
				QueryRow(func(row pgx.Row) error {
					var (
						recorded bool
						state    *string
						until    *int64
					)
					if err := row.Scan(&recorded, &state, &until); err != nil {
						return fmt.Errorf("delivery %d: %w", l.ID, err)
					}
					if !recorded {
						st.Err = notClaimed(l, state, until)
					}
					return nil
				})
		}
		return pgx.BeginFunc(ctx, c, func(tx pgx.Tx) error {
			if err := relaxCommit(ctx, tx); err != nil {
				return err
			}
			return tx.SendBatch(ctx, b).Close()
		})
	})
	if err != nil {
		for _, st := range batch {
			st.Err = nil
		}
		return fmt.Errorf("postgres: settle: %w", err)
	}
	return nil
}

// relaxCommit lets the transaction commit without waiting for its WAL to reach the disk, as the
// SQLite store's outcomes and releases do (synchronous=NORMAL): they survive the relay
// crashing, and a crash of the database server itself can lose the last of them, which costs
// at worst a notification sent again, never one lost. Ingests and digest closes keep the
// server's setting: what a 2xx acknowledged is on disk.
func relaxCommit(ctx context.Context, tx pgx.Tx) error {
	_, err := tx.Exec(ctx, "SET LOCAL synchronous_commit = off")
	return err
}

// notClaimed explains why a settlement under l changed nothing, from the delivery's state and
// lease (nil when it does not exist).
func notClaimed(l relay.Lease, state *string, until *int64) error {
	switch {
	case state == nil:
		return fmt.Errorf("postgres: settle delivery %d: no such delivery: %w", l.ID, relay.ErrNotClaimed)
	case *state == string(relay.Sending) && until != nil:
		return fmt.Errorf("postgres: settle delivery %d: %w (it is claimed under another lease, until %s; this one ends %s)",
			l.ID, relay.ErrNotClaimed, fromNanos(*until).Format(time.RFC3339Nano), l.Until.UTC().Format(time.RFC3339Nano))
	}
	return fmt.Errorf("postgres: settle delivery %d: %w (it is %s)", l.ID, relay.ErrNotClaimed, *state)
}

// Release returns deliveries still claimed under the given leases to pending, due at once,
// without counting an attempt; see relay.Store. Leases that no longer hold are skipped, so that
// a release can never resend a delivery already settled, nor take one from its new claimant.
func (s *Store) Release(ctx context.Context, leases []relay.Lease) error {
	if len(leases) == 0 {
		return nil
	}
	ids := make([]int64, len(leases))
	untils := make([]int64, len(leases))
	for i, l := range leases {
		ids[i], untils[i] = l.ID, l.Until.UnixNano()
	}
	err := s.do(ctx, func(c *pgx.Conn) error {
		return pgx.BeginFunc(ctx, c, func(tx pgx.Tx) error {
			if err := relaxCommit(ctx, tx); err != nil {
				return err
			}
			_, err := tx.Exec(ctx, releaseSQL, time.Now().UnixNano(), ids, untils)
			return err
		})
	})
	if err != nil {
		return fmt.Errorf("postgres: release: %w", err)
	}
	return nil
}

// Deliveries lists deliveries, newest first; see relay.Store. A limit of 0 or less means all.
func (s *Store) Deliveries(ctx context.Context, state relay.State, limit int) ([]relay.DeliveryInfo, error) {
	var lim any // NULL: no limit
	if limit > 0 {
		lim = limit
	}
	var out []relay.DeliveryInfo
	err := s.do(ctx, func(c *pgx.Conn) error {
		out = nil
		rows, err := c.Query(ctx, deliveriesSQL, string(state), lim)
		if err != nil {
			return err
		}
		defer rows.Close()
		for rows.Next() {
			var (
				d                          relay.DeliveryInfo
				st, kind, status           string
				nextAt, created, updatedAt int64
			)
			if err := rows.Scan(&d.ID, &d.Rule, &d.Notifier, &st, &d.Attempts, &nextAt, &d.LastError, &d.Ref,
				&kind, &d.SubjectID, &status, &d.MessageID, &created, &updatedAt); err != nil {
				return err
			}
			d.State, d.Kind, d.Status = relay.State(st), relay.Kind(kind), replicate.Status(status)
			d.NextAt, d.CreatedAt, d.UpdatedAt = fromNanos(nextAt), fromNanos(created), fromNanos(updatedAt)
			out = append(out, d)
		}
		return rows.Err()
	})
	if err != nil {
		return nil, fmt.Errorf("postgres: deliveries: %w", err)
	}
	return out, nil
}

// pruneChunk is how many rows Prune deletes per transaction, so that a large prune (the first
// after a long stop, say) is many short transactions rather than one long one.
const pruneChunk = 1000

// The statements of Prune, each deleting at most $2 rows older than $1 and returning how many it
// deleted. Each runs in a
// transaction that holds the prune lock, so that replicas pruning at once take turns: two
// transactions deleting different deliveries of one event would each still see the other's, and
// neither would delete the event.
const (
	pruneSeenSQL = `WITH gone AS (
			DELETE FROM seen WHERE message_id IN
				(SELECT message_id FROM seen WHERE seen_at < $1 LIMIT $2)
			RETURNING 1
		)
		SELECT count(*) FROM gone`
	pruneSubjectsSQL = `WITH gone AS (
			DELETE FROM subjects WHERE (kind, subject_id) IN
				(SELECT kind, subject_id FROM subjects WHERE updated_at < $1 LIMIT $2)
			RETURNING 1
		)
		SELECT count(*) FROM gone`
	pruneLaunchesSQL = `WITH gone AS (
			DELETE FROM launches WHERE prediction_id IN
				(SELECT prediction_id FROM launches WHERE created_at < $1 LIMIT $2)
			RETURNING 1
		)
		SELECT count(*) FROM gone`

	// pruneDeliveriesSQL deletes finished deliveries with the events nothing else refers to
	// (counting the deliveries only). The events' check excludes the deliveries being
	// deleted, which the statement's snapshot still shows.
	pruneDeliveriesSQL = `WITH gone AS (
			DELETE FROM deliveries WHERE id IN
				(SELECT id FROM deliveries WHERE state IN ('sent', 'dead') AND updated_at < $1 LIMIT $2)
			RETURNING id, event_id
		), dropped AS (
			DELETE FROM events e WHERE e.id IN (SELECT event_id FROM gone)
				AND NOT EXISTS (SELECT FROM deliveries d WHERE d.event_id = e.id AND d.id NOT IN (SELECT id FROM gone))
				AND NOT EXISTS (SELECT FROM digest_items i WHERE i.event_id = e.id)
		)
		SELECT count(*) FROM gone`

	// pruneDigestItemsSQL deletes the items of digest periods that closed before $1, likewise
	// with their events. The periods themselves are kept: they are small, and the last one says
	// where the next period starts.
	pruneDigestItemsSQL = `WITH gone AS (
			DELETE FROM digest_items WHERE id IN
				(SELECT i.id FROM digest_periods p JOIN digest_items i ON i.period_id = p.id
					WHERE p.period_end < $1 LIMIT $2)
			RETURNING id, event_id
		), dropped AS (
			DELETE FROM events e WHERE e.id IN (SELECT event_id FROM gone)
				AND NOT EXISTS (SELECT FROM deliveries d WHERE d.event_id = e.id)
				AND NOT EXISTS (SELECT FROM digest_items i WHERE i.event_id = e.id AND i.id NOT IN (SELECT id FROM gone))
		)
		SELECT count(*) FROM gone`
)

// Prune forgets old message ids, subject stages, launches, finished deliveries and the items of
// old digest periods; see relay.Store. Pending and sending deliveries, and the events they refer
// to, are always kept.
func (s *Store) Prune(ctx context.Context, seenBefore, doneBefore time.Time) error {
	seen, done := seenBefore.UnixNano(), doneBefore.UnixNano()
	for _, p := range []struct {
		query  string
		before int64
	}{
		{pruneSeenSQL, seen},
		{pruneSubjectsSQL, seen},
		{pruneLaunchesSQL, done},
		{pruneDeliveriesSQL, done},
		{pruneDigestItemsSQL, done},
	} {
		for {
			n, err := s.pruneChunk(ctx, p.query, p.before)
			if err != nil {
				return fmt.Errorf("postgres: prune: %w", err)
			}
			if n < pruneChunk {
				break
			}
		}
	}
	return nil
}

// pruneChunk runs one of Prune's statements under the prune lock, in one transaction (one
// pipeline), and returns how many rows it deleted.
func (s *Store) pruneChunk(ctx context.Context, query string, before int64) (int64, error) {
	var n int64
	err := s.do(ctx, func(c *pgx.Conn) error {
		b := &pgx.Batch{}
		b.Queue(lockSQL, lockPrune, "prune")
		b.Queue(query, before, pruneChunk).QueryRow(func(row pgx.Row) error { return row.Scan(&n) })
		return c.SendBatch(ctx, b).Close()
	})
	return n, err
}

// EnsureSetting stores value under key unless the key is set, and returns the stored value; see
// relay.Store. The no-op update on conflict makes RETURNING give the stored row in one statement,
// even when another replica's insert of the key commits while this one waits for it: a separate
// SELECT would run on a snapshot taken before that commit.
func (s *Store) EnsureSetting(ctx context.Context, key, value string) (string, error) {
	var stored string
	err := s.do(ctx, func(c *pgx.Conn) error {
		return c.QueryRow(ctx, `INSERT INTO settings (key, value) VALUES ($1, $2)
			ON CONFLICT (key) DO UPDATE SET value = settings.value
			RETURNING value`, key, value).Scan(&stored)
	})
	if err != nil {
		return "", fmt.Errorf("postgres: setting %s: %w", key, err)
	}
	return stored, nil
}
