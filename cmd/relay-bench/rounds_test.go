package main

import (
	"testing"
	"time"
)

func TestSpreadOf(t *testing.T) {
	for _, tt := range []struct {
		in   []float64
		want spread
	}{
		{nil, spread{}},
		{[]float64{3}, spread{3, 3, 3}},
		{[]float64{5, 1, 3}, spread{3, 1, 5}},
		{[]float64{4, 1, 3, 10}, spread{3.5, 1, 10}},
	} {
		if got := spreadOf(tt.in); got != tt.want {
			t.Errorf("spreadOf(%v) = %+v, want %+v", tt.in, got, tt.want)
		}
	}
}

// Rounds are grouped by GOMAXPROCS and store, in the order they first ran; each figure is the
// median of its rounds, memory the highest, and losses add up.
func TestSummarizeRounds(t *testing.T) {
	run := func(g int, store string, accepted, reference uint64, ack time.Duration, rss int64, lost int) *runReport {
		load := func(n uint64) *loadResult {
			h := newHist()
			for range 100 {
				h.add(ack)
			}
			return &loadResult{Wall: time.Second, OK: n, Ack: h}
		}
		r := &runReport{gomaxprocs: g, storeKind: store, rel: load(accepted), relRSS: rss, lost: lost, refused: lost}
		if reference > 0 {
			r.ref = load(reference)
		}
		return r
	}
	rows := []*runReport{
		run(0, "sqlite", 100, 200, 10*time.Millisecond, 50<<20, 0),
		run(1, "sqlite", 90, 0, 30*time.Millisecond, 40<<20, 0),
		run(0, "sqlite", 120, 200, 20*time.Millisecond, 70<<20, 1),
		run(0, "sqlite", 140, 400, 15*time.Millisecond, 60<<20, 0),
	}
	sums := summarize(rows)
	if len(sums) != 2 || sums[0].gomaxprocs != 0 || sums[1].gomaxprocs != 1 {
		t.Fatalf("groups: %+v", sums)
	}
	s := sums[0]
	if s.rounds != 3 || s.accepted != (spread{120, 100, 140}) || s.reference != (spread{200, 200, 400}) {
		t.Errorf("rounds %d, accepted %+v, reference %+v", s.rounds, s.accepted, s.reference)
	}
	if s.ratio != (spread{0.5, 0.35, 0.6}) {
		t.Errorf("ratio %+v, want median 0.5 of 0.5, 0.6, 0.35", s.ratio)
	}
	if s.p99.med < 14 || s.p99.med > 16 || s.peakRSS != 70<<20 || s.lost != 1 || s.refused != 1 {
		t.Errorf("p99 median %.1fms (want about 15), peak RSS %d, lost %d, refused %d", s.p99.med, s.peakRSS, s.lost, s.refused)
	}
	if r := sums[1]; r.rounds != 1 || r.ratio != (spread{}) || r.accepted.med != 90 {
		t.Errorf("the run without a reference: %+v", r)
	}
}
