package slacktest

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/slack-go/slack"
)

// post sends body to path and returns the status, the Retry-After header and the body.
func post(t *testing.T, s *Server, path, contentType, body string, header http.Header) (int, string, string) {
	t.Helper()
	req, err := http.NewRequest(http.MethodPost, s.URL()+path, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", contentType)
	for k, v := range header {
		req.Header[k] = v
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, resp.Header.Get("Retry-After"), strings.TrimSpace(string(b))
}

var bearer = http.Header{"Authorization": {"Bearer " + Token}}

func TestWebhook(t *testing.T) {
	longHeader := `[{"type":"header","text":{"type":"plain_text","text":"` + strings.Repeat("h", 151) + `"}}]`
	tests := []struct {
		name       string
		path       string
		body       string
		wantStatus int
		wantBody   string
		recorded   bool
	}{
		{"text", WebhookPath, `{"text":"hi"}`, 200, "ok", true},
		{"blocks", WebhookPath, `{"text":"hi","blocks":[{"type":"section","text":{"type":"mrkdwn","text":"*hi*"}}]}`, 200, "ok", true},
		{"unknown webhook", "/services/T000/B000/YYYY", `{"text":"hi"}`, 404, "no_service", false},
		{"not JSON", WebhookPath, `{"text":`, 400, "invalid_payload", false},
		{"no text", WebhookPath, `{"text":""}`, 400, "no_text", false},
		{"header too long", WebhookPath, `{"text":"x","blocks":` + longHeader + `}`, 400, "invalid_blocks", false},
		{"image without alt text", WebhookPath, `{"text":"x","blocks":[{"type":"image","image_url":"https://x/y.png","alt_text":""}]}`, 400, "invalid_blocks", false},
		{"eleven fields", WebhookPath, `{"text":"x","blocks":[{"type":"section","fields":[` + strings.Repeat(`{"type":"mrkdwn","text":"f"},`, 10) + `{"type":"mrkdwn","text":"f"}]}]}`, 400, "invalid_blocks", false},
		{"blocks not an array", WebhookPath, `{"text":"x","blocks":{"type":"divider"}}`, 400, "invalid_blocks_format", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := NewServer()
			defer s.Close()
			status, _, body := post(t, s, tt.path, "application/json", tt.body, nil)
			if status != tt.wantStatus || body != tt.wantBody {
				t.Errorf("got %d %q, want %d %q", status, body, tt.wantStatus, tt.wantBody)
			}
			if got := len(s.Messages()); got != map[bool]int{true: 1}[tt.recorded] {
				t.Errorf("%d messages recorded", got)
			}
		})
	}
}

func TestWebhookForm(t *testing.T) {
	s := NewServer()
	defer s.Close()
	form := url.Values{"payload": {`{"text":"from a form"}`}}.Encode()
	if status, _, body := post(t, s, WebhookPath, "application/x-www-form-urlencoded", form, nil); status != 200 || body != "ok" {
		t.Fatalf("got %d %q", status, body)
	}
	msgs := s.Messages()
	if len(msgs) != 1 || msgs[0].Text != "from a form" || !msgs[0].Webhook || msgs[0].Channel != Channel {
		t.Errorf("messages %+v", msgs)
	}
}

func TestPostMessage(t *testing.T) {
	tests := []struct {
		name        string
		contentType string
		body        string
		header      http.Header
		wantError   string // "" for ok
	}{
		{"JSON with bearer", "application/json", `{"channel":"C1","text":"hi"}`, bearer, ""},
		{"form with token", "application/x-www-form-urlencoded", url.Values{"token": {Token}, "channel": {"#general"}, "text": {"hi"}}.Encode(), nil, ""},
		{"form with blocks", "application/x-www-form-urlencoded", url.Values{"channel": {"general"}, "blocks": {`[{"type":"divider"}]`}}.Encode(), bearer, ""},
		{"no token", "application/json", `{"channel":"C1","text":"hi"}`, nil, "not_authed"},
		{"wrong token", "application/json", `{"channel":"C1","text":"hi"}`, http.Header{"Authorization": {"Bearer xoxb-nope"}}, "invalid_auth"},
		{"unknown channel", "application/json", `{"channel":"C9","text":"hi"}`, bearer, "channel_not_found"},
		{"no text", "application/json", `{"channel":"C1"}`, bearer, "no_text"},
		{"too long", "application/json", `{"channel":"C1","text":"` + strings.Repeat("x", 40001) + `"}`, bearer, "msg_too_long"},
		{"bad blocks", "application/x-www-form-urlencoded", url.Values{"channel": {"C1"}, "blocks": {`[{`}}.Encode(), bearer, "invalid_blocks_format"},
		{"bad JSON", "application/json", `{`, bearer, "invalid_json"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := NewServer()
			defer s.Close()
			status, _, body := post(t, s, PostMessagePath, tt.contentType, tt.body, tt.header)
			if status != 200 {
				t.Fatalf("status %d", status)
			}
			var r struct {
				OK      bool   `json:"ok"`
				Error   string `json:"error"`
				TS      string `json:"ts"`
				Channel string `json:"channel"`
			}
			if err := json.Unmarshal([]byte(body), &r); err != nil {
				t.Fatalf("%v: %s", err, body)
			}
			if tt.wantError != "" {
				if r.OK || r.Error != tt.wantError {
					t.Errorf("got %s, want error %s", body, tt.wantError)
				}
				if n := len(s.Messages()); n != 0 {
					t.Errorf("%d messages recorded", n)
				}
				return
			}
			if !r.OK || r.TS != "1700000000.000100" || r.Channel != Channel {
				t.Errorf("got %s", body)
			}
		})
	}
}

// TestWithSlackGo drives the stand-in with slack-go's own client.
func TestWithSlackGo(t *testing.T) {
	s := NewServer()
	defer s.Close()
	s.AddChannel("C2", "#alerts")
	api := slack.New(Token, slack.OptionAPIURL(s.APIURL()))
	for i, want := range []string{"1700000000.000100", "1700000000.000200"} {
		ch, ts, err := api.PostMessage("#alerts", slack.MsgOptionText("hello", false),
			slack.MsgOptionBlocks(slack.NewSectionBlock(slack.NewTextBlockObject("mrkdwn", "*hi*", false, false), nil, nil)))
		if err != nil || ch != "C2" || ts != want {
			t.Fatalf("message %d: %q %q %v", i, ch, ts, err)
		}
	}
	if err := slack.PostWebhook(s.WebhookURL(), &slack.WebhookMessage{Text: "via webhook"}); err != nil {
		t.Fatal(err)
	}
	msgs, err := s.WaitFor(3, time.Second)
	if err != nil {
		t.Fatal(err)
	}
	if got := msgs[0].BlockTypes(); len(got) != 1 || got[0] != "section" {
		t.Errorf("block types %q", got)
	}
	if msgs[2].Text != "via webhook" {
		t.Errorf("webhook message %+v", msgs[2])
	}
	_, _, err = slack.New("xoxb-wrong", slack.OptionAPIURL(s.APIURL())).PostMessage("C1", slack.MsgOptionText("x", false))
	if err == nil || err.Error() != "invalid_auth" {
		t.Errorf("wrong token: %v", err)
	}
}

func TestFailNext(t *testing.T) {
	s := NewServer()
	defer s.Close()
	s.FailNext(5, Failure{Status: 503})
	s.FailNext(0, Failure{}) // cancels the above
	s.FailNext(1, Failure{Status: 500, Body: "rollup_error"})
	s.ThenFail(1, Failure{RetryAfter: 3})
	s.ThenFail(1, Failure{APIError: "channel_is_archived", Status: 410})
	s.ThenFail(1, Failure{Delay: time.Millisecond})
	wants := []struct {
		status     int
		retryAfter string
		body       string
	}{
		{500, "", "rollup_error"},
		{429, "3", "rate_limited"},
		{410, "", "channel_is_archived"},
		{200, "", "ok"}, // a delay alone ends in the normal answer
		{200, "", "ok"},
	}
	for i, want := range wants {
		status, retryAfter, body := post(t, s, WebhookPath, "application/json", `{"text":"x"}`, nil)
		if status != want.status || retryAfter != want.retryAfter || body != want.body {
			t.Errorf("request %d: got %d %q %q, want %d %q %q", i, status, retryAfter, body, want.status, want.retryAfter, want.body)
		}
	}
	if n := len(s.Messages()); n != 2 {
		t.Errorf("%d messages, want 2", n)
	}
	if n := s.Requests(); n != 5 {
		t.Errorf("%d requests, want 5", n)
	}

	s.FailNext(1, Failure{APIError: "is_archived"})
	_, _, body := post(t, s, PostMessagePath, "application/json", `{"channel":"C1","text":"x"}`, bearer)
	if body != `{"error":"is_archived","ok":false}` {
		t.Errorf("API failure body %s", body)
	}
}

// TestFailNextDelay: a client that gives up during a delay gets nothing posted, even when the
// delay ends while the stand-in is still open.
func TestFailNextDelay(t *testing.T) {
	s := NewServer()
	defer s.Close()
	s.FailNext(1, Failure{Delay: 200 * time.Millisecond})
	client := &http.Client{Timeout: 30 * time.Millisecond}
	if _, err := client.Post(s.WebhookURL(), "application/json", strings.NewReader(`{"text":"x"}`)); err == nil {
		t.Fatal("no timeout")
	}
	time.Sleep(400 * time.Millisecond)
	if n := len(s.Messages()); n != 0 {
		t.Errorf("%d messages from a request the client gave up on", n)
	}
}

func TestFailNextHang(t *testing.T) {
	s := NewServer()
	s.FailNext(2, Failure{Delay: time.Hour})
	client := &http.Client{Timeout: 50 * time.Millisecond}
	_, err := client.Post(s.WebhookURL(), "application/json", strings.NewReader(`{"text":"x"}`))
	var ue *url.Error
	if !errors.As(err, &ue) || !ue.Timeout() {
		t.Fatalf("err = %v, want a timeout", err)
	}
	// A request still held when the server closes is dropped, and Close does not wait an hour.
	done := make(chan error, 1)
	go func() {
		_, err := http.Post(s.WebhookURL(), "application/json", strings.NewReader(`{"text":"x"}`))
		done <- err
	}()
	for s.Requests() < 2 {
		time.Sleep(time.Millisecond)
	}
	closed := make(chan struct{})
	go func() {
		s.Close()
		close(closed)
	}()
	select {
	case <-closed:
	case <-time.After(5 * time.Second):
		t.Fatal("Close blocked on a held request")
	}
	if err := <-done; err == nil {
		t.Error("held request answered, want a dropped connection")
	}
	if n := len(s.Messages()); n != 0 {
		t.Errorf("%d messages", n)
	}
}

func TestRateLimit(t *testing.T) {
	s := NewServer()
	defer s.Close()
	s.AddChannel("C2", "other")
	s.SetRateLimit(2)
	send := func(channel string) (int, string) {
		status, retryAfter, _ := post(t, s, PostMessagePath, "application/json", `{"channel":"`+channel+`","text":"x"}`, bearer)
		return status, retryAfter
	}
	// A burst of two passes, the third is limited; another channel has its own budget.
	for i, want := range []int{200, 200, 429} {
		if status, retryAfter := send("C1"); status != want || (want == 429 && retryAfter != "1") {
			t.Errorf("message %d: %d (Retry-After %q), want %d", i, status, retryAfter, want)
		}
	}
	if status, _ := send("C2"); status != 200 {
		t.Errorf("other channel: %d", status)
	}
	time.Sleep(600 * time.Millisecond)
	if status, _ := send("C1"); status != 200 {
		t.Errorf("after a pause: %d", status)
	}
	s.SetRateLimit(0)
	for range 5 {
		if status, _ := send("C1"); status != 200 {
			t.Fatalf("limit off: %d", status)
		}
	}
}

func TestWaitFor(t *testing.T) {
	s := NewServer()
	defer s.Close()
	if msgs, err := s.WaitFor(1, 20*time.Millisecond); err == nil || len(msgs) != 0 {
		t.Fatalf("WaitFor on nothing: %v, %v", msgs, err)
	}
	go func() {
		for range 3 {
			_ = slack.PostWebhookContext(context.Background(), s.WebhookURL(), &slack.WebhookMessage{Text: "x"})
		}
	}()
	msgs, err := s.WaitFor(3, 5*time.Second)
	if err != nil || len(msgs) != 3 {
		t.Fatalf("%d messages, %v", len(msgs), err)
	}
	s.Reset()
	if n := len(s.Messages()); n != 0 || s.Requests() != 0 {
		t.Errorf("after Reset: %d messages, %d requests", n, s.Requests())
	}
}

// TestHandler uses the handler without Server, as a benchmark serving it on its own listener
// would.
func TestHandler(t *testing.T) {
	h := NewHandler()
	defer h.Close()
	req := httptest.NewRequest(http.MethodPost, WebhookPath, strings.NewReader(`{"text":"direct"}`))
	req.Header.Set("Content-Type", "application/json")
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	if rec.Code != 200 || rec.Body.String() != "ok" {
		t.Errorf("got %d %q", rec.Code, rec.Body.String())
	}
	if msgs := h.Messages(); len(msgs) != 1 || msgs[0].Text != "direct" {
		t.Errorf("messages %+v", msgs)
	}
}
