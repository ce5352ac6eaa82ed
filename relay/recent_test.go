package relay

import (
	"testing"
	"time"
)

func TestRecentIDs(t *testing.T) {
	t0 := time.Date(2026, 12, 3, 9, 0, 0, 0, time.UTC)
	r := newRecentIDs(time.Hour, 2)
	r.add("a", t0)
	if !r.seen("a", t0) || !r.seen("a", t0.Add(time.Hour-time.Nanosecond)) {
		t.Error("a forgotten within the window")
	}
	if r.seen("a", t0.Add(time.Hour)) {
		t.Error("a remembered past the window, which the store would have forgotten")
	}
	r.add("a", t0.Add(30*time.Minute)) // the first record is the one the store keeps
	if r.seen("a", t0.Add(time.Hour)) {
		t.Error("re-adding a moved its time")
	}
	if r.seen("b", t0) {
		t.Error("b seen before it was added")
	}
	r.add("b", t0)
	r.add("c", t0) // full: the oldest goes
	if r.seen("a", t0) || !r.seen("b", t0) || !r.seen("c", t0) {
		t.Errorf("after a third id in a ring of two: a %v b %v c %v, want false true true",
			r.seen("a", t0), r.seen("b", t0), r.seen("c", t0))
	}
}
