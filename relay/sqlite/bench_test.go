package sqlite

import (
	"bytes"
	"context"
	"fmt"
	"strconv"
	"testing"
	"time"

	"github.com/mlrelay/relay/relay"
	"github.com/mlrelay/relay/relay/replicate"
)

// BenchmarkIngest measures the hot path as the relay drives it: batches from the group-commit
// loop, mostly progress events that only record their message id and stage, one in twenty a
// terminal event with a delivery. Each batch is one durable (fsynced) transaction, so ns/event
// falls with batch size.
func BenchmarkIngest(b *testing.B) {
	body := bytes.Repeat([]byte("x"), 1024)
	meta := map[string]string{"team": "vision"}
	spec := []relay.DeliverySpec{{Rule: "done", Notifier: "slack", Template: "default"}}
	for _, size := range []int{1, 16, 128} {
		b.Run(fmt.Sprintf("batch=%d", size), func(b *testing.B) {
			s, _ := openTemp(b)
			ctx := context.Background()
			batch := make([]*relay.Ingest, size)
			items := make([]relay.Ingest, size)
			n := 0
			for b.Loop() {
				now := time.Now()
				for i := range items {
					n++
					in := &items[i]
					*in = relay.Ingest{
						MessageID:  "msg_" + strconv.Itoa(n),
						Kind:       relay.KindPrediction,
						SubjectID:  "p" + strconv.Itoa(n/8), // a few events per prediction
						Status:     replicate.Processing,
						ReceivedAt: now,
						Meta:       meta,
						Body:       body,
					}
					if n%20 == 0 {
						in.SubjectID = "done" + strconv.Itoa(n)
						in.Status = replicate.Succeeded
						in.Deliveries = spec
					}
					batch[i] = in
				}
				if err := s.Ingest(ctx, batch); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(n), "ns/event")
		})
	}
}

// BenchmarkClaim measures a dispatcher's claim of a batch of due deliveries, each joined to its
// stored event (8 KiB, as a failed run's logs make it), and their release: what the dispatcher
// pays per delivery before it renders anything.
func BenchmarkClaim(b *testing.B) {
	body := bytes.Repeat([]byte("x"), 8<<10)
	spec := []relay.DeliverySpec{{Rule: "done", Notifier: "slack", Template: "default"}}
	for _, limit := range []int{1, 16} {
		b.Run(fmt.Sprintf("limit=%d", limit), func(b *testing.B) {
			s, _ := openTemp(b)
			ctx := context.Background()
			now := time.Now()
			batch := make([]*relay.Ingest, 64)
			for i := range batch {
				batch[i] = &relay.Ingest{MessageID: "msg_" + strconv.Itoa(i), Kind: relay.KindPrediction,
					SubjectID: "p" + strconv.Itoa(i), Status: replicate.Succeeded, ReceivedAt: now, Body: body, Deliveries: spec}
			}
			if err := s.Ingest(ctx, batch); err != nil {
				b.Fatal(err)
			}
			claimed := 0
			for b.Loop() {
				ds, err := s.Claim(ctx, time.Now(), time.Minute, limit)
				if err != nil || len(ds) != limit {
					b.Fatalf("claimed %d, %v", len(ds), err)
				}
				claimed += len(ds)
				leases := make([]relay.Lease, len(ds))
				for i, d := range ds {
					leases[i] = d.Lease()
				}
				if err := s.Release(ctx, leases); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(claimed), "ns/delivery")
		})
	}
}
