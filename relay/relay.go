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
	// Attachments are files sent with the message, such as output images downloaded so that
	// they outlive Replicate's one-hour links. Empty unless the notifier asks for them; a
	// notifier that cannot attach keeps the links the body already has.
	Attachments []Attachment
	// Text is the whole message as plain text, made safe for the target, used as the fallback
	// text that notification banners and screen readers show (Slack reads it as mrkdwn, so for
	// Slack it is escaped like Body).
	Text string
}

// Attachment is a file sent with a message.
type Attachment struct {
	Name        string // a file name, e.g. "out-0.png"
	ContentType string // e.g. "image/png"
	Data        []byte
	URL         string // where it was downloaded from
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
	// Ignored events were not stored: non-terminal, matched by no rule, and unable to change a
	// later decision (no rule matches a status they would make stale). Replicate never retries
	// them, so there is nothing to remember: see Receiver.
	Ignored
)

func (o Outcome) String() string {
	switch o {
	case Accepted:
		return "accepted"
	case Duplicate:
		return "duplicate"
	case Stale:
		return "stale"
	case Ignored:
		return "ignored"
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
	Body       []byte            // the raw payload; stored only when Deliveries or Digests is not empty (see Store.Ingest)
	Deliveries []DeliverySpec
	Digests    []string // digests the event is collected for (see DigestClose)

	Outcome   Outcome
	Created   int // deliveries newly created (others already existed for the same transition)
	Collected int // digest items newly created (likewise)
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
	// LeaseUntil is when the claim that returned this delivery ends, exactly as the store
	// recorded it: Settle and Release present it (see Lease) to prove the claim is theirs.
	LeaseUntil time.Time

	MessageID  string
	Kind       Kind
	Meta       map[string]string
	Body       []byte
	ReceivedAt time.Time
}

// Lease identifies one claim of one delivery. Until is the lease's end as Claim set it
// (Delivery.LeaseUntil), and is the token that Settle and Release must present: once the lease
// has expired and another Claim has taken the delivery, the new claim has a later Until, and the
// old token no longer matches.
type Lease struct {
	ID    int64
	Until time.Time
}

// Lease returns the token of the claim that returned d.
func (d Delivery) Lease() Lease { return Lease{ID: d.ID, Until: d.LeaseUntil} }

// ErrNotClaimed is wrapped by the error of a Settle whose lease no longer holds: the delivery
// was settled or released since, or another claimant took it over after the lease expired, or
// it does not exist.
var ErrNotClaimed = errors.New("relay: delivery is not claimed under this lease")

// State is where a delivery stands.
type State string

// The delivery states.
const (
	Pending State = "pending"
	Sending State = "sending"
	Sent    State = "sent"
	Dead    State = "dead"
)

// Settlement records the result of one attempt at a delivery, under the claim that made it.
type Settlement struct {
	Lease     Lease     // the claim: Settle applies only while it still holds
	State     State     // Sent, Pending (retry at NextAt) or Dead
	Attempts  int       // failed attempts, including this one if it failed
	NextAt    time.Time // with Pending: when to try again
	LastError string    // with Pending or Dead; a Pending without one keeps the last recorded
	Ref       string    // with Sent: the provider's message reference
	At        time.Time

	// Err is set by Store.Settle for this settlement alone: nil when recorded, or an error
	// wrapping ErrNotClaimed when its lease no longer held and nothing was changed.
	Err error
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

// DigestItem is an event collected for a digest, as stored.
type DigestItem struct {
	MessageID  string
	Kind       Kind
	Meta       map[string]string
	Body       []byte
	ReceivedAt time.Time
}

// DigestClose asks Store.CloseDigest to close one period of a digest, and holds the result.
type DigestClose struct {
	Digest string
	// End ends the period: the items collected before End and in no closed period go into it.
	End time.Time
	// Now is when the period is closed: its message's deliveries are created and due then,
	// and count their age (DispatcherConfig.MaxAge) from then, however long after End a
	// restarted relay closes it. Zero means End.
	Now time.Time
	// Start is where the period starts when the digest has no closed period yet; otherwise it
	// starts where the last one ended.
	Start time.Time
	// Deliveries are the messages to create for a period with items: one per notifier, with
	// the digest's name as their rule and its template set.
	Deliveries []DeliverySpec
	// Build makes the message's body from the period's start and items (oldest first). It runs
	// inside the transaction, only for a period with items; an error aborts the close.
	Build func(start time.Time, items []DigestItem) ([]byte, error)

	// Set by CloseDigest:
	Closed  bool      // false when a period ending at or after End was already closed
	Begin   time.Time // the period's start as recorded
	Items   int       // items the period took
	Created int       // deliveries created
}

// ClosedAt is when c closes its period: Now, or End when Now is zero.
func (c *DigestClose) ClosedAt() time.Time {
	if c.Now.IsZero() {
		return c.End
	}
	return c.Now
}

// Launch is a prediction started from chat (the Discord bot's /predict): where its result goes
// back to. It is recorded when the prediction is created, so that the completion webhook, which
// may reach any relay process, long after, finds it.
type Launch struct {
	PredictionID string
	Model        string // what was asked for, "owner/name[:version]"
	GuildID      string
	ChannelID    string
	UserID       string // who launched it: mentioned in the result, and allowed to cancel it
	// Token is the interaction's token, a secret: the original reply can be edited with it
	// until TokenExpires (15 minutes after the interaction); afterwards the result is a new
	// channel message.
	Token        string
	TokenExpires time.Time
	CreatedAt    time.Time
}

// LaunchMetaKey is the hook URL parameter through which a prediction's webhooks name the
// interaction that launched it, so that its result finds where to go even when the answer to
// the create was lost and the prediction's id never recorded (see PendingLaunchID).
const LaunchMetaKey = "launch"

// PendingLaunchID is the PredictionID under which a launch is recorded before its prediction is
// created, keyed by the interaction's id: prediction ids are letters and digits only.
func PendingLaunchID(interactionID string) string { return "interaction:" + interactionID }

// ErrNoLaunch is wrapped by the error of Store.Launch for a prediction no launch was recorded for.
var ErrNoLaunch = errors.New("relay: no launch recorded for this prediction")

// ErrLaunchExists is wrapped by the error of Store.AddLaunch for an id already recorded.
var ErrLaunchExists = errors.New("relay: a launch is already recorded under this id")

// DigestSubject is the subject of the message of a digest's period that ends at end: what its
// deliveries list as SubjectID, unique per period.
func DigestSubject(digest string, end time.Time) string {
	return digest + "@" + end.UTC().Format(time.RFC3339Nano)
}

// Store is the durable state the pipeline needs. Implementations must make Ingest atomic
// (all of the batch or none of it) and durable before it returns, and must let several
// processes share one database safely.
//
// Every time a store records or compares comes from its caller (an event's ReceivedAt, a
// Settlement's At and NextAt, Claim's now and lease, Prune's bounds), never from the store's own
// clock, so that its decisions do not depend on which process or database server made them. The
// one exception is the UpdatedAt that Release records, for which the caller gives no time; it
// decides nothing, since Prune only looks at deliveries that are sent or dead. Callers pass
// times that are not zero.
type Store interface {
	// Ingest records a batch of events in one transaction. For each event, in order: a
	// MessageID already recorded makes it Duplicate; an event whose status stage is lower than
	// the highest stage recorded for its (Kind, SubjectID) makes it Stale (its MessageID is still
	// recorded); otherwise it is Accepted, the subject's stage is raised, and each of its
	// Deliveries is created unless one already exists for the same (Kind, SubjectID, Status,
	// Rule, Notifier). Created counts the ones created. Likewise each of its Digests collects an
	// item unless the digest has one for the same (Kind, SubjectID, Status); Collected counts
	// them. An event's message id and stage count as
	// recorded at its ReceivedAt, and its deliveries are created and fall due at its ReceivedAt.
	// Ingest must not keep a Body (or any part of it) once it returns: the receiver reuses the
	// buffer it read the webhook into.
	Ingest(ctx context.Context, batch []*Ingest) error
	// Claim leases up to limit deliveries that are due at now: pending with NextAt <= now, or
	// sending with an expired lease, in order of NextAt. A lease ending exactly at now has
	// expired. It marks them sending until now+lease and sets each one's LeaseUntil to that
	// end, exactly as stored, which is the token Settle and Release must present. lease must be
	// positive, so that a claim taking over an expired one always has a later Until. A limit of
	// 0 or less claims nothing and returns nothing.
	Claim(ctx context.Context, now time.Time, lease time.Duration, limit int) ([]Delivery, error)
	// Settle records the outcomes of attempts at deliveries, in one transaction (the dispatcher
	// group-commits them as the receiver does events). Each takes effect at its At, but only
	// while its claim (Lease) still holds: the delivery is sending and its lease ends at
	// Lease.Until. Otherwise (the delivery was settled or released since, another Claim took it
	// over after the lease expired, or it does not exist) that settlement changes nothing and
	// its Err wraps ErrNotClaimed; the others are still recorded. An expired lease that nobody
	// has taken over still holds. The returned error is for the batch: then nothing is recorded.
	Settle(ctx context.Context, batch []*Settlement) error
	// Release returns claimed deliveries to pending without counting an attempt. Their NextAt
	// is left unchanged, so they are due at once, ahead of deliveries that fell due later. Like
	// Settle, it applies to each only while that claim still holds, and silently skips the
	// leases that no longer do.
	Release(ctx context.Context, leases []Lease) error
	// Deliveries lists deliveries, newest first; state "" means any. A limit of 0 or less means
	// all.
	Deliveries(ctx context.Context, state State, limit int) ([]DeliveryInfo, error)
	// Prune forgets message ids and subject stages recorded before seenBefore, and sent or dead
	// deliveries (with events no longer referenced) and launches created before doneBefore. Pending and
	// sending deliveries are always kept. doneBefore should be no later than seenBefore (the
	// config enforces retention >= dedup_window), so that a finished delivery outlives the
	// record of the message that created it: a late retry of that message, no longer recognised
	// as a duplicate, still finds its transition's delivery and creates no second one.
	Prune(ctx context.Context, seenBefore, doneBefore time.Time) error
	// CloseDigest closes a period of a digest in one transaction: it records the period, moves
	// the digest's open items collected before c.End into it, and, when there are any, stores
	// the message c.Build makes and creates c.Deliveries for it (due at c.End,
	// their subject DigestSubject(c.Digest, c.End)). A period whose
	// end is not after the last closed one changes nothing (c.Closed is false), so that the
	// same period closed by two processes, or twice, produces one message. Items are collected
	// by Ingest (an Accepted event's Digests, once per digest and transition).
	CloseDigest(ctx context.Context, c *DigestClose) error
	// DigestLastEnd returns the end of the digest's last closed period, or the zero time.
	DigestLastEnd(ctx context.Context, digest string) (time.Time, error)
	// OpenDigestItems lists the digest's items not yet in a closed period and collected before
	// before, oldest first.
	OpenDigestItems(ctx context.Context, digest string, before time.Time) ([]DigestItem, error)
	// SaveLaunch records a launch durably. Recording the same PredictionID again replaces the
	// record (a retried save after an unclear failure).
	SaveLaunch(ctx context.Context, l Launch) error
	// AddLaunch records a launch durably unless one is recorded under its PredictionID already;
	// then it changes nothing and returns an error wrapping ErrLaunchExists. Whichever process
	// gets there first wins, so that one interaction launches at most one prediction. (A store
	// that repeats a statement after a dropped connection may find the row its first attempt
	// wrote: the caller tells its own launch from another by Token and CreatedAt.)
	AddLaunch(ctx context.Context, l Launch) error
	// Launch returns the launch recorded for a prediction, or an error wrapping ErrNoLaunch.
	Launch(ctx context.Context, predictionID string) (Launch, error)
	// EnsureSetting stores value under key unless the key is already set, and returns the
	// stored value.
	EnsureSetting(ctx context.Context, key, value string) (string, error)
	// Ping checks that the database answers.
	Ping(ctx context.Context) error
	Close() error
}
