package postgres

import (
	"context"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/mlrelay/relay/relay"
)

const (
	lastPeriodSQL = `SELECT max(period_end) FROM digest_periods WHERE digest = $1`

	// openItemsSQL lists a digest's open items collected before $2 with their events, oldest
	// first.
	openItemsSQL = `SELECT i.id, e.message_id, e.kind, e.meta, e.body, e.received_at
		FROM digest_items i JOIN events e ON e.id = i.event_id
		WHERE i.digest = $1 AND i.period_id IS NULL AND i.received_at < $2
		ORDER BY i.received_at, i.id`

	recordPeriodSQL = `INSERT INTO digest_periods (digest, period_start, period_end, items, closed_at)
		VALUES ($1, $2, $3, $4, $5)
		RETURNING id`

	markItemsSQL = `UPDATE digest_items SET period_id = $1 WHERE id = ANY($2::bigint[])`

	// digestMessageSQL stores the message of a closed period as an event of kind digest ($1
	// message id, $2 subject, $3 the period's end, $4 body), with its deliveries ($5 rules, $6
	// notifiers, $7 templates), created and due when the period is closed ($8); it returns how
	// many deliveries it created.
	digestMessageSQL = `WITH event AS (
			INSERT INTO events (message_id, kind, subject_id, status, received_at, meta, body)
			VALUES ($1, 'digest', $2, 'closed', $3, '{}', $4)
			RETURNING id
		), delivered AS (
			INSERT INTO deliveries (event_id, kind, subject_id, status, rule, notifier, template,
				state, next_at, created_at, updated_at)
			SELECT event.id, 'digest', $2, 'closed', s.rule, s.notifier, s.template, 'pending', $8, $8, $8
			FROM event, unnest($5::text[], $6::text[], $7::text[]) WITH ORDINALITY AS s (rule, notifier, template, n)
			ORDER BY s.n
			ON CONFLICT (kind, subject_id, status, rule, notifier) DO NOTHING
			RETURNING 1
		)
		SELECT count(*) FROM delivered`
)

// CloseDigest closes a period of a digest, in one transaction; see relay.Store. The
// transaction first takes the digest's advisory lock, so that replicas closing the same period
// take turns: the first closes it, and the others, reading the last period's end only once they
// hold the lock, find it closed and change nothing.
func (s *Store) CloseDigest(ctx context.Context, c *relay.DigestClose) error {
	c.Closed, c.Items, c.Created, c.Begin = false, 0, 0, time.Time{}
	if c.Digest == "" || c.End.IsZero() {
		return fmt.Errorf("postgres: close digest: a digest name and an end are required")
	}
	var closed bool
	err := s.do(ctx, func(conn *pgx.Conn) error {
		closed, c.Items, c.Created, c.Begin = false, 0, 0, time.Time{}
		return pgx.BeginFunc(ctx, conn, func(tx pgx.Tx) (err error) {
			closed, err = closeDigest(ctx, tx, c)
			return err
		})
	})
	if err != nil {
		c.Items, c.Created, c.Begin = 0, 0, time.Time{}
		return fmt.Errorf("postgres: close digest %s: %w", c.Digest, err)
	}
	c.Closed = closed
	return nil
}

// closeDigest does CloseDigest's work inside tx, and says whether it closed the period.
func closeDigest(ctx context.Context, tx pgx.Tx, c *relay.DigestClose) (bool, error) {
	if _, err := tx.Exec(ctx, lockSQL, lockDigest, c.Digest); err != nil {
		return false, err
	}
	end := c.End.UnixNano()
	var last *int64
	if err := tx.QueryRow(ctx, lastPeriodSQL, c.Digest).Scan(&last); err != nil {
		return false, err
	}
	if last != nil && *last >= end {
		return false, nil // closed already, here or by another replica
	}
	begin := c.Start.UnixNano()
	if last != nil {
		begin = *last
	}
	c.Begin = fromNanos(begin)

	items, ids, err := openItems(ctx, tx, c.Digest, end)
	if err != nil {
		return false, err
	}
	var period int64
	if err := tx.QueryRow(ctx, recordPeriodSQL, c.Digest, begin, end, len(items), c.ClosedAt().UnixNano()).Scan(&period); err != nil {
		return false, fmt.Errorf("record period: %w", err)
	}
	if len(items) > 0 {
		if _, err := tx.Exec(ctx, markItemsSQL, period, ids); err != nil {
			return false, fmt.Errorf("mark items: %w", err)
		}
		if len(c.Deliveries) > 0 {
			if err := digestMessage(ctx, tx, c, items, end); err != nil {
				return false, err
			}
		}
	}
	c.Items = len(items)
	return true, nil
}

// digestMessage stores the message of a closed period and its deliveries. Its subject is the
// digest and the period's end, unique per period.
func digestMessage(ctx context.Context, tx pgx.Tx, c *relay.DigestClose, items []relay.DigestItem, end int64) error {
	if c.Build == nil {
		return fmt.Errorf("no Build to make the message")
	}
	body, err := c.Build(c.Begin, items)
	if err != nil {
		return fmt.Errorf("build the message: %w", err)
	}
	if body == nil {
		body = []byte{}
	}
	rules := make([]string, len(c.Deliveries))
	notifiers := make([]string, len(c.Deliveries))
	templates := make([]string, len(c.Deliveries))
	for i, d := range c.Deliveries {
		rules[i], notifiers[i], templates[i] = d.Rule, d.Notifier, d.Template
	}
	subject := relay.DigestSubject(c.Digest, fromNanos(end))
	var created int64
	if err := tx.QueryRow(ctx, digestMessageSQL, "digest:"+subject, subject, end, body, rules, notifiers, templates, c.ClosedAt().UnixNano()).
		Scan(&created); err != nil {
		return fmt.Errorf("record the message: %w", err)
	}
	c.Created = int(created)
	return nil
}

// openItems reads a digest's open items collected before end, with their ids.
func openItems(ctx context.Context, q interface {
	Query(context.Context, string, ...any) (pgx.Rows, error)
}, digest string, end int64) ([]relay.DigestItem, []int64, error) {
	rows, err := q.Query(ctx, openItemsSQL, digest, end)
	if err != nil {
		return nil, nil, err
	}
	defer rows.Close()
	var (
		items []relay.DigestItem
		ids   []int64
	)
	for rows.Next() {
		var (
			it     relay.DigestItem
			id, at int64
			kind   string
		)
		if err := rows.Scan(&id, &it.MessageID, &kind, &it.Meta, &it.Body, &at); err != nil {
			return nil, nil, err
		}
		it.Kind, it.ReceivedAt = relay.Kind(kind), fromNanos(at)
		items = append(items, it)
		ids = append(ids, id)
	}
	return items, ids, rows.Err()
}

// DigestLastEnd returns the end of the digest's last closed period; see relay.Store.
func (s *Store) DigestLastEnd(ctx context.Context, digest string) (time.Time, error) {
	var last *int64
	err := s.do(ctx, func(c *pgx.Conn) error {
		return c.QueryRow(ctx, lastPeriodSQL, digest).Scan(&last)
	})
	if err != nil {
		return time.Time{}, fmt.Errorf("postgres: digest %s: %w", digest, err)
	}
	if last == nil {
		return time.Time{}, nil
	}
	return fromNanos(*last), nil
}

// OpenDigestItems lists a digest's open items; see relay.Store.
func (s *Store) OpenDigestItems(ctx context.Context, digest string, before time.Time) ([]relay.DigestItem, error) {
	var items []relay.DigestItem
	err := s.do(ctx, func(c *pgx.Conn) (err error) {
		items, _, err = openItems(ctx, c, digest, before.UnixNano())
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("postgres: digest %s: %w", digest, err)
	}
	return items, nil
}
