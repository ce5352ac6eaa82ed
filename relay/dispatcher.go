package relay

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"sync"
	"time"
)

// Destination is a configured notifier as the dispatcher sees it.
type Destination struct {
	// Notifier sends the messages.
	Notifier Notifier
	// Target selects the templates' output format ("slack", "text", ...).
	Target string
	// Rate limits messages per second to this destination (0 = unlimited), with bursts of Burst.
	Rate  float64
	Burst int
	// Attach, if set, downloads the event's output files so that they are sent with the message
	// and outlive Replicate's links; nil sends links only.
	Attach Fetcher
}

// DigestRenderer renders the message of a closed digest period from the body its Build stored
// (see DigestClose), for a target. The dispatcher's Renderer implements it to send digests.
type DigestRenderer interface {
	RenderDigest(set, target string, body []byte) (Message, error)
}

// Fetcher downloads output files. Files it cannot get come back as errors, one per URL, and
// stay links in the message; a Fetcher never fails a delivery.
type Fetcher interface {
	Fetch(ctx context.Context, urls []string) ([]Attachment, []error)
}

// DispatcherConfig tunes the dispatcher. Zero values take the defaults in brackets.
type DispatcherConfig struct {
	Workers     int           // concurrent sends [4]
	Lease       time.Duration // how long a claimed delivery is held before others may take it [1m]
	SendTimeout time.Duration // bound on one Notify call [15s]
	MaxAttempts int           // failed attempts before a delivery is dead [25]
	MaxAge      time.Duration // age after which a failing delivery is dead [24h]
	BackoffMin  time.Duration // first retry delay [1s]
	BackoffMax  time.Duration // cap on the retry delay [10m]
	Poll        time.Duration // how often to look for due deliveries when not woken [500ms]
	MaxPaceWait time.Duration // longer pacing waits are rescheduled instead of held [5s]; see maxPaceWait
	// SettleLinger is how long an outcome waits for others to share its transaction [5ms]. Under
	// load, beginning and committing a transaction per outcome or two had cost twice the CPU
	// of the updates in them.
	SettleLinger time.Duration
}

func (c *DispatcherConfig) defaults() {
	set := func(d *time.Duration, v time.Duration) {
		if *d <= 0 {
			*d = v
		}
	}
	if c.Workers <= 0 {
		c.Workers = 4
	}
	if c.MaxAttempts <= 0 {
		c.MaxAttempts = 25
	}
	set(&c.Lease, time.Minute)
	set(&c.SendTimeout, 15*time.Second)
	set(&c.MaxAge, 24*time.Hour)
	set(&c.BackoffMin, time.Second)
	set(&c.BackoffMax, 10*time.Minute)
	set(&c.Poll, 500*time.Millisecond)
	set(&c.MaxPaceWait, 5*time.Second)
	set(&c.SettleLinger, 5*time.Millisecond)
	// A send must fit in its lease, or a queued delivery could never start (config validation
	// refuses such settings; this keeps the dispatcher safe without it).
	if c.SendTimeout >= c.Lease {
		c.SendTimeout = c.Lease / 2
	}
}

// maxPaceWait is the longest pacing wait a worker holds a claimed delivery for; longer waits are
// rescheduled. It is MaxPaceWait, but no more than half of what the lease leaves after a send
// (Lease - SendTimeout), so that a delivery that waits and then sends is settled well before its
// lease expires and another worker takes it over. At 0 every pacing wait is rescheduled.
func (c *DispatcherConfig) maxPaceWait() time.Duration {
	return max(0, min(c.MaxPaceWait, (c.Lease-c.SendTimeout)/2))
}

// settleMargin is the part of a lease kept free after a send for recording its outcome: a send
// starts only while SendTimeout plus this much of the lease is left, so that the outcome,
// recorded in batches by another goroutine, is in the store before the lease expires and
// another replica could take the delivery over and send it again. A quarter of what the lease
// leaves after a send: 11s with the defaults.
func (c *DispatcherConfig) settleMargin() time.Duration {
	return max(0, (c.Lease-c.SendTimeout)/4)
}

// Dispatcher drains due deliveries from the store: it leases them, renders each through its
// rule's template, sends it, and records the outcome. A delivery held by a process that died is
// taken again once its lease expires.
type Dispatcher struct {
	store        Store
	renderer     Renderer
	destinations map[string]*Destination
	pacers       map[string]*pacer
	cfg          DispatcherConfig
	maxPaceWait  time.Duration // see DispatcherConfig.maxPaceWait
	log          *slog.Logger
	deliveryLog  *slog.Logger // log, with attributes formatted only for records written
	now          func() time.Time
	wake         chan struct{}
	settles      chan settleReq // set by Run for its workers; see settleLoop
}

// NewDispatcher builds a dispatcher over destinations keyed by the notifier names rules use.
func NewDispatcher(store Store, r Renderer, destinations map[string]*Destination, cfg DispatcherConfig, log *slog.Logger) *Dispatcher {
	cfg.defaults()
	if log == nil {
		log = slog.Default()
	}
	d := &Dispatcher{
		store: store, renderer: r, destinations: destinations, pacers: map[string]*pacer{},
		cfg: cfg, maxPaceWait: cfg.maxPaceWait(), log: log, now: time.Now, wake: make(chan struct{}, 1),
		deliveryLog: slog.New(&lazyAttrs{inner: log.Handler()}),
	}
	for name, dest := range destinations {
		d.pacers[name] = newPacer(dest.Rate, dest.Burst)
	}
	return d
}

// Wake tells the dispatcher that new deliveries may be due. It never blocks.
func (d *Dispatcher) Wake() {
	select {
	case d.wake <- struct{}{}:
	default:
	}
}

// Run dispatches until ctx is cancelled, then lets sends in flight finish (each bounded by
// SendTimeout), gives back deliveries it claimed but did not start, and returns.
func (d *Dispatcher) Run(ctx context.Context) {
	// Outcomes are recorded in batches by one goroutine (see settleLoop), which finishes the
	// ones handed over before Run returns.
	d.settles = make(chan settleReq, 1024)
	settled := make(chan struct{})
	go func() { d.settleLoop(ctx.Done()); close(settled) }()
	defer func() {
		close(d.settles)
		<-settled
	}()
	// Claim ahead: up to queueAhead deliveries per worker are leased and queued, and the queue
	// is refilled when half of it has been sent, so that claims come in batches (each claim is
	// a transaction) rather than one per free worker. A queued delivery whose lease runs short
	// is handed back before it is sent (see handle).
	const queueAhead = 8
	outstanding := d.cfg.Workers * queueAhead
	work := make(chan Delivery, outstanding)
	slots := make(chan struct{}, outstanding) // claimed and not yet handled
	finished := make(chan struct{}, 1)        // a worker finished one: there is room again
	var wg sync.WaitGroup
	for range d.cfg.Workers {
		wg.Go(func() {
			for dl := range work {
				d.handle(ctx, dl)
				<-slots
				select {
				case finished <- struct{}{}:
				default:
				}
			}
		})
	}
	defer func() {
		close(work)
		wg.Wait()
	}()

	timer := time.NewTimer(0)
	defer timer.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-d.wake:
		case <-timer.C:
		}
		for ctx.Err() == nil {
			free := outstanding - len(slots)
			// While the workers have a queue, wait until half of it is free, so that claims
			// stay batches.
			if free < outstanding/2 && len(work) > 0 {
				select {
				case <-finished:
					continue
				case <-ctx.Done():
					return
				}
			}
			if free == 0 {
				break
			}
			batch, err := d.store.Claim(ctx, d.now(), d.cfg.Lease, free)
			if err != nil {
				if ctx.Err() == nil {
					d.log.Error("claiming deliveries failed", "err", err)
				}
				break
			}
			for _, dl := range batch {
				slots <- struct{}{} // never blocks: at most free were claimed
				work <- dl
			}
			if len(batch) < free {
				break
			}
		}
		timer.Reset(d.cfg.Poll)
	}
}

// release gives deliveries back unattempted, outliving the cancelled context. A delivery whose
// lease another worker has taken over stays with that worker.
func (d *Dispatcher) release(batch []Delivery) {
	if len(batch) == 0 {
		return
	}
	leases := make([]Lease, len(batch))
	for i, dl := range batch {
		leases[i] = dl.Lease()
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := d.store.Release(ctx, leases); err != nil {
		d.log.Error("releasing deliveries failed; they will be retried when their lease expires", "err", err, "count", len(leases))
	}
}

func (d *Dispatcher) handle(ctx context.Context, dl Delivery) {
	// Queued deliveries are handed back rather than started once the dispatcher is stopping,
	// or when too little of their lease is left to finish a send within it.
	if ctx.Err() != nil || dl.LeaseUntil.Sub(d.now()) < d.cfg.SendTimeout+d.cfg.settleMargin() {
		d.release([]Delivery{dl})
		return
	}
	log := d.deliveryLog.With("delivery", dl.ID, "rule", dl.Rule, "notifier", dl.Notifier)
	dest := d.destinations[dl.Notifier]
	if dest == nil {
		// Another process sharing the store may have it (relay serve beside relay digest send,
		// replicas in a rolling deploy, the bot's own destination), or a fixed config will: the
		// delivery waits for one, without counting attempts, until MaxAge.
		now := d.now()
		lastError := fmt.Sprintf("notifier %q is not configured in this process", dl.Notifier)
		if now.Sub(dl.CreatedAt) >= d.cfg.MaxAge {
			d.settle(log, dl, Settlement{State: Dead, Attempts: dl.Attempts, LastError: fmt.Sprintf("gave up after %v: %s", d.cfg.MaxAge, lastError), At: now})
			return
		}
		log.Warn("notifier not configured here; the delivery waits for a process that has it", "retry_in", unknownNotifierWait)
		d.settle(log, dl, Settlement{State: Pending, Attempts: dl.Attempts, NextAt: now.Add(unknownNotifierWait), LastError: lastError, At: now})
		return
	}
	// A delivery that has to go back to the store to wait for its turn (most of a burst to a
	// paced destination) goes back before it is rendered and its files downloaded, only to do
	// it all again when it comes back. The slot itself is taken right before the send, below,
	// so that a slow download cannot bunch sends together.
	p := d.pacers[dl.Notifier]
	if wait := p.peek(d.now()); wait > 0 && d.waitTooLong(wait, dl) {
		d.settle(log, dl, Settlement{State: Pending, Attempts: dl.Attempts, NextAt: d.now().Add(wait)})
		return
	}

	var msg Message
	if dl.Kind == KindDigest {
		dr, ok := d.renderer.(DigestRenderer)
		if !ok {
			d.settle(log, dl, Settlement{State: Dead, Attempts: dl.Attempts, LastError: "render: this relay cannot render digests"})
			return
		}
		m, err := dr.RenderDigest(dl.Template, dest.Target, dl.Body)
		if err != nil {
			d.settle(log, dl, Settlement{State: Dead, Attempts: dl.Attempts, LastError: "render: " + err.Error()})
			return
		}
		msg = m
	} else {
		ev, err := ParseEvent(dl.Body, dl.MessageID, string(dl.Kind), dl.Meta, dl.ReceivedAt)
		if err != nil {
			d.settle(log, dl, Settlement{State: Dead, Attempts: dl.Attempts, LastError: "stored event unreadable: " + err.Error()})
			return
		}
		log = log.With("kind", ev.Kind, "id", ev.ID, "status", ev.Status)
		m, err := d.renderer.Render(dl.Template, dest.Target, ev)
		if err != nil {
			d.settle(log, dl, Settlement{State: Dead, Attempts: dl.Attempts, LastError: "render: " + err.Error()})
			return
		}
		msg = m
		if dest.Attach != nil {
			msg.Attachments = d.attach(ctx, log, dest.Attach, dl, ev)
			if ctx.Err() != nil { // stopping: nothing was sent, so the delivery goes back as it was
				d.release([]Delivery{dl})
				return
			}
		}
	}
	msg.Rule = dl.Rule

	if wait := p.reserve(d.now()); wait > 0 {
		if d.waitTooLong(wait, dl) {
			p.cancel()
			d.settle(log, dl, Settlement{State: Pending, Attempts: dl.Attempts, NextAt: d.now().Add(wait)})
			return
		}
		t := time.NewTimer(wait)
		select {
		case <-t.C:
		case <-ctx.Done():
			t.Stop()
			p.cancel()
			d.release([]Delivery{dl})
			return
		}
		// A 429 answered to another send while this one waited pauses it too.
		if paused := p.paused(d.now()); paused > 0 {
			p.cancel()
			d.settle(log, dl, Settlement{State: Pending, Attempts: dl.Attempts, NextAt: d.now().Add(paused)})
			return
		}
	}

	// A send that has started is allowed to finish on shutdown: cutting it off midway would
	// leave the provider's state unknown and make a duplicate more likely.
	sendCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), d.cfg.SendTimeout)
	ref, err := dest.Notifier.Notify(sendCtx, msg)
	cancel()
	now := d.now()
	if err == nil {
		log.Info("notification sent", "attempts", dl.Attempts+1)
		d.settle(log, dl, Settlement{State: Sent, Attempts: dl.Attempts, Ref: ref, At: now})
		return
	}
	c := Classify(err)
	switch {
	case c.Permanent:
		d.settle(log, dl, Settlement{State: Dead, Attempts: dl.Attempts + 1, LastError: err.Error(), At: now})
	case c.RateLimited:
		wait := max(c.RetryAfter, time.Second)
		p.pause(now.Add(wait))
		if now.Sub(dl.CreatedAt) >= d.cfg.MaxAge {
			// Rate limits do not count as attempts, but they do not hold a delivery past
			// MaxAge either.
			d.settle(log, dl, Settlement{State: Dead, Attempts: dl.Attempts,
				LastError: fmt.Sprintf("gave up after %v: %v", d.cfg.MaxAge, err), At: now})
			return
		}
		log.Warn("rate limited; will retry", "retry_after", wait)
		d.settle(log, dl, Settlement{State: Pending, Attempts: dl.Attempts, NextAt: now.Add(wait), LastError: err.Error(), At: now})
	default:
		attempts := dl.Attempts + 1
		if attempts >= d.cfg.MaxAttempts || now.Sub(dl.CreatedAt) >= d.cfg.MaxAge {
			d.settle(log, dl, Settlement{State: Dead, Attempts: attempts, LastError: fmt.Sprintf("gave up after %d attempts: %v", attempts, err), At: now})
			return
		}
		wait := max(Backoff(attempts, d.cfg.BackoffMin, d.cfg.BackoffMax), c.RetryAfter)
		log.Warn("send failed; will retry", "err", err, "attempts", attempts, "retry_in", wait.Round(time.Millisecond))
		d.settle(log, dl, Settlement{State: Pending, Attempts: attempts, NextAt: now.Add(wait), LastError: err.Error(), At: now})
	}
}

// waitTooLong reports whether a pacing wait is too long to hold dl for: longer than
// maxPaceWait, or than its lease leaves for the wait, a send and recording its outcome.
func (d *Dispatcher) waitTooLong(wait time.Duration, dl Delivery) bool {
	return wait > d.maxPaceWait || d.now().Add(wait+d.cfg.SendTimeout+d.cfg.settleMargin()).After(dl.LeaseUntil)
}

// attach downloads ev's output files for the message. It spends at most SendTimeout, and only
// what the lease has to spare beyond the send itself, so that a slow download can neither push a
// send past the lease nor hold the delivery up: whatever is not downloaded in time stays a link.
func (d *Dispatcher) attach(ctx context.Context, log *slog.Logger, f Fetcher, dl Delivery, ev *Event) []Attachment {
	urls := ev.Files()
	if len(urls) == 0 {
		return nil
	}
	budget := min(d.cfg.SendTimeout, dl.LeaseUntil.Sub(d.now())-d.cfg.SendTimeout-d.cfg.settleMargin())
	if budget <= 0 {
		log.Warn("no time left in the lease to download output files; sending links", "files", len(urls))
		return nil
	}
	ctx, cancel := context.WithTimeout(ctx, budget)
	defer cancel()
	files, errs := f.Fetch(ctx, urls)
	for _, err := range errs {
		log.Warn("output file not attached; the message keeps its link", "err", err)
	}
	return files
}

// settleReq is an outcome handed to settleLoop.
type settleReq struct {
	s   *Settlement
	dl  Delivery
	log *slog.Logger
}

// settle hands an outcome to settleLoop, to be recorded under the delivery's lease, and returns
// at once: the worker goes on to its next delivery while the outcome is committed together
// with the others that finished meanwhile, rather than each waiting for a transaction (and an
// fsync) of its own. Until the outcome is recorded the delivery stays claimed, so nobody sends
// it again; if it cannot be recorded, the lease expires and the delivery is attempted again (at
// least once, never lost).
func (d *Dispatcher) settle(log *slog.Logger, dl Delivery, s Settlement) {
	if s.At.IsZero() {
		s.At = d.now()
	}
	s.Lease = dl.Lease()
	// Errors may quote what a provider or a template said; PostgreSQL's text refuses a NUL or
	// invalid UTF-8, which would fail the whole batch of outcomes.
	s.LastError, s.Ref = storableText(s.LastError), storableText(s.Ref)
	d.settles <- settleReq{s: &s, dl: dl, log: log}
}

// unknownNotifierWait is how long a delivery whose notifier this process lacks waits before a
// dispatcher takes it again: short enough for another process's result to go out soon, long
// enough that two processes do not pass it back and forth.
const unknownNotifierWait = 15 * time.Second

// settleBatch bounds the outcomes recorded in one transaction.
const settleBatch = 256

// settleLoop records handed-over outcomes until d.settles is closed and drained. A batch starts
// with the first outcome and takes the others that arrive within SettleLinger of it (or until it
// is full, or the dispatcher stops): workers finish their sends one by one, and without the wait
// most transactions carried one or two outcomes. The wait only delays when an outcome is
// recorded, by far less than the part of the lease kept for it (settleMargin).
func (d *Dispatcher) settleLoop(stopping <-chan struct{}) {
	batch := make([]settleReq, 0, settleBatch)
	items := make([]*Settlement, 0, settleBatch)
	linger := time.NewTimer(time.Hour)
	linger.Stop()
	for r := range d.settles {
		batch = append(batch[:0], r)
		linger.Reset(d.cfg.SettleLinger)
	gather:
		for len(batch) < settleBatch {
			select {
			case r, ok := <-d.settles:
				if !ok {
					break gather
				}
				batch = append(batch, r)
			case <-linger.C:
				break gather
			}
		}
		linger.Stop()
		items = items[:0]
		for _, r := range batch {
			items = append(items, r.s)
		}
		d.record(stopping, batch, items)
		clear(batch)
		clear(items)
	}
}

// record commits one batch of outcomes and logs what became of each. A store that fails (a
// database restarting, a full disk) is tried again, backing off up to 2 s, for as long as the
// batch's leases last (less a second): an outcome not recorded means a message sent again once
// its lease expires. Past that, or after three tries once the dispatcher is stopping, it gives
// up, and each delivery is retried when its lease expires. A delivery whose lease was lost
// belongs to another worker now, whose outcome is the one that counts.
func (d *Dispatcher) record(stopping <-chan struct{}, batch []settleReq, items []*Settlement) {
	until := batch[0].dl.LeaseUntil
	for _, r := range batch[1:] {
		if r.dl.LeaseUntil.Before(until) {
			until = r.dl.LeaseUntil
		}
	}
	// The dispatcher's clock says how long the leases have; the waiting is done in real time.
	giveUp := time.Now().Add(until.Sub(d.now()) - time.Second)
	var err error
	for try := 0; ; try++ {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		err = d.store.Settle(ctx, items)
		cancel()
		if err == nil {
			break
		}
		wait := min(time.Duration(try+1)*200*time.Millisecond, 2*time.Second)
		stopped := false
		select {
		case <-stopping:
			stopped = true
		default:
		}
		if try >= 2 && (stopped || time.Now().Add(wait).After(giveUp)) {
			break
		}
		if try == 0 {
			d.log.Warn("recording delivery outcomes failed; trying again while their leases last",
				"deliveries", len(items), "err", err)
		}
		time.Sleep(wait)
	}
	for _, r := range batch {
		s := r.s
		switch {
		case err != nil:
			r.log.Error("recording delivery outcome failed; it will be retried after its lease",
				"state", s.State, "attempts", s.Attempts, "last_error", s.LastError, "err", err)
		case errors.Is(s.Err, ErrNotClaimed):
			r.log.Warn("lease lost: another worker took the delivery over",
				"state", s.State, "lease_until", r.dl.LeaseUntil, "last_error", s.LastError, "err", s.Err)
		case s.Err != nil:
			r.log.Error("recording delivery outcome failed; it will be retried after its lease",
				"state", s.State, "attempts", s.Attempts, "last_error", s.LastError, "err", s.Err)
		case s.State == Dead:
			r.log.Error("delivery dead", "attempts", s.Attempts, "last_error", s.LastError)
		}
	}
}

// Backoff is the delay before retry number attempts (1-based): exponential from min, capped at
// max, with jitter over the upper half so that retries from one outage spread out.
func Backoff(attempts int, min, max time.Duration) time.Duration {
	d := min
	for i := 1; i < attempts && d < max; i++ {
		d *= 2
	}
	if d > max {
		d = max
	}
	half := d / 2
	if half <= 0 {
		return d
	}
	return half + rand.N(half+1)
}
