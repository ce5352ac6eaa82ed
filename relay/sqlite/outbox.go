package sqlite

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/mlrelay/relay/relay"
	"github.com/mlrelay/relay/relay/replicate"
)

const (
	// claimDueSQL picks the deliveries due at ?1, at most ?2, in (next_at, id) order. Each branch
	// of the union walks its own partial index, so a long backlog of pending deliveries is never
	// sorted as a whole. The indexes are named because without statistics the planner may
	// prefer another.
	claimDueSQL = `SELECT d.id, d.rule, d.notifier, d.template, d.attempts, d.created_at,
			e.message_id, e.kind, e.meta, e.body, e.received_at
		FROM deliveries d JOIN events e ON e.id = d.event_id
		WHERE d.id IN (
			SELECT id FROM (SELECT id FROM deliveries INDEXED BY deliveries_due
				WHERE state = 'pending' AND next_at <= ?1 ORDER BY next_at, id LIMIT ?2)
			UNION ALL
			SELECT id FROM (SELECT id FROM deliveries INDEXED BY deliveries_lease
				WHERE state = 'sending' AND lease_until <= ?1 ORDER BY next_at, id LIMIT ?2))
		ORDER BY d.next_at, d.id
		LIMIT ?2`

	leaseSQL = `UPDATE deliveries SET state = 'sending', lease_until = ?, updated_at = ? WHERE id = ?`

	// settleSQL records an attempt's outcome (?1) on a delivery still claimed under the lease
	// ending at ?8: one that was settled or released since, or taken over by another claimant
	// after the lease expired (which gave it a later lease_until), is left alone.
	settleSQL = `UPDATE deliveries SET
			state = ?1,
			attempts = ?2,
			next_at = CASE WHEN ?1 = 'pending' THEN ?3 ELSE next_at END,
			last_error = CASE WHEN ?1 = 'sent' THEN '' WHEN ?4 = '' THEN last_error ELSE ?4 END,
			ref = CASE WHEN ?1 = 'sent' THEN ?5 ELSE ref END,
			lease_until = NULL,
			updated_at = ?6
		WHERE id = ?7 AND state = 'sending' AND lease_until = ?8`

	// releaseSQL returns a delivery claimed under the lease ending at ?3 to pending. Its next_at
	// is left as it was: it was due when claimed, so it is due again at once and keeps its place
	// ahead of later deliveries.
	releaseSQL = `UPDATE deliveries SET state = 'pending', lease_until = NULL, updated_at = ?1
		WHERE id = ?2 AND state = 'sending' AND lease_until = ?3`
)

// Claim leases up to limit deliveries due at now; see relay.Store. Each one's LeaseUntil is
// now+lease to the nanosecond, as stored.
func (s *Store) Claim(ctx context.Context, now time.Time, lease time.Duration, limit int) (_ []relay.Delivery, err error) {
	if limit <= 0 {
		return nil, nil
	}
	if lease <= 0 {
		return nil, fmt.Errorf("sqlite: claim: lease must be positive, got %v", lease)
	}
	tx, err := s.begin(ctx, false)
	if err != nil {
		return nil, fmt.Errorf("sqlite: claim: %w", err)
	}
	defer func() {
		if err != nil {
			tx.Rollback()
		}
	}()
	at := now.UnixNano()
	rows, err := tx.StmtContext(ctx, s.claimDue).QueryContext(ctx, at, limit)
	if err != nil {
		return nil, fmt.Errorf("sqlite: claim: %w", err)
	}
	var ds []relay.Delivery
	for rows.Next() {
		var (
			d                   relay.Delivery
			kind, meta          string
			created, receivedAt int64
		)
		if err := rows.Scan(&d.ID, &d.Rule, &d.Notifier, &d.Template, &d.Attempts, &created,
			&d.MessageID, &kind, &meta, &d.Body, &receivedAt); err != nil {
			rows.Close()
			return nil, fmt.Errorf("sqlite: claim: %w", err)
		}
		if err := json.Unmarshal([]byte(meta), &d.Meta); err != nil {
			rows.Close()
			return nil, fmt.Errorf("sqlite: claim: delivery %d: decode meta: %w", d.ID, err)
		}
		d.Kind = relay.Kind(kind)
		d.CreatedAt = fromNanos(created)
		d.ReceivedAt = fromNanos(receivedAt)
		ds = append(ds, d)
	}
	if err := rows.Close(); err != nil {
		return nil, fmt.Errorf("sqlite: claim: %w", err)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("sqlite: claim: %w", err)
	}
	if len(ds) == 0 {
		return nil, tx.Rollback()
	}
	leaseSt := tx.StmtContext(ctx, s.lease)
	until := now.Add(lease).UnixNano()
	for i := range ds {
		if _, err := leaseSt.ExecContext(ctx, until, at, ds[i].ID); err != nil {
			return nil, fmt.Errorf("sqlite: claim: lease delivery %d: %w", ds[i].ID, err)
		}
		ds[i].LeaseUntil = fromNanos(until)
	}
	if err := tx.Commit(); err != nil {
		return nil, fmt.Errorf("sqlite: claim: commit: %w", err)
	}
	return ds, nil
}

// Settle records the outcomes of attempts, in one transaction; see relay.Store. A settlement
// whose delivery does not exist or is no longer claimed under its lease (settled or released
// since, or taken over by another claimant after the lease expired) changes nothing and gets an
// Err wrapping relay.ErrNotClaimed. A zero At means now; a Pending settlement with a zero
// NextAt is due at At.
func (s *Store) Settle(ctx context.Context, batch []*relay.Settlement) (err error) {
	for _, st := range batch {
		switch st.State {
		case relay.Sent, relay.Pending, relay.Dead:
		default:
			return fmt.Errorf("sqlite: settle delivery %d: cannot settle as %q", st.Lease.ID, st.State)
		}
	}
	if len(batch) == 0 {
		return nil
	}
	tx, err := s.begin(ctx, false)
	if err != nil {
		return fmt.Errorf("sqlite: settle: %w", err)
	}
	defer func() {
		if err != nil {
			tx.Rollback()
			for _, st := range batch {
				st.Err = nil
			}
		}
	}()
	stmt := tx.StmtContext(ctx, s.settle)
	now := time.Now().UnixNano()
	for _, st := range batch {
		l := st.Lease
		at := nanos(st.At, now)
		next := nanos(st.NextAt, at)
		n, err := changed(stmt.ExecContext(ctx, string(st.State), st.Attempts, next, st.LastError, st.Ref, at, l.ID,
			l.Until.UnixNano()))
		if err != nil {
			return fmt.Errorf("sqlite: settle delivery %d: %w", l.ID, err)
		}
		st.Err = nil
		if n == 0 {
			if st.Err, err = notClaimed(ctx, tx, l); err != nil {
				return err
			}
		}
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("sqlite: settle: commit: %w", err)
	}
	return nil
}

// notClaimed explains why a settlement under l changed nothing.
func notClaimed(ctx context.Context, tx writeTx, l relay.Lease) (reason, err error) {
	var (
		state string
		until sql.NullInt64
	)
	err = tx.QueryRowContext(ctx, `SELECT state, lease_until FROM deliveries WHERE id = ?`, l.ID).Scan(&state, &until)
	switch {
	case errors.Is(err, sql.ErrNoRows):
		return fmt.Errorf("sqlite: settle delivery %d: no such delivery: %w", l.ID, relay.ErrNotClaimed), nil
	case err != nil:
		return nil, fmt.Errorf("sqlite: settle delivery %d: reading its state: %w", l.ID, err)
	case state == string(relay.Sending) && until.Valid:
		return fmt.Errorf("sqlite: settle delivery %d: %w (it is claimed under another lease, until %s; this one ends %s)",
			l.ID, relay.ErrNotClaimed, fromNanos(until.Int64).Format(time.RFC3339Nano), l.Until.UTC().Format(time.RFC3339Nano)), nil
	}
	return fmt.Errorf("sqlite: settle delivery %d: %w (it is %s)", l.ID, relay.ErrNotClaimed, state), nil
}

// Release returns deliveries still claimed under the given leases to pending, due at once,
// without counting an attempt; see relay.Store. Leases that no longer hold are skipped, so that
// a release can never resend a delivery already settled, nor take one from its new claimant.
func (s *Store) Release(ctx context.Context, leases []relay.Lease) (err error) {
	if len(leases) == 0 {
		return nil
	}
	tx, err := s.begin(ctx, false)
	if err != nil {
		return fmt.Errorf("sqlite: release: %w", err)
	}
	defer func() {
		if err != nil {
			tx.Rollback()
		}
	}()
	st := tx.StmtContext(ctx, s.release)
	now := time.Now().UnixNano()
	for _, l := range leases {
		if _, err := st.ExecContext(ctx, now, l.ID, l.Until.UnixNano()); err != nil {
			return fmt.Errorf("sqlite: release delivery %d: %w", l.ID, err)
		}
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("sqlite: release: commit: %w", err)
	}
	return nil
}

// Deliveries lists deliveries, newest first; see relay.Store. A limit of 0 or less means all.
func (s *Store) Deliveries(ctx context.Context, state relay.State, limit int) ([]relay.DeliveryInfo, error) {
	const cols = `SELECT d.id, d.rule, d.notifier, d.state, d.attempts, d.next_at, d.last_error, d.ref,
			d.kind, d.subject_id, d.status, e.message_id, d.created_at, d.updated_at
		FROM deliveries d JOIN events e ON e.id = d.event_id`
	if limit <= 0 {
		limit = -1 // no limit, to SQLite
	}
	var (
		rows *sql.Rows
		err  error
	)
	if state == "" {
		rows, err = s.db.QueryContext(ctx, cols+` ORDER BY d.id DESC LIMIT ?`, limit)
	} else {
		rows, err = s.db.QueryContext(ctx, cols+` WHERE d.state = ? ORDER BY d.id DESC LIMIT ?`, string(state), limit)
	}
	if err != nil {
		return nil, fmt.Errorf("sqlite: deliveries: %w", err)
	}
	defer rows.Close()
	var out []relay.DeliveryInfo
	for rows.Next() {
		var (
			d                          relay.DeliveryInfo
			st, kind, status           string
			nextAt, created, updatedAt int64
		)
		if err := rows.Scan(&d.ID, &d.Rule, &d.Notifier, &st, &d.Attempts, &nextAt, &d.LastError, &d.Ref,
			&kind, &d.SubjectID, &status, &d.MessageID, &created, &updatedAt); err != nil {
			return nil, fmt.Errorf("sqlite: deliveries: %w", err)
		}
		d.State, d.Kind, d.Status = relay.State(st), relay.Kind(kind), replicate.Status(status)
		d.NextAt, d.CreatedAt, d.UpdatedAt = fromNanos(nextAt), fromNanos(created), fromNanos(updatedAt)
		out = append(out, d)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("sqlite: deliveries: %w", err)
	}
	return out, nil
}

// pruneChunk is how many rows Prune deletes per transaction, so that a large prune (the first
// after a long stop, say) never holds the write lock long enough to stall ingestion.
const pruneChunk = 500

// The statements of Prune, each deleting at most ?2 rows older than ?1.
const (
	pruneSeenSQL = `DELETE FROM seen WHERE message_id IN
		(SELECT message_id FROM seen WHERE seen_at < ? LIMIT ?)`
	pruneSubjectsSQL = `DELETE FROM subjects WHERE (kind, subject_id) IN
		(SELECT kind, subject_id FROM subjects WHERE updated_at < ? LIMIT ?)`
	// pruneDeliveriesSQL returns the events of the deliveries it deletes, for pruneEventSQL.
	pruneDeliveriesSQL = `DELETE FROM deliveries WHERE id IN
		(SELECT id FROM deliveries WHERE state IN ('sent', 'dead') AND updated_at < ? LIMIT ?)
		RETURNING event_id`
	pruneEventSQL = `DELETE FROM events
		WHERE id = ?1 AND NOT EXISTS (SELECT 1 FROM deliveries WHERE event_id = ?1)
			AND NOT EXISTS (SELECT 1 FROM digest_items WHERE event_id = ?1)`
)

// Prune forgets old message ids, subject stages and finished deliveries; see relay.Store.
// Pending and sending deliveries, and the events they refer to, are always kept.
func (s *Store) Prune(ctx context.Context, seenBefore, doneBefore time.Time) error {
	seen, done := seenBefore.UnixNano(), doneBefore.UnixNano()
	for _, p := range []struct {
		q      string
		before int64
	}{{pruneSeenSQL, seen}, {pruneSubjectsSQL, seen}, {pruneLaunchesSQL, done}} {
		for {
			n, err := changed(s.db.ExecContext(ctx, p.q, p.before, pruneChunk))
			if err != nil {
				return fmt.Errorf("sqlite: prune: %w", err)
			}
			if n < pruneChunk {
				break
			}
		}
	}
	// Finished deliveries, then the items of digest periods closed as long ago, each with the
	// events nothing refers to any more.
	for _, q := range []string{pruneDeliveriesSQL, pruneDigestItemsSQL} {
		for {
			n, err := s.pruneReferences(ctx, q, done)
			if err != nil {
				return fmt.Errorf("sqlite: prune: %w", err)
			}
			if n < pruneChunk {
				break
			}
		}
	}
	return nil
}

// pruneReferences deletes up to pruneChunk rows that refer to events with query (deliveries
// sent or dead before done, or items of digest periods closed before it), and the events that
// nothing refers to any more, in one transaction. It returns how many rows it deleted.
func (s *Store) pruneReferences(ctx context.Context, query string, done int64) (_ int, err error) {
	tx, err := s.begin(ctx, false)
	if err != nil {
		return 0, err
	}
	defer func() {
		if err != nil {
			tx.Rollback()
		}
	}()
	rows, err := tx.QueryContext(ctx, query, done, pruneChunk)
	if err != nil {
		return 0, err
	}
	n := 0
	events := map[int64]bool{}
	for rows.Next() {
		var id int64
		if err := rows.Scan(&id); err != nil {
			rows.Close()
			return 0, err
		}
		events[id] = true
		n++
	}
	if err := rows.Close(); err != nil {
		return 0, err
	}
	if err := rows.Err(); err != nil {
		return 0, err
	}
	if n == 0 {
		return 0, tx.Rollback()
	}
	drop, err := tx.PrepareContext(ctx, pruneEventSQL)
	if err != nil {
		return 0, err
	}
	defer drop.Close()
	for id := range events {
		if _, err := drop.ExecContext(ctx, id); err != nil {
			return 0, err
		}
	}
	return n, tx.Commit()
}

// EnsureSetting stores value under key unless the key is set, and returns the stored value; see
// relay.Store.
func (s *Store) EnsureSetting(ctx context.Context, key, value string) (_ string, err error) {
	tx, err := s.begin(ctx, true)
	if err != nil {
		return "", fmt.Errorf("sqlite: setting %s: %w", key, err)
	}
	defer func() {
		if err != nil {
			tx.Rollback()
		}
	}()
	if _, err := tx.ExecContext(ctx,
		`INSERT INTO settings (key, value) VALUES (?, ?) ON CONFLICT (key) DO NOTHING`, key, value); err != nil {
		return "", fmt.Errorf("sqlite: setting %s: %w", key, err)
	}
	var stored string
	if err := tx.QueryRowContext(ctx, `SELECT value FROM settings WHERE key = ?`, key).Scan(&stored); err != nil {
		return "", fmt.Errorf("sqlite: setting %s: %w", key, err)
	}
	if err := tx.Commit(); err != nil {
		return "", fmt.Errorf("sqlite: setting %s: commit: %w", key, err)
	}
	return stored, nil
}
