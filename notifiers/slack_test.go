package notifiers

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/slack-go/slack"

	"github.com/mlrelay/relay/notifiers/slacktest"
	"github.com/mlrelay/relay/relay"
	"github.com/mlrelay/relay/relay/replicate"
)

var update = flag.Bool("update", false, "rewrite the golden files under testdata/")

// received is the fixed time at which test events arrive.
var received = time.Date(2025, 5, 1, 18, 30, 0, 0, time.UTC)

// sampleEvents parses Replicate's sample deliveries, keyed by file name without ".json".
func sampleEvents(t *testing.T) map[string]*relay.Event {
	t.Helper()
	out := map[string]*relay.Event{}
	for _, s := range replicate.Samples() {
		ev, err := relay.ParseEvent(s.Body, s.MessageID, s.Kind, nil, received)
		if err != nil {
			t.Fatalf("%s: %v", s.Name, err)
		}
		out[strings.TrimSuffix(s.Name, ".json")] = ev
	}
	if len(out) == 0 {
		t.Fatal("no samples")
	}
	return out
}

// parseEvent parses a payload written for a test.
func parseEvent(t *testing.T, body string) *relay.Event {
	t.Helper()
	ev, err := relay.ParseEvent([]byte(body), "msg_test", "", nil, received)
	if err != nil {
		t.Fatal(err)
	}
	return ev
}

// message wraps ev in fixed, already rendered texts, as the templates would give them.
func message(ev *relay.Event) relay.Message {
	return relay.Message{
		Event:   ev,
		Rule:    "all-runs",
		Title:   "Prediction update",
		Body:    "*stability-ai/sdxl* changed state. <https://replicate.com/p/x|View it> &amp; compare.",
		Context: "rule `all-runs` · relay",
		Text:    "Prediction update: stability-ai/sdxl changed state.",
	}
}

// plainMessage is a message without images, so that a rejected message is not sent again
// without them.
func plainMessage() relay.Message {
	return relay.Message{Rule: "r", Title: "Title", Body: "Body", Context: "ctx", Text: "Text"}
}

func newWebhook(t *testing.T, webhookURL string, timeout time.Duration) *Slack {
	t.Helper()
	s, err := NewSlack(SlackOptions{WebhookURL: webhookURL, Timeout: timeout})
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func newBot(t *testing.T, apiURL, token, channel string, timeout time.Duration) *Slack {
	t.Helper()
	s, err := NewSlack(SlackOptions{Token: token, Channel: channel, APIURL: apiURL, Timeout: timeout})
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// refusedURL is a loopback URL that nothing listens on.
func refusedURL(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	return "http://" + addr
}

// class names how the dispatcher would treat err.
func class(err error) string {
	if err == nil {
		return "ok"
	}
	c := relay.Classify(err)
	switch {
	case c.RateLimited:
		return "ratelimited"
	case c.Permanent:
		return "permanent"
	}
	return "retryable"
}

// outcome is what a send should come to.
type outcome struct {
	class      string        // ok, permanent, retryable, ratelimited
	retryAfter time.Duration // the wait asked for
	contains   string        // a part of the error's text
}

func checkOutcome(t *testing.T, err error, want outcome) {
	t.Helper()
	if got := class(err); got != want.class {
		t.Fatalf("class = %s, want %s (err: %v)", got, want.class, err)
	}
	if err == nil {
		return
	}
	if got := relay.Classify(err).RetryAfter; got != want.retryAfter {
		t.Errorf("RetryAfter = %s, want %s", got, want.retryAfter)
	}
	if !strings.Contains(err.Error(), want.contains) {
		t.Errorf("error %q does not contain %q", err, want.contains)
	}
}

func TestNewSlack(t *testing.T) {
	const secretURL = "https://hooks.slack.com/services/T000/B000/s3cr3ts3cr3ts3cr3t"
	tests := []struct {
		name    string
		opts    SlackOptions
		wantErr string // "" for success
		wantAPI string // the normalised API URL, in bot mode
	}{
		{name: "webhook", opts: SlackOptions{WebhookURL: secretURL}},
		{name: "bot default API", opts: SlackOptions{Token: "xoxb-1", Channel: "#alerts"}, wantAPI: "https://slack.com/api/"},
		{name: "bot API without slash", opts: SlackOptions{Token: "xoxb-1", Channel: "C1", APIURL: "http://127.0.0.1:9/api"}, wantAPI: "http://127.0.0.1:9/api/"},
		{name: "bot API with slashes", opts: SlackOptions{Token: "xoxb-1", Channel: "C1", APIURL: "http://127.0.0.1:9/api//"}, wantAPI: "http://127.0.0.1:9/api/"},
		{name: "nothing", opts: SlackOptions{}, wantErr: "set webhook_url, or token and channel"},
		{name: "both", opts: SlackOptions{WebhookURL: secretURL, Token: "xoxb-1", Channel: "C1"}, wantErr: "not both"},
		{name: "token without channel", opts: SlackOptions{Token: "xoxb-1"}, wantErr: "if token is set, channel must be set too"},
		{name: "channel without token", opts: SlackOptions{Channel: "C1"}, wantErr: "if channel is set, token must be set too"},
		{name: "webhook not http", opts: SlackOptions{WebhookURL: "ftp://hooks.slack.com/services/T000/B000/s3cr3ts3cr3ts3cr3t"}, wantErr: "must start with https://"},
		{name: "webhook unparsable", opts: SlackOptions{WebhookURL: "https://hooks.slack.com/services/T000/B000/s3cr3ts3cr3ts3cr3t%zz"}, wantErr: "is not a valid URL"},
		{name: "webhook without host", opts: SlackOptions{WebhookURL: "https:///services/T000/B000/s3cr3ts3cr3ts3cr3t"}, wantErr: "has no host"},
		{name: "bad API URL", opts: SlackOptions{Token: "xoxb-1", Channel: "C1", APIURL: "slack.com/api"}, wantErr: "api_url"},
		{name: "token with newline", opts: SlackOptions{Token: "xoxb-1\nX-Evil: 1", Channel: "C1"}, wantErr: "token contains"},
		{name: "negative timeout", opts: SlackOptions{WebhookURL: secretURL, Timeout: -time.Second}, wantErr: "negative"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s, err := NewSlack(tt.opts)
			if tt.wantErr != "" {
				if err == nil {
					t.Fatalf("no error, want %q", tt.wantErr)
				}
				if !strings.Contains(err.Error(), tt.wantErr) {
					t.Errorf("error %q, want it to contain %q", err, tt.wantErr)
				}
				if strings.Contains(err.Error(), "s3cr3t") || strings.Contains(err.Error(), "xoxb") {
					t.Errorf("error %q reveals a secret", err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if s.api != tt.wantAPI {
				t.Errorf("api = %q, want %q", s.api, tt.wantAPI)
			}
			if s.timeout != slackDefaultTimeout {
				t.Errorf("timeout = %s, want the default", s.timeout)
			}
		})
	}
}

func TestSlackWebhookClassification(t *testing.T) {
	retryDate := time.Now().Add(90 * time.Second).UTC().Format(http.TimeFormat)
	tests := []struct {
		name    string
		failure *slacktest.Failure // nil: no failure scripted
		refused bool               // send to a port nothing listens on
		rate    float64            // stand-in rate limit; two messages are sent
		want    outcome
	}{
		{name: "200 ok", want: outcome{class: "ok"}},
		{name: "400 invalid_blocks", failure: &slacktest.Failure{Status: 400, Body: "invalid_blocks"},
			want: outcome{class: "permanent", contains: "slack webhook: 400 Bad Request: invalid_blocks"}},
		{name: "400 invalid_payload", failure: &slacktest.Failure{Status: 400, Body: "invalid_payload"},
			want: outcome{class: "permanent", contains: "400 Bad Request: invalid_payload"}},
		{name: "403 action_prohibited", failure: &slacktest.Failure{Status: 403, Body: "action_prohibited"},
			want: outcome{class: "permanent", contains: "403 Forbidden: action_prohibited"}},
		{name: "404 no_service", failure: &slacktest.Failure{Status: 404, Body: "no_service"},
			want: outcome{class: "permanent", contains: "404 Not Found: no_service"}},
		{name: "408", failure: &slacktest.Failure{Status: 408},
			want: outcome{class: "retryable", contains: "408 Request Timeout"}},
		{name: "410 channel_is_archived", failure: &slacktest.Failure{Status: 410, Body: "channel_is_archived"},
			want: outcome{class: "permanent", contains: "410 Gone: channel_is_archived"}},
		{name: "429 with Retry-After", failure: &slacktest.Failure{Status: 429, RetryAfter: 7},
			want: outcome{class: "ratelimited", retryAfter: 7 * time.Second, contains: "429 Too Many Requests"}},
		{name: "429 without Retry-After", failure: &slacktest.Failure{Status: 429, Body: "rate_limited"},
			want: outcome{class: "ratelimited", contains: "429 Too Many Requests: rate_limited"}},
		{name: "429 with unreadable Retry-After", failure: &slacktest.Failure{Status: 429, Header: http.Header{"Retry-After": {"soon"}}},
			want: outcome{class: "ratelimited", contains: "429"}},
		{name: "429 with Retry-After date", failure: &slacktest.Failure{Status: 429, Header: http.Header{"Retry-After": {retryDate}}},
			want: outcome{class: "ratelimited", retryAfter: -1, contains: "429"}},
		{name: "500 rollup_error", failure: &slacktest.Failure{Status: 500, Body: "rollup_error"},
			want: outcome{class: "retryable", contains: "500 Internal Server Error: rollup_error"}},
		{name: "502 HTML page", failure: &slacktest.Failure{Status: 502, Body: "<html><body>Bad gateway</body></html>", Header: http.Header{"Content-Type": {"text/html"}}},
			want: outcome{class: "retryable", contains: "slack webhook: 502 Bad Gateway"}},
		{name: "503 with Retry-After", failure: &slacktest.Failure{Status: 503, RetryAfter: 2},
			want: outcome{class: "retryable", retryAfter: 2 * time.Second, contains: "503 Service Unavailable"}},
		{name: "timeout", failure: &slacktest.Failure{Delay: 10 * time.Second},
			want: outcome{class: "retryable", contains: "context deadline exceeded"}},
		{name: "connection refused", refused: true,
			want: outcome{class: "retryable", contains: "connection refused"}},
		{name: "stand-in rate limit", rate: 0.5,
			want: outcome{class: "ratelimited", retryAfter: time.Second, contains: "429 Too Many Requests: rate_limited"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			srv := slacktest.NewServer()
			defer srv.Close()
			hook := srv.WebhookURL()
			if tt.refused {
				hook = refusedURL(t) + slacktest.WebhookPath
			}
			if tt.failure != nil {
				srv.FailNext(1, *tt.failure)
			}
			s := newWebhook(t, hook, 300*time.Millisecond)
			if tt.rate > 0 {
				srv.SetRateLimit(tt.rate)
				if _, err := s.Notify(context.Background(), plainMessage()); err != nil {
					t.Fatalf("first message: %v", err)
				}
			}
			ref, err := s.Notify(context.Background(), plainMessage())
			if tt.want.retryAfter < 0 {
				// An HTTP date: the wait is whatever is left until then.
				if d := relay.Classify(err).RetryAfter; d < 80*time.Second || d > 90*time.Second {
					t.Errorf("RetryAfter = %s, want about 90s", d)
				}
				tt.want.retryAfter = relay.Classify(err).RetryAfter
			}
			checkOutcome(t, err, tt.want)
			if ref != "" {
				t.Errorf("ref = %q, want none from a webhook", ref)
			}
			wantMsgs := 0
			if tt.want.class == "ok" {
				wantMsgs = 1
			}
			if tt.rate > 0 {
				wantMsgs = 1
			}
			if got := len(srv.Messages()); got != wantMsgs {
				t.Errorf("%d messages recorded, want %d", got, wantMsgs)
			}
		})
	}
}

func TestSlackWebAPIClassification(t *testing.T) {
	tests := []struct {
		name    string
		failure *slacktest.Failure
		token   string // default slacktest.Token
		channel string // default slacktest.Channel
		refused bool
		want    outcome
	}{
		{name: "ok", want: outcome{class: "ok"}},
		{name: "ok by channel name", channel: "#general", want: outcome{class: "ok"}},
		{name: "wrong token", token: "xoxb-wrong", want: outcome{class: "permanent", contains: "slack chat.postMessage: invalid_auth"}},
		{name: "unknown channel", channel: "C404", want: outcome{class: "permanent", contains: "channel_not_found"}},
		{name: "HTTP 429 with Retry-After", failure: &slacktest.Failure{Status: 429, RetryAfter: 30},
			want: outcome{class: "ratelimited", retryAfter: 30 * time.Second, contains: "429 Too Many Requests"}},
		{name: "HTTP 429 without Retry-After", failure: &slacktest.Failure{Status: 429},
			want: outcome{class: "ratelimited", contains: "429 Too Many Requests"}},
		{name: "HTTP 500", failure: &slacktest.Failure{Status: 500},
			want: outcome{class: "retryable", contains: "500 Internal Server Error"}},
		{name: "HTTP 503 with Retry-After", failure: &slacktest.Failure{Status: 503, RetryAfter: 4},
			want: outcome{class: "retryable", retryAfter: 4 * time.Second, contains: "503 Service Unavailable"}},
		{name: "HTTP 404", failure: &slacktest.Failure{Status: 404, Body: "not found"},
			want: outcome{class: "permanent", contains: "404 Not Found: not found"}},
		{name: "200 not JSON", failure: &slacktest.Failure{Status: 200, Body: "<html>proxy</html>"},
			want: outcome{class: "retryable", contains: "unreadable response"}},
		{name: "invalid_blocks with details", failure: &slacktest.Failure{Body: `{"ok":false,"error":"invalid_blocks","response_metadata":{"messages":["[ERROR] must be less than 151 characters [json-pointer:/blocks/0/text/text]"]}}`},
			want: outcome{class: "permanent", contains: "invalid_blocks ([ERROR] must be less than 151 characters [json-pointer:/blocks/0/text/text])"}},
		{name: "missing_scope with needed", failure: &slacktest.Failure{Body: `{"ok":false,"error":"missing_scope","needed":"chat:write","provided":"users:read"}`},
			want: outcome{class: "permanent", contains: "missing_scope (needed: chat:write)"}},
		{name: "timeout", failure: &slacktest.Failure{Delay: 10 * time.Second},
			want: outcome{class: "retryable", contains: "context deadline exceeded"}},
		{name: "connection refused", refused: true,
			want: outcome{class: "retryable", contains: "connection refused"}},
	}
	codes := map[string]string{
		"ratelimited":         "ratelimited",
		"internal_error":      "retryable",
		"fatal_error":         "retryable",
		"service_unavailable": "retryable",
		"request_timeout":     "retryable",
		"a_code_from_2030":    "retryable",
		"invalid_auth":        "permanent",
		"not_authed":          "permanent",
		"account_inactive":    "permanent",
		"token_revoked":       "permanent",
		"channel_not_found":   "permanent",
		"not_in_channel":      "permanent",
		"is_archived":         "permanent",
		"msg_too_long":        "permanent",
		"invalid_blocks":      "permanent",
		"invalid_arguments":   "permanent",
		"no_text":             "permanent",
		"missing_scope":       "permanent",
	}
	for code, c := range codes {
		tests = append(tests, struct {
			name    string
			failure *slacktest.Failure
			token   string
			channel string
			refused bool
			want    outcome
		}{name: "ok false " + code, failure: &slacktest.Failure{APIError: code},
			want: outcome{class: c, contains: "slack chat.postMessage: " + code}})
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			srv := slacktest.NewServer()
			defer srv.Close()
			api := srv.APIURL()
			if tt.refused {
				api = refusedURL(t) + slacktest.APIPath
			}
			if tt.failure != nil {
				srv.FailNext(1, *tt.failure)
			}
			token, channel := tt.token, tt.channel
			if token == "" {
				token = slacktest.Token
			}
			if channel == "" {
				channel = slacktest.Channel
			}
			s := newBot(t, api, token, channel, 300*time.Millisecond)
			ref, err := s.Notify(context.Background(), plainMessage())
			checkOutcome(t, err, tt.want)
			msgs := srv.Messages()
			if tt.want.class == "ok" {
				if len(msgs) != 1 || ref != msgs[0].TS {
					t.Fatalf("ref %q, messages %+v: want the one message's ts", ref, msgs)
				}
				return
			}
			if ref != "" || len(msgs) != 0 {
				t.Errorf("ref %q and %d messages after a failure", ref, len(msgs))
			}
		})
	}
}

func TestSlackBotReturnsTS(t *testing.T) {
	srv := slacktest.NewServer()
	defer srv.Close()
	s := newBot(t, srv.APIURL(), slacktest.Token, "#general", 5*time.Second)
	ev := sampleEvents(t)["prediction-succeeded"]
	var refs []string
	for range 2 {
		ref, err := s.Notify(context.Background(), message(ev))
		if err != nil {
			t.Fatal(err)
		}
		refs = append(refs, ref)
	}
	if refs[0] != "1700000000.000100" || refs[1] != "1700000000.000200" {
		t.Errorf("refs = %q, want the stand-in's first two ts", refs)
	}
	msgs := srv.Messages()
	if len(msgs) != 2 || msgs[0].Channel != slacktest.Channel || msgs[1].TS != refs[1] {
		t.Errorf("messages = %+v", msgs)
	}
}

// TestSlackGolden pins the payload built for each sample event. Run with -update to rewrite.
func TestSlackGolden(t *testing.T) {
	for name, ev := range sampleEvents(t) {
		t.Run(name, func(t *testing.T) {
			m := message(ev)
			msg := slack.WebhookMessage{Text: slackText(m), Blocks: &slack.Blocks{BlockSet: slackBlocks(m, true)}}
			var buf bytes.Buffer
			enc := json.NewEncoder(&buf)
			enc.SetEscapeHTML(false)
			enc.SetIndent("", "  ")
			if err := enc.Encode(msg); err != nil {
				t.Fatal(err)
			}
			// slack.Blocks marshals itself with HTML escaping; undo it so that the file reads
			// like the mrkdwn it holds. The escapes only ever occur inside strings.
			got := strings.NewReplacer(`\u003c`, "<", `\u003e`, ">", `\u0026`, "&").Replace(buf.String())
			buf.Reset()
			buf.WriteString(got)
			path := filepath.Join("testdata", "slack", name+".json")
			checkGolden(t, path, buf.Bytes())
		})
	}
}

// TestSlackSamplesAccepted sends every sample through both modes to the stand-in, which checks
// Block Kit's limits the way Slack does.
func TestSlackSamplesAccepted(t *testing.T) {
	srv := slacktest.NewServer()
	defer srv.Close()
	hook := newWebhook(t, srv.WebhookURL(), 5*time.Second)
	bot := newBot(t, srv.APIURL(), slacktest.Token, slacktest.Channel, 5*time.Second)
	n := 0
	for name, ev := range sampleEvents(t) {
		for mode, s := range map[string]*Slack{"webhook": hook, "bot": bot} {
			t.Run(name+"/"+mode, func(t *testing.T) {
				if _, err := s.Notify(context.Background(), message(ev)); err != nil {
					t.Fatal(err)
				}
				n++
				msgs := srv.Messages()
				if len(msgs) != n {
					t.Fatalf("%d messages, want %d", len(msgs), n)
				}
				got := msgs[n-1]
				if got.Webhook != (mode == "webhook") {
					t.Errorf("recorded as webhook = %v", got.Webhook)
				}
				if got.Text != slackText(message(ev)) {
					t.Errorf("text = %q", got.Text)
				}
				wantBlocks, _ := json.Marshal(slackBlocks(message(ev), true))
				if !jsonEqual(t, got.Blocks, wantBlocks) {
					t.Errorf("blocks = %s\nwant %s", got.Blocks, wantBlocks)
				}
			})
		}
	}
}

func jsonEqual(t *testing.T, a, b []byte) bool {
	t.Helper()
	var x, y any
	if err := json.Unmarshal(a, &x); err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(b, &y); err != nil {
		t.Fatal(err)
	}
	xa, _ := json.Marshal(x)
	ya, _ := json.Marshal(y)
	return bytes.Equal(xa, ya)
}

func TestSlackImageBlocks(t *testing.T) {
	srv := slacktest.NewServer()
	defer srv.Close()
	s := newWebhook(t, srv.WebhookURL(), 5*time.Second)
	ev := sampleEvents(t)["prediction-succeeded"]
	if _, err := s.Notify(context.Background(), message(ev)); err != nil {
		t.Fatal(err)
	}
	msgs, err := srv.WaitFor(1, time.Second)
	if err != nil {
		t.Fatal(err)
	}
	blocks, err := msgs[0].DecodeBlocks()
	if err != nil {
		t.Fatal(err)
	}
	var images []*slack.ImageBlock
	for _, b := range blocks.BlockSet {
		if img, ok := b.(*slack.ImageBlock); ok {
			images = append(images, img)
		}
	}
	want := ev.Images()
	if len(images) != len(want) || len(want) != 2 {
		t.Fatalf("%d image blocks, want %d", len(images), len(want))
	}
	for i, img := range images {
		if img.ImageURL != want[i] {
			t.Errorf("image %d: url %q, want %q", i, img.ImageURL, want[i])
		}
		wantAlt := fmt.Sprintf("output %d of 2: an astronaut riding a horse on mars, 35mm photo", i+1)
		if img.AltText != wantAlt {
			t.Errorf("image %d: alt %q, want %q", i, img.AltText, wantAlt)
		}
	}
}

// TestSlackImageFallback: Slack rejects a message whose image it cannot fetch (Replicate deletes
// outputs after an hour) with invalid_blocks; the message then goes out with links instead.
func TestSlackImageFallback(t *testing.T) {
	ev := sampleEvents(t)["prediction-succeeded"]
	for _, mode := range []string{"webhook", "bot"} {
		t.Run(mode, func(t *testing.T) {
			srv := slacktest.NewServer()
			defer srv.Close()
			var s *Slack
			if mode == "webhook" {
				srv.FailNext(1, slacktest.Failure{Status: 400, Body: "invalid_blocks"})
				s = newWebhook(t, srv.WebhookURL(), 5*time.Second)
			} else {
				srv.FailNext(1, slacktest.Failure{APIError: "invalid_blocks"})
				s = newBot(t, srv.APIURL(), slacktest.Token, slacktest.Channel, 5*time.Second)
			}
			if _, err := s.Notify(context.Background(), message(ev)); err != nil {
				t.Fatal(err)
			}
			if n := srv.Requests(); n != 2 {
				t.Errorf("%d requests, want 2", n)
			}
			msgs := srv.Messages()
			if len(msgs) != 1 {
				t.Fatalf("%d messages", len(msgs))
			}
			types := strings.Join(msgs[0].BlockTypes(), ",")
			if types != "header,section,section,section,actions,context" {
				t.Errorf("block types %s", types)
			}
			blocks, err := msgs[0].DecodeBlocks()
			if err != nil {
				t.Fatal(err)
			}
			links := blocks.BlockSet[3].(*slack.SectionBlock).Text.Text
			want := "<" + ev.Images()[0] + "|output 1> · <" + ev.Images()[1] + "|output 2>"
			if links != want {
				t.Errorf("links %q, want %q", links, want)
			}
		})
	}
	t.Run("still refused", func(t *testing.T) {
		srv := slacktest.NewServer()
		defer srv.Close()
		srv.FailNext(2, slacktest.Failure{Status: 400, Body: "invalid_blocks"})
		s := newWebhook(t, srv.WebhookURL(), 5*time.Second)
		_, err := s.Notify(context.Background(), message(ev))
		checkOutcome(t, err, outcome{class: "permanent", contains: "invalid_blocks"})
		if n := srv.Requests(); n != 2 {
			t.Errorf("%d requests, want 2", n)
		}
	})
}

// TestSlackLimits builds a message over every limit and has the stand-in check it.
func TestSlackLimits(t *testing.T) {
	// The first output's URL is too long for Slack, so it is left out; six more follow.
	outputs := []string{`"https://replicate.delivery/` + strings.Repeat("a", 3000) + `.png"`}
	for i := range 6 {
		outputs = append(outputs, fmt.Sprintf("%q", fmt.Sprintf("https://replicate.delivery/x/out-%d.webp", i)))
	}
	prompt := "<!channel> & friends " + strings.Repeat("very long prompt ", 40)
	ev := parseEvent(t, `{"id":"abc","model":"acme/<b>&co","version":"v","status":"succeeded",
		"input":{"prompt":`+fmt.Sprintf("%q", prompt)+`},
		"output":[`+strings.Join(outputs, ",")+`],
		"created_at":"2025-05-01T18:00:00Z","started_at":"2025-05-01T18:00:01Z","completed_at":"2025-05-01T18:02:04.6Z"}`)
	body := strings.Repeat("word &amp; <https://example.com/a|link> `code`\n", 300) // ~15k runes
	m := relay.Message{
		Event:   ev,
		Rule:    "r",
		Title:   strings.Repeat("Title ", 60),
		Body:    body + "```\n" + strings.Repeat("log line\n", 2000) + "```",
		Context: strings.Repeat("ctx ", 1000),
		Text:    strings.Repeat("&lt;!here&gt; ", 1000), // escaped by the templates, as for every slack target
	}
	srv := slacktest.NewServer()
	defer srv.Close()
	s := newBot(t, srv.APIURL(), slacktest.Token, slacktest.Channel, 5*time.Second)
	if _, err := s.Notify(context.Background(), m); err != nil {
		t.Fatal(err)
	}
	msgs := srv.Messages()
	if len(msgs) != 1 {
		t.Fatalf("%d messages", len(msgs))
	}
	got := msgs[0]
	if n := utf8.RuneCountInString(got.Text); n > slackMaxText || !strings.HasPrefix(got.Text, "&lt;!here&gt; ") ||
		strings.Contains(got.Text, "&amp;lt;") || !strings.HasSuffix(got.Text, "…") {
		t.Errorf("text of %d runes, not cut or escaped twice: %.40q", n, got.Text)
	}
	blocks, err := got.DecodeBlocks()
	if err != nil {
		t.Fatal(err)
	}
	var sections, images int
	for i, b := range blocks.BlockSet {
		switch b := b.(type) {
		case *slack.HeaderBlock:
			if n := utf8.RuneCountInString(b.Text.Text); n != slackMaxHeader || !strings.HasSuffix(b.Text.Text, "…") {
				t.Errorf("header of %d runes: %q", n, b.Text.Text)
			}
		case *slack.SectionBlock:
			if b.Fields != nil {
				want := []string{"*Model*\nacme/&lt;b&gt;&amp;co", "*Status*\nsucceeded", "*Duration*\n2m4s", "*Kind*\nprediction"}
				var f []string
				for _, x := range b.Fields {
					f = append(f, x.Text)
				}
				if strings.Join(f, "|") != strings.Join(want, "|") {
					t.Errorf("fields %q, want %q", f, want)
				}
				continue
			}
			sections++
			if strings.Count(b.Text.Text, "```")%2 != 0 {
				t.Errorf("section %d leaves a code block open", i)
			}
		case *slack.ImageBlock:
			images++
			if !strings.HasPrefix(b.AltText, fmt.Sprintf("output %d of 7: &lt;!channel&gt; &amp; friends", images+1)) {
				t.Errorf("alt text %q", b.AltText)
			}
		case *slack.ContextBlock:
			text := b.ContextElements.Elements[0].(*slack.TextBlockObject).Text
			if n := utf8.RuneCountInString(text); n > slackMaxContext {
				t.Errorf("context of %d runes", n)
			}
		}
	}
	if sections != slackMaxBodyParts {
		t.Errorf("%d body sections, want %d", sections, slackMaxBodyParts)
	}
	if images != slackMaxImages {
		t.Errorf("%d images, want %d", images, slackMaxImages)
	}
}

func TestSlackTrainingFields(t *testing.T) {
	ev := sampleEvents(t)["training-succeeded"]
	fields := slackFields(ev)
	var got []string
	for _, f := range fields {
		got = append(got, f.Text)
	}
	last := got[len(got)-1]
	if !strings.HasPrefix(last, "*New version*\nacme/sdxl-brand-style:") {
		t.Errorf("fields %q: want the new version last", got)
	}
}

func TestSlackCallerCanceled(t *testing.T) {
	srv := slacktest.NewServer()
	defer srv.Close()
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	for mode, s := range map[string]*Slack{
		"webhook": newWebhook(t, srv.WebhookURL(), time.Second),
		"bot":     newBot(t, srv.APIURL(), slacktest.Token, slacktest.Channel, time.Second),
	} {
		t.Run(mode, func(t *testing.T) {
			_, err := s.Notify(ctx, plainMessage())
			checkOutcome(t, err, outcome{class: "retryable", contains: "context canceled"})
			if !errors.Is(err, context.Canceled) {
				t.Errorf("errors.Is(%v, context.Canceled) = false", err)
			}
		})
	}
}

func TestSlackConcurrent(t *testing.T) {
	srv := slacktest.NewServer()
	defer srv.Close()
	s := newWebhook(t, srv.WebhookURL(), 5*time.Second)
	const n = 16
	var wg sync.WaitGroup
	errs := make(chan error, n)
	for range n {
		// Each delivery parses its own event: relay.Event caches its decoded output unguarded.
		ev := sampleEvents(t)["prediction-succeeded"]
		wg.Go(func() {
			if _, err := s.Notify(context.Background(), message(ev)); err != nil {
				errs <- err
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	if _, err := srv.WaitFor(n, time.Second); err != nil {
		t.Error(err)
	}
}

// TestSlackSecretsNeverLeak drives every failure path in both modes and checks that neither the
// webhook's path nor the token shows up in an error, however it is printed or unwrapped.
func TestSlackSecretsNeverLeak(t *testing.T) {
	secrets := []string{slacktest.WebhookPath, "B000/XXXX", slacktest.Token}
	// echo is a misbehaving server that repeats the request's path and token in its errors.
	echo := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		w.WriteHeader(http.StatusBadRequest)
		fmt.Fprintf(w, "bad request to %s with %s", r.URL.String(), body)
	}))
	defer echo.Close()
	// redirect sends the client elsewhere, with the secret in the new location.
	redirect := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		http.Redirect(w, r, "/moved"+r.URL.Path+"?token="+slacktest.Token, http.StatusTemporaryRedirect)
	}))
	defer redirect.Close()
	failures := map[string]*slacktest.Failure{
		"ok false":       {APIError: "invalid_auth"},
		"400":            {Status: 400, Body: "invalid_blocks"},
		"404":            {Status: 404},
		"429":            {Status: 429, RetryAfter: 1},
		"500":            {Status: 500, Body: "rollup_error"},
		"timeout":        {Delay: 10 * time.Second},
		"hang then 503":  {Delay: 10 * time.Millisecond, Status: 503},
		"200 unreadable": {Status: 200, Body: "{"},
	}
	type target struct {
		name string
		base string // server base URL; "" for the stand-in
	}
	targets := []target{{name: "stand-in"}, {name: "refused", base: refusedURL(t)}, {name: "echo", base: echo.URL}, {name: "redirect", base: redirect.URL}}
	for _, mode := range []string{"webhook", "bot"} {
		for _, tg := range targets {
			for fname, f := range failures {
				if tg.base != "" && fname != "ok false" {
					continue // one run per foreign server is enough
				}
				if mode == "webhook" && fname == "200 unreadable" {
					continue // a webhook's 200 is a success whatever its body
				}
				t.Run(mode+"/"+tg.name+"/"+fname, func(t *testing.T) {
					srv := slacktest.NewServer()
					defer srv.Close()
					base := srv.URL()
					if tg.base != "" {
						base = tg.base
					} else {
						srv.FailNext(1, *f)
					}
					var s *Slack
					if mode == "webhook" {
						s = newWebhook(t, base+slacktest.WebhookPath, 200*time.Millisecond)
					} else {
						s = newBot(t, base+slacktest.APIPath, slacktest.Token, slacktest.Channel, 200*time.Millisecond)
					}
					_, err := s.Notify(context.Background(), plainMessage())
					if err == nil {
						t.Fatal("no error")
					}
					var texts []string
					for e := err; e != nil; e = errors.Unwrap(e) {
						texts = append(texts, e.Error(), fmt.Sprintf("%+v", e), fmt.Sprintf("%#v", e))
					}
					for _, text := range texts {
						for _, sec := range secrets {
							if strings.Contains(text, sec) {
								t.Fatalf("error reveals %q: %s", sec, text)
							}
						}
					}
				})
			}
		}
	}
}

func FuzzSplitMrkdwn(f *testing.F) {
	f.Add("plain text", uint8(0), uint8(0))
	f.Add(strings.Repeat("a & b < c > d\n", 50), uint8(3), uint8(2))
	f.Add("```\n"+strings.Repeat("code line\n", 40)+"```\nafter", uint8(20), uint8(3))
	f.Add(strings.Repeat("x", 500), uint8(1), uint8(4))
	f.Add("see <https://example.com/"+strings.Repeat("p", 60)+"|a link> now", uint8(9), uint8(1))
	f.Fuzz(func(t *testing.T, raw string, l, p uint8) {
		if !utf8.ValidString(raw) {
			return
		}
		limit := minSplitLimit + int(l)
		maxParts := 1 + int(p%6)
		s := escapeMrkdwn(raw)
		parts := splitMrkdwn(s, limit, maxParts)
		if len(parts) > maxParts {
			t.Fatalf("%d parts, max %d", len(parts), maxParts)
		}
		if strings.TrimSpace(s) != "" && len(parts) == 0 {
			t.Fatal("no parts for non-empty text")
		}
		for i, part := range parts {
			if n := utf8.RuneCountInString(part); n > limit || n == 0 {
				t.Fatalf("part %d has %d runes, limit %d: %q", i, n, limit, part)
			}
			for j := strings.IndexByte(part, '&'); j >= 0; j = nextAmp(part, j) {
				rest := part[j:]
				if !strings.HasPrefix(rest, "&amp;") && !strings.HasPrefix(rest, "&lt;") && !strings.HasPrefix(rest, "&gt;") {
					t.Fatalf("part %d splits an entity: %q", i, part)
				}
			}
		}
		if utf8.RuneCountInString(s) <= limit && strings.TrimSpace(s) != "" {
			if len(parts) != 1 || parts[0] != strings.TrimRight(s, " \n") {
				t.Fatalf("short text changed: %q -> %q", s, parts)
			}
		}
	})
}

func nextAmp(s string, i int) int {
	j := strings.IndexByte(s[i+1:], '&')
	if j < 0 {
		return -1
	}
	return i + 1 + j
}

func TestCleanSnippet(t *testing.T) {
	tests := []struct {
		name, body, want string
	}{
		{"code", "invalid_blocks", "invalid_blocks"},
		{"whitespace", "  invalid_payload\r\n\tmore  ", "invalid_payload more"},
		{"html", "<html>oops</html>", ""},
		{"html after white space", "\r\n  <!DOCTYPE html><html>502</html>", ""},
		{"cut rune", strings.Repeat("é", 200)[:255], strings.Repeat("é", 127)},
		{"long", strings.Repeat("x", 2000), strings.Repeat("x", maxCaptureBody)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			b := []byte(tt.body)
			if len(b) > maxCaptureBody {
				b = b[:maxCaptureBody]
			}
			if got := cleanSnippet(b); got != tt.want {
				t.Errorf("got %q, want %q", got, tt.want)
			}
		})
	}
}

func TestRetryAfter(t *testing.T) {
	now := time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)
	tests := []struct {
		value string
		want  time.Duration
	}{
		{"", 0},
		{"3", 3 * time.Second},
		{"0", 0},
		{"-5", 0},
		{"soon", 0},
		{"99999999999999", maxRetryAfter},
		{now.Add(time.Minute).Format(http.TimeFormat), time.Minute},
		{now.Add(-time.Minute).Format(http.TimeFormat), 0},
	}
	for _, tt := range tests {
		t.Run(tt.value, func(t *testing.T) {
			h := http.Header{}
			if tt.value != "" {
				h.Set("Retry-After", tt.value)
			}
			if got := retryAfter(h, now); got != tt.want {
				t.Errorf("got %s, want %s", got, tt.want)
			}
		})
	}
}

func TestSlackHeaderShowsTitleAsWritten(t *testing.T) {
	srv := slacktest.NewServer()
	defer srv.Close()
	s := newBot(t, srv.APIURL(), slacktest.Token, slacktest.Channel, 5*time.Second)
	ev := parseEvent(t, `{"id":"abc","model":"acme/x","status":"failed"}`)
	// The templates escape the title for mrkdwn; a header is plain_text and would show entities.
	m := relay.Message{Event: ev, Title: "❌ Failed: a &amp; b &lt;c&gt;", Text: "x"}
	if _, err := s.Notify(context.Background(), m); err != nil {
		t.Fatal(err)
	}
	blocks, err := srv.Messages()[0].DecodeBlocks()
	if err != nil {
		t.Fatal(err)
	}
	h, ok := blocks.BlockSet[0].(*slack.HeaderBlock)
	if !ok {
		t.Fatalf("first block is %T, want a header", blocks.BlockSet[0])
	}
	if want := "❌ Failed: a & b <c>"; h.Text.Text != want {
		t.Fatalf("header %q, want %q", h.Text.Text, want)
	}
}

// checkGolden compares got with the golden file at path, or rewrites the file with -update.
func checkGolden(t *testing.T, path string, got []byte) {
	t.Helper()
	if *update {
		if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(path, got, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run go test -update to create it)", err)
	}
	if !bytes.Equal(got, want) {
		t.Errorf("output differs from %s (run go test -update if the change is wanted):\n%s", path, got)
	}
}

// newBotLogged is a bot on apiURL whose log is kept in the returned buffer.
func newBotLogged(t *testing.T, apiURL, channel string, timeout time.Duration) (*Slack, *bytes.Buffer) {
	t.Helper()
	var logs bytes.Buffer
	s, err := NewSlack(SlackOptions{Token: slacktest.Token, Channel: channel, APIURL: apiURL, Timeout: timeout,
		Log: slog.New(slog.NewTextHandler(&logs, nil))})
	if err != nil {
		t.Fatal(err)
	}
	return s, &logs
}

// withImages is message(ev) with ev's two images attached, as the dispatcher downloads them.
func withImages(ev *relay.Event) relay.Message {
	m := message(ev)
	for i, u := range ev.Images() {
		data := append([]byte("\x89PNG\r\n\x1a\n"), bytes.Repeat([]byte{byte(i + 1)}, 300+i)...)
		m.Attachments = append(m.Attachments, relay.Attachment{Name: fmt.Sprintf("out-%d.png", i), ContentType: "image/png", Data: data, URL: u})
	}
	return m
}

// fileNames lists the names of shared files.
func fileNames(files []slacktest.File) []string {
	var names []string
	for _, f := range files {
		names = append(names, f.Name)
	}
	return names
}

// checkNoSecrets fails if text holds the token or any part of an upload URL.
func checkNoSecrets(t *testing.T, text string, extra ...string) {
	t.Helper()
	for _, sec := range append([]string{slacktest.Token, "sig=", slacktest.UploadPath}, extra...) {
		if strings.Contains(text, sec) {
			t.Errorf("%q shows up in: %s", sec, text)
		}
	}
}

// TestSlackAttachmentsInThread: with a bot token, one message is posted, then its attachments
// are uploaded, byte for byte, into its thread, in the channel chat.postMessage named (an ID,
// although the notifier was given a name).
func TestSlackAttachmentsInThread(t *testing.T) {
	srv := slacktest.NewServer()
	defer srv.Close()
	s, logs := newBotLogged(t, srv.APIURL(), "#general", 5*time.Second)
	m := withImages(sampleEvents(t)["prediction-succeeded"])
	ref, err := s.Notify(context.Background(), m)
	if err != nil {
		t.Fatal(err)
	}
	msgs := srv.Messages()
	if len(msgs) != 1 || ref != msgs[0].TS {
		t.Fatalf("ref %q, messages %+v: want one message, with that ts", ref, msgs)
	}
	files := srv.Files()
	if len(files) != 2 {
		t.Fatalf("%d files shared, want 2", len(files))
	}
	for i, f := range files {
		want := m.Attachments[i]
		if f.Name != want.Name || f.Title != want.Name || !bytes.Equal(f.Data, want.Data) {
			t.Errorf("file %d: %q titled %q, %d bytes; want %q, %d bytes", i, f.Name, f.Title, len(f.Data), want.Name, len(want.Data))
		}
		if f.Channel != slacktest.Channel || f.ThreadTS != ref {
			t.Errorf("file %d in channel %q, thread %q; want %q, %q", i, f.Channel, f.ThreadTS, slacktest.Channel, ref)
		}
	}
	// Two files: two upload URLs, two uploads, one completion.
	if n, f := srv.Requests(), srv.FileRequests(); n != 1 || f != 5 {
		t.Errorf("%d message and %d file requests, want 1 and 5", n, f)
	}
	if logs.Len() != 0 {
		t.Errorf("logged: %s", logs)
	}
}

// TestSlackWebhookIgnoresAttachments: a webhook cannot upload; the message goes out as it would
// without attachments, with its image links, and nothing is uploaded.
func TestSlackWebhookIgnoresAttachments(t *testing.T) {
	srv := slacktest.NewServer()
	defer srv.Close()
	s := newWebhook(t, srv.WebhookURL(), 5*time.Second)
	ev := sampleEvents(t)["prediction-succeeded"]
	ref, err := s.Notify(context.Background(), withImages(ev))
	if err != nil || ref != "" {
		t.Fatalf("ref %q, err %v", ref, err)
	}
	msgs := srv.Messages()
	if len(msgs) != 1 {
		t.Fatalf("%d messages", len(msgs))
	}
	want, _ := json.Marshal(slackBlocks(message(ev), true))
	if !jsonEqual(t, msgs[0].Blocks, want) {
		t.Errorf("blocks differ from the message without attachments: %s", msgs[0].Blocks)
	}
	blocks, err := msgs[0].DecodeBlocks()
	if err != nil {
		t.Fatal(err)
	}
	var links []string
	for _, b := range blocks.BlockSet {
		if img, ok := b.(*slack.ImageBlock); ok {
			links = append(links, img.ImageURL)
		}
	}
	if strings.Join(links, " ") != strings.Join(ev.Images(), " ") {
		t.Errorf("image links %q, want %q", links, ev.Images())
	}
	if n := srv.FileRequests(); n != 0 || len(srv.Files()) != 0 {
		t.Errorf("%d file requests, %d files in webhook mode", n, len(srv.Files()))
	}
}

// TestSlackUploadFailure: once the message is out, no failure of the upload makes Notify fail,
// which would have the dispatcher post the message again. Each file left out is logged with
// Slack's reason, and the files that could be uploaded still are.
func TestSlackUploadFailure(t *testing.T) {
	tests := []struct {
		name      string
		step      string
		n         int
		failure   slacktest.Failure
		timeout   time.Duration
		wantFiles []string // the files shared
		wantLog   []string // in the log
	}{
		{name: "no files:write scope", step: slacktest.GetUploadURLPath, n: 2, failure: slacktest.Failure{APIError: "missing_scope"},
			wantLog: []string{"file=out-0.png", "file=out-1.png", "step=files.getUploadURLExternal", "err=missing_scope"}},
		{name: "getUploadURLExternal 503", step: slacktest.GetUploadURLPath, n: 2, failure: slacktest.Failure{Status: 503},
			wantLog: []string{"file=out-0.png", "file=out-1.png", `err="503 Service Unavailable"`}},
		{name: "one file refused at upload", step: slacktest.UploadPath, n: 1, failure: slacktest.Failure{Status: 500},
			wantFiles: []string{"out-1.png"}, wantLog: []string{"file=out-0.png", "step=upload", `err="500 Internal Server Error"`}},
		{name: "upload hangs past the timeout", step: slacktest.UploadPath, n: 2, failure: slacktest.Failure{Delay: 10 * time.Second}, timeout: 300 * time.Millisecond,
			wantLog: []string{"file=out-0.png", "file=out-1.png", "context deadline exceeded"}},
		{name: "not in channel", step: slacktest.CompleteUploadPath, n: 1, failure: slacktest.Failure{APIError: "not_in_channel"},
			wantLog: []string{"file=out-0.png", "file=out-1.png", "step=files.completeUploadExternal", "err=not_in_channel"}},
		{name: "completeUploadExternal rate limited", step: slacktest.CompleteUploadPath, n: 1, failure: slacktest.Failure{RetryAfter: 30},
			wantLog: []string{"file=out-0.png", "file=out-1.png", "ratelimited"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			srv := slacktest.NewServer()
			defer srv.Close()
			srv.FailNextFile(tt.step, tt.n, tt.failure)
			timeout := tt.timeout
			if timeout == 0 {
				timeout = 5 * time.Second
			}
			s, logs := newBotLogged(t, srv.APIURL(), slacktest.Channel, timeout)
			ref, err := s.Notify(context.Background(), withImages(sampleEvents(t)["prediction-succeeded"]))
			if err != nil {
				t.Fatalf("Notify failed after the message went out: %v", err)
			}
			msgs := srv.Messages()
			if len(msgs) != 1 || ref != msgs[0].TS || srv.Requests() != 1 {
				t.Fatalf("ref %q, %d messages in %d requests: want the one message's ts", ref, len(msgs), srv.Requests())
			}
			if got := strings.Join(fileNames(srv.Files()), ","); got != strings.Join(tt.wantFiles, ",") {
				t.Errorf("files shared %q, want %q", got, tt.wantFiles)
			}
			out := logs.String()
			if !strings.Contains(out, "level=WARN") {
				t.Errorf("no warning logged: %s", out)
			}
			for _, want := range tt.wantLog {
				if !strings.Contains(out, want) {
					t.Errorf("log lacks %q: %s", want, out)
				}
			}
			for _, name := range tt.wantFiles {
				if strings.Contains(out, "file="+name) {
					t.Errorf("log names %s, which was shared: %s", name, out)
				}
			}
			checkNoSecrets(t, out)
		})
	}
}

// TestSlackAttachmentLimits: files without data are not uploaded, nor those larger than Slack
// takes, nor those past slackMaxFiles; the ones left out for their size or number are logged.
// Names are made safe and distinct.
func TestSlackAttachmentLimits(t *testing.T) {
	srv := slacktest.NewServer()
	defer srv.Close()
	s, logs := newBotLogged(t, srv.APIURL(), slacktest.Channel, 5*time.Second)
	s.maxFile = 1000
	atts := []relay.Attachment{
		{Name: "empty.png"},
		{Name: "big.png", Data: make([]byte, 1001)},
		{Name: "fits.png", Data: bytes.Repeat([]byte{7}, 1000)},
		{Name: "../../dup.png", Data: []byte("a")},
		{Name: "dup.png", Data: []byte("b")},
	}
	for i := range 8 {
		atts = append(atts, relay.Attachment{Name: fmt.Sprintf("many-%d.png", i), Data: []byte{byte(i)}})
	}
	m := plainMessage()
	m.Attachments = atts
	ref, err := s.Notify(context.Background(), m)
	if err != nil {
		t.Fatal(err)
	}
	files := srv.Files()
	want := []string{"fits.png", "dup.png", "dup-1.png", "many-0.png", "many-1.png", "many-2.png", "many-3.png", "many-4.png", "many-5.png", "many-6.png"}
	if got := fileNames(files); strings.Join(got, ",") != strings.Join(want, ",") {
		t.Fatalf("files %q, want %q", got, want)
	}
	if len(files) != slackMaxFiles || len(files[0].Data) != 1000 || string(files[2].Data) != "b" || files[9].ThreadTS != ref {
		t.Errorf("files %+v", files)
	}
	out := logs.String()
	for _, w := range []string{"file=big.png", "max_bytes=1000", "file=many-7.png", "max_files=10"} {
		if !strings.Contains(out, w) {
			t.Errorf("log lacks %q: %s", w, out)
		}
	}
	if strings.Contains(out, "empty.png") {
		t.Errorf("a file without data is logged: %s", out)
	}
}

// TestSlackUploadSecretsNeverLeak drives the upload's failures through servers that misbehave:
// one that echoes the request, token included, in its error codes, and one that hands out an
// upload URL slack-go will not send the token to. Neither the token nor the upload URL shows
// up in the log, and Notify does not fail.
func TestSlackUploadSecretsNeverLeak(t *testing.T) {
	const uploadSecret = "s3cr3t-upl0ad-s1gnature"
	refused := refusedURL(t)
	tests := []struct {
		name  string
		serve func(w http.ResponseWriter, r *http.Request, body []byte) bool // true when it answered
	}{
		{"echoing getUploadURLExternal", func(w http.ResponseWriter, r *http.Request, body []byte) bool {
			if r.URL.Path != slacktest.GetUploadURLPath {
				return false
			}
			fmt.Fprintf(w, `{"ok":false,"error":%q}`, "bad request "+string(body)+" "+r.Header.Get("Authorization"))
			return true
		}},
		{"echoing completeUploadExternal", func(w http.ResponseWriter, r *http.Request, body []byte) bool {
			if r.URL.Path != slacktest.CompleteUploadPath {
				return false
			}
			form, _ := url.ParseQuery(string(body))
			fmt.Fprintf(w, `{"ok":false,"error":%q}`, "bad token "+form.Get("token")+" in "+string(body))
			return true
		}},
		{"upload URL elsewhere", func(w http.ResponseWriter, r *http.Request, body []byte) bool {
			if r.URL.Path != slacktest.GetUploadURLPath {
				return false
			}
			u := refused + slacktest.UploadPath + "UP1?sig=" + uploadSecret
			fmt.Fprintf(w, `{"ok":true,"upload_url":%q,"file_id":"F1"}`, u)
			return true
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := slacktest.NewHandler()
			defer h.Close()
			front := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				body, _ := io.ReadAll(r.Body)
				if !tt.serve(w, r, body) {
					r.Body = io.NopCloser(bytes.NewReader(body))
					h.ServeHTTP(w, r)
				}
			}))
			defer front.Close()
			s, logs := newBotLogged(t, front.URL+slacktest.APIPath, slacktest.Channel, 2*time.Second)
			ref, err := s.Notify(context.Background(), withImages(sampleEvents(t)["prediction-succeeded"]))
			if err != nil || ref == "" || len(h.Messages()) != 1 {
				t.Fatalf("ref %q, err %v, %d messages", ref, err, len(h.Messages()))
			}
			out := logs.String()
			if !strings.Contains(out, "file=out-0.png") || !strings.Contains(out, "file=out-1.png") {
				t.Errorf("log does not name both files: %s", out)
			}
			if !strings.Contains(out, redacted) {
				t.Errorf("nothing was redacted; did the secret reach the log at all? %s", out)
			}
			checkNoSecrets(t, out, uploadSecret, strings.TrimPrefix(refused, "http://"))
		})
	}
}
