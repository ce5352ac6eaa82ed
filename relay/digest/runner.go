package digest

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"time"

	"github.com/mlrelay/relay/relay"
)

// Spec is one configured digest.
type Spec struct {
	Name     string
	Schedule Schedule
	// Notify are the notifiers its message goes to; Template is the template set that renders
	// it.
	Notify   []string
	Template string
	// MaxItems bounds the lists in the message (see Build).
	MaxItems int
}

// Close closes the period of spec ending at end: the items collected before end go into one
// message to each of spec's notifiers, created in the store's outbox in the same transaction
// (so that a crash loses nothing and sends nothing twice), or into nothing at all when there
// are none. A period that was closed already (by this process or another) is not closed again:
// the result's Closed is false. The first period of a digest starts at the schedule's tick
// before end. now is the time of the close, when the messages are created and due.
func Close(ctx context.Context, store relay.Store, spec Spec, end, now time.Time) (*relay.DigestClose, error) {
	c := &relay.DigestClose{
		Digest: spec.Name,
		End:    end,
		Now:    now,
		Start:  spec.Schedule.Prev(end.Add(-time.Nanosecond)),
		Build: func(start time.Time, stored []relay.DigestItem) ([]byte, error) {
			s, err := Summarize(spec, start, end, stored)
			if err != nil {
				return nil, err
			}
			return json.Marshal(s)
		},
	}
	if c.Start.IsZero() {
		c.Start = end
	}
	for _, n := range spec.Notify {
		c.Deliveries = append(c.Deliveries, relay.DeliverySpec{Rule: spec.Name, Notifier: n, Template: spec.Template})
	}
	if err := store.CloseDigest(ctx, c); err != nil {
		return nil, err
	}
	return c, nil
}

// Summarize builds the summary of stored items for the period from start to end, with times
// in the schedule's zone. An item whose event cannot be read is an error: the close is then
// retried rather than a digest sent without it.
func Summarize(spec Spec, start, end time.Time, stored []relay.DigestItem) (*Summary, error) {
	items := make([]Item, 0, len(stored))
	for _, it := range stored {
		ev, err := relay.ParseEvent(it.Body, it.MessageID, string(it.Kind), it.Meta, it.ReceivedAt)
		if err != nil {
			return nil, fmt.Errorf("digest %s: item %s: %w", spec.Name, it.MessageID, err)
		}
		items = append(items, ItemFromEvent(ev))
	}
	loc := spec.Schedule.Location()
	return Build(spec.Name, start.In(loc), end.In(loc), items, spec.MaxItems), nil
}

// Runner closes each digest's periods as its schedule comes due, including, when it starts, a
// period whose time passed while the relay was down (missed periods collapse into one).
type Runner struct {
	Store   relay.Store
	Digests []Spec
	// Wake is told when a message was created, so that the dispatcher sends it at once.
	Wake func()
	Log  *slog.Logger
	// Now is the clock [time.Now]; MaxWait bounds a sleep between checks [1m], so that a
	// clock change or a period closed elsewhere is noticed.
	Now     func() time.Time
	MaxWait time.Duration
}

// Run closes due periods until ctx is cancelled.
func (r *Runner) Run(ctx context.Context) {
	for {
		r.Tick(ctx)
		wait := r.maxWait()
		now := r.now()
		for _, d := range r.Digests {
			if next := d.Schedule.Next(now); !next.IsZero() {
				wait = min(wait, next.Sub(now))
			}
		}
		t := time.NewTimer(max(wait, time.Millisecond))
		select {
		case <-ctx.Done():
			t.Stop()
			return
		case <-t.C:
		}
	}
}

// Tick closes the period that is due for each digest, if any, and reports how many messages
// it created. Failures are logged and retried at the next tick.
func (r *Runner) Tick(ctx context.Context) (created int) {
	now := r.now()
	for _, d := range r.Digests {
		last, err := r.Store.DigestLastEnd(ctx, d.Name)
		if err != nil {
			r.log().Error("digest: reading its last period failed; will retry", "digest", d.Name, "err", err)
			continue
		}
		if last.After(now.Add(time.Minute)) {
			// Closed by a clock that ran ahead (a resumed VM, a bad NTP step, a replica off):
			// no period closes until the clock passes that end. Say so rather than stay silent.
			r.log().Error("digest: its last period ends in the future; nothing closes until then (clock skew?)",
				"digest", d.Name, "last_end", last, "now", now)
			continue
		}
		tick, due := d.Schedule.Due(last, now)
		if !due {
			continue
		}
		c, err := Close(ctx, r.Store, d, tick, now)
		if err != nil {
			r.log().Error("digest: closing its period failed; will retry", "digest", d.Name, "end", tick, "err", err)
			continue
		}
		if c.Closed {
			r.log().Info("digest period closed", "digest", d.Name, "from", c.Begin, "to", tick, "items", c.Items, "messages", c.Created)
			created += c.Created
		}
	}
	if created > 0 && r.Wake != nil {
		r.Wake()
	}
	return created
}

func (r *Runner) now() time.Time {
	if r.Now != nil {
		return r.Now()
	}
	return time.Now()
}

func (r *Runner) maxWait() time.Duration {
	if r.MaxWait > 0 {
		return r.MaxWait
	}
	return time.Minute
}

func (r *Runner) log() *slog.Logger {
	if r.Log != nil {
		return r.Log
	}
	return slog.Default()
}
