package relay_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/mlrelay/relay/relay"
	"github.com/mlrelay/relay/relay/replicate"
	"github.com/mlrelay/relay/relay/sqlite"
)

// scripted is a notifier whose answers the test decides, call by call.
type scripted struct {
	mu    sync.Mutex
	calls []time.Time
	next  func(n int) error // n is the 1-based call number
	block chan struct{}     // if not nil, Notify waits for it (or its ctx)
}

func (s *scripted) Notify(ctx context.Context, m relay.Message) (string, error) {
	s.mu.Lock()
	s.calls = append(s.calls, time.Now())
	n := len(s.calls)
	s.mu.Unlock()
	if s.block != nil {
		select {
		case <-s.block:
		case <-ctx.Done():
			return "", ctx.Err()
		}
	}
	if s.next != nil {
		if err := s.next(n); err != nil {
			return "", err
		}
	}
	return fmt.Sprintf("ref-%d", n), nil
}

func (s *scripted) count() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.calls)
}

type plainRenderer struct{}

func (plainRenderer) Render(set, target string, ev *relay.Event) (relay.Message, error) {
	if set == "broken" {
		return relay.Message{}, errors.New("template: broken.text.body: boom")
	}
	return relay.Message{Event: ev, Title: string(ev.Status), Text: ev.ID}, nil
}

func openStore(t *testing.T) relay.Store {
	t.Helper()
	s, err := sqlite.Open(context.Background(), filepath.Join(t.TempDir(), "relay.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

// enqueue stores one terminal event with a delivery per notifier name.
func enqueue(t *testing.T, st relay.Store, id, template string, notifiers ...string) {
	t.Helper()
	body := fmt.Sprintf(`{"id":%q,"status":"succeeded","model":"a/b"}`, id)
	in := &relay.Ingest{MessageID: "msg_" + id, Kind: relay.KindPrediction, SubjectID: id, Status: replicate.Succeeded,
		ReceivedAt: time.Now(), Body: []byte(body)}
	for _, n := range notifiers {
		in.Deliveries = append(in.Deliveries, relay.DeliverySpec{Rule: "r", Notifier: n, Template: template})
	}
	if err := st.Ingest(context.Background(), []*relay.Ingest{in}); err != nil {
		t.Fatal(err)
	}
}

func waitSettled(t *testing.T, st relay.Store, want int) []relay.DeliveryInfo {
	t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	for {
		list, err := st.Deliveries(context.Background(), "", 100)
		if err != nil {
			t.Fatal(err)
		}
		done := 0
		for _, d := range list {
			if d.State == relay.Sent || d.State == relay.Dead {
				done++
			}
		}
		if done >= want {
			return list
		}
		if time.Now().After(deadline) {
			t.Fatalf("only %d of %d deliveries settled: %+v", done, want, list)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

var quiet = slog.New(slog.NewTextHandler(io.Discard, nil))

func fast() relay.DispatcherConfig {
	return relay.DispatcherConfig{Workers: 2, BackoffMin: 5 * time.Millisecond, BackoffMax: 20 * time.Millisecond,
		Poll: 10 * time.Millisecond, Lease: 5 * time.Second, SendTimeout: time.Second, MaxAttempts: 5}
}

func runDispatcher(t *testing.T, d *relay.Dispatcher) (stop func()) {
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { d.Run(ctx); close(done) }()
	var once sync.Once
	stop = func() {
		once.Do(func() {
			cancel()
			select {
			case <-done:
			case <-time.After(10 * time.Second):
				t.Error("dispatcher did not stop")
			}
		})
	}
	t.Cleanup(stop)
	return stop
}

func TestDispatcherOutcomes(t *testing.T) {
	cases := []struct {
		name         string
		template     string
		next         func(n int) error
		wantState    relay.State
		wantAttempts int
		wantCalls    int
		wantErr      string
	}{
		{name: "sent first time", next: nil, wantState: relay.Sent, wantAttempts: 0, wantCalls: 1},
		{name: "retryable twice then sent", next: func(n int) error {
			if n <= 2 {
				return relay.Retryable(errors.New("slack webhook: 503"), 0)
			}
			return nil
		}, wantState: relay.Sent, wantAttempts: 2, wantCalls: 3},
		{name: "unclassified errors are retried", next: func(n int) error {
			if n == 1 {
				return errors.New("connection reset")
			}
			return nil
		}, wantState: relay.Sent, wantAttempts: 1, wantCalls: 2},
		{name: "permanent is dead at once", next: func(int) error {
			return relay.Permanent(errors.New("slack webhook: 400 Bad Request: invalid_blocks"))
		}, wantState: relay.Dead, wantAttempts: 1, wantCalls: 1, wantErr: "invalid_blocks"},
		{name: "gives up after max attempts", next: func(int) error {
			return relay.Retryable(errors.New("slack webhook: 500"), 0)
		}, wantState: relay.Dead, wantAttempts: 5, wantCalls: 5, wantErr: "gave up after 5 attempts"},
		{name: "rate limits do not count as attempts", next: func(n int) error {
			if n <= 2 {
				return relay.RateLimited(errors.New("slack webhook: 429"), 10*time.Millisecond)
			}
			return nil
		}, wantState: relay.Sent, wantAttempts: 0, wantCalls: 3},
		{name: "render failure is dead, nothing sent", template: "broken", wantState: relay.Dead, wantAttempts: 0, wantCalls: 0, wantErr: "render"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			st := openStore(t)
			n := &scripted{next: tc.next}
			d := relay.NewDispatcher(st, plainRenderer{}, map[string]*relay.Destination{"slack": {Notifier: n, Target: "text"}}, fast(), quiet)
			template := tc.template
			if template == "" {
				template = "default"
			}
			enqueue(t, st, "p1", template, "slack")
			runDispatcher(t, d)
			list := waitSettled(t, st, 1)
			got := list[0]
			if got.State != tc.wantState || got.Attempts != tc.wantAttempts || n.count() != tc.wantCalls {
				t.Fatalf("state=%s attempts=%d calls=%d, want %s %d %d (last error %q)",
					got.State, got.Attempts, n.count(), tc.wantState, tc.wantAttempts, tc.wantCalls, got.LastError)
			}
			if !strings.Contains(got.LastError, tc.wantErr) {
				t.Fatalf("last error %q, want it to contain %q", got.LastError, tc.wantErr)
			}
			if got.State == relay.Sent && got.Ref == "" {
				t.Fatal("sent delivery has no provider reference")
			}
		})
	}
}

func TestDispatcherUnknownNotifierIsDead(t *testing.T) {
	st := openStore(t)
	d := relay.NewDispatcher(st, plainRenderer{}, map[string]*relay.Destination{}, fast(), quiet)
	enqueue(t, st, "p1", "default", "gone")
	runDispatcher(t, d)
	list := waitSettled(t, st, 1)
	if list[0].State != relay.Dead || !strings.Contains(list[0].LastError, `"gone" is not configured`) {
		t.Fatalf("got %+v", list[0])
	}
}

func TestDispatcherRateLimitPausesDestination(t *testing.T) {
	st := openStore(t)
	var limited atomic.Bool
	n := &scripted{next: func(k int) error {
		if k == 1 {
			limited.Store(true)
			return relay.RateLimited(errors.New("429"), 300*time.Millisecond)
		}
		return nil
	}}
	cfg := fast()
	cfg.Workers = 1
	d := relay.NewDispatcher(st, plainRenderer{}, map[string]*relay.Destination{"slack": {Notifier: n, Target: "text"}}, cfg, quiet)
	enqueue(t, st, "p1", "default", "slack")
	enqueue(t, st, "p2", "default", "slack")
	start := time.Now()
	runDispatcher(t, d)
	waitSettled(t, st, 2)
	n.mu.Lock()
	defer n.mu.Unlock()
	if len(n.calls) != 3 {
		t.Fatalf("%d calls, want 3", len(n.calls))
	}
	// After the 429, neither delivery went out before Retry-After elapsed.
	for _, c := range n.calls[1:] {
		if c.Sub(n.calls[0]) < 300*time.Millisecond {
			t.Fatalf("a send %v after the 429, before its Retry-After of 300ms (start %v)", c.Sub(n.calls[0]), n.calls[0].Sub(start))
		}
	}
}

func TestDispatcherPacing(t *testing.T) {
	st := openStore(t)
	n := &scripted{}
	d := relay.NewDispatcher(st, plainRenderer{}, map[string]*relay.Destination{"slack": {Notifier: n, Target: "text", Rate: 10, Burst: 2}}, fast(), quiet)
	for i := range 5 {
		enqueue(t, st, fmt.Sprintf("p%d", i), "default", "slack")
	}
	runDispatcher(t, d)
	waitSettled(t, st, 5)
	n.mu.Lock()
	defer n.mu.Unlock()
	// 2 at once, then one per 100ms: the 5th no earlier than 300ms after the first.
	if gap := n.calls[4].Sub(n.calls[0]); gap < 280*time.Millisecond {
		t.Fatalf("5 sends within %v; pacing at 10/s with burst 2 needs ≥300ms", gap)
	}
}

func TestDispatcherShutdownFinishesInFlightSend(t *testing.T) {
	st := openStore(t)
	n := &scripted{block: make(chan struct{})}
	d := relay.NewDispatcher(st, plainRenderer{}, map[string]*relay.Destination{"slack": {Notifier: n, Target: "text"}}, fast(), quiet)
	enqueue(t, st, "p1", "default", "slack")
	stop := runDispatcher(t, d)
	for n.count() == 0 {
		time.Sleep(5 * time.Millisecond)
	}
	stopped := make(chan struct{})
	go func() { stop(); close(stopped) }()
	select {
	case <-stopped:
		t.Fatal("dispatcher returned while a send was in flight")
	case <-time.After(100 * time.Millisecond):
	}
	close(n.block)
	<-stopped
	list, _ := st.Deliveries(context.Background(), "", 10)
	if list[0].State != relay.Sent {
		t.Fatalf("in-flight send ended as %s, want sent", list[0].State)
	}
}

func TestDispatcherShutdownReleasesWaitingDelivery(t *testing.T) {
	st := openStore(t)
	n := &scripted{}
	// One token per 2s: the second delivery waits for pacing when the dispatcher stops.
	d := relay.NewDispatcher(st, plainRenderer{}, map[string]*relay.Destination{"slack": {Notifier: n, Target: "text", Rate: 0.5, Burst: 1}}, fast(), quiet)
	enqueue(t, st, "p1", "default", "slack")
	enqueue(t, st, "p2", "default", "slack")
	stop := runDispatcher(t, d)
	waitSettled(t, st, 1)
	time.Sleep(50 * time.Millisecond)
	stop()
	list, _ := st.Deliveries(context.Background(), relay.Pending, 10)
	if len(list) != 1 || list[0].Attempts != 0 {
		t.Fatalf("after shutdown pending = %+v, want the waiting delivery back with 0 attempts", list)
	}
	if n.count() != 1 {
		t.Fatalf("%d sends, want 1", n.count())
	}
	// It is due at once: another dispatcher takes it without waiting for a lease.
	claimed, err := st.Claim(context.Background(), time.Now(), time.Minute, 10)
	if err != nil || len(claimed) != 1 {
		t.Fatalf("claim after release: %v %v", claimed, err)
	}
}

func TestDispatcherTakesOverExpiredLease(t *testing.T) {
	st := openStore(t)
	enqueue(t, st, "p1", "default", "slack")
	// A process claims the delivery and dies without settling it.
	if got, err := st.Claim(context.Background(), time.Now(), 200*time.Millisecond, 10); err != nil || len(got) != 1 {
		t.Fatalf("claim: %v %v", got, err)
	}
	n := &scripted{}
	d := relay.NewDispatcher(st, plainRenderer{}, map[string]*relay.Destination{"slack": {Notifier: n, Target: "text"}}, fast(), quiet)
	runDispatcher(t, d)
	time.Sleep(100 * time.Millisecond)
	if n.count() != 0 {
		t.Fatal("took a delivery whose lease had not expired")
	}
	list := waitSettled(t, st, 1)
	if list[0].State != relay.Sent || n.count() != 1 {
		t.Fatalf("after lease expiry: %+v, %d sends", list[0], n.count())
	}
}

// countingStore counts Ingest transactions.
type countingStore struct {
	relay.Store
	batches atomic.Int64
	fail    atomic.Bool
}

func (c *countingStore) Ingest(ctx context.Context, b []*relay.Ingest) error {
	c.batches.Add(1)
	if c.fail.Load() {
		return errors.New("disk full")
	}
	return c.Store.Ingest(ctx, b)
}

func TestCommitterGroupsConcurrentSubmits(t *testing.T) {
	cs := &countingStore{Store: openStore(t)}
	var created atomic.Int64
	c := relay.NewCommitter(cs, 64, func(n int) { created.Add(int64(n)) })
	defer c.Close()
	const n = 200
	var wg sync.WaitGroup
	items := make([]*relay.Ingest, n)
	for i := range n {
		items[i] = &relay.Ingest{MessageID: fmt.Sprintf("m%d", i%150), Kind: relay.KindPrediction, SubjectID: fmt.Sprintf("p%d", i%150),
			Status: replicate.Succeeded, ReceivedAt: time.Now(), Body: []byte(`{}`),
			Deliveries: []relay.DeliverySpec{{Rule: "r", Notifier: "n", Template: "default"}}}
		wg.Go(func() {
			if err := c.Submit(context.Background(), items[i]); err != nil {
				t.Error(err)
			}
		})
	}
	wg.Wait()
	accepted, dup := 0, 0
	for _, it := range items {
		switch it.Outcome {
		case relay.Accepted:
			accepted++
		case relay.Duplicate:
			dup++
		}
	}
	if accepted != 150 || dup != 50 || created.Load() != 150 {
		t.Fatalf("accepted=%d duplicate=%d created=%d, want 150/50/150", accepted, dup, created.Load())
	}
	if b := cs.batches.Load(); b >= n {
		t.Fatalf("%d transactions for %d concurrent submits: no grouping", b, n)
	}
	t.Logf("%d submits in %d transactions", n, cs.batches.Load())
}

func TestCommitterErrorsReachEverySubmitter(t *testing.T) {
	cs := &countingStore{Store: openStore(t)}
	cs.fail.Store(true)
	c := relay.NewCommitter(cs, 64, nil)
	it := &relay.Ingest{MessageID: "m", Kind: relay.KindPrediction, SubjectID: "p", Status: replicate.Succeeded}
	if err := c.Submit(context.Background(), it); err == nil || !strings.Contains(err.Error(), "disk full") {
		t.Fatalf("submit error = %v, want the store's", err)
	}
	c.Close()
	if err := c.Submit(context.Background(), it); !errors.Is(err, relay.ErrClosed) {
		t.Fatalf("submit after close = %v, want ErrClosed", err)
	}
}
