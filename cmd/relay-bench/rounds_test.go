package main

import (
	"errors"
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

// A run fails on every fault the harness can see, not only lost and duplicate messages.
func TestRunFailsOnEveryFault(t *testing.T) {
	if r := (&runReport{rel: &loadResult{}}); r.failed() {
		t.Fatal("a clean run failed")
	}
	for name, break_ := range map[string]func(r *runReport){
		"lost":             func(r *runReport) { r.lost = 1 },
		"duplicate":        func(r *runReport) { r.dups = 1 },
		"unattributable":   func(r *runReport) { r.unident = 1 },
		"refused by Slack": func(r *runReport) { r.refused = 1 },
		"without a 2xx":    func(r *runReport) { r.unacked = 1 },
		"wrong status":     func(r *runReport) { r.wrongStatus = 1 },
		"unsent":           func(r *runReport) { r.unsent = 1 },
		"non-2xx":          func(r *runReport) { r.rel.Non2xx = 1 },
		"unanswered":       func(r *runReport) { r.rel.Errors = 1 },
		"did not stop":     func(r *runReport) { r.stopErr = errors.New("killed") },
	} {
		r := &runReport{rel: &loadResult{}}
		break_(r)
		if !r.failed() {
			t.Errorf("%s: the run passed", name)
		}
	}
}

func TestStatusWord(t *testing.T) {
	for text, want := range map[string]string{
		"❌ Prediction failed: a/b — boom\nRan for 3s": "failed",
		"✅ Prediction succeeded: a/b\nfailed later":   "succeeded",
		"⏳ Prediction starting":                       "",
	} {
		if got := statusWord(text); got != want {
			t.Errorf("statusWord(%q) = %q, want %q", text, got, want)
		}
	}
}
