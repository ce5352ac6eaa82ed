package main

import (
	"bytes"
	"context"
	"fmt"
	"sort"
	"sync"
	"sync/atomic"
	"time"
)

// loadSpec says how to drive one server.
type loadSpec struct {
	URL         string // the webhook URL, query included
	Secret      string
	Concurrency int
	Duration    time.Duration // stop starting sends after this long
	Predictions int           // stop after this many predictions (0: no bound but Duration)
	Rate        float64       // total sends per second (0: as fast as the server answers)
	Work        *workload
	// Tick, if not nil, is called about every second with the sends completed so far.
	Tick func(elapsed time.Duration, done uint64)
}

// loadResult is what the senders saw.
type loadResult struct {
	Wall        time.Duration
	Sent        uint64 // requests sent, duplicates included
	DupSent     uint64 // of which re-sends
	OK          uint64 // 2xx answers
	Non2xx      uint64
	Errors      uint64 // transport errors and timeouts
	Codes       map[int]uint64
	Outcomes    map[string]uint64 // the relay's "outcome" in 2xx answers
	ErrSamples  []string
	Ack         *hist            // latency of every 2xx answer
	AckBy       map[string]*hist // latency of 2xx answers by the relay's outcome
	TermAck     map[int]time.Time
	TermNoAck   int // predictions whose terminal message was sent but never acknowledged
	Predictions int // predictions started
	Complete    int // predictions whose every message was sent
	BodyBytes   uint64
	Timeline    []second
	GenCPU      time.Duration // the benchmark's own CPU time during the load
	OtherCPU    time.Duration // CPU time of every other process on the machine during the load
	Start       time.Time
}

// second is one second of the run, by completion time.
type second struct {
	Done   uint64
	Non2xx uint64
	Max    int64 // µs
}

type timeline struct {
	secs []struct {
		done, non2xx, max atomic.Int64
	}
}

func newTimeline(d time.Duration) *timeline {
	n := int(d/time.Second) + 2
	n = min(max(n, 2), 24*3600)
	return &timeline{secs: make([]struct{ done, non2xx, max atomic.Int64 }, n)}
}

func (t *timeline) add(at time.Duration, lat int64, ok bool) {
	i := min(max(int(at/time.Second), 0), len(t.secs)-1)
	s := &t.secs[i]
	s.done.Add(1)
	if !ok {
		s.non2xx.Add(1)
	}
	for {
		m := s.max.Load()
		if lat <= m || s.max.CompareAndSwap(m, lat) {
			break
		}
	}
}

func (t *timeline) snapshot(wall time.Duration) []second {
	n := min(int((wall+time.Second-1)/time.Second), len(t.secs))
	out := make([]second, n)
	for i := range out {
		s := &t.secs[i]
		out[i] = second{Done: uint64(s.done.Load()), Non2xx: uint64(s.non2xx.Load()), Max: s.max.Load()}
	}
	return out
}

// sender is one concurrent sender's private tallies, merged at the end.
type sender struct {
	ack        *hist
	ackBy      map[string]*hist
	sent, dups uint64
	ok, non2xx uint64
	errs       uint64
	codes      map[int]uint64
	outcomes   map[string]uint64
	errSamples []string
	termAck    map[int]time.Time
	termNoAck  int
	preds      int
	complete   int
	bodyBytes  uint64
}

// drive runs the load until the duration or prediction bound, or ctx ends. Requests in flight
// at the bound are finished; a sender stops between messages, so a prediction may be left
// without its terminal message (it is then not expected in Slack).
func drive(ctx context.Context, spec loadSpec) *loadResult {
	w := spec.Work
	var nextPred atomic.Int64
	var sendSlot atomic.Int64
	var completed atomic.Uint64
	start := time.Now()
	deadline := start.Add(spec.Duration)
	tl := newTimeline(spec.Duration + time.Minute)
	var interval time.Duration
	if spec.Rate > 0 {
		interval = time.Duration(float64(time.Second) / spec.Rate)
	}

	stopped := func() bool { return ctx.Err() != nil || !time.Now().Before(deadline) }
	senders := make([]*sender, spec.Concurrency)
	var wg sync.WaitGroup
	for i := range senders {
		s := &sender{ack: newHist(), ackBy: map[string]*hist{}, codes: map[int]uint64{}, outcomes: map[string]uint64{}, termAck: map[int]time.Time{}}
		senders[i] = s
		wg.Go(func() {
			post, err := newPoster(ctx, spec.URL, spec.Secret)
			if err != nil {
				s.errs++
				s.errSamples = append(s.errSamples, err.Error())
				return
			}
			defer post.close()
			var plan []step
			var body []byte
			resp := make([]byte, 0, 512)
			for !stopped() {
				p := int(nextPred.Add(1) - 1)
				if spec.Predictions > 0 && p >= spec.Predictions {
					return
				}
				s.preds++
				plan = w.plan(p, plan)
				termSent, termAcked := false, false
				done := true
				for _, st := range plan {
					if stopped() {
						done = false
						break
					}
					if interval > 0 {
						slot := start.Add(time.Duration(sendSlot.Add(1)-1) * interval)
						if d := time.Until(slot); d > 0 {
							select {
							case <-time.After(d):
							case <-ctx.Done():
							}
						}
					}
					body = w.body(body[:0], p, st.Event)
					code, lat, err := post.post(ctx, w.msgID(p, st.Event), body, &resp)
					ackAt := time.Now()
					outcome := ""
					if err == nil {
						outcome = outcomeOf(resp)
					}
					tl.add(ackAt.Sub(start), lat.Microseconds(), err == nil && code/100 == 2)
					completed.Add(1)
					s.sent++
					s.bodyBytes += uint64(len(body))
					if st.Dup {
						s.dups++
					}
					terminal := st.Event == w.terminal()
					termSent = termSent || terminal
					switch {
					case err != nil:
						s.errs++
						if len(s.errSamples) < 3 {
							s.errSamples = append(s.errSamples, err.Error())
						}
						continue
					case code/100 != 2:
						s.non2xx++
						s.codes[code]++
						if len(s.errSamples) < 3 {
							s.errSamples = append(s.errSamples, fmt.Sprintf("HTTP %d: %s", code, bytes.TrimSpace(resp)))
						}
					default:
						s.ok++
						s.codes[code]++
						if outcome != "" {
							s.outcomes[outcome]++
							if s.ackBy[outcome] == nil {
								s.ackBy[outcome] = newHist()
							}
							s.ackBy[outcome].add(lat)
						}
						s.ack.add(lat)
						if terminal && !termAcked {
							termAcked = true
							s.termAck[p] = ackAt
						}
					}
				}
				if termSent && !termAcked {
					s.termNoAck++
				}
				if done {
					s.complete++
				}
			}
		})
	}
	var tickWG sync.WaitGroup
	tickDone := make(chan struct{})
	if spec.Tick != nil {
		tickWG.Go(func() {
			t := time.NewTicker(time.Second)
			defer t.Stop()
			for {
				select {
				case <-tickDone:
					return
				case <-t.C:
					spec.Tick(time.Since(start), completed.Load())
				}
			}
		})
	}
	wg.Wait()
	close(tickDone)
	tickWG.Wait()

	r := &loadResult{Start: start, Wall: time.Since(start), Ack: newHist(), AckBy: map[string]*hist{}, Codes: map[int]uint64{}, Outcomes: map[string]uint64{}, TermAck: map[int]time.Time{}}
	for _, s := range senders {
		r.Ack.merge(s.ack)
		for o, h := range s.ackBy {
			if r.AckBy[o] == nil {
				r.AckBy[o] = newHist()
			}
			r.AckBy[o].merge(h)
		}
		r.Sent += s.sent
		r.DupSent += s.dups
		r.OK += s.ok
		r.Non2xx += s.non2xx
		r.Errors += s.errs
		for k, v := range s.codes {
			r.Codes[k] += v
		}
		for k, v := range s.outcomes {
			r.Outcomes[k] += v
		}
		for k, v := range s.termAck {
			r.TermAck[k] = v
		}
		r.TermNoAck += s.termNoAck
		r.Predictions += s.preds
		r.Complete += s.complete
		r.BodyBytes += s.bodyBytes
		if len(r.ErrSamples) < 5 {
			r.ErrSamples = append(r.ErrSamples, s.errSamples...)
		}
	}
	if len(r.ErrSamples) > 5 {
		r.ErrSamples = r.ErrSamples[:5]
	}
	r.Timeline = tl.snapshot(r.Wall)
	return r
}

// outcomeOf picks "outcome":"..." out of a relay answer without decoding it.
func outcomeOf(b []byte) string {
	const key = `"outcome":"`
	i := bytes.Index(b, []byte(key))
	if i < 0 {
		return ""
	}
	b = b[i+len(key):]
	j := bytes.IndexByte(b, '"')
	if j < 0 || j > 32 {
		return ""
	}
	switch s := string(b[:j]); s {
	case "accepted", "duplicate", "stale", "ignored":
		return s
	default:
		return "other"
	}
}

// sortedKeys lists a map's keys in order, for stable reports.
func sortedKeys[K int | string, V any](m map[K]V) []K {
	out := make([]K, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Slice(out, func(i, j int) bool { return out[i] < out[j] })
	return out
}
