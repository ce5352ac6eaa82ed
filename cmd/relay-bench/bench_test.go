package main

import (
	"encoding/json"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/mlrelay/relay/relay/replicate"
)

func testWorkload() *workload {
	return &workload{Processing: 8, DupRatio: 0.10, FailedRatio: 0.10, Seed: 7,
		Base: time.Date(2025, 5, 1, 18, 0, 0, 0, time.UTC), Tag: 'a'}
}

func TestPlanDuplicateRatioAndOneTerminal(t *testing.T) {
	w := testWorkload()
	var sends, dups, failed int
	const preds = 20000
	var plan []step
	for p := range preds {
		plan = w.plan(p, plan)
		originals := make([]int, w.events())
		terminalSeen := false
		for i, st := range plan {
			sends++
			if st.Dup {
				dups++
				// A re-send repeats something already sent, and nothing but terminal
				// retries follows the terminal message.
				if originals[st.Event] == 0 {
					t.Fatalf("prediction %d step %d re-sends event %d before it was sent: %v", p, i, st.Event, plan)
				}
				if terminalSeen && st.Event != w.terminal() {
					t.Fatalf("prediction %d: non-terminal re-send after the terminal message: %v", p, plan)
				}
				continue
			}
			originals[st.Event]++
			if st.Event == w.terminal() {
				terminalSeen = true
			} else if terminalSeen {
				t.Fatalf("prediction %d: event %d after the terminal one: %v", p, st.Event, plan)
			}
			if want := lastOriginal(plan[:i]) + 1; st.Event != want {
				t.Fatalf("prediction %d: original event %d at step %d, want %d: %v", p, st.Event, i, want, plan)
			}
		}
		for e, n := range originals {
			if n != 1 {
				t.Fatalf("prediction %d: event %d sent %d times as an original", p, e, n)
			}
		}
		if w.failed(p) {
			failed++
		}
	}
	if r := float64(dups) / float64(sends); r < 0.09 || r > 0.11 {
		t.Errorf("duplicate ratio %.4f, want ≈ 0.10", r)
	}
	if r := float64(failed) / preds; r < 0.09 || r > 0.11 {
		t.Errorf("failed ratio %.4f, want ≈ 0.10", r)
	}
	// The plan is a pure function of the prediction.
	if a, b := w.plan(42, nil), w.plan(42, nil); !slices.Equal(a, b) {
		t.Errorf("plan(42) differs between calls: %v, %v", a, b)
	}
}

func lastOriginal(plan []step) int {
	for i := len(plan) - 1; i >= 0; i-- {
		if !plan[i].Dup {
			return plan[i].Event
		}
	}
	return -1
}

func TestBodiesParseAndSign(t *testing.T) {
	w := testWorkload()
	secret := "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
	v, err := replicate.NewVerifier([]string{secret}, time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	var sawFailed, sawSucceeded bool
	for p := range 30 {
		for e := range w.events() {
			body := w.body(nil, p, e)
			var pred replicate.Prediction
			if err := json.Unmarshal(body, &pred); err != nil {
				t.Fatalf("prediction %d event %d: %v\n%s", p, e, err, body)
			}
			if pred.ID != w.predID(p) {
				t.Fatalf("id %q, want %q", pred.ID, w.predID(p))
			}
			logs := string(pred.Logs)
			switch {
			case e == 0:
				if pred.Status != replicate.Starting || logs != "" {
					t.Fatalf("event 0: status %s, %d bytes of logs", pred.Status, len(logs))
				}
			case e < w.terminal():
				if pred.Status != replicate.Processing {
					t.Fatalf("event %d: status %s", e, pred.Status)
				}
				if n := len(logs); n < logMin-200 || n > logMax {
					t.Fatalf("event %d: %d bytes of logs", e, n)
				}
			default:
				if !pred.Status.Terminal() {
					t.Fatalf("last event: status %s", pred.Status)
				}
				if pred.Status == replicate.Failed {
					sawFailed = true
					if pred.Error == "" {
						t.Fatal("failed without an error")
					}
				} else {
					sawSucceeded = true
					var out []string
					if err := json.Unmarshal(pred.Output, &out); err != nil || len(out) < 1 || len(out) > 2 ||
						!strings.HasPrefix(out[0], "https://replicate.delivery/") {
						t.Fatalf("succeeded output %s", pred.Output)
					}
				}
			}
			if again := w.body(nil, p, e); string(again) != string(body) {
				t.Fatal("body differs between calls: a re-send would not be identical")
			}
			h, err := replicate.SignHeaders(secret, w.msgID(p, e), time.Now(), body)
			if err != nil {
				t.Fatal(err)
			}
			if err := v.Verify(h, body); err != nil {
				t.Fatal(err)
			}
		}
	}
	if !sawFailed || !sawSucceeded {
		t.Errorf("want both outcomes among 30 predictions: failed %v, succeeded %v", sawFailed, sawSucceeded)
	}
	// Logs grow with the events.
	if a, b := len(w.body(nil, 0, 1)), len(w.body(nil, 0, w.Processing)); a >= b {
		t.Errorf("first processing body %d bytes, last %d: want growing", a, b)
	}
}

func TestPredIDs(t *testing.T) {
	w := testWorkload()
	for _, p := range []int{0, 1, 35, 36, 1 << 20, 1<<31 - 1} {
		id := w.predID(p)
		if len(id) != 26 {
			t.Fatalf("id %q: %d characters", id, len(id))
		}
		if got, ok := parsePredID(id, 'a'); !ok || got != p {
			t.Fatalf("parsePredID(%q) = %d, %v; want %d", id, got, ok, p)
		}
		if _, ok := parsePredID(id, 'b'); ok {
			t.Fatalf("id %q parsed with another run's tag", id)
		}
	}
	text := "*Prediction " + w.predID(12) + " succeeded* <https://replicate.com/p/" + w.predID(12) + "|open>"
	if got := findPredIDs(text, 'a'); !slices.Equal(got, []int{12}) {
		t.Errorf("findPredIDs = %v, want [12]", got)
	}
	if got := findPredIDs("bench benchz "+w.predID(3)+w.predID(4), 'a'); !slices.Equal(got, []int{3, 4}) {
		t.Errorf("findPredIDs = %v, want [3 4]", got)
	}
}

func TestPercentile(t *testing.T) {
	sorted := []int64{10, 20, 30, 40, 50, 60, 70, 80, 90, 100}
	for _, c := range []struct {
		q    float64
		want int64
	}{{0.5, 50}, {0.9, 90}, {0.99, 100}, {0.1, 10}, {0.11, 20}, {1, 100}, {0.001, 10}} {
		if got := percentileSorted(sorted, c.q); got != c.want {
			t.Errorf("percentileSorted(q=%v) = %d, want %d", c.q, got, c.want)
		}
	}
	if got := percentileSorted(nil, 0.5); got != 0 {
		t.Errorf("empty: %d", got)
	}

	// The histogram agrees with the exact percentile: exactly below 512 µs, within 0.4% above.
	r := rand.New(rand.NewPCG(1, 2))
	for _, scale := range []float64{300, 5000, 2e6} {
		h := newHist()
		vals := make([]int64, 50000)
		for i := range vals {
			vals[i] = int64(r.ExpFloat64() * scale)
			h.addMicros(vals[i])
		}
		slices.Sort(vals)
		for _, q := range []float64{0.5, 0.9, 0.99, 0.999, 1} {
			want, got := percentileSorted(vals, q), h.percentile(q)
			tol := int64(0)
			if want >= exactBelow {
				tol = want/250 + 1
			}
			if d := got - want; d < -tol || d > tol {
				t.Errorf("scale %v q %v: hist %d, exact %d (tolerance %d)", scale, q, got, want, tol)
			}
		}
	}
	// Buckets tile the range in order, without gaps: steps shorter than a bucket's width
	// (at least v/512) meet every bucket.
	prev := -1
	for v := int64(0); v < 1<<30; v += 1 + v/1000 {
		b := bucketOf(v)
		if b != prev && b != prev+1 {
			t.Fatalf("bucketOf(%d) = %d after %d", v, b, prev)
		}
		if bv := bucketValue(b); bucketOf(bv) != b {
			t.Fatalf("bucketValue(%d) = %d lies in bucket %d", b, bv, bucketOf(bv))
		}
		prev = b
	}
	if b := bucketOf(maxMicros - 1); b >= numBuckets {
		t.Fatalf("largest value's bucket %d ≥ %d", b, numBuckets)
	}
	var empty hist
	if empty.percentile(0.5) != 0 {
		t.Error("empty histogram")
	}
}
