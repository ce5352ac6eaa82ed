package relay

import (
	"context"
	"errors"
	"runtime"
	"sync"
	"time"
)

// ErrClosed is returned by a submit once its group commit has stopped.
var ErrClosed = errors.New("relay: committer closed")

// groupCommit gathers items submitted concurrently into shared transactions: while one batch is
// being committed, the next one gathers, so an fsync per transaction does not cap throughput.
// One goroutine owns the commits; a submit returns once its batch is committed.
type groupCommit[T any] struct {
	commit   func(ctx context.Context, batch []T) error
	after    func(batch []T) // called after each successful commit; may be nil
	maxBatch int
	timeout  time.Duration

	in   chan *commitReq[T] // unbuffered: an item is either taken by the loop or not sent at all
	quit chan struct{}
	done chan struct{}
	once sync.Once
	pool sync.Pool
}

type commitReq[T any] struct {
	item T
	err  chan error
}

func newGroupCommit[T any](maxBatch int, commit func(context.Context, []T) error, after func([]T)) *groupCommit[T] {
	if maxBatch <= 0 {
		maxBatch = 256
	}
	g := &groupCommit[T]{
		commit:   commit,
		after:    after,
		maxBatch: maxBatch,
		timeout:  10 * time.Second,
		in:       make(chan *commitReq[T]),
		quit:     make(chan struct{}),
		done:     make(chan struct{}),
	}
	g.pool.New = func() any { return &commitReq[T]{err: make(chan error, 1)} }
	go g.loop()
	return g
}

// submit commits item and returns the batch's error, or ErrClosed or ctx's error if the item
// was never taken. Once taken, an item is waited for whatever ctx says: the loop answers every
// request it takes, within its own timeout.
func (g *groupCommit[T]) submit(ctx context.Context, item T) error {
	req := g.pool.Get().(*commitReq[T])
	req.item = item
	var zero T
	select {
	case g.in <- req:
	case <-g.quit:
		req.item = zero
		g.pool.Put(req)
		return ErrClosed
	case <-ctx.Done():
		req.item = zero
		g.pool.Put(req)
		return ctx.Err()
	}
	err := <-req.err
	req.item = zero // a pooled request keeps nothing of the item (nor its body) alive
	g.pool.Put(req)
	return err
}

// close stops taking items, finishes the batch in progress, and waits for the loop to end.
func (g *groupCommit[T]) close() {
	g.once.Do(func() { close(g.quit) })
	<-g.done
}

// maxYields bounds how many times one gathering yields the processor to submitters.
const maxYields = 8

// gather adds the requests that are ready to the batch. Submitters that are runnable but have
// not reached submit yet are given the processor first: with GOMAXPROCS=1 the loop runs as soon
// as the first submitter blocks, before any other has had a turn, and without yielding every
// transaction would carry one item, each fsync waiting behind every runnable goroutine. It keeps
// yielding while yields bring new requests, up to maxYields times.
func (g *groupCommit[T]) gather(reqs *[]*commitReq[T]) {
	for yields := 0; len(*reqs) < g.maxBatch; {
		select {
		case r := <-g.in:
			*reqs = append(*reqs, r)
			continue
		default:
		}
		if yields == maxYields {
			return
		}
		before := len(*reqs)
		runtime.Gosched()
		yields++
		select {
		case r := <-g.in:
			*reqs = append(*reqs, r)
		default:
			if len(*reqs) == before {
				return // nobody else was on the way
			}
		}
	}
}

func (g *groupCommit[T]) loop() {
	defer close(g.done)
	reqs := make([]*commitReq[T], 0, g.maxBatch)
	items := make([]T, 0, g.maxBatch)
	for {
		var first *commitReq[T]
		select {
		case first = <-g.in:
		case <-g.quit:
			return
		}
		reqs = append(reqs[:0], first)
		g.gather(&reqs)
		items = items[:0]
		for _, r := range reqs {
			items = append(items, r.item)
		}
		ctx, cancel := context.WithTimeout(context.Background(), g.timeout)
		err := g.commit(ctx, items)
		cancel()
		if err == nil && g.after != nil {
			g.after(items)
		}
		for _, r := range reqs {
			r.err <- err
		}
		clear(reqs)
		clear(items)
	}
}

// Committer stores verified events through group commit (see Store.Ingest): Submit returns only
// once its item is durable.
type Committer struct {
	g *groupCommit[*Ingest]

	mu       sync.Mutex
	failing  bool      // the last commit failed
	failedAt time.Time // when, with its monotonic reading
}

// failingFor is how long after a failed commit Failing reports it, unless a commit succeeds.
// It ends by itself so that a relay taken out of a load balancer's rotation gets webhooks again
// to find out whether the store has recovered.
const failingFor = 10 * time.Second

// Failing returns an error when the last commit failed (a full disk, a database that went
// read-only) less than 10 s before now: a store that answers reads can still refuse every
// webhook, and /readyz should say so.
func (c *Committer) Failing(now time.Time) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if !c.failing {
		return nil
	}
	ago := now.Sub(c.failedAt) // monotonic when now comes from time.Now: clock steps do not count
	if ago >= failingFor {
		return nil
	}
	return errors.New("storing webhooks failed " + max(ago, 0).Round(time.Millisecond).String() + " ago")
}

// NewCommitter starts the commit loop. maxBatch bounds a transaction's size; onCommit, if not
// nil, is told how many deliveries each commit created (the dispatcher's wake-up).
func NewCommitter(store Store, maxBatch int, onCommit func(created int)) *Committer {
	var after func([]*Ingest)
	if onCommit != nil {
		after = func(batch []*Ingest) {
			created := 0
			for _, it := range batch {
				created += it.Created
			}
			onCommit(created)
		}
	}
	c := &Committer{}
	c.g = newGroupCommit(maxBatch, func(ctx context.Context, batch []*Ingest) error {
		err := store.Ingest(ctx, batch)
		c.mu.Lock()
		c.failing = err != nil
		if err != nil {
			c.failedAt = time.Now()
		}
		c.mu.Unlock()
		return err
	}, after)
	return c
}

// Submit stores item and returns when it is durable (item.Outcome and item.Created are then
// set), or the reason it is not. An item is never half stored.
func (c *Committer) Submit(ctx context.Context, item *Ingest) error { return c.g.submit(ctx, item) }

// Close stops taking items, commits what was already taken, and waits for the loop to end.
func (c *Committer) Close() { c.g.close() }
