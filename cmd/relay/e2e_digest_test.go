package main

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestE2EDigest collects failures through the running relay, previews the digest without
// sending it, sends it with `relay digest send` through a real SMTP server, and sends nothing
// the second time.
func TestE2EDigest(t *testing.T) {
	slack := newSlack(t)
	smtp := newSMTP(t)
	db := filepath.Join(t.TempDir(), "relay.db")
	extra := emailConfig(t, smtp) + `
[digests.daily-failures]
schedule = "0 9 * * *"
timezone = "Europe/Berlin"
notify = ["email"]

[[rules]]
name = "failures-digest"
statuses = ["failed", "aborted"]
digest = ["daily-failures"]
`
	cfg := e2eConfig(t, db, slack.WebhookURL(), extra)
	in := start(t, cfg)
	for _, name := range []string{"prediction-failed.json", "training-succeeded.json"} {
		s := sample(t, name)
		body := s.Body
		query := "?kind=prediction"
		if strings.HasPrefix(name, "training") {
			body = bytes.Replace(withID(t, s.Body, "t-failed"), []byte(`"status":"succeeded"`), []byte(`"status":"failed"`), 1)
			query = "?kind=training"
		}
		if code, answer := in.post(t, query, "msg_"+name, body); code != 200 || !strings.Contains(answer, `"digest_items":1`) {
			t.Fatalf("post %s: %d %s, want one digest item", name, code, answer)
		}
	}
	settled(t, db, 10*time.Second)
	before := len(smtp.Messages()) // the trainings rule's own email

	path := cfg.Source // the commands read the same file
	html := filepath.Join(t.TempDir(), "digest.html")
	var out, errOut bytes.Buffer
	if code := run(context.Background(), []string{"digest", "preview", "daily-failures", "--config", path, "--html", html}, &out, &errOut); code != 0 {
		t.Fatalf("preview: exit %d\n%s%s", code, out.String(), errOut.String())
	}
	page, err := os.ReadFile(html)
	if err != nil || !bytes.Contains(page, []byte("stability-ai/sdxl")) || !bytes.Contains(page, []byte("<html")) {
		t.Fatalf("preview HTML: %v\n%.500s", err, page)
	}
	if !strings.Contains(out.String(), "2 items since") {
		t.Errorf("preview said:\n%s", out.String())
	}
	if n := len(smtp.Messages()); n != before {
		t.Fatalf("the preview sent mail")
	}

	out.Reset()
	if code := run(context.Background(), []string{"digest", "send", "daily-failures", "--config", path}, &out, &errOut); code != 0 {
		t.Fatalf("send: exit %d\n%s%s", code, out.String(), errOut.String())
	}
	msgs, err := smtp.WaitFor(before+1, 10*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	p, err := msgs[before].Parse()
	if err != nil {
		t.Fatal(err)
	}
	if subj := p.Subject(); !strings.Contains(subj, "1 failed prediction on 1 model, 1 failed training") {
		t.Errorf("digest subject %q", subj)
	}
	var text, htmlPart string
	for _, leaf := range p.Leaves() {
		switch leaf.ContentType {
		case "text/plain":
			text = string(leaf.Body)
		case "text/html":
			htmlPart = string(leaf.Body)
		}
	}
	for _, want := range []string{"NSFW content detected", "stability-ai/sdxl", "Trainings", "CET"} {
		if !strings.Contains(text, want) {
			t.Errorf("digest text lacks %q:\n%s", want, text)
		}
	}
	if !strings.Contains(htmlPart, "NSFW content detected") {
		t.Errorf("digest HTML lacks the error")
	}
	if !strings.Contains(out.String(), "→ email      sent") {
		t.Errorf("send said:\n%s", out.String())
	}

	// Each item is in exactly one digest: sending again finds nothing.
	out.Reset()
	if code := run(context.Background(), []string{"digest", "send", "daily-failures", "--config", path}, &out, &errOut); code != 0 {
		t.Fatalf("second send: exit %d\n%s", code, errOut.String())
	}
	if !strings.Contains(out.String(), "nothing sent") {
		t.Errorf("second send said:\n%s", out.String())
	}
	time.Sleep(200 * time.Millisecond)
	if n := len(smtp.Messages()); n != before+1 {
		t.Errorf("%d messages after the second send, want %d", n, before+1)
	}
}
