// Package relay is the domain of the relay: events received from Replicate, the rules that pick
// who hears about them, the durable outbox of deliveries, and the interfaces to the store and to
// the notifiers that it consumes. Adapters live in subpackages and in notifiers/; cmd/relay wires
// them together.
package relay

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/mlrelay/relay/relay/replicate"
)

// Message is what a notifier sends: the parts rendered from templates for the notifier's target,
// plus the event itself so that a notifier can build typed parts (fields, images, links).
type Message struct {
	// Event is the event the message is about.
	Event *Event
	// Rule is the name of the rule that produced the message.
	Rule string
	// Title is a one-line headline, escaped for the target (for Slack: mrkdwn entities, which a
	// notifier putting it into a plain_text object must undo).
	Title string
	// Body is the main text, already formatted and escaped for the target (mrkdwn for Slack).
	Body string
	// Context is a short footer line, formatted for the target.
	Context string
	// Text is the whole message as plain text, made safe for the target, used as the fallback
	// text that notification banners and screen readers show (Slack reads it as mrkdwn, so for
	// Slack it is escaped like Body).
	Text string
}

// Notifier sends messages to one destination (a Slack channel, a Discord channel, a mailbox).
// Notify returns the provider's reference to the created message (Slack ts, Discord message id)
// or "". It classifies its own failures with Permanent, Retryable and RateLimited; an
// unclassified error is treated as retryable.
type Notifier interface {
	Notify(ctx context.Context, m Message) (ref string, err error)
}

// Renderer turns an event into a message for a target ("slack", "text", ...) using the named
// template set.
type Renderer interface {
	Render(set, target string, ev *Event) (Message, error)
}

// SendError is a classified delivery failure.
type SendError struct {
	Err error
	// Permanent failures are not retried: the delivery ends as dead.
	Permanent bool
	// RateLimited failures do not count as an attempt and pause the destination.
	RateLimited bool
	// RetryAfter is the wait the provider asked for, or 0.
	RetryAfter time.Duration
}

func (e *SendError) Error() string { return e.Err.Error() }
func (e *SendError) Unwrap() error { return e.Err }

// Permanent marks err as not worth retrying (a 4xx other than 408 and 429, say).
func Permanent(err error) error { return &SendError{Err: err, Permanent: true} }

// Retryable marks err as temporary; after, if positive, is the earliest time to try again.
func Retryable(err error, after time.Duration) error {
	return &SendError{Err: err, RetryAfter: after}
}

// RateLimited marks err as the provider's rate limit, asking to wait after before sending again.
func RateLimited(err error, after time.Duration) error {
	return &SendError{Err: err, RateLimited: true, RetryAfter: after}
}

// Classify returns how err should be handled. Unclassified errors are retryable.
func Classify(err error) SendError {
	var se *SendError
	if errors.As(err, &se) {
		return *se
	}
	return SendError{Err: err}
}

// Outcome is what the store made of one ingested event.
type Outcome int

const (
	// Accepted events were new; their deliveries (possibly none) are durable.
	Accepted Outcome = iota
	// Duplicate events carried a webhook-id already seen within the dedup window.
	Duplicate
	// Stale events arrived after a later stage of the same prediction had been seen.
	Stale
)

func (o Outcome) String() string {
	switch o {
	case Accepted:
		return "accepted"
	case Duplicate:
		return "duplicate"
	case Stale:
		return "stale"
	}
	return fmt.Sprintf("outcome(%d)", int(o))
}

// Ingest is one verified event on its way into the store, with the deliveries its matching
// rules imply. Store.Ingest fills in Outcome and Created.
type Ingest struct {
	MessageID  string // webhook-id: identical on every retry of one message
	Kind       Kind
	SubjectID  string // the prediction or training id
	Status     replicate.Status
	ReceivedAt time.Time
	Meta       map[string]string // query parameters of the hook URL
	Body       []byte            // the raw payload; stored only when Deliveries is not empty
	Deliveries []DeliverySpec

	Outcome Outcome
	Created int // deliveries newly created (others already existed for the same transition)
}

// DeliverySpec asks for one message: a rule's template sent through one notifier.
type DeliverySpec struct {
	Rule     string
	Notifier string
	Template string
}

// Delivery is a leased unit of work for the dispatcher: one spec and the event it is about.
type Delivery struct {
	ID        int64
	Rule      string
	Notifier  string
	Template  string
	Attempts  int // failed attempts so far
	CreatedAt time.Time

	MessageID  string
	Kind       Kind
	Meta       map[string]string
	Body       []byte
	ReceivedAt time.Time
}

// State is where a delivery stands.
type State string

// The delivery states.
const (
	Pending State = "pending"
	Sending State = "sending"
	Sent    State = "sent"
	Dead    State = "dead"
)

// Settlement records the result of one attempt at a delivery.
type Settlement struct {
	State     State     // Sent, Pending (retry at NextAt) or Dead
	Attempts  int       // failed attempts, including this one if it failed
	NextAt    time.Time // with Pending: when to try again
	LastError string    // with Pending or Dead
	Ref       string    // with Sent: the provider's message reference
	At        time.Time
}

// DeliveryInfo is a delivery as operators see it.
type DeliveryInfo struct {
	ID        int64
	Rule      string
	Notifier  string
	State     State
	Attempts  int
	NextAt    time.Time
	LastError string
	Ref       string
	Kind      Kind
	SubjectID string
	Status    replicate.Status
	MessageID string
	CreatedAt time.Time
	UpdatedAt time.Time
}

// Store is the durable state the pipeline needs. Implementations must make Ingest atomic
// (all of the batch or none of it) and durable before it returns, and must let several
// processes share one database safely.
type Store interface {
	// Ingest records a batch of events in one transaction. For each event, in order: a
	// MessageID already recorded makes it Duplicate; an event whose status stage is lower than
	// the highest stage recorded for its (Kind, SubjectID) makes it Stale (its MessageID is still
	// recorded); otherwise it is Accepted, the subject's stage is raised, and each of its
	// Deliveries is created unless one already exists for the same (Kind, SubjectID, Status,
	// Rule, Notifier). Created counts the ones created.
	Ingest(ctx context.Context, batch []*Ingest) error
	// Claim leases up to limit deliveries that are due at now: pending with NextAt <= now, or
	// sending with an expired lease. It marks them sending until now+lease.
	Claim(ctx context.Context, now time.Time, lease time.Duration, limit int) ([]Delivery, error)
	// Settle records the outcome of an attempt at a claimed delivery.
	Settle(ctx context.Context, id int64, s Settlement) error
	// Release returns claimed deliveries to pending, due at once, without counting an attempt.
	Release(ctx context.Context, ids []int64) error
	// Deliveries lists deliveries, newest first; state "" means any.
	Deliveries(ctx context.Context, state State, limit int) ([]DeliveryInfo, error)
	// Prune forgets message ids and subject stages recorded before seenBefore, and sent or dead
	// deliveries (with events no longer referenced) last updated before doneBefore.
	Prune(ctx context.Context, seenBefore, doneBefore time.Time) error
	// EnsureSetting stores value under key unless the key is already set, and returns the
	// stored value.
	EnsureSetting(ctx context.Context, key, value string) (string, error)
	// Ping checks that the database answers.
	Ping(ctx context.Context) error
	Close() error
}
