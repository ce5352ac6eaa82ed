package main

import (
	"io"
	"net/http"
	"strings"
	"testing"
)

// TestSlackStandInChecksAfterwards posts messages as the relay's Slack notifier would: the
// stand-in answers each "ok" at once, and its scan then tallies the valid ones by prediction and
// counts the ones Slack would have refused.
func TestSlackStandInChecksAfterwards(t *testing.T) {
	s, err := startSlack('a')
	if err != nil {
		t.Fatal(err)
	}
	defer s.close()
	w := testWorkload()
	post := func(url, body string) (int, string) {
		t.Helper()
		resp, err := http.Post(url, "application/json", strings.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	valid := func(p int) string {
		return `{"text":"Prediction ` + w.predID(p) + ` succeeded","blocks":[{"type":"section","text":{"type":"mrkdwn","text":"` + w.predID(p) + `"}}]}`
	}
	bodies := []string{
		valid(1),
		valid(2),
		valid(1), // a duplicate notification
		`{"text":"about nothing in particular"}`,
		`{"text":"x","blocks":[{"type":"header","text":{"type":"mrkdwn","text":"x"}}]}`, // refused: invalid_blocks
		`{"text":`, // refused: invalid_payload
	}
	for i, b := range bodies {
		if code, body := post(s.url, b); code != 200 || body != "ok" {
			t.Fatalf("post %d: %d %q, want 200 \"ok\"", i, code, body)
		}
	}
	if code, body := post(strings.Replace(s.url, "XXXX", "gone", 1), valid(3)); code != 404 || body != "no_service" {
		t.Fatalf("post to another webhook: %d %q, want 404 \"no_service\"", code, body)
	}
	if resp, err := http.Get(s.url); err != nil || resp.StatusCode != 405 {
		t.Fatalf("GET of the webhook: %v %v, want 405", resp, err)
	} else {
		resp.Body.Close()
	}
	if n := s.requests(); n != len(bodies) {
		t.Fatalf("requests() = %d, want %d", n, len(bodies))
	}
	s.scan()
	s.scan() // a second scan finds nothing new
	for i, p := range s.posts {
		if p.body != nil {
			t.Errorf("post %d still holds its body after the scan", i)
		}
	}
	if s.count[1] != 2 || s.count[2] != 1 || len(s.count) != 2 {
		t.Errorf("count = %v, want map[1:2 2:1]", s.count)
	}
	if len(s.first) != 2 || s.first[1].After(s.first[2]) {
		t.Errorf("first receipts = %v", s.first)
	}
	if s.unidentified != 1 {
		t.Errorf("unidentified = %d, want 1", s.unidentified)
	}
	if s.refused != 2 || s.refusal != "invalid_blocks" {
		t.Errorf("refused = %d (first %q), want 2 (first invalid_blocks)", s.refused, s.refusal)
	}
	if s.messages() != len(bodies) {
		t.Errorf("messages() = %d, want %d", s.messages(), len(bodies))
	}
}
