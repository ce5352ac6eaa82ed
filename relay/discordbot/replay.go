package discordbot

import (
	"sync"
	"time"
)

// replayGuard remembers the ids of the interactions answered within a window, so that a signed
// interaction captured on its way and posted again (while its timestamp is still within the
// verifier's tolerance) is refused instead of launching a second paid prediction. Discord
// itself never sends an interaction twice. It is per process: replicas behind a load balancer
// each refuse what they saw.
type replayGuard struct {
	window time.Duration
	max    int

	mu   sync.Mutex
	seen map[string]time.Time
}

func newReplayGuard(window time.Duration) *replayGuard {
	return &replayGuard{window: window, max: 100_000, seen: map[string]time.Time{}}
}

// first records id at now and reports whether it was not seen within the window.
func (g *replayGuard) first(id string, now time.Time) bool {
	g.mu.Lock()
	defer g.mu.Unlock()
	if at, ok := g.seen[id]; ok && now.Sub(at) < g.window {
		return false
	}
	if len(g.seen) >= g.max {
		for k, at := range g.seen {
			if now.Sub(at) >= g.window {
				delete(g.seen, k)
			}
		}
		if len(g.seen) >= g.max { // a flood of fresh ids: forget the lot rather than grow
			clear(g.seen)
		}
	}
	g.seen[id] = now
	return true
}
