package main

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/mlrelay/relay/notifiers/slacktest"
	"github.com/mlrelay/relay/relay"
	"github.com/mlrelay/relay/relay/config"
	"github.com/mlrelay/relay/relay/postgres/pgtest"
	"github.com/mlrelay/relay/relay/replicate"
)

// instance is one relay started by a test: the real server on loopback, a real SQLite file.
type instance struct {
	t      *testing.T
	addr   string
	db     string
	stop   context.CancelFunc
	done   chan error
	stdout *syncBuffer
}

type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// storeEnv switches the end-to-end tests to PostgreSQL: with RELAY_TEST_STORE=postgres every
// test's store is a fresh schema there instead of a SQLite file (CI runs them both ways).
const storeEnv = "RELAY_TEST_STORE"

var (
	storesMu sync.Mutex
	stores   = map[string]string{} // a test's SQLite path → the PostgreSQL URL standing in for it
)

// storeURL is the store a test's relay uses for the SQLite file path db: db itself, or with
// RELAY_TEST_STORE=postgres a fresh PostgreSQL schema, the same one for every use of db.
func storeURL(t *testing.T, db string) string {
	t.Helper()
	if os.Getenv(storeEnv) != "postgres" {
		return db
	}
	storesMu.Lock()
	defer storesMu.Unlock()
	if u, ok := stores[db]; ok {
		return u
	}
	u := pgtest.URL(t)
	stores[db] = u
	return u
}

// e2eConfig is a config for tests: a Slack notifier on the stand-in, a rule for terminal
// trainings and predictions, fast retries.
func e2eConfig(t *testing.T, db, slackURL string, extra string) *config.Config {
	t.Helper()
	text := fmt.Sprintf(`
[server]
addr = "127.0.0.1:0"
shutdown_timeout = "10s"
public_url = "https://relay.example.com"
[store]
url = %q
[replicate]
webhook_secrets = %q
[dispatch]
workers = 4
backoff_min = "20ms"
backoff_max = "100ms"
send_timeout = "1s"
lease = "5s"
[notifiers.console]
type = "console"
[notifiers.slack]
type = "slack"
webhook_url = %q
fallback = "console"
rate = 50
burst = 10
[[rules]]
name = "finished"
statuses = ["succeeded", "failed", "canceled", "aborted"]
notify = ["slack"]
%s`, storeURL(t, db), replicate.SampleSecret, slackURL, extra)
	path := filepath.Join(t.TempDir(), "relay.toml")
	if err := os.WriteFile(path, []byte(text), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg, err := config.Load(path, func(string) (string, bool) { return "", false })
	if err != nil {
		t.Fatal(err)
	}
	return cfg
}

func start(t *testing.T, cfg *config.Config) *instance {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	in := &instance{t: t, db: cfg.Store.Path(), stop: cancel, done: make(chan error, 1), stdout: &syncBuffer{}}
	ready := make(chan string, 1)
	go func() { in.done <- serve(ctx, cfg, in.stdout, io.Discard, ready) }()
	select {
	case in.addr = <-ready:
	case err := <-in.done:
		t.Fatalf("relay did not start: %v", err)
	case <-time.After(20 * time.Second):
		t.Fatal("relay did not start in 20s")
	}
	t.Cleanup(func() { in.shutdown() })
	return in
}

// shutdown stops the relay as SIGTERM would and waits for it.
func (in *instance) shutdown() {
	if in.stop == nil {
		return
	}
	in.stop()
	in.stop = nil
	select {
	case err := <-in.done:
		if err != nil {
			in.t.Errorf("relay stopped with error: %v", err)
		}
	case <-time.After(30 * time.Second):
		in.t.Error("relay did not stop in 30s")
	}
}

// post sends a body signed at now, with the given webhook-id, and returns the status and answer.
func (in *instance) post(t *testing.T, query, msgID string, body []byte) (int, string) {
	t.Helper()
	h, err := replicate.SignHeaders(replicate.SampleSecret, msgID, time.Now(), body)
	if err != nil {
		t.Fatal(err)
	}
	return in.do(t, http.MethodPost, "/hooks/replicate"+query, h, body)
}

func (in *instance) do(t *testing.T, method, path string, h http.Header, body []byte) (int, string) {
	t.Helper()
	req, err := http.NewRequest(method, "http://"+in.addr+path, bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	for k, v := range h {
		req.Header[k] = v
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

func sample(t *testing.T, name string) replicate.Sample {
	t.Helper()
	for _, s := range replicate.Samples() {
		if s.Name == name {
			return s
		}
	}
	t.Fatalf("no sample %s", name)
	return replicate.Sample{}
}

// deliveries reads the store as an operator would, through a second connection to the file.
func deliveries(t *testing.T, db string) []relay.DeliveryInfo {
	t.Helper()
	s, err := openStore(context.Background(), &config.Config{Store: config.Store{URL: storeURL(t, db)}})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	list, err := s.Deliveries(context.Background(), "", 1000)
	if err != nil {
		t.Fatal(err)
	}
	return list
}

// settled waits until no delivery is pending or sending, and returns them all.
func settled(t *testing.T, db string, timeout time.Duration) []relay.DeliveryInfo {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		list := deliveries(t, db)
		busy := 0
		for _, d := range list {
			if d.State == relay.Pending || d.State == relay.Sending {
				busy++
			}
		}
		if busy == 0 {
			return list
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d deliveries still pending after %v: %+v", busy, timeout, list)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func newSlack(t *testing.T) *slacktest.Server {
	s := slacktest.NewServer()
	t.Cleanup(s.Close)
	return s
}

func TestE2ERetriedDeliveryNotifiesOnce(t *testing.T) {
	slack := newSlack(t)
	db := filepath.Join(t.TempDir(), "relay.db")
	in := start(t, e2eConfig(t, db, slack.WebhookURL(), ""))
	s := sample(t, "training-succeeded.json")

	var wg sync.WaitGroup
	codes := make([]int, 5)
	for i := range codes {
		wg.Go(func() { codes[i], _ = in.post(t, "?kind=training", s.MessageID, s.Body) })
	}
	wg.Wait()
	for i, c := range codes {
		if c != http.StatusOK {
			t.Errorf("send %d: status %d, want 200", i, c)
		}
	}
	if _, err := slack.WaitFor(1, 10*time.Second); err != nil {
		t.Fatal(err)
	}
	list := settled(t, db, 10*time.Second)
	if got := len(slack.Messages()); got != 1 {
		t.Fatalf("slack got %d messages, want 1", got)
	}
	if len(list) != 1 || list[0].State != relay.Sent || list[0].Kind != relay.KindTraining {
		t.Fatalf("deliveries = %+v, want one sent training delivery", list)
	}
}

func TestE2ETerminalStatusInTwoMessagesNotifiesOnce(t *testing.T) {
	slack := newSlack(t)
	db := filepath.Join(t.TempDir(), "relay.db")
	in := start(t, e2eConfig(t, db, slack.WebhookURL(), ""))
	s := sample(t, "prediction-succeeded.json")
	for _, id := range []string{"msg_first", "msg_second"} {
		code, body := in.post(t, "?kind=prediction", id, s.Body)
		if code != http.StatusOK {
			t.Fatalf("%s: %d %s", id, code, body)
		}
	}
	settled(t, db, 10*time.Second)
	if got := len(slack.Messages()); got != 1 {
		t.Fatalf("slack got %d messages, want 1", got)
	}
	// A late non-terminal event notifies nothing. No rule here can match it, so it is not
	// even stored.
	start := sample(t, "prediction-starting.json")
	code, body := in.post(t, "?kind=prediction", "msg_late_start", start.Body)
	if code != http.StatusOK || !strings.Contains(body, `"ignored"`) {
		t.Fatalf("late starting event: %d %s, want 200 ignored", code, body)
	}
	settled(t, db, 10*time.Second)
	if got := len(slack.Messages()); got != 1 {
		t.Fatalf("slack got %d messages after the late event, want 1", got)
	}
}

func TestE2EStaleEventAfterTerminalNotifiesNothing(t *testing.T) {
	slack := newSlack(t)
	db := filepath.Join(t.TempDir(), "relay.db")
	// A rule on starting: now stages matter, and a starting event after the terminal one is
	// stale rather than a new start.
	in := start(t, e2eConfig(t, db, slack.WebhookURL(), `
[[rules]]
name = "started"
statuses = ["starting"]
notify = ["slack"]
`))
	done := sample(t, "prediction-succeeded.json")
	if code, body := in.post(t, "?kind=prediction", "msg_done", done.Body); code != http.StatusOK || !strings.Contains(body, `"deliveries":1`) {
		t.Fatalf("terminal event: %d %s", code, body)
	}
	start := sample(t, "prediction-starting.json")
	code, body := in.post(t, "?kind=prediction", "msg_late_start", start.Body)
	if code != http.StatusOK || !strings.Contains(body, `"stale"`) || !strings.Contains(body, `"deliveries":0`) {
		t.Fatalf("late starting event: %d %s, want 200 stale with no deliveries", code, body)
	}
	settled(t, db, 10*time.Second)
	if got := len(slack.Messages()); got != 1 {
		t.Fatalf("slack got %d messages, want only the terminal one", got)
	}
	// A retried non-terminal message that was stored is recognised as such.
	if code, body := in.post(t, "?kind=prediction", "msg_late_start", start.Body); code != http.StatusOK || !strings.Contains(body, `"duplicate"`) {
		t.Fatalf("re-sent starting event: %d %s, want 200 duplicate", code, body)
	}
}

func TestE2ERestartBetweenRetries(t *testing.T) {
	slack := newSlack(t)
	db := filepath.Join(t.TempDir(), "relay.db")
	s := sample(t, "prediction-failed.json")

	in := start(t, e2eConfig(t, db, slack.WebhookURL(), ""))
	if code, body := in.post(t, "", s.MessageID, s.Body); code != http.StatusOK {
		t.Fatalf("first: %d %s", code, body)
	}
	settled(t, db, 10*time.Second)
	in.shutdown()

	in = start(t, e2eConfig(t, db, slack.WebhookURL(), ""))
	code, body := in.post(t, "", s.MessageID, s.Body)
	if code != http.StatusOK || !strings.Contains(body, `"duplicate"`) {
		t.Fatalf("retry after restart: %d %s, want 200 duplicate", code, body)
	}
	settled(t, db, 10*time.Second)
	if got := len(slack.Messages()); got != 1 {
		t.Fatalf("slack got %d messages, want 1", got)
	}
}

func TestE2EPendingDeliverySurvivesRestart(t *testing.T) {
	slack := newSlack(t)
	db := filepath.Join(t.TempDir(), "relay.db")
	s := sample(t, "prediction-failed.json")
	// Slack is down while the first relay runs: the delivery is acknowledged but not sent.
	slack.FailNext(1000, slacktest.Failure{Status: 503, Body: "service_unavailable"})
	in := start(t, e2eConfig(t, db, slack.WebhookURL(), ""))
	if code, body := in.post(t, "", s.MessageID, s.Body); code != http.StatusOK {
		t.Fatalf("post: %d %s", code, body)
	}
	time.Sleep(300 * time.Millisecond)
	in.shutdown()
	if n := len(slack.Messages()); n != 0 {
		t.Fatalf("slack got %d messages while down", n)
	}
	slack.FailNext(0, slacktest.Failure{})
	start(t, e2eConfig(t, db, slack.WebhookURL(), ""))
	if _, err := slack.WaitFor(1, 15*time.Second); err != nil {
		t.Fatal(err)
	}
	list := settled(t, db, 10*time.Second)
	if len(list) != 1 || list[0].State != relay.Sent || list[0].Attempts == 0 {
		t.Fatalf("deliveries = %+v, want one sent after failed attempts", list)
	}
}

func TestE2ESlackRecovers(t *testing.T) {
	cases := []struct {
		name string
		fail slacktest.Failure
	}{
		{"500", slacktest.Failure{Status: 500, Body: "rollup_error"}},
		{"429 with Retry-After", slacktest.Failure{Status: 429, RetryAfter: 1}},
		{"timeout", slacktest.Failure{Delay: 3 * time.Second}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			slack := newSlack(t)
			db := filepath.Join(t.TempDir(), "relay.db")
			in := start(t, e2eConfig(t, db, slack.WebhookURL(), ""))
			slack.FailNext(3, tc.fail)
			s := sample(t, "training-succeeded.json")
			if code, body := in.post(t, "?kind=training", s.MessageID, s.Body); code != http.StatusOK {
				t.Fatalf("post: %d %s", code, body)
			}
			if _, err := slack.WaitFor(1, 20*time.Second); err != nil {
				t.Fatal(err)
			}
			list := settled(t, db, 10*time.Second)
			if len(slack.Messages()) != 1 || len(list) != 1 || list[0].State != relay.Sent {
				t.Fatalf("messages=%d deliveries=%+v, want one sent", len(slack.Messages()), list)
			}
		})
	}
}

func TestE2ESlack400IsDeadWithReason(t *testing.T) {
	slack := newSlack(t)
	db := filepath.Join(t.TempDir(), "relay.db")
	in := start(t, e2eConfig(t, db, slack.WebhookURL(), ""))
	slack.FailNext(1, slacktest.Failure{Status: 400, Body: "invalid_blocks"})
	s := sample(t, "prediction-failed.json")
	if code, body := in.post(t, "", s.MessageID, s.Body); code != http.StatusOK {
		t.Fatalf("post: %d %s", code, body)
	}
	list := settled(t, db, 10*time.Second)
	if len(list) != 1 || list[0].State != relay.Dead {
		t.Fatalf("deliveries = %+v, want one dead", list)
	}
	if !strings.Contains(list[0].LastError, "invalid_blocks") || list[0].Attempts != 1 {
		t.Fatalf("dead delivery = %+v, want last error with invalid_blocks after 1 attempt", list[0])
	}
	if strings.Contains(list[0].LastError, slack.WebhookURL()) || strings.Contains(list[0].LastError, "/services/") {
		t.Fatalf("last error leaks the webhook URL: %q", list[0].LastError)
	}
	if len(slack.Messages()) != 0 {
		t.Fatal("a refused message was recorded as delivered")
	}
}

func TestE2EBadInputChangesNothing(t *testing.T) {
	slack := newSlack(t)
	db := filepath.Join(t.TempDir(), "relay.db")
	cfg := e2eConfig(t, db, slack.WebhookURL(), "")
	cfg.Server.MaxBody = 64 << 10
	in := start(t, cfg)
	s := sample(t, "prediction-failed.json")
	good, _ := replicate.SignHeaders(replicate.SampleSecret, "msg_bad", time.Now(), s.Body)
	stale, _ := replicate.SignHeaders(replicate.SampleSecret, "msg_bad", time.Now().Add(-time.Hour), s.Body)
	badJSON := []byte(`{"id": "x", "status": `)
	badJSONHeaders, _ := replicate.SignHeaders(replicate.SampleSecret, "msg_bad", time.Now(), badJSON)
	big := bytes.Repeat([]byte("a"), 65<<10)
	bigHeaders, _ := replicate.SignHeaders(replicate.SampleSecret, "msg_bad", time.Now(), big)
	noID := []byte(`{"status":"failed"}`)
	noIDHeaders, _ := replicate.SignHeaders(replicate.SampleSecret, "msg_bad", time.Now(), noID)
	// Text no store can keep (PostgreSQL refuses NUL and invalid UTF-8), which would fail the
	// group commit of every webhook sharing its transaction.
	nulID := []byte(`{"id":"p\u0000x","model":"a/b","status":"failed"}`)
	nulIDHeaders, _ := replicate.SignHeaders(replicate.SampleSecret, "msg_bad", time.Now(), nulID)
	badMsgIDHeaders, _ := replicate.SignHeaders(replicate.SampleSecret, "msg_\xff", time.Now(), s.Body)
	// Keys too long for PostgreSQL's indexes, which would fail a whole group commit too.
	longMsgIDHeaders, _ := replicate.SignHeaders(replicate.SampleSecret, strings.Repeat("m", relay.MaxIDLength+1), time.Now(), s.Body)
	longID := []byte(`{"id":"` + strings.Repeat("p", relay.MaxIDLength+1) + `","model":"a/b","status":"failed"}`)
	longIDHeaders, _ := replicate.SignHeaders(replicate.SampleSecret, "msg_bad", time.Now(), longID)
	cases := []struct {
		name   string
		method string
		h      http.Header
		body   []byte
		want   int
		query  string
	}{
		{"NUL in a query value", http.MethodPost, good, s.Body, 400, "?team=%00"},
		{"invalid UTF-8 in a query name", http.MethodPost, good, s.Body, 400, "?%ff=1"},
		{"NUL in the id", http.MethodPost, nulIDHeaders, nulID, 400, ""},
		{"invalid UTF-8 in the webhook-id", http.MethodPost, badMsgIDHeaders, s.Body, 400, ""},
		{"webhook-id too long", http.MethodPost, longMsgIDHeaders, s.Body, 400, ""},
		{"id too long", http.MethodPost, longIDHeaders, longID, 400, ""},
		{"unsigned", http.MethodPost, http.Header{}, s.Body, 401, ""},
		{"tampered body", http.MethodPost, good, append(bytes.Clone(s.Body), ' '), 401, ""},
		{"stale timestamp", http.MethodPost, stale, s.Body, 401, ""},
		{"malformed json", http.MethodPost, badJSONHeaders, badJSON, 400, ""},
		{"missing id", http.MethodPost, noIDHeaders, noID, 400, ""},
		{"too large", http.MethodPost, bigHeaders, big, 413, ""},
		{"GET", http.MethodGet, good, nil, 405, ""},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			code, body := in.do(t, tc.method, "/hooks/replicate"+tc.query, tc.h, tc.body)
			if code != tc.want {
				t.Fatalf("status %d (%s), want %d", code, body, tc.want)
			}
			if !strings.HasPrefix(body, `{"error":`) {
				t.Fatalf("answer %q is not a JSON error", body)
			}
		})
	}
	// None of that was remembered: the same webhook-id, correctly signed, is still new.
	code, body := in.post(t, "", "msg_bad", s.Body)
	if code != 200 || !strings.Contains(body, `"accepted"`) {
		t.Fatalf("good delivery after bad ones: %d %s", code, body)
	}
	// Ids at the limit are stored, on either store.
	atLimit := []byte(`{"id":"` + strings.Repeat("p", relay.MaxIDLength) + `","model":"a/b","status":"failed"}`)
	if code, body := in.post(t, "", strings.Repeat("m", relay.MaxIDLength), atLimit); code != 200 || !strings.Contains(body, `"accepted"`) {
		t.Fatalf("ids of %d bytes: %d %s", relay.MaxIDLength, code, body)
	}
	settled(t, db, 10*time.Second)
	if n := len(slack.Messages()); n != 2 {
		t.Fatalf("slack got %d messages, want 2", n)
	}
}

func TestE2EHealthAndReady(t *testing.T) {
	slack := newSlack(t)
	in := start(t, e2eConfig(t, filepath.Join(t.TempDir(), "relay.db"), slack.WebhookURL(), ""))
	for _, p := range []string{"/healthz", "/readyz"} {
		if code, body := in.do(t, http.MethodGet, p, nil, nil); code != 200 {
			t.Errorf("%s: %d %s", p, code, body)
		}
	}
}

func TestE2EFallbackToConsole(t *testing.T) {
	db := filepath.Join(t.TempDir(), "relay.db")
	// No Slack URL: the slack notifier is not configured and falls back to the console.
	in := start(t, e2eConfig(t, db, "", ""))
	s := sample(t, "training-succeeded.json")
	if code, body := in.post(t, "?kind=training", s.MessageID, s.Body); code != 200 {
		t.Fatalf("post: %d %s", code, body)
	}
	settled(t, db, 10*time.Second)
	if out := in.stdout.String(); !strings.Contains(out, "acme/sdxl-brand-style") {
		t.Fatalf("console output does not show the training's new version:\n%s", out)
	}
}
