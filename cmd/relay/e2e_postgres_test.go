package main

import (
	"net/http"
	"net/url"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/mlrelay/relay/relay/config"
	"github.com/mlrelay/relay/relay/postgres/pgtest"
)

// TestE2EPostgresConnectionLoss takes the database away from a running relay: webhooks are
// answered 503 (so Replicate retries them) and /readyz 503, nothing is acknowledged that is not
// stored, and when the database is back the relay resumes by itself.
func TestE2EPostgresConnectionLoss(t *testing.T) {
	proxy, dbURL := pgtest.NewProxy(t, pgtest.URL(t))
	slack := newSlack(t)
	cfg := e2eConfig(t, filepath.Join(t.TempDir(), "unused.db"), slack.WebhookURL(), "")
	cfg.Store = config.Store{URL: dbURL, DedupWindow: cfg.Store.DedupWindow, Retention: cfg.Store.Retention}
	in := start(t, cfg)
	t.Cleanup(proxy.Stop) // after the relay has stopped: see NewProxy

	s := sample(t, "training-succeeded.json")
	if code, body := in.post(t, "?kind=training", s.MessageID, s.Body); code != 200 {
		t.Fatalf("with the database: %d %s", code, body)
	}
	proxy.Stop()
	lost := withID(t, s.Body, "t-during-outage")
	start := time.Now()
	code, body := in.post(t, "?kind=training", "msg_outage", lost)
	if code != http.StatusServiceUnavailable || !strings.Contains(body, "temporarily unable") {
		t.Fatalf("without the database: %d %s, want 503", code, body)
	}
	if took := time.Since(start); took > 15*time.Second {
		t.Errorf("the 503 took %v", took)
	}
	if code, body := in.do(t, http.MethodGet, "/readyz", nil, nil); code != http.StatusServiceUnavailable ||
		!strings.Contains(body, "the store does not answer") {
		t.Errorf("/readyz without the database: %d %s, want 503 saying the store does not answer", code, body)
	} else if u, err := url.Parse(dbURL); err != nil || strings.Contains(body, u.Host) || strings.Contains(body, u.User.Username()) {
		t.Errorf("/readyz tells anyone where the database is: %s", body)
	}

	proxy.Start(t)
	deadline := time.Now().Add(20 * time.Second)
	for {
		code, body = in.post(t, "?kind=training", "msg_outage", lost) // Replicate's retry
		if code == 200 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("after the database came back: %d %s", code, body)
		}
		time.Sleep(200 * time.Millisecond)
	}
	if !strings.Contains(body, `"outcome":"accepted"`) {
		t.Errorf("the retried webhook: %s, want accepted (the 503 stored nothing)", body)
	}
	if code, _ := in.do(t, http.MethodGet, "/readyz", nil, nil); code != 200 {
		t.Errorf("/readyz after: %d", code)
	}
	if _, err := slack.WaitFor(2, 15*time.Second); err != nil {
		t.Fatal(err)
	}
}
