package main

import (
	"fmt"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/mlrelay/relay/notifiers/smtptest"
	"github.com/mlrelay/relay/relay"
)

func emailConfig(t *testing.T, smtp *smtptest.Server) string {
	t.Helper()
	return fmt.Sprintf(`
[notifiers.email]
type = "email"
host = %q
port = %d
tls = "none"
from = "relay@example.com"
to = ["ml-team@example.com, lead@example.com"]
timeout = "2s"
rate = 50
burst = 10

[[rules]]
name = "trainings"
kinds = ["training"]
statuses = ["succeeded", "failed", "canceled"]
notify = ["email"]
`, smtp.Host(), smtp.Port())
}

func newSMTP(t *testing.T) *smtptest.Server {
	t.Helper()
	s, err := smtptest.NewServer()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(s.Close)
	return s
}

func TestE2EEmail(t *testing.T) {
	slack := newSlack(t)
	smtp := newSMTP(t)
	db := filepath.Join(t.TempDir(), "relay.db")
	in := start(t, e2eConfig(t, db, slack.WebhookURL(), emailConfig(t, smtp)))

	s := sample(t, "training-succeeded.json")
	if code, body := in.post(t, "?kind=training", s.MessageID, s.Body); code != 200 || !strings.Contains(body, `"deliveries":2`) {
		t.Fatalf("post: %d %s, want 2 deliveries (slack and email)", code, body)
	}
	msgs, err := smtp.WaitFor(1, 10*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	settled(t, db, 10*time.Second)
	m := msgs[0]
	if m.From != "relay@example.com" || strings.Join(m.To, ",") != "ml-team@example.com,lead@example.com" {
		t.Errorf("envelope from %q to %q", m.From, m.To)
	}
	p, err := m.Parse()
	if err != nil {
		t.Fatal(err)
	}
	subject := p.Subject()
	if !strings.Contains(subject, "Training finished") || !strings.Contains(subject, "acme/sdxl-brand-style") {
		t.Errorf("subject %q", subject)
	}
	var text, html string
	for _, leaf := range p.Leaves() {
		switch leaf.ContentType {
		case "text/plain":
			text = string(leaf.Body)
		case "text/html":
			html = string(leaf.Body)
		}
	}
	const version = "acme/sdxl-brand-style:7c8a2bd1f0e94f5e9a4bb1f7c2d3e4f5a6b7c8d9e0f1a2b3c4d5e6f708192a3b"
	if !strings.Contains(text, version) || !strings.Contains(html, version) {
		t.Errorf("the new version is missing from a part:\ntext: %s\nhtml: %.400s", text, html)
	}
	if got := p.HeaderText("X-Relay-Rule"); got != "trainings" {
		t.Errorf("X-Relay-Rule %q", got)
	}
}

func TestE2EEmailServerDownThenBack(t *testing.T) {
	slack := newSlack(t)
	smtp := newSMTP(t)
	db := filepath.Join(t.TempDir(), "relay.db")
	smtp.Stop()
	in := start(t, e2eConfig(t, db, slack.WebhookURL(), emailConfig(t, smtp)))
	s := sample(t, "training-succeeded.json")
	if code, body := in.post(t, "?kind=training", s.MessageID, s.Body); code != 200 {
		t.Fatalf("post: %d %s", code, body)
	}
	// SMTP is down: the delivery fails and waits for a retry.
	deadline := time.Now().Add(10 * time.Second)
	for {
		failed := false
		for _, d := range deliveries(t, db) {
			if d.Notifier == "email" && d.State == relay.Pending && d.Attempts > 0 {
				failed = true
			}
		}
		if failed {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("no failed email attempt while the server was down: %+v", deliveries(t, db))
		}
		time.Sleep(20 * time.Millisecond)
	}
	if err := smtp.Start(); err != nil {
		t.Fatal(err)
	}
	if _, err := smtp.WaitFor(1, 15*time.Second); err != nil {
		t.Fatal(err)
	}
	for _, d := range settled(t, db, 10*time.Second) {
		if d.State != relay.Sent {
			t.Errorf("delivery to %s is %s: %s", d.Notifier, d.State, d.LastError)
		}
	}
}

// TestE2EEmailSMTPReplies shows a temporary SMTP refusal (4xx) retried until the message is
// accepted once, and a permanent one (5xx) ending the delivery dead with the server's reply.
func TestE2EEmailSMTPReplies(t *testing.T) {
	slack := newSlack(t)
	smtp := newSMTP(t)
	db := filepath.Join(t.TempDir(), "relay.db")
	in := start(t, e2eConfig(t, db, slack.WebhookURL(), emailConfig(t, smtp)))

	smtp.FailNext(2, smtptest.Reply{Code: 451, Enhanced: "4.3.0", Message: "try again later"})
	s := sample(t, "training-succeeded.json")
	if code, body := in.post(t, "?kind=training", s.MessageID, s.Body); code != 200 {
		t.Fatalf("post: %d %s", code, body)
	}
	if _, err := smtp.WaitFor(1, 15*time.Second); err != nil {
		t.Fatal(err)
	}
	for _, d := range settled(t, db, 10*time.Second) {
		if d.Notifier == "email" && (d.State != relay.Sent || d.Attempts != 2) {
			t.Errorf("email delivery %s after %d failed attempts, want sent after 2: %s", d.State, d.Attempts, d.LastError)
		}
	}

	smtp.FailNext(1, smtptest.Reply{Code: 554, Enhanced: "5.7.1", Message: "message rejected as spam"})
	if code, body := in.post(t, "?kind=training", "msg_rejected", withID(t, s.Body, "t-rejected")); code != 200 {
		t.Fatalf("post: %d %s", code, body)
	}
	var dead []relay.DeliveryInfo
	for _, d := range settled(t, db, 10*time.Second) {
		if d.Notifier == "email" && d.State == relay.Dead {
			dead = append(dead, d)
		}
	}
	if len(dead) != 1 || dead[0].Attempts != 1 || !strings.Contains(dead[0].LastError, "554") || !strings.Contains(dead[0].LastError, "rejected as spam") {
		t.Fatalf("want one dead email delivery after 1 attempt with the server's 554 reply, got %+v", deliveries(t, db))
	}
	if n := len(smtp.Messages()); n != 1 {
		t.Errorf("the server accepted %d messages, want 1", n)
	}
}
