package digest_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/mlrelay/relay/relay"
	"github.com/mlrelay/relay/relay/digest"
	"github.com/mlrelay/relay/relay/replicate"
	"github.com/mlrelay/relay/relay/sqlite"
)

var berlin = func() *time.Location {
	l, err := time.LoadLocation("Europe/Berlin")
	if err != nil {
		panic(err)
	}
	return l
}()

func daily(t *testing.T) digest.Spec {
	t.Helper()
	s, err := digest.ParseSchedule("0 9 * * *", berlin)
	if err != nil {
		t.Fatal(err)
	}
	return digest.Spec{Name: "daily", Schedule: s, Notify: []string{"email"}, Template: "digest", MaxItems: 5}
}

// clock is a settable time.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) now() time.Time  { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *clock) set(t time.Time) { c.mu.Lock(); defer c.mu.Unlock(); c.t = t }

func berlinTime(day, hour, min int) time.Time {
	return time.Date(2026, 11, day, hour, min, 0, 0, berlin)
}

func openStore(t *testing.T, path string) relay.Store {
	t.Helper()
	s, err := sqlite.Open(context.Background(), path)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

var seq int

// failure stores a failed prediction of model, received at at, collected for "daily".
func failure(t *testing.T, s relay.Store, model, errLine string, at time.Time) string {
	t.Helper()
	seq++
	id := fmt.Sprintf("p%04d", seq)
	body := fmt.Sprintf(`{"id":%q,"model":%q,"version":"v1","status":"failed","error":%q,"metrics":{"predict_time":2.5},
		"created_at":%q,"completed_at":%q,"urls":{"web":"https://replicate.com/p/%s"}}`,
		id, model, errLine, at.Add(-time.Minute).UTC().Format(time.RFC3339), at.UTC().Format(time.RFC3339), id)
	in := &relay.Ingest{MessageID: "msg_" + id, Kind: relay.KindPrediction, SubjectID: id, Status: replicate.Failed,
		ReceivedAt: at, Body: []byte(body), Digests: []string{"daily"}}
	if err := s.Ingest(context.Background(), []*relay.Ingest{in}); err != nil {
		t.Fatal(err)
	}
	if in.Collected != 1 {
		t.Fatalf("%s not collected: %+v", id, in)
	}
	return id
}

// messages returns the summaries of the digest messages created so far, claiming them.
func messages(t *testing.T, s relay.Store, now time.Time) []*digest.Summary {
	t.Helper()
	ds, err := s.Claim(context.Background(), now, time.Minute, 100)
	if err != nil {
		t.Fatal(err)
	}
	var out []*digest.Summary
	for _, d := range ds {
		if d.Kind != relay.KindDigest || d.Notifier != "email" || d.Rule != "daily" {
			t.Fatalf("unexpected delivery %+v", d)
		}
		var sum digest.Summary
		if err := json.Unmarshal(d.Body, &sum); err != nil {
			t.Fatal(err)
		}
		out = append(out, &sum)
		if err := s.Settle(context.Background(), []*relay.Settlement{{Lease: d.Lease(), State: relay.Sent, At: now}}); err != nil {
			t.Fatal(err)
		}
	}
	return out
}

func TestRunnerPeriods(t *testing.T) {
	s := openStore(t, filepath.Join(t.TempDir(), "relay.db"))
	clk := &clock{t: berlinTime(20, 8, 0)}
	woken := 0
	r := &digest.Runner{Store: s, Digests: []digest.Spec{daily(t)}, Now: clk.now, Wake: func() { woken++ }}

	// First start: the period that ended yesterday at 09:00 is closed, empty: nothing is sent.
	if n := r.Tick(context.Background()); n != 0 {
		t.Fatalf("first tick created %d messages", n)
	}
	failure(t, s, "acme/a", "CUDA out of memory", berlinTime(20, 8, 30))
	clk.set(berlinTime(20, 8, 59))
	if n := r.Tick(context.Background()); n != 0 {
		t.Fatalf("before 09:00 a tick created %d messages", n)
	}
	// Across the boundary: the item before 09:00 is in today's digest, the one after is not.
	failure(t, s, "acme/b", "boom", berlinTime(20, 9, 0).Add(time.Second))
	clk.set(berlinTime(20, 9, 0).Add(2 * time.Second))
	if n := r.Tick(context.Background()); n != 1 || woken != 1 {
		t.Fatalf("09:00 tick created %d messages, woke %d; want 1, 1", n, woken)
	}
	msgs := messages(t, s, clk.now())
	if len(msgs) != 1 || msgs[0].Total != 1 || msgs[0].Models[0].Model != "acme/a" {
		t.Fatalf("today's digest %+v, want acme/a's failure only", msgs)
	}
	if from, to := msgs[0].From, msgs[0].To; !from.Equal(berlinTime(19, 9, 0)) || !to.Equal(berlinTime(20, 9, 0)) {
		t.Errorf("period %v – %v, want 19 Nov 09:00 – 20 Nov 09:00 Berlin", from, to)
	}
	if n := r.Tick(context.Background()); n != 0 {
		t.Errorf("a second tick at the same time created %d messages", n)
	}

	// The next day takes the late item.
	clk.set(berlinTime(21, 9, 0))
	r.Tick(context.Background())
	msgs = messages(t, s, clk.now())
	if len(msgs) != 1 || msgs[0].Total != 1 || msgs[0].Models[0].Model != "acme/b" {
		t.Fatalf("next day's digest %+v, want acme/b's failure", msgs)
	}
	// An empty day sends nothing.
	clk.set(berlinTime(22, 9, 30))
	if n := r.Tick(context.Background()); n != 0 {
		t.Fatalf("an empty period created %d messages", n)
	}

	// Down for three days with failures meanwhile: one digest at start-up, covering them all.
	failure(t, s, "acme/c", "x", berlinTime(23, 10, 0))
	failure(t, s, "acme/c", "x", berlinTime(24, 10, 0))
	failure(t, s, "acme/d", "y", berlinTime(25, 8, 0))
	clk.set(berlinTime(25, 12, 0))
	restarted := &digest.Runner{Store: s, Digests: []digest.Spec{daily(t)}, Now: clk.now}
	if n := restarted.Tick(context.Background()); n != 1 {
		t.Fatalf("after the restart %d messages, want 1", n)
	}
	msgs = messages(t, s, clk.now())
	if len(msgs) != 1 || msgs[0].Total != 3 || !msgs[0].From.Equal(berlinTime(22, 9, 0)) || !msgs[0].To.Equal(berlinTime(25, 9, 0)) {
		t.Fatalf("catch-up digest %+v, want 3 failures from 22 to 25 Nov", msgs)
	}
	// Its message is as new as the restart, not as old as the 09:00 tick: the dispatcher's
	// max_age counts from when it was made.
	list, err := s.Deliveries(context.Background(), "", 1)
	if err != nil || len(list) != 1 || !list[0].CreatedAt.Equal(berlinTime(25, 12, 0)) {
		t.Fatalf("catch-up delivery %+v (%v), want one created at the restart, 12:00", list, err)
	}
}

// TestRunnerManyFailures puts 1,000 failures over 30 models into one digest: the lists are
// held to the limit and every failure is counted.
func TestRunnerManyFailures(t *testing.T) {
	s := openStore(t, filepath.Join(t.TempDir(), "relay.db"))
	at := berlinTime(20, 9, 0)
	for i := range 1000 {
		model := fmt.Sprintf("acme/model-%02d", i%30)
		errLine := fmt.Sprintf("CUDA out of memory. Tried to allocate %d.%02d GiB", i%7+1, i%100)
		if i%3 == 0 {
			errLine = fmt.Sprintf("File /tmp/run%d/input.png not found", i)
		}
		failure(t, s, model, errLine, at.Add(-time.Duration(i+1)*time.Minute))
	}
	c, err := digest.Close(context.Background(), s, daily(t), at, at)
	if err != nil {
		t.Fatal(err)
	}
	if !c.Closed || c.Items != 1000 || c.Created != 1 {
		t.Fatalf("close: %+v", c)
	}
	sum := messages(t, s, at)[0]
	if sum.Total != 1000 || sum.FailedPredictions != 1000 || sum.FailedModels != 30 {
		t.Errorf("totals: %d runs, %d failed, %d models", sum.Total, sum.FailedPredictions, sum.FailedModels)
	}
	if len(sum.Models) > 5 {
		t.Errorf("%d models listed, limit 5", len(sum.Models))
	}
	counted := sum.MoreModelFailures
	for _, m := range sum.Models {
		counted += m.Failures
		if len(m.Groups) > 2 {
			t.Errorf("%s has %d error groups; the two error shapes should give at most 2", m.Model, len(m.Groups))
		}
	}
	if counted != 1000 {
		t.Errorf("listed and more failures add up to %d, want 1000", counted)
	}
	if want := 1000 * 2500 * time.Millisecond; sum.LostTime != want {
		t.Errorf("lost time %v, want %v", sum.LostTime, want)
	}
}

// TestTwoProcessesSendOnce runs two runners on two stores sharing one file, as two relay
// processes: the digest is created once.
func TestTwoProcessesSendOnce(t *testing.T) {
	path := filepath.Join(t.TempDir(), "relay.db")
	a, b := openStore(t, path), openStore(t, path)
	for i := range 20 {
		failure(t, []relay.Store{a, b}[i%2], "acme/a", "boom", berlinTime(20, 8, i))
	}
	clk := &clock{t: berlinTime(20, 9, 0)}
	var (
		wg    sync.WaitGroup
		mu    sync.Mutex
		total int
	)
	for _, s := range []relay.Store{a, b, a, b} {
		r := &digest.Runner{Store: s, Digests: []digest.Spec{daily(t)}, Now: clk.now}
		wg.Go(func() {
			n := r.Tick(context.Background())
			mu.Lock()
			total += n
			mu.Unlock()
		})
	}
	wg.Wait()
	if total != 1 {
		t.Fatalf("%d messages created by four runners, want 1", total)
	}
	if msgs := messages(t, a, clk.now()); len(msgs) != 1 || msgs[0].Total != 20 {
		t.Fatalf("got %d digests, want one with 20 failures", len(msgs))
	}
}

// A period closed by a clock that ran ahead holds every later close back until that time: the
// runner says so at each tick instead of staying silent.
func TestRunnerSaysWhenTheLastPeriodEndsInTheFuture(t *testing.T) {
	s := openStore(t, filepath.Join(t.TempDir(), "relay.db"))
	clk := &clock{t: berlinTime(20, 10, 0).AddDate(1, 0, 0)} // a year ahead
	var logs bytes.Buffer
	r := &digest.Runner{Store: s, Digests: []digest.Spec{daily(t)}, Now: clk.now, Log: slog.New(slog.NewTextHandler(&logs, nil))}
	r.Tick(context.Background())
	clk.set(berlinTime(21, 10, 0)) // the clock put right
	failure(t, s, "acme/a", "boom", berlinTime(21, 8, 0))
	if n := r.Tick(context.Background()); n != 0 {
		t.Fatalf("a tick created %d messages before the future end", n)
	}
	if !strings.Contains(logs.String(), "level=ERROR") || !strings.Contains(logs.String(), "ends in the future") {
		t.Fatalf("no error about the future end:\n%s", logs.String())
	}
}
