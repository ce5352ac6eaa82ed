package relay

import (
	"testing"
	"time"
)

func TestPacer(t *testing.T) {
	t0 := time.Unix(1000, 0)
	t.Run("burst then one per interval", func(t *testing.T) {
		p := newPacer(2, 3) // 2/s, bursts of 3
		for i := range 3 {
			if w := p.reserve(t0); w != 0 {
				t.Fatalf("burst message %d waits %v", i, w)
			}
		}
		if w := p.reserve(t0); w != 500*time.Millisecond {
			t.Fatalf("4th message waits %v, want 500ms", w)
		}
		if w := p.reserve(t0); w != time.Second {
			t.Fatalf("5th message waits %v, want 1s", w)
		}
	})
	t.Run("tokens refill over time up to burst", func(t *testing.T) {
		p := newPacer(1, 2)
		p.reserve(t0)
		p.reserve(t0)
		if w := p.reserve(t0.Add(10 * time.Second)); w != 0 {
			t.Fatalf("after a quiet period waits %v", w)
		}
		if w := p.reserve(t0.Add(10 * time.Second)); w != 0 {
			t.Fatalf("second after quiet period waits %v (burst is 2)", w)
		}
		if w := p.reserve(t0.Add(10 * time.Second)); w != time.Second {
			t.Fatalf("third waits %v, want 1s", w)
		}
	})
	t.Run("cancel gives the slot back", func(t *testing.T) {
		p := newPacer(1, 1)
		p.reserve(t0)
		if w := p.reserve(t0); w != time.Second {
			t.Fatalf("waits %v", w)
		}
		p.cancel()
		if w := p.reserve(t0); w != time.Second {
			t.Fatalf("after cancel waits %v, want 1s again", w)
		}
	})
	t.Run("peek says what reserve would, and takes nothing", func(t *testing.T) {
		p := newPacer(1, 1)
		for range 2 {
			if w := p.peek(t0); w != 0 {
				t.Fatalf("peek on a full bucket: %v", w)
			}
		}
		p.reserve(t0)
		if w := p.peek(t0.Add(250 * time.Millisecond)); w != 750*time.Millisecond {
			t.Fatalf("peek after a reservation: %v, want 750ms", w)
		}
		if w := p.reserve(t0.Add(250 * time.Millisecond)); w != 750*time.Millisecond {
			t.Fatalf("reserve after peeking: %v, want 750ms", w)
		}
		if w := p.peek(t0.Add(250 * time.Millisecond)); w != 1750*time.Millisecond {
			t.Fatalf("peek behind two reservations: %v, want 1.75s", w)
		}
		p.pause(t0.Add(5 * time.Second))
		if w := p.peek(t0.Add(time.Second)); w != 4*time.Second {
			t.Fatalf("peek while paused: %v, want 4s", w)
		}
		if w := newPacer(0, 0).peek(t0); w != 0 {
			t.Fatalf("peek on an unlimited pacer: %v", w)
		}
	})
	t.Run("messages held back by a pause resume at the rate, not all at once", func(t *testing.T) {
		p := newPacer(1, 1)
		p.pause(t0.Add(3 * time.Second))
		for i, want := range []time.Duration{3 * time.Second, 4 * time.Second, 5 * time.Second, 6 * time.Second} {
			if w := p.reserve(t0); w != want {
				t.Fatalf("message %d held by the pause waits %v, want %v", i, w, want)
			}
		}
		// Later on, the bucket refills from the last slot given out, as before.
		if w := p.reserve(t0.Add(20 * time.Second)); w != 0 {
			t.Fatalf("long after the pause waits %v", w)
		}
		// With a burst, the burst goes at the end of the pause, then one per interval.
		p = newPacer(2, 2)
		p.pause(t0.Add(time.Second))
		for i, want := range []time.Duration{time.Second, time.Second, 1500 * time.Millisecond} {
			if w := p.reserve(t0); w != want {
				t.Fatalf("burst message %d waits %v, want %v", i, w, want)
			}
		}
	})
	t.Run("pause holds everything back, even unlimited", func(t *testing.T) {
		p := newPacer(0, 0)
		if w := p.reserve(t0); w != 0 {
			t.Fatalf("unlimited waits %v", w)
		}
		p.pause(t0.Add(3 * time.Second))
		if w := p.reserve(t0.Add(time.Second)); w != 2*time.Second {
			t.Fatalf("paused waits %v, want 2s", w)
		}
		p.pause(t0.Add(time.Second)) // an earlier pause does not shorten the current one
		if w := p.reserve(t0.Add(time.Second)); w != 2*time.Second {
			t.Fatalf("paused waits %v, want 2s", w)
		}
	})
}

func TestBackoff(t *testing.T) {
	min, max := time.Second, time.Minute
	for attempts := 1; attempts <= 12; attempts++ {
		want := min << (attempts - 1)
		if want > max {
			want = max
		}
		for range 50 {
			d := Backoff(attempts, min, max)
			if d < want/2 || d > want {
				t.Fatalf("Backoff(%d) = %v, want within [%v, %v]", attempts, d, want/2, want)
			}
		}
	}
	if d := Backoff(1000, min, max); d > max {
		t.Fatalf("Backoff(1000) = %v beyond the cap", d)
	}
}
