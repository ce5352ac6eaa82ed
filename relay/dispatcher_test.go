package relay_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/mlrelay/relay/relay"
	"github.com/mlrelay/relay/relay/replicate"
	"github.com/mlrelay/relay/relay/sqlite"
	"github.com/mlrelay/relay/relay/storetest"
)

// scripted is a notifier whose answers the test decides, call by call.
type scripted struct {
	mu    sync.Mutex
	calls []time.Time
	msgs  []relay.Message
	next  func(n int) error // n is the 1-based call number
	block chan struct{}     // if not nil, Notify waits for it (or its ctx)
}

func (s *scripted) Notify(ctx context.Context, m relay.Message) (string, error) {
	s.mu.Lock()
	s.calls = append(s.calls, time.Now())
	s.msgs = append(s.msgs, m)
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

func openStore(t testing.TB) relay.Store {
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

// An error that quotes bytes no store keeps as text (PostgreSQL refuses NUL and invalid UTF-8)
// is recorded with them replaced, rather than failing its batch of outcomes.
func TestDispatcherErrorTextIsStorable(t *testing.T) {
	st := openStore(t)
	n := &scripted{next: func(int) error {
		return relay.Permanent(errors.New("slack webhook: 400: bad \x00 byte \xff here"))
	}}
	d := relay.NewDispatcher(st, plainRenderer{}, map[string]*relay.Destination{"slack": {Notifier: n, Target: "text"}}, fast(), quiet)
	enqueue(t, st, "p1", "default", "slack")
	runDispatcher(t, d)
	got := waitSettled(t, st, 1)[0]
	if want := "slack webhook: 400: bad \uFFFD byte \uFFFD here"; got.State != relay.Dead || got.LastError != want {
		t.Fatalf("state %s, last error %q; want dead with %q", got.State, got.LastError, want)
	}
}

// A delivery to a notifier this process lacks waits for one that has it (relay serve beside
// relay digest send, replicas mid-deploy), without counting attempts; past MaxAge it is dead.
func TestDispatcherUnknownNotifierWaits(t *testing.T) {
	st := openStore(t)
	d := relay.NewDispatcher(st, plainRenderer{}, map[string]*relay.Destination{}, fast(), quiet)
	enqueue(t, st, "p1", "default", "gone")
	stop := runDispatcher(t, d)
	var got relay.DeliveryInfo
	waitFor(t, "the delivery to go back to pending", func() bool {
		list, err := st.Deliveries(context.Background(), "", 10)
		if err != nil || len(list) != 1 {
			return false
		}
		got = list[0]
		return got.State == relay.Pending && got.LastError != ""
	})
	stop()
	if got.Attempts != 0 || !strings.Contains(got.LastError, `"gone" is not configured in this process`) ||
		got.NextAt.Before(time.Now().Add(5*time.Second)) {
		t.Fatalf("got %+v, want pending a while later, no attempt counted", got)
	}
	// Past MaxAge it is dead.
	cfg := fast()
	cfg.MaxAge = time.Millisecond
	st2 := openStore(t)
	enqueue(t, st2, "p2", "default", "gone")
	time.Sleep(5 * time.Millisecond)
	runDispatcher(t, relay.NewDispatcher(st2, plainRenderer{}, map[string]*relay.Destination{}, cfg, quiet))
	if list := waitSettled(t, st2, 1); list[0].State != relay.Dead || !strings.Contains(list[0].LastError, `"gone" is not configured`) {
		t.Fatalf("past max age: %+v, want dead", list[0])
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

// Sends already waiting for their pacing slot when another send is answered 429 wait for the
// pause too, instead of going out when their slot comes.
func TestDispatcherRateLimitPausesWaitingSends(t *testing.T) {
	st := openStore(t)
	n := &scripted{next: func(k int) error {
		if k == 1 {
			time.Sleep(300 * time.Millisecond)
			return relay.RateLimited(errors.New("429"), 30*time.Second)
		}
		return nil
	}}
	cfg := fast()
	cfg.Workers = 3
	d := relay.NewDispatcher(st, plainRenderer{}, map[string]*relay.Destination{"slack": {Notifier: n, Target: "text", Rate: 2, Burst: 1}}, cfg, quiet)
	for i := range 3 {
		enqueue(t, st, fmt.Sprintf("p%d", i), "default", "slack")
	}
	runDispatcher(t, d)
	// The other two held slots 0.5 and 1 s out; give them time to (wrongly) go out.
	time.Sleep(2 * time.Second)
	if c := n.count(); c != 1 {
		t.Fatalf("%d sends during a 30s pause, want only the one that was answered 429", c)
	}
	list, err := st.Deliveries(context.Background(), relay.Pending, 10)
	if err != nil {
		t.Fatal(err)
	}
	if len(list) != 3 {
		t.Fatalf("%d deliveries pending, want all 3 back to wait out the pause: %+v", len(list), list)
	}
}

// A destination that keeps answering 429 does not hold a delivery past MaxAge.
func TestDispatcherRateLimitedPastMaxAgeIsDead(t *testing.T) {
	st := openStore(t)
	n := &scripted{next: func(int) error { return relay.RateLimited(errors.New("slack webhook: 429"), time.Millisecond) }}
	cfg := fast()
	cfg.MaxAge = time.Millisecond
	d := relay.NewDispatcher(st, plainRenderer{}, map[string]*relay.Destination{"slack": {Notifier: n, Target: "text"}}, cfg, quiet)
	enqueue(t, st, "p1", "default", "slack")
	time.Sleep(5 * time.Millisecond)
	runDispatcher(t, d)
	got := waitSettled(t, st, 1)[0]
	if got.State != relay.Dead || got.Attempts != 0 || !strings.Contains(got.LastError, "429") {
		t.Fatalf("got %+v, want dead with the 429 kept and no attempt counted", got)
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
	// One token per 2s: the second delivery waits for pacing when the dispatcher stops. The lease
	// is long enough for a wait of 2s to be held rather than rescheduled.
	cfg := fast()
	cfg.Lease = 10 * time.Second
	d := relay.NewDispatcher(st, plainRenderer{}, map[string]*relay.Destination{"slack": {Notifier: n, Target: "text", Rate: 0.5, Burst: 1}}, cfg, quiet)
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

// settleRecorder records the settlements a dispatcher asks for, and what the store answered.
type settleRecorder struct {
	relay.Store
	mu      sync.Mutex
	settled []relay.Settlement
	errs    []error
	batches []int // the size of each Settle's batch
}

func (r *settleRecorder) Settle(ctx context.Context, batch []*relay.Settlement) error {
	err := r.Store.Settle(ctx, batch)
	r.mu.Lock()
	r.batches = append(r.batches, len(batch))
	for _, s := range batch {
		r.settled = append(r.settled, *s)
		if err != nil {
			r.errs = append(r.errs, err)
		} else {
			r.errs = append(r.errs, s.Err)
		}
	}
	r.mu.Unlock()
	return err
}

func (r *settleRecorder) calls() ([]relay.Settlement, []error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.Clone(r.settled), slices.Clone(r.errs)
}

// Outcomes that arrive within SettleLinger of one another share a transaction, even when the
// sends that made them finish one at a time.
func TestDispatcherSettlesOutcomesTogether(t *testing.T) {
	st := openStore(t)
	rec := &settleRecorder{Store: st}
	const sends = 5
	// One worker, and each send takes 10 ms: the outcomes come 10 ms apart, and without the
	// linger each would be recorded on its own.
	n := &scripted{next: func(int) error { time.Sleep(10 * time.Millisecond); return nil }}
	cfg := fast()
	cfg.Workers = 1
	cfg.SettleLinger = 400 * time.Millisecond
	d := relay.NewDispatcher(rec, plainRenderer{}, map[string]*relay.Destination{"slack": {Notifier: n, Target: "text"}}, cfg, quiet)
	for i := range sends {
		enqueue(t, st, fmt.Sprintf("p%d", i), "default", "slack")
	}
	runDispatcher(t, d)
	list := waitSettled(t, st, sends)
	for _, dl := range list {
		if dl.State != relay.Sent {
			t.Fatalf("delivery %d is %s (%s)", dl.ID, dl.State, dl.LastError)
		}
	}
	rec.mu.Lock()
	batches, settled := slices.Clone(rec.batches), len(rec.settled)
	rec.mu.Unlock()
	if len(batches) > 2 || settled != sends {
		t.Fatalf("%d outcomes recorded in batches of %v, want them in one or two", settled, batches)
	}
}

// logRecorder is a slog handler that keeps the level and message of every record.
type logRecorder struct {
	mu      sync.Mutex
	records []string
}

func (*logRecorder) Enabled(context.Context, slog.Level) bool { return true }
func (h *logRecorder) WithAttrs([]slog.Attr) slog.Handler     { return h }
func (h *logRecorder) WithGroup(string) slog.Handler          { return h }
func (h *logRecorder) Handle(_ context.Context, r slog.Record) error {
	h.mu.Lock()
	h.records = append(h.records, r.Level.String()+" "+r.Message)
	h.mu.Unlock()
	return nil
}

func (h *logRecorder) count(record string) int {
	h.mu.Lock()
	defer h.mu.Unlock()
	n := 0
	for _, r := range h.records {
		if r == record {
			n++
		}
	}
	return n
}

// waitFor polls cond until it holds, failing the test after a while.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func TestDispatcherLeaseLostIsNotSettled(t *testing.T) {
	st := openStore(t)
	rec := &settleRecorder{Store: st}
	logs := &logRecorder{}
	n := &scripted{block: make(chan struct{})}
	cfg := fast()
	cfg.SendTimeout = 3 * time.Second // the send ends when the test says, not on its timeout
	d := relay.NewDispatcher(rec, plainRenderer{}, map[string]*relay.Destination{"slack": {Notifier: n, Target: "text"}}, cfg, slog.New(logs))
	enqueue(t, st, "p1", "default", "slack")
	stop := runDispatcher(t, d)
	waitFor(t, "the send to start", func() bool { return n.count() == 1 })

	// The worker stalls in its send past its lease, and another process takes the delivery over.
	taken, err := st.Claim(context.Background(), time.Now().Add(cfg.Lease), time.Minute, 10)
	if err != nil || len(taken) != 1 {
		t.Fatalf("taking the delivery over: %v %v", taken, err)
	}
	close(n.block)
	waitFor(t, "the stale worker to settle", func() bool { _, errs := rec.calls(); return len(errs) > 0 })
	time.Sleep(500 * time.Millisecond) // time enough for retries, which there must not be
	stop()

	settled, errs := rec.calls()
	if len(settled) != 1 || settled[0].State != relay.Sent || !errors.Is(errs[0], relay.ErrNotClaimed) {
		t.Fatalf("settlements %+v with errors %v, want one Sent refused with relay.ErrNotClaimed", settled, errs)
	}
	if got := logs.count("WARN lease lost: another worker took the delivery over"); got != 1 {
		t.Errorf("logged the lost lease %d times, want once: %q", got, logs.records)
	}
	if got := logs.count("ERROR recording delivery outcome failed; it will be retried after its lease"); got != 0 {
		t.Errorf("a lost lease was logged as a failure to record: %q", logs.records)
	}
	list, err := st.Deliveries(context.Background(), "", 10)
	if err != nil {
		t.Fatal(err)
	}
	if got := list[0]; got.State != relay.Sending || got.Ref != "" || got.Attempts != 0 {
		t.Fatalf("after the stale settlement: %+v, want still sending under the new claim", got)
	}
	// The new claimant still owns it.
	if err := storetest.SettleOne(context.Background(), st, taken[0].Lease(), relay.Settlement{State: relay.Sent, Ref: "new", At: time.Now()}); err != nil {
		t.Fatalf("Settle by the new claimant: %v", err)
	}
}

func TestDispatcherPacingWaitBoundedByLease(t *testing.T) {
	for _, tc := range []struct {
		name               string
		lease, sendTimeout time.Duration
		rate               float64
		rescheduled        bool
	}{
		// MaxPaceWait (5s) rules: the second delivery waits its 1s in the worker.
		{"held within the lease", 5 * time.Second, time.Second, 1, false},
		// (Lease - SendTimeout)/2 = 500ms: a wait of 1s goes back to the store.
		{"rescheduled beyond half the lease's slack", 2 * time.Second, time.Second, 1, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			st := openStore(t)
			rec := &settleRecorder{Store: st}
			n := &scripted{}
			cfg := fast()
			cfg.Workers, cfg.Lease, cfg.SendTimeout = 1, tc.lease, tc.sendTimeout
			d := relay.NewDispatcher(rec, plainRenderer{}, map[string]*relay.Destination{"slack": {Notifier: n, Target: "text", Rate: tc.rate, Burst: 1}}, cfg, quiet)
			enqueue(t, st, "p1", "default", "slack")
			enqueue(t, st, "p2", "default", "slack")
			runDispatcher(t, d)
			waitSettled(t, st, 2)

			settled, errs := rec.calls()
			var sent, rescheduled int
			for i, s := range settled {
				if errs[i] != nil {
					t.Errorf("Settle(%+v): %v", s, errs[i])
				}
				switch {
				case s.State == relay.Sent:
					sent++
				case s.State == relay.Pending && s.Attempts == 0 && s.LastError == "":
					rescheduled++
				default:
					t.Errorf("unexpected settlement %+v", s)
				}
			}
			if want := map[bool]int{false: 0, true: 1}[tc.rescheduled]; sent != 2 || rescheduled != want {
				t.Errorf("%d sent and %d rescheduled, want 2 and %d", sent, rescheduled, want)
			}
			n.mu.Lock()
			defer n.mu.Unlock()
			if interval := time.Duration(float64(time.Second) / tc.rate); len(n.calls) != 2 || n.calls[1].Sub(n.calls[0]) < interval*9/10 {
				t.Errorf("sends %v, want 2 at least %v apart", n.calls, interval)
			}
		})
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

// releaseRecorder counts the leases a dispatcher hands back.
type releaseRecorder struct {
	relay.Store
	released atomic.Int64
}

func (r *releaseRecorder) Release(ctx context.Context, leases []relay.Lease) error {
	r.released.Add(int64(len(leases)))
	return r.Store.Release(ctx, leases)
}

func TestDispatcherHandsBackQueuedDeliveryWithShortLease(t *testing.T) {
	st := openStore(t)
	rec := &releaseRecorder{Store: st}
	// The first send takes 1.2s; the second delivery, claimed with it and queued behind it,
	// then has 0.8s of its 2s lease left, less than the 1s a send may take: it must not start
	// under that lease, but be handed back, claimed again and sent once.
	n := &scripted{next: func(k int) error {
		if k == 1 {
			time.Sleep(1200 * time.Millisecond)
		}
		return nil
	}}
	cfg := fast()
	cfg.Workers, cfg.Lease, cfg.SendTimeout = 1, 2*time.Second, time.Second
	d := relay.NewDispatcher(rec, plainRenderer{}, map[string]*relay.Destination{"slack": {Notifier: n, Target: "text"}}, cfg, quiet)
	enqueue(t, st, "p1", "default", "slack")
	enqueue(t, st, "p2", "default", "slack")
	runDispatcher(t, d)
	list := waitSettled(t, st, 2)
	for _, dl := range list {
		if dl.State != relay.Sent {
			t.Fatalf("delivery %d is %s, want sent", dl.ID, dl.State)
		}
	}
	if n.count() != 2 {
		t.Fatalf("%d sends, want 2 (each delivery once)", n.count())
	}
	if rec.released.Load() == 0 {
		t.Fatal("the queued delivery was sent under a lease too short to finish in")
	}
}

// countingRenderer counts renders.
type countingRenderer struct {
	plainRenderer
	n atomic.Int64
}

func (r *countingRenderer) Render(set, target string, ev *relay.Event) (relay.Message, error) {
	r.n.Add(1)
	return r.plainRenderer.Render(set, target, ev)
}

// countingFetcher "downloads" every file at once, and counts the calls.
type countingFetcher struct{ n atomic.Int64 }

func (f *countingFetcher) Fetch(ctx context.Context, urls []string) ([]relay.Attachment, []error) {
	f.n.Add(1)
	return []relay.Attachment{{Name: "out.png", ContentType: "image/png", Data: []byte("png"), URL: urls[0]}}, nil
}

// A burst to a paced destination sends each delivery once, in its turn; the ones that go back
// to the store to wait are not rendered, nor their files downloaded, until their turn comes.
func TestDispatcherPacedBurstRendersEachDeliveryOnce(t *testing.T) {
	st := openStore(t)
	rec := &settleRecorder{Store: st}
	n := &scripted{}
	r := &countingRenderer{}
	f := &countingFetcher{}
	cfg := fast()
	// Pacing waits up to 500ms are held, longer ones go back to the store: at 1.8/s every
	// delivery after the first waits 556ms for its turn, and goes back. One worker, because
	// workers that look at the pace at once may each find a turn that only one gets, and one
	// of them is rendered for nothing (rare, and harmless).
	cfg.Workers, cfg.Lease, cfg.SendTimeout = 1, 2*time.Second, time.Second
	d := relay.NewDispatcher(rec, r, map[string]*relay.Destination{
		"slack": {Notifier: n, Target: "text", Rate: 1.8, Burst: 1, Attach: f},
	}, cfg, quiet)
	const burst = 6
	for i := range burst {
		id := fmt.Sprintf("p%d", i)
		body := fmt.Sprintf(`{"id":%q,"status":"succeeded","model":"a/b","output":["https://replicate.delivery/%s/out.png"]}`, id, id)
		in := &relay.Ingest{MessageID: "msg_" + id, Kind: relay.KindPrediction, SubjectID: id, Status: replicate.Succeeded,
			ReceivedAt: time.Now(), Body: []byte(body), Deliveries: []relay.DeliverySpec{{Rule: "r", Notifier: "slack", Template: "default"}}}
		if err := st.Ingest(context.Background(), []*relay.Ingest{in}); err != nil {
			t.Fatal(err)
		}
	}
	runDispatcher(t, d)
	for _, dl := range waitSettled(t, st, burst) {
		if dl.State != relay.Sent {
			t.Errorf("delivery %d: %s (%s)", dl.ID, dl.State, dl.LastError)
		}
	}
	settled, _ := rec.calls()
	rescheduled := 0
	for _, s := range settled {
		if s.State == relay.Pending {
			rescheduled++
		}
	}
	if rescheduled == 0 {
		t.Fatalf("no delivery went back to wait for its turn; the test needs some that do")
	}
	if got := r.n.Load(); got != burst {
		t.Errorf("%d renders for %d deliveries (%d times sent back to wait), want one each", got, burst, rescheduled)
	}
	if got := f.n.Load(); got != burst {
		t.Errorf("%d downloads for %d deliveries, want one each", got, burst)
	}
	n.mu.Lock()
	defer n.mu.Unlock()
	for i := 1; i < len(n.calls); i++ {
		// Turns are 556ms apart; a send is timed in Notify, a little after its turn.
		if gap := n.calls[i].Sub(n.calls[i-1]); gap < 400*time.Millisecond {
			t.Errorf("sends %d and %d %v apart; pacing at 1.8/s wants about 556ms", i-1, i, gap)
		}
	}
}

// flakySettleStore fails Settle until a moment, as a database that restarts.
type flakySettleStore struct {
	relay.Store
	until time.Time
	fails atomic.Int64
}

func (f *flakySettleStore) Settle(ctx context.Context, b []*relay.Settlement) error {
	if time.Now().Before(f.until) {
		f.fails.Add(1)
		return errors.New("connection refused")
	}
	return f.Store.Settle(ctx, b)
}

// TestDispatcherRecordsOutcomeAfterShortStoreOutage has the store refuse outcomes for 1.5 s
// after a send: the outcome is recorded when it is back, within the lease, and the message is
// not sent again when the lease expires.
func TestDispatcherRecordsOutcomeAfterShortStoreOutage(t *testing.T) {
	st := openStore(t)
	flaky := &flakySettleStore{Store: st, until: time.Now().Add(time.Hour)}
	n := &scripted{next: func(int) error {
		flaky.until = time.Now().Add(1500 * time.Millisecond) // the outage starts with the send
		return nil
	}}
	cfg := fast()
	cfg.Lease = 6 * time.Second
	d := relay.NewDispatcher(flaky, plainRenderer{}, map[string]*relay.Destination{"slack": {Notifier: n, Target: "text"}}, cfg, quiet)
	enqueue(t, st, "p1", "default", "slack")
	stop := runDispatcher(t, d)
	defer stop()
	start := time.Now()
	list := waitSettled(t, st, 1)
	if list[0].State != relay.Sent {
		t.Fatalf("delivery is %s, want sent", list[0].State)
	}
	if waited := time.Since(start); waited > 5*time.Second {
		t.Errorf("recorded after %v: it waited for the lease to expire", waited)
	}
	if flaky.fails.Load() < 3 {
		t.Errorf("the store failed %d times, want the outage to span several tries", flaky.fails.Load())
	}
	n.mu.Lock()
	defer n.mu.Unlock()
	if len(n.calls) != 1 {
		t.Fatalf("%d sends, want 1", len(n.calls))
	}
}

// TestCommitterFailing checks what /readyz learns from the committer: a failed commit makes it
// failing until a commit succeeds, or for 10 s without one.
func TestCommitterFailing(t *testing.T) {
	cs := &countingStore{Store: openStore(t)}
	c := relay.NewCommitter(cs, 64, nil)
	defer c.Close()
	item := func(id string) *relay.Ingest {
		return &relay.Ingest{MessageID: id, Kind: relay.KindPrediction, SubjectID: id, Status: replicate.Succeeded, ReceivedAt: time.Now()}
	}
	if err := c.Failing(time.Now()); err != nil {
		t.Fatalf("before any commit: %v", err)
	}
	cs.fail.Store(true)
	if err := c.Submit(context.Background(), item("m1")); err == nil {
		t.Fatal("the commit did not fail")
	}
	if err := c.Failing(time.Now()); err == nil || !strings.Contains(err.Error(), "storing webhooks failed") {
		t.Fatalf("after a failed commit: %v", err)
	}
	if err := c.Failing(time.Now().Add(11 * time.Second)); err != nil {
		t.Fatalf("11 s later, with no commit since: %v", err)
	}
	cs.fail.Store(false)
	if err := c.Submit(context.Background(), item("m2")); err != nil {
		t.Fatal(err)
	}
	if err := c.Failing(time.Now()); err != nil {
		t.Fatalf("after a commit succeeded: %v", err)
	}
}

// TestCommitterFailingClearedBySuccess checks that a successful commit clears the failure at
// once, whatever the wall clock did in between (times are compared on the monotonic clock).
func TestCommitterFailingClearedBySuccess(t *testing.T) {
	cs := &countingStore{Store: openStore(t)}
	c := relay.NewCommitter(cs, 64, nil)
	defer c.Close()
	cs.fail.Store(true)
	_ = c.Submit(context.Background(), &relay.Ingest{MessageID: "m1", Kind: relay.KindPrediction, SubjectID: "p1", Status: replicate.Succeeded, ReceivedAt: time.Now()})
	if c.Failing(time.Now()) == nil {
		t.Fatal("not failing after a failed commit")
	}
	// A time read before the failure (as a clock stepped back would give) still sees it, and
	// does not count as more than 10 s later.
	if err := c.Failing(time.Now().Add(-time.Hour)); err == nil {
		t.Error("a time before the failure reports no failure")
	}
	cs.fail.Store(false)
	if err := c.Submit(context.Background(), &relay.Ingest{MessageID: "m2", Kind: relay.KindPrediction, SubjectID: "p2", Status: replicate.Succeeded, ReceivedAt: time.Now()}); err != nil {
		t.Fatal(err)
	}
	if err := c.Failing(time.Now()); err != nil {
		t.Fatalf("after a successful commit: %v", err)
	}
}
