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
