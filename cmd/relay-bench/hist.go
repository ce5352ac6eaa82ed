package main

import (
	"fmt"
	"math"
	"math/bits"
	"time"
)

// hist is a log-linear histogram of durations in microseconds: exact below 512 µs, then 256
// buckets per power of two (under 0.4% error), so memory stays fixed however long a run lasts.
// It is not safe for concurrent use: each sender keeps its own and they are merged at the end.
type hist struct {
	counts []uint64
	n      uint64
	sum    float64
	min    int64
	max    int64
}

const (
	subBits    = 8
	subBuckets = 1 << subBits   // buckets per power of two
	exactBelow = 2 * subBuckets // values below this have a bucket each
	maxMicros  = int64(1) << 40 // about 12 days: anything longer is clamped
	numBuckets = exactBelow + (40-subBits)*subBuckets
)

func newHist() *hist { return &hist{counts: make([]uint64, numBuckets), min: math.MaxInt64} }

func bucketOf(v int64) int {
	if v < exactBelow {
		return int(v)
	}
	e := bits.Len64(uint64(v)) - (subBits + 1) // v>>e is in [subBuckets, 2*subBuckets)
	return exactBelow + (e-1)*subBuckets + int(v>>e) - subBuckets
}

// bucketValue is the middle of bucket i (its value, below exactBelow).
func bucketValue(i int) int64 {
	if i < exactBelow {
		return int64(i)
	}
	e := (i-exactBelow)/subBuckets + 1
	m := int64((i-exactBelow)%subBuckets + subBuckets)
	return m<<e + (int64(1)<<e-1)/2
}

// add records a duration; negative ones count as 0.
func (h *hist) add(d time.Duration) { h.addMicros(d.Microseconds()) }

func (h *hist) addMicros(v int64) {
	v = min(max(v, 0), maxMicros-1)
	h.counts[bucketOf(v)]++
	h.n++
	h.sum += float64(v)
	h.min = min(h.min, v)
	h.max = max(h.max, v)
}

func (h *hist) merge(o *hist) {
	for i, c := range o.counts {
		h.counts[i] += c
	}
	h.n += o.n
	h.sum += o.sum
	h.min = min(h.min, o.min)
	h.max = max(h.max, o.max)
}

// percentile returns the nearest-rank q-quantile (0 < q ≤ 1) in microseconds: the smallest
// recorded value v such that at least q of all values are ≤ v, to the bucket's precision, and
// never beyond the extremes recorded. 0 when the histogram is empty.
func (h *hist) percentile(q float64) int64 {
	if h.n == 0 {
		return 0
	}
	rank := uint64(math.Ceil(q * float64(h.n)))
	rank = min(max(rank, 1), h.n)
	var seen uint64
	for i, c := range h.counts {
		seen += c
		if seen >= rank {
			return min(max(bucketValue(i), h.min), h.max)
		}
	}
	return h.max
}

func (h *hist) p(q float64) time.Duration { return time.Duration(h.percentile(q)) * time.Microsecond }

// percentileSorted is the nearest-rank q-quantile of sorted values, the reference the
// histogram is tested against.
func percentileSorted(sorted []int64, q float64) int64 {
	if len(sorted) == 0 {
		return 0
	}
	rank := int(math.Ceil(q * float64(len(sorted))))
	rank = min(max(rank, 1), len(sorted))
	return sorted[rank-1]
}

// ms formats a duration in milliseconds with a precision that suits its size.
func ms(d time.Duration) string {
	f := float64(d) / float64(time.Millisecond)
	switch {
	case f < 10:
		return fmt.Sprintf("%.2fms", f)
	case f < 100:
		return fmt.Sprintf("%.1fms", f)
	}
	return fmt.Sprintf("%.0fms", f)
}
