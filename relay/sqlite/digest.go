package sqlite

import (
	"context"
	"database/sql"
	"encoding/json"
	"fmt"
	"time"

	"github.com/mlrelay/relay/relay"
)

const (
	lastPeriodSQL = `SELECT max(period_end) FROM digest_periods WHERE digest = ?`

	// openItemsSQL lists a digest's open items collected before ?2 with their events, oldest
	// first.
	openItemsSQL = `SELECT i.id, e.message_id, e.kind, e.meta, e.body, e.received_at
		FROM digest_items i JOIN events e ON e.id = i.event_id
		WHERE i.digest = ?1 AND i.period_id IS NULL AND i.received_at < ?2
		ORDER BY i.received_at, i.id`

	// pruneDigestItemsSQL deletes the items of periods closed before ?1, returning their events
	// for pruneEventSQL.
	pruneDigestItemsSQL = `DELETE FROM digest_items WHERE id IN
		(SELECT i.id FROM digest_periods p CROSS JOIN digest_items i ON i.period_id = p.id
			WHERE p.period_end < ? LIMIT ?)
		RETURNING event_id`
)

// CloseDigest closes a period of a digest; see relay.Store.
func (s *Store) CloseDigest(ctx context.Context, c *relay.DigestClose) (err error) {
	c.Closed, c.Items, c.Created, c.Begin = false, 0, 0, time.Time{}
	if c.Digest == "" || c.End.IsZero() {
		return fmt.Errorf("sqlite: close digest: a digest name and an end are required")
	}
	// Durable: the items move into a period and a message is created, which Replicate's
	// acknowledged events must not be lost in.
	tx, err := s.begin(ctx, true)
	if err != nil {
		return fmt.Errorf("sqlite: close digest %s: %w", c.Digest, err)
	}
	defer func() {
		if err != nil {
			tx.Rollback()
		}
	}()
	end := c.End.UnixNano()
	var last *int64
	if err := tx.QueryRowContext(ctx, lastPeriodSQL, c.Digest).Scan(&last); err != nil {
		return fmt.Errorf("sqlite: close digest %s: %w", c.Digest, err)
	}
	if last != nil && *last >= end {
		return tx.Rollback() // closed already, here or by another process
	}
	begin := c.Start.UnixNano()
	if last != nil {
		begin = *last
	}
	c.Begin = fromNanos(begin)

	items, ids, err := openItems(ctx, tx, c.Digest, end)
	if err != nil {
		return fmt.Errorf("sqlite: close digest %s: %w", c.Digest, err)
	}
	res, err := tx.ExecContext(ctx, `INSERT INTO digest_periods (digest, period_start, period_end, items, closed_at)
		VALUES (?, ?, ?, ?, ?)`, c.Digest, begin, end, len(items), c.ClosedAt().UnixNano())
	if err != nil {
		return fmt.Errorf("sqlite: close digest %s: record period: %w", c.Digest, err)
	}
	period, err := res.LastInsertId()
	if err != nil {
		return fmt.Errorf("sqlite: close digest %s: %w", c.Digest, err)
	}
	if len(items) > 0 {
		mark, err := tx.PrepareContext(ctx, `UPDATE digest_items SET period_id = ? WHERE id = ?`)
		if err != nil {
			return fmt.Errorf("sqlite: close digest %s: %w", c.Digest, err)
		}
		defer mark.Close()
		for _, id := range ids {
			if _, err := mark.ExecContext(ctx, period, id); err != nil {
				return fmt.Errorf("sqlite: close digest %s: %w", c.Digest, err)
			}
		}
		if len(c.Deliveries) > 0 {
			if err := s.digestMessage(ctx, tx, c, items, end, c.ClosedAt().UnixNano()); err != nil {
				return fmt.Errorf("sqlite: close digest %s: %w", c.Digest, err)
			}
		}
	}
	c.Items = len(items)
	if err := tx.Commit(); err != nil {
		c.Items, c.Created = 0, 0
		return fmt.Errorf("sqlite: close digest %s: commit: %w", c.Digest, err)
	}
	c.Closed = true
	return nil
}

// digestMessage stores the message of a closed period as an event of kind digest, and its
// deliveries. Its subject is the digest and the period's end, unique per period.
func (s *Store) digestMessage(ctx context.Context, tx writeTx, c *relay.DigestClose, items []relay.DigestItem, end, at int64) error {
	if c.Build == nil {
		return fmt.Errorf("no Build to make the message")
	}
	body, err := c.Build(c.Begin, items)
	if err != nil {
		return fmt.Errorf("build the message: %w", err)
	}
	subject := relay.DigestSubject(c.Digest, fromNanos(end))
	res, err := tx.StmtContext(ctx, s.insertEvent).ExecContext(ctx, "digest:"+subject, string(relay.KindDigest), subject,
		"closed", end, "{}", body)
	if err != nil {
		return fmt.Errorf("record the message: %w", err)
	}
	eventID, err := res.LastInsertId()
	if err != nil {
		return err
	}
	ins := tx.StmtContext(ctx, s.insertDelivery)
	for _, d := range c.Deliveries {
		n, err := changed(ins.ExecContext(ctx, eventID, string(relay.KindDigest), subject, "closed",
			d.Rule, d.Notifier, d.Template, at, at, at))
		if err != nil {
			return fmt.Errorf("create delivery to %s: %w", d.Notifier, err)
		}
		c.Created += int(n)
	}
	return nil
}

// openItems reads a digest's open items collected before end, with their ids.
func openItems(ctx context.Context, q interface {
	QueryContext(context.Context, string, ...any) (*sql.Rows, error)
}, digest string, end int64) ([]relay.DigestItem, []int64, error) {
	rows, err := q.QueryContext(ctx, openItemsSQL, digest, end)
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
			meta   string
		)
		if err := rows.Scan(&id, &it.MessageID, &kind, &meta, &it.Body, &at); err != nil {
			return nil, nil, err
		}
		if err := json.Unmarshal([]byte(meta), &it.Meta); err != nil {
			return nil, nil, fmt.Errorf("item %d: decode meta: %w", id, err)
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
	if err := s.db.QueryRowContext(ctx, lastPeriodSQL, digest).Scan(&last); err != nil {
		return time.Time{}, fmt.Errorf("sqlite: digest %s: %w", digest, err)
	}
	if last == nil {
		return time.Time{}, nil
	}
	return fromNanos(*last), nil
}

// OpenDigestItems lists a digest's open items; see relay.Store.
func (s *Store) OpenDigestItems(ctx context.Context, digest string, before time.Time) ([]relay.DigestItem, error) {
	items, _, err := openItems(ctx, s.db, digest, before.UnixNano())
	if err != nil {
		return nil, fmt.Errorf("sqlite: digest %s: %w", digest, err)
	}
	return items, nil
}
