package relay

import (
	"sync"
	"time"
)

// recentCapacity is how many message ids a Receiver remembers in memory: about 4 MB, and at
// a thousand stored webhooks a second still a minute of them, far longer than Replicate takes
// to retry a delivery it saw fail.
const recentCapacity = 1 << 15

// recentIDs remembers the message ids that the store recorded most recently, so that a retried
// delivery is answered as a duplicate without a transaction: it only repeats what the store
// would say, since an id is remembered here only once a commit that records it has returned.
// It forgets an id after the dedup window, as the store does, and the oldest ids when full;
// an id it does not know is simply looked up in the store. Replicas each have their own.
type recentIDs struct {
	window time.Duration

	mu   sync.Mutex
	at   map[string]int64 // message id → when it was received (unix nanoseconds)
	ring []string         // ids in the order they were remembered, oldest at next once full
	next int
}

func newRecentIDs(window time.Duration, capacity int) *recentIDs {
	return &recentIDs{window: window, at: make(map[string]int64, capacity), ring: make([]string, capacity)}
}

// add remembers id, recorded by the store as received at.
func (r *recentIDs) add(id string, at time.Time) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if _, ok := r.at[id]; ok {
		return // the first time it was recorded is the one the store keeps
	}
	if old := r.ring[r.next]; old != "" {
		delete(r.at, old)
	}
	r.ring[r.next] = id
	r.next = (r.next + 1) % len(r.ring)
	r.at[id] = at.UnixNano()
}

// seen reports whether id was recorded less than the dedup window before now.
func (r *recentIDs) seen(id string, now time.Time) bool {
	r.mu.Lock()
	at, ok := r.at[id]
	r.mu.Unlock()
	return ok && now.UnixNano()-at < int64(r.window)
}
