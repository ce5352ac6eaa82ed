// Package inbox keeps the messages a provider stand-in accepted, in order, and lets a test
// wait for them instead of sleeping.
package inbox

import (
	"fmt"
	"sync"
	"time"
)

// Inbox holds messages of type M. Its zero value is empty and ready; it is safe for concurrent
// use.
type Inbox[M any] struct {
	mu      sync.Mutex
	msgs    []M
	changed chan struct{} // closed and replaced whenever msgs changes
}

// signal wakes the waiters; the caller holds mu.
func (b *Inbox[M]) signal() {
	if b.changed != nil {
		close(b.changed)
	}
	b.changed = make(chan struct{})
}

// Add appends m.
func (b *Inbox[M]) Add(m M) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.msgs = append(b.msgs, m)
	b.signal()
}

// All returns the messages so far, in order.
func (b *Inbox[M]) All() []M {
	b.mu.Lock()
	defer b.mu.Unlock()
	return append([]M(nil), b.msgs...)
}

// Reset forgets every message.
func (b *Inbox[M]) Reset() {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.msgs = nil
	b.signal()
}

// WaitFor waits until at least n messages arrived and returns them all. After timeout it
// returns those that arrived and an error saying how many.
func (b *Inbox[M]) WaitFor(n int, timeout time.Duration) ([]M, error) {
	t := time.NewTimer(timeout)
	defer t.Stop()
	for {
		b.mu.Lock()
		msgs := append([]M(nil), b.msgs...)
		if b.changed == nil {
			b.changed = make(chan struct{})
		}
		changed := b.changed
		b.mu.Unlock()
		if len(msgs) >= n {
			return msgs, nil
		}
		select {
		case <-changed:
		case <-t.C:
			return msgs, fmt.Errorf("%d of %d messages after %s", len(msgs), n, timeout)
		}
	}
}
