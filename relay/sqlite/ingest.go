package sqlite

import (
	"context"
	"database/sql"
	"encoding/json"
	"fmt"
	"time"

	"github.com/mlrelay/relay/relay"
)

// The statements of Ingest. Each one's effect is read from its count of changed rows, so that
// deciding and recording an event cost one statement each.
const (
	// insertSeenSQL records a message id; it changes no row for one already recorded.
	insertSeenSQL = `INSERT INTO seen (message_id, seen_at) VALUES (?, ?) ON CONFLICT DO NOTHING`

	// raiseStageSQL records a subject's stage unless a later one is recorded; it changes no row
	// for a stale event. updated_at is when the subject reached its stage: an event at the same
	// stage leaves it alone, which spares the index on it an update for most events (a third of
	// the cost of Ingest in BenchmarkIngest).
	raiseStageSQL = `INSERT INTO subjects (kind, subject_id, stage, updated_at) VALUES (?, ?, ?, ?)
		ON CONFLICT (kind, subject_id) DO UPDATE
		SET stage = excluded.stage,
			updated_at = CASE WHEN excluded.stage > subjects.stage
				THEN excluded.updated_at ELSE subjects.updated_at END
		WHERE excluded.stage >= subjects.stage`

	insertEventSQL = `INSERT INTO events (message_id, kind, subject_id, status, received_at, meta, body)
		VALUES (?, ?, ?, ?, ?, ?, coalesce(?, x''))`

	// insertDeliverySQL creates a delivery, due at once; it changes no row when the transition
	// already has one for the same rule and notifier.
	insertDeliverySQL = `INSERT INTO deliveries (event_id, kind, subject_id, status, rule, notifier,
			template, state, next_at, created_at, updated_at)
		VALUES (?, ?, ?, ?, ?, ?, ?, 'pending', ?, ?, ?)
		ON CONFLICT (kind, subject_id, status, rule, notifier) DO NOTHING`

	// insertDigestItemSQL collects an event for a digest; it changes no row when the digest has
	// the transition already.
	insertDigestItemSQL = `INSERT INTO digest_items (digest, event_id, kind, subject_id, status, received_at)
		VALUES (?, ?, ?, ?, ?, ?)
		ON CONFLICT (digest, kind, subject_id, status) DO NOTHING`

	// dropEventSQL removes an event that turned out to create no delivery.
	dropEventSQL = `DELETE FROM events WHERE id = ?`
)

// Ingest records a batch of events in one transaction; see relay.Store. Times recorded for an
// event (when its message id was seen, when its deliveries were created and fall due) are its
// ReceivedAt, or the time of the call when that is zero.
func (s *Store) Ingest(ctx context.Context, batch []*relay.Ingest) (err error) {
	if len(batch) == 0 {
		return nil
	}
	tx, err := s.begin(ctx, true)
	if err != nil {
		return fmt.Errorf("sqlite: ingest: %w", err)
	}
	defer func() {
		if err != nil {
			tx.Rollback()
		}
	}()

	// The statements run under a context without cancellation, because for a cancellable one the
	// driver starts a goroutine per statement to interrupt it, which adds half again to the CPU
	// cost of a batch. Cancellation is checked between events instead, and ends the transaction.
	stmtCtx := context.WithoutCancel(ctx)
	in := ingester{
		ctx:      stmtCtx,
		seen:     tx.StmtContext(stmtCtx, s.insertSeen),
		stage:    tx.StmtContext(stmtCtx, s.raiseStage),
		now:      time.Now().UnixNano(),
		event:    s.insertEvent,
		delivery: s.insertDelivery,
		drop:     s.dropEvent,
		item:     s.insertDigestItem,
		tx:       tx,
	}
	for _, ev := range batch {
		if err := ctx.Err(); err != nil {
			return fmt.Errorf("sqlite: ingest: %w", err)
		}
		if err := in.ingest(ev); err != nil {
			return fmt.Errorf("sqlite: ingest %s: %w", ev.MessageID, err)
		}
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("sqlite: ingest: commit: %w", err)
	}
	return nil
}

// ingester records the events of one batch inside its transaction.
type ingester struct {
	ctx         context.Context
	tx          writeTx
	now         int64
	seen, stage *sql.Stmt

	// The statements of events with deliveries, bound to tx on first use: most batches have none.
	event, delivery, drop, item *sql.Stmt
	bound                       bool
}

// ingest decides ev's outcome and records it.
func (in *ingester) ingest(ev *relay.Ingest) error {
	ev.Outcome, ev.Created, ev.Collected = relay.Accepted, 0, 0
	at := nanos(ev.ReceivedAt, in.now)

	n, err := changed(in.seen.ExecContext(in.ctx, ev.MessageID, at))
	if err != nil {
		return fmt.Errorf("record message id: %w", err)
	}
	if n == 0 {
		ev.Outcome = relay.Duplicate
		return nil
	}
	n, err = changed(in.stage.ExecContext(in.ctx, string(ev.Kind), ev.SubjectID, ev.Status.Stage(), at))
	if err != nil {
		return fmt.Errorf("record stage: %w", err)
	}
	if n == 0 {
		ev.Outcome = relay.Stale
		return nil
	}
	if len(ev.Deliveries) == 0 && len(ev.Digests) == 0 {
		return nil
	}
	return in.deliver(ev, at)
}

// deliver creates ev's deliveries and digest items. The event row is written first, because
// they refer to it, and removed again when every one already existed: then the transition was
// recorded through an earlier message, whose event they keep.
func (in *ingester) deliver(ev *relay.Ingest, at int64) error {
	if !in.bound {
		in.event = in.tx.StmtContext(in.ctx, in.event)
		in.delivery = in.tx.StmtContext(in.ctx, in.delivery)
		in.drop = in.tx.StmtContext(in.ctx, in.drop)
		in.item = in.tx.StmtContext(in.ctx, in.item)
		in.bound = true
	}
	meta, err := json.Marshal(ev.Meta)
	if err != nil {
		return fmt.Errorf("encode meta: %w", err)
	}
	res, err := in.event.ExecContext(in.ctx, ev.MessageID, string(ev.Kind), ev.SubjectID,
		string(ev.Status), at, string(meta), ev.Body)
	if err != nil {
		return fmt.Errorf("record event: %w", err)
	}
	eventID, err := res.LastInsertId()
	if err != nil {
		return fmt.Errorf("record event: %w", err)
	}
	for _, d := range ev.Deliveries {
		n, err := changed(in.delivery.ExecContext(in.ctx, eventID, string(ev.Kind), ev.SubjectID,
			string(ev.Status), d.Rule, d.Notifier, d.Template, at, at, at))
		if err != nil {
			return fmt.Errorf("create delivery %s/%s: %w", d.Rule, d.Notifier, err)
		}
		ev.Created += int(n)
	}
	for _, name := range ev.Digests {
		n, err := changed(in.item.ExecContext(in.ctx, name, eventID, string(ev.Kind), ev.SubjectID, string(ev.Status), at))
		if err != nil {
			return fmt.Errorf("collect for digest %s: %w", name, err)
		}
		ev.Collected += int(n)
	}
	if ev.Created == 0 && ev.Collected == 0 {
		if _, err := in.drop.ExecContext(in.ctx, eventID); err != nil {
			return fmt.Errorf("drop event: %w", err)
		}
	}
	return nil
}

// changed returns the number of rows a statement changed.
func changed(res sql.Result, err error) (int64, error) {
	if err != nil {
		return 0, err
	}
	return res.RowsAffected()
}
