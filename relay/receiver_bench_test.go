package relay_test

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/mlrelay/relay/relay"
	"github.com/mlrelay/relay/relay/replicate"
)

// benchBody is a processing event with realistic logs (~4 KiB).
func benchBody(id, status string) []byte {
	logs := strings.Repeat("step 12/50 loss=0.0123 lr=1e-4 |███████     | 24% ETA 00:08\\n", 60)
	return []byte(fmt.Sprintf(`{"id":%q,"model":"stability-ai/sdxl","version":"39ed52f2a78e934b3ba6e2a89f5b1c712de7dfea535525255b1aa35c5565e08b",
"input":{"prompt":"an astronaut riding a horse on mars, 35mm photo","num_outputs":2,"seed":1234},
"logs":"%s","output":null,"error":null,"source":"api","status":%q,"created_at":"2025-05-01T18:29:28.326000Z",
"started_at":"2025-05-01T18:29:28.332111Z","completed_at":null,"metrics":{},
"urls":{"get":"https://api.replicate.com/v1/predictions/%s","cancel":"https://api.replicate.com/v1/predictions/%s/cancel","web":"https://replicate.com/p/%s"}}`,
		id, logs, status, id, id, id))
}

// BenchmarkReceiver drives the whole ingest path (verify, parse, match rules, group commit into
// a real SQLite file) from parallel goroutines, without the network. Compare with
// BenchmarkVerifyOnly, the reference: what a handler that only checks the signature costs.
func BenchmarkReceiver(b *testing.B) {
	b.Run("ingest", func(b *testing.B) { benchReceiver(b, false) })
	// With a dispatcher draining the deliveries as they come, as in production: its claims and
	// settlements compete with ingest for the store.
	b.Run("ingest+dispatch", func(b *testing.B) { benchReceiver(b, true) })
}

func benchReceiver(b *testing.B, dispatch bool) {
	st := openStore(b)
	rule, _ := relay.CompileRule(relay.Rule{Name: "finished", Statuses: []replicate.Status{replicate.Succeeded, replicate.Failed}, Notify: []string{"slack"}})
	var d *relay.Dispatcher
	if dispatch {
		d = relay.NewDispatcher(st, plainRenderer{}, map[string]*relay.Destination{"slack": {Notifier: &scripted{}, Target: "text"}},
			relay.DispatcherConfig{Workers: 4}, quiet)
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan struct{})
		go func() { d.Run(ctx); close(done) }()
		defer func() { cancel(); <-done }()
	}
	c := relay.NewCommitter(st, 512, func(n int) {
		if n > 0 && d != nil {
			d.Wake()
		}
	})
	defer c.Close()
	v, _ := replicate.NewVerifier([]string{replicate.SampleSecret}, 0)
	rc := &relay.Receiver{Verifier: v, Rules: []*relay.CompiledRule{rule}, Committer: c, Logger: slog.New(slog.NewTextHandler(io.Discard, nil))}
	benchHandler(b, rc)
}

func BenchmarkVerifyOnly(b *testing.B) {
	v, _ := replicate.NewVerifier([]string{replicate.SampleSecret}, 0)
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		if v.Verify(r.Header, body) != nil {
			w.WriteHeader(401)
			return
		}
		w.WriteHeader(200)
	})
	benchHandler(b, h)
}

func benchHandler(b *testing.B, h http.Handler) {
	var n atomic.Int64
	lat := make([]time.Duration, b.N+1000)
	b.SetParallelism(32)
	b.ReportAllocs()
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			i := n.Add(1)
			status := "processing"
			if i%10 == 0 {
				status = "succeeded"
			}
			body := benchBody(fmt.Sprintf("p%d", i/10), status)
			hdr, _ := replicate.SignHeaders(replicate.SampleSecret, fmt.Sprintf("msg_%d", i), time.Now(), body)
			req := httptest.NewRequest(http.MethodPost, "/hooks/replicate?kind=prediction", bytes.NewReader(body))
			req.Header = hdr
			w := httptest.NewRecorder()
			t0 := time.Now()
			h.ServeHTTP(w, req)
			if int(i) < len(lat) {
				lat[i] = time.Since(t0)
			}
			if w.Code != 200 {
				b.Errorf("status %d: %s", w.Code, w.Body)
				return
			}
		}
	})
	b.StopTimer()
	lat = lat[1 : b.N+1]
	slices.Sort(lat)
	b.ReportMetric(float64(lat[len(lat)/2].Microseconds()), "p50-µs")
	b.ReportMetric(float64(lat[len(lat)*99/100].Microseconds()), "p99-µs")
	b.ReportMetric(float64(lat[len(lat)-1-len(lat)/1000].Microseconds()), "p99.9-µs")
}
