package main

import (
	"fmt"
	"slices"
	"time"
)

// roundsSummary is what several rounds of one run (one GOMAXPROCS and store) measured: the
// median of each figure with its range, and the worst of memory and correctness.
type roundsSummary struct {
	gomaxprocs int
	store      string
	rounds     int

	accepted, reference, ratio spread // requests per second; ratio with no reference is empty
	p50, p99, p999, maxAck     spread // acknowledgement latency, ms
	peakRSS                    int64  // the highest of the rounds
	lost, dups                 int    // summed over the rounds
	unidentified, refused      int    // likewise: messages about no prediction, and ones Slack would refuse
}

// spread is a median with the lowest and highest value it was taken from.
type spread struct{ med, min, max float64 }

func spreadOf(v []float64) spread {
	if len(v) == 0 {
		return spread{}
	}
	s := slices.Sorted(slices.Values(v))
	n := len(s)
	med := s[n/2]
	if n%2 == 0 {
		med = (s[n/2-1] + s[n/2]) / 2
	}
	return spread{med: med, min: s[0], max: s[n-1]}
}

func msOf(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }

// summarize groups rows by GOMAXPROCS and store, in the order the groups first ran.
func summarize(rows []*runReport) []roundsSummary {
	type key struct {
		g  int
		st string
	}
	var order []key
	groups := map[key][]*runReport{}
	for _, r := range rows {
		k := key{r.gomaxprocs, r.storeKind}
		if _, ok := groups[k]; !ok {
			order = append(order, k)
		}
		groups[k] = append(groups[k], r)
	}
	var out []roundsSummary
	for _, k := range order {
		rs := groups[k]
		s := roundsSummary{gomaxprocs: k.g, store: k.st, rounds: len(rs)}
		var acc, ref, ratio, p50, p99, p999, maxAck []float64
		for _, r := range rs {
			acc = append(acc, rate(r.rel.OK, r.rel.Wall))
			if r.ref != nil {
				ref = append(ref, rate(r.ref.OK, r.ref.Wall))
				ratio = append(ratio, r.ratio())
			}
			p50 = append(p50, msOf(r.rel.Ack.p(0.5)))
			p99 = append(p99, msOf(r.rel.Ack.p(0.99)))
			p999 = append(p999, msOf(r.rel.Ack.p(0.999)))
			maxAck = append(maxAck, msOf(r.rel.Ack.p(1)))
			s.peakRSS = max(s.peakRSS, r.relRSS)
			s.lost += r.lost
			s.dups += r.dups
			s.unidentified += r.unident
			s.refused += r.refused
		}
		s.accepted, s.reference, s.ratio = spreadOf(acc), spreadOf(ref), spreadOf(ratio)
		s.p50, s.p99, s.p999, s.maxAck = spreadOf(p50), spreadOf(p99), spreadOf(p999), spreadOf(maxAck)
		out = append(out, s)
	}
	return out
}

// printMedians prints the medians of the rounds of each run, and judges the targets on them.
func printMedians(rows []*runReport) {
	sums := summarize(rows)
	if len(sums) == 0 {
		return
	}
	fmt.Println("\nmedians of the rounds (lowest–highest):")
	fmt.Println("\n| GOMAXPROCS | store | rounds | accepted/s | ref/s | ratio | ack p50 | p99 | p99.9 | max | peak RSS (highest) | lost | dup |")
	fmt.Println("|---|---|---|---|---|---|---|---|---|---|---|---|---|")
	for _, s := range sums {
		refs, ratio := "-", "-"
		if s.ratio.max > 0 {
			refs = fmt.Sprintf("%.0f (%.0f–%.0f)", s.reference.med, s.reference.min, s.reference.max)
			ratio = fmt.Sprintf("%.2f (%.2f–%.2f)", s.ratio.med, s.ratio.min, s.ratio.max)
		}
		fmt.Printf("| %s | %s | %d | %.0f (%.0f–%.0f) | %s | %s | %.2fms | %.1fms (%.1f–%.1f) | %.1fms | %.0fms (%.0f–%.0f) | %.1f MB | %d | %d |\n",
			gmpLabel(s.gomaxprocs), s.store, s.rounds, s.accepted.med, s.accepted.min, s.accepted.max, refs, ratio,
			s.p50.med, s.p99.med, s.p99.min, s.p99.max, s.p999.med, s.maxAck.med, s.maxAck.min, s.maxAck.max,
			mb(s.peakRSS), s.lost, s.dups)
	}
	fmt.Println()
	for _, s := range sums {
		fmt.Printf("targets on the medians, GOMAXPROCS=%s, %s:", gmpLabel(s.gomaxprocs), s.store)
		if s.ratio.max > 0 {
			fmt.Printf(" ratio %.2f (≥ %.1f) %s;", s.ratio.med, targetRatio, mark(s.ratio.med >= targetRatio))
		}
		p99 := time.Duration(s.p99.med * float64(time.Millisecond))
		fmt.Printf(" ack p99 %.1fms (≤ %s) %s; peak RSS %.1f MB (≤ %d MB) %s; lost/dup %d/%d",
			s.p99.med, ms(targetP99), mark(p99 <= targetP99), mb(s.peakRSS), targetRSS>>20, mark(s.peakRSS <= targetRSS),
			s.lost, s.dups)
		if s.unidentified > 0 || s.refused > 0 {
			fmt.Printf(", unattributable %d, refused by Slack %d", s.unidentified, s.refused)
		}
		fmt.Printf(" %s\n", map[bool]string{true: "OK", false: "FAIL"}[s.lost == 0 && s.dups == 0 && s.unidentified == 0 && s.refused == 0])
	}
}
