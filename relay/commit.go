package relay

import (
	"context"
	"errors"
	"sync"
	"time"
)

// ErrClosed is returned by Committer.Submit once the committer has stopped.
var ErrClosed = errors.New("relay: committer closed")

// Committer turns concurrent ingests into shared transactions (group commit): while one batch
// is being committed, the next one gathers, so an fsync per transaction does not cap throughput.
// Submit returns only once its item is durable.
type Committer struct {
	store    Store
	maxBatch int
	timeout  time.Duration
	onCommit func(created int) // called after each successful commit; may be nil

	in   chan *commitReq // unbuffered: an item is either taken by the loop or not sent at all
	quit chan struct{}
	done chan struct{}
	once sync.Once
	pool sync.Pool
}

type commitReq struct {
	item *Ingest
	err  chan error
}

// NewCommitter starts the commit loop. maxBatch bounds a transaction's size; onCommit, if not
// nil, is told how many deliveries each commit created (the dispatcher's wake-up).
func NewCommitter(store Store, maxBatch int, onCommit func(created int)) *Committer {
	if maxBatch <= 0 {
		maxBatch = 256
	}
	c := &Committer{
		store:    store,
		maxBatch: maxBatch,
		timeout:  10 * time.Second,
		onCommit: onCommit,
		in:       make(chan *commitReq),
		quit:     make(chan struct{}),
		done:     make(chan struct{}),
	}
	c.pool.New = func() any { return &commitReq{err: make(chan error, 1)} }
	go c.loop()
	return c
}

// Submit stores item and returns when it is durable (item.Outcome and item.Created are then
// set), or the reason it is not. An item is never half stored.
func (c *Committer) Submit(ctx context.Context, item *Ingest) error {
	req := c.pool.Get().(*commitReq)
	req.item = item
	select {
	case c.in <- req:
	case <-c.quit:
		c.pool.Put(req)
		return ErrClosed
	case <-ctx.Done():
		c.pool.Put(req)
		return ctx.Err()
	}
	// Once the loop has the item, wait for its commit whatever the caller's context says:
	// the loop answers every request it takes, within its own timeout.
	err := <-req.err
	req.item = nil
	c.pool.Put(req)
	return err
}

// Close stops taking items, commits what was already taken, and waits for the loop to end.
func (c *Committer) Close() {
	c.once.Do(func() { close(c.quit) })
	<-c.done
}

func (c *Committer) loop() {
	defer close(c.done)
	reqs := make([]*commitReq, 0, c.maxBatch)
	items := make([]*Ingest, 0, c.maxBatch)
	for {
		var first *commitReq
		select {
		case first = <-c.in:
		case <-c.quit:
			return
		}
		reqs = append(reqs[:0], first)
	gather:
		for len(reqs) < c.maxBatch {
			select {
			case r := <-c.in:
				reqs = append(reqs, r)
			default:
				break gather
			}
		}
		items = items[:0]
		for _, r := range reqs {
			items = append(items, r.item)
		}
		ctx, cancel := context.WithTimeout(context.Background(), c.timeout)
		err := c.store.Ingest(ctx, items)
		cancel()
		created := 0
		if err == nil {
			for _, it := range items {
				created += it.Created
			}
		}
		for _, r := range reqs {
			r.err <- err
		}
		clear(reqs)
		clear(items)
		if err == nil && c.onCommit != nil {
			c.onCommit(created)
		}
	}
}
