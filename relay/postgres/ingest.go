package postgres

import (
	"context"
	"fmt"
	"hash/fnv"
	"slices"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/mlrelay/relay/relay"
)

// The statements of Ingest. Each event is one statement, whose data-modifying CTEs decide and
// record it; the statements of a batch run in order, in one transaction, so that each sees what
// the ones before it recorded.
const (
	// lockSubjectsSQL takes the advisory locks of the batch's subjects, in the order of the array,
	// which subjectLocks sorts: every batch takes its locks in one global order, so that two
	// batches sharing subjects queue for each other instead of deadlocking on the rows of
	// seen, subjects and deliveries, which they would lock in the order of their events.
	lockSubjectsSQL = `SELECT pg_advisory_xact_lock(k) FROM unnest($1::bigint[]) AS k`

	// ingestSQL records an event that asks for nothing: its message id ($1, seen at $2), then,
	// when the id is new, the stage $5 of its subject ($3, $4), unless a later stage is recorded.
	// It returns whether the id was new and whether the stage was recorded: Duplicate, Stale or
	// Accepted. updated_at is when the subject reached its stage: an event at the same stage
	// leaves it alone.
	ingestSQL = `WITH seen AS (
			INSERT INTO seen (message_id, seen_at) VALUES ($1, $2)
			ON CONFLICT DO NOTHING
			RETURNING 1
		), stage AS (
			INSERT INTO subjects AS s (kind, subject_id, stage, updated_at)
			SELECT $3, $4, $5, $2 FROM seen
			ON CONFLICT (kind, subject_id) DO UPDATE
			SET stage = excluded.stage,
				updated_at = CASE WHEN excluded.stage > s.stage THEN excluded.updated_at ELSE s.updated_at END
			WHERE excluded.stage >= s.stage
			RETURNING 1
		)
		SELECT EXISTS (SELECT FROM seen), EXISTS (SELECT FROM stage)`

	// ingestDeliverSQL records an event that asks for deliveries or digest items: as ingestSQL,
	// then, when accepted, the event ($6 status, $7 meta, $8 body), each delivery ($9 rules,
	// $10 notifiers, $11 templates, due at once) unless its transition has one for the same rule
	// and notifier, and each digest item ($12 digests) unless the digest has the transition. It
	// returns how many deliveries and items it created.
	//
	// The event is stored only when something will refer to it: the check runs on the
	// statement's snapshot, which holds every batch committed before this one took its subject
	// locks, and the rows the batch wrote so far. The constraints and ON CONFLICT remain the
	// authority; the check only spares storing an event that nothing would keep.
	ingestDeliverSQL = `WITH seen AS (
			INSERT INTO seen (message_id, seen_at) VALUES ($1, $2)
			ON CONFLICT DO NOTHING
			RETURNING 1
		), stage AS (
			INSERT INTO subjects AS s (kind, subject_id, stage, updated_at)
			SELECT $3, $4, $5, $2 FROM seen
			ON CONFLICT (kind, subject_id) DO UPDATE
			SET stage = excluded.stage,
				updated_at = CASE WHEN excluded.stage > s.stage THEN excluded.updated_at ELSE s.updated_at END
			WHERE excluded.stage >= s.stage
			RETURNING 1
		), specs AS (
			SELECT * FROM unnest($9::text[], $10::text[], $11::text[]) WITH ORDINALITY AS t (rule, notifier, template, n)
		), digests AS (
			SELECT * FROM unnest($12::text[]) WITH ORDINALITY AS t (digest, n)
		), event AS (
			INSERT INTO events (message_id, kind, subject_id, status, received_at, meta, body)
			SELECT $1, $3, $4, $6, $2, $7, $8 FROM stage
			WHERE EXISTS (SELECT FROM specs WHERE NOT EXISTS (SELECT FROM deliveries d
					WHERE (d.kind, d.subject_id, d.status, d.rule, d.notifier) = ($3, $4, $6, specs.rule, specs.notifier)))
				OR EXISTS (SELECT FROM digests WHERE NOT EXISTS (SELECT FROM digest_items i
					WHERE (i.digest, i.kind, i.subject_id, i.status) = (digests.digest, $3, $4, $6)))
			RETURNING id
		), delivered AS (
			INSERT INTO deliveries (event_id, kind, subject_id, status, rule, notifier, template,
				state, next_at, created_at, updated_at)
			SELECT event.id, $3, $4, $6, specs.rule, specs.notifier, specs.template, 'pending', $2, $2, $2
			FROM event, specs ORDER BY specs.n
			ON CONFLICT (kind, subject_id, status, rule, notifier) DO NOTHING
			RETURNING 1
		), collected AS (
			INSERT INTO digest_items (digest, event_id, kind, subject_id, status, received_at)
			SELECT digests.digest, event.id, $3, $4, $6, $2
			FROM event, digests ORDER BY digests.n
			ON CONFLICT (digest, kind, subject_id, status) DO NOTHING
			RETURNING 1
		)
		SELECT EXISTS (SELECT FROM seen), EXISTS (SELECT FROM stage),
			(SELECT count(*) FROM delivered), (SELECT count(*) FROM collected)`
)

// Ingest records a batch of events in one transaction; see relay.Store. The whole batch is one
// pipeline, so it costs one round trip to the server, and its implicit transaction commits (to
// disk, with the server's default synchronous_commit) before Ingest returns. Times recorded for
// an event (when its message id was seen, when its deliveries were created and fall due) are its
// ReceivedAt, or the time of the call when that is zero.
func (s *Store) Ingest(ctx context.Context, batch []*relay.Ingest) error {
	if len(batch) == 0 {
		return nil
	}
	now := time.Now().UnixNano()
	err := s.do(ctx, func(c *pgx.Conn) error {
		b := &pgx.Batch{}
		b.Queue(lockSubjectsSQL, subjectLocks(batch))
		for _, ev := range batch {
			queueIngest(b, ev, nanos(ev.ReceivedAt, now))
		}
		return c.SendBatch(ctx, b).Close()
	})
	if err != nil {
		for _, ev := range batch {
			ev.Outcome, ev.Created, ev.Collected = relay.Accepted, 0, 0
		}
		return fmt.Errorf("postgres: ingest: %w", err)
	}
	return nil
}

// queueIngest queues the statement of one event, and the reading of its outcome into ev.
func queueIngest(b *pgx.Batch, ev *relay.Ingest, at int64) {
	ev.Outcome, ev.Created, ev.Collected = relay.Accepted, 0, 0
	outcome := func(seen, raised bool) {
		switch {
		case !seen:
			ev.Outcome = relay.Duplicate
		case !raised:
			ev.Outcome = relay.Stale
		}
	}
	if len(ev.Deliveries) == 0 && len(ev.Digests) == 0 {
		b.Queue(ingestSQL, ev.MessageID, at, string(ev.Kind), ev.SubjectID, ev.Status.Stage()).
			QueryRow(func(row pgx.Row) error {
				var seen, raised bool
				if err := row.Scan(&seen, &raised); err != nil {
					return fmt.Errorf("event %s: %w", ev.MessageID, err)
				}
				outcome(seen, raised)
				return nil
			})
		return
	}
	rules := make([]string, len(ev.Deliveries))
	notifiers := make([]string, len(ev.Deliveries))
	templates := make([]string, len(ev.Deliveries))
	for i, d := range ev.Deliveries {
		rules[i], notifiers[i], templates[i] = d.Rule, d.Notifier, d.Template
	}
	meta, body := ev.Meta, ev.Body
	if meta == nil {
		meta = map[string]string{}
	}
	if body == nil {
		body = []byte{}
	}
	digests := ev.Digests
	if digests == nil {
		digests = []string{}
	}
	b.Queue(ingestDeliverSQL, ev.MessageID, at, string(ev.Kind), ev.SubjectID, ev.Status.Stage(),
		string(ev.Status), meta, body, rules, notifiers, templates, digests).
		QueryRow(func(row pgx.Row) error {
			var (
				seen, raised       bool
				created, collected int64
			)
			if err := row.Scan(&seen, &raised, &created, &collected); err != nil {
				return fmt.Errorf("event %s: %w", ev.MessageID, err)
			}
			outcome(seen, raised)
			ev.Created, ev.Collected = int(created), int(collected)
			return nil
		})
}

// subjectLocks returns the advisory lock keys of the subjects of a batch, sorted and without
// repeats. A key is a 64-bit FNV-1a hash of the kind and subject id: two subjects sharing one
// only wait for each other needlessly.
func subjectLocks(batch []*relay.Ingest) []int64 {
	keys := make([]int64, 0, len(batch))
	for _, ev := range batch {
		h := fnv.New64a()
		h.Write([]byte(ev.Kind))
		h.Write([]byte{0})
		h.Write([]byte(ev.SubjectID))
		keys = append(keys, int64(h.Sum64()))
	}
	slices.Sort(keys)
	return slices.Compact(keys)
}
