package relay

import (
	"sync"
	"time"
)

// pacer is a token bucket per destination with a pause, so that a burst of events does not trip
// a provider's per-channel limit and a 429 holds back every message to that destination, not
// only the one that hit it.
type pacer struct {
	mu          sync.Mutex
	interval    time.Duration // time to earn one token; 0 means unlimited
	burst       float64
	tokens      float64
	last        time.Time
	pausedUntil time.Time
}

// newPacer allows rate messages per second with bursts of burst; rate <= 0 means no limit.
func newPacer(rate float64, burst int) *pacer {
	if rate <= 0 {
		return &pacer{}
	}
	if burst < 1 {
		burst = 1
	}
	return &pacer{interval: time.Duration(float64(time.Second) / rate), burst: float64(burst), tokens: float64(burst)}
}

// reserve takes a slot and says how long to wait before using it. A reservation made is
// kept: the caller either waits and sends, or gives the slot back with cancel.
func (p *pacer) reserve(now time.Time) time.Duration {
	p.mu.Lock()
	defer p.mu.Unlock()
	tokens, wait := p.due(now)
	if p.interval != 0 {
		// The tokens were counted at the end of a pause, if any (see due).
		p.tokens, p.last = tokens-1, p.start(now)
	}
	return wait
}

// start is when a message reserved at now could go at the earliest: now, or the end of a pause.
func (p *pacer) start(now time.Time) time.Time {
	if now.Before(p.pausedUntil) {
		return p.pausedUntil
	}
	return now
}

// peek says how long reserve, called now, would ask to wait, and takes nothing.
func (p *pacer) peek(now time.Time) time.Duration {
	p.mu.Lock()
	defer p.mu.Unlock()
	_, wait := p.due(now)
	return wait
}

// due returns the tokens in the bucket when a message reserved at now could go (at the end of a
// pause, if paused) and how long it would wait. Tokens are counted from the end of a pause, so
// that the messages held back by a 429 resume at the destination's rate rather than all at once
// when it ends. It changes nothing.
func (p *pacer) due(now time.Time) (tokens float64, wait time.Duration) {
	start := p.start(now)
	wait = start.Sub(now)
	if p.interval == 0 {
		return 0, wait
	}
	tokens = p.tokens
	if !p.last.IsZero() {
		tokens = min(p.burst, tokens+float64(max(start.Sub(p.last), 0))/float64(p.interval))
	}
	if tokens < 1 {
		wait += time.Duration((1 - tokens) * float64(p.interval))
	}
	return tokens, wait
}

// cancel gives back a slot taken by reserve and not used.
func (p *pacer) cancel() {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.interval != 0 {
		p.tokens++
	}
}

// paused says how long the destination stays paused at now, or 0.
func (p *pacer) paused(now time.Time) time.Duration {
	p.mu.Lock()
	defer p.mu.Unlock()
	return max(p.pausedUntil.Sub(now), 0)
}

// pause holds every message back until t.
func (p *pacer) pause(t time.Time) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if t.After(p.pausedUntil) {
		p.pausedUntil = t
	}
}
