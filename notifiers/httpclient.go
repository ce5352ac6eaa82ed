package notifiers

import (
	"bytes"
	"errors"
	"io"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/mlrelay/relay/relay"
)

// maxErrorBody bounds the part of an error response's body kept for the error message.
const maxErrorBody = 256

// maxCaptureBody bounds the part of an error response's body that is read for the message. It is
// larger than maxErrorBody so that a secret the server echoes is redacted whole before the text
// is cut, rather than cut first and half of it shown.
const maxCaptureBody = 1024

// maxRetryAfter caps a Retry-After header, so that a bogus value neither overflows a Duration nor
// parks a destination for days.
const maxRetryAfter = 24 * time.Hour

// defaultHTTPClient is the client notifiers use when none is configured. It does not follow
// redirects: a provider API never redirects a POST, and following one would send the payload
// somewhere that was not configured.
func defaultHTTPClient() *http.Client {
	// Its own transport: http.DefaultTransport keeps two idle connections per host, so several
	// workers posting to one provider would close and re-dial connections all the time.
	tr := http.DefaultTransport.(*http.Transport).Clone()
	tr.MaxIdleConnsPerHost = 32
	return &http.Client{Transport: tr, CheckRedirect: func(*http.Request, []*http.Request) error {
		return http.ErrUseLastResponse
	}}
}

// response is what a captureTransport saw of one call.
type response struct {
	called  bool        // the request reached the transport (so it was built without error)
	status  int         // 0 when no response arrived
	reason  string      // resp.Status, e.g. "400 Bad Request"
	header  http.Header // the response headers
	snippet string      // the start of a non-2xx body on one line, not yet redacted nor cut to size
}

// captureTransport records the status, headers and the start of the body of the responses it
// carries. slack-go discards the body of a failed webhook call, yet that body is the only place
// Slack gives its reason (invalid_blocks, channel_is_archived, ...). One captureTransport serves
// one call, so what it saw belongs to that call alone.
type captureTransport struct {
	base http.RoundTripper

	mu  sync.Mutex
	got response
}

// withCapture returns a copy of c whose transport records what it sees, leaving c untouched so
// that its connection pool is still shared by every call.
func withCapture(c *http.Client) (*http.Client, *captureTransport) {
	base := c.Transport
	if base == nil {
		base = http.DefaultTransport
	}
	t := &captureTransport{base: base}
	cc := *c
	cc.Transport = t
	return &cc, t
}

// RoundTrip implements http.RoundTripper.
func (t *captureTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	t.mu.Lock()
	t.got.called = true
	t.mu.Unlock()
	resp, err := t.base.RoundTrip(req)
	if err != nil {
		return nil, err
	}
	got := response{called: true, status: resp.StatusCode, reason: resp.Status, header: resp.Header}
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		head := make([]byte, maxCaptureBody)
		n, _ := io.ReadFull(resp.Body, head)
		head = head[:n]
		got.snippet = cleanSnippet(head)
		resp.Body = &replayBody{Reader: io.MultiReader(bytes.NewReader(head), resp.Body), Closer: resp.Body}
	}
	if got.reason == "" {
		got.reason = strconv.Itoa(resp.StatusCode) + " " + http.StatusText(resp.StatusCode)
	}
	t.mu.Lock()
	t.got = got
	t.mu.Unlock()
	return resp, nil
}

// result is what the transport saw of the last response.
func (t *captureTransport) result() response {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.got
}

// replayBody gives back the bytes already read from a body, then the rest of it.
type replayBody struct {
	io.Reader
	io.Closer
}

// cleanSnippet turns the start of an error body into one short printable line. HTML pages (what
// Slack's load balancers send with a 5xx) say nothing useful and are dropped. Which is an HTML
// page is read from the body, not its Content-Type: Slack's incoming webhooks label their short
// error codes ("invalid_blocks") text/html too, and the relay acts on those codes.
func cleanSnippet(b []byte) string {
	if t := bytes.TrimLeftFunc(b, unicode.IsSpace); len(t) > 0 && t[0] == '<' {
		return ""
	}
	// A cut made at maxCaptureBody may split the last rune: drop the fragment.
	for len(b) > 0 && !utf8.Valid(b) {
		r, size := utf8.DecodeLastRune(b)
		if r != utf8.RuneError || size != 1 {
			break
		}
		b = b[:len(b)-1]
	}
	return cleanLine(strings.ToValidUTF8(string(b), "\uFFFD"), maxCaptureBody)
}

// cleanLine collapses whitespace and control characters to single spaces and bounds the result
// to max bytes, for text from a server that ends up in an error message.
func cleanLine(s string, max int) string {
	var sb strings.Builder
	space := false
	for _, r := range s {
		if unicode.IsSpace(r) || unicode.IsControl(r) {
			space = true
			continue
		}
		if space && sb.Len() > 0 {
			sb.WriteByte(' ')
		}
		space = false
		if sb.Len()+utf8.RuneLen(r) > max {
			break
		}
		sb.WriteRune(r)
	}
	return sb.String()
}

// retryAfter reads a Retry-After header: delay-seconds or an HTTP date. It returns 0 when the
// header is absent or unreadable.
func retryAfter(h http.Header, now time.Time) time.Duration {
	v := strings.TrimSpace(h.Get("Retry-After"))
	if v == "" {
		return 0
	}
	var d time.Duration
	if secs, err := strconv.ParseInt(v, 10, 64); err == nil {
		if secs <= 0 {
			return 0
		}
		if secs > int64(maxRetryAfter/time.Second) {
			return maxRetryAfter
		}
		d = time.Duration(secs) * time.Second
	} else if t, err := http.ParseTime(v); err == nil {
		d = t.Sub(now)
	}
	if d < 0 {
		return 0
	}
	return min(d, maxRetryAfter)
}

// classifyStatus classifies a failed HTTP response the same way for every provider: 429 is the
// rate limit, 408 and 5xx are temporary (honouring a Retry-After), anything else, including an
// unfollowed redirect, is a request the provider will never accept.
func classifyStatus(status int, h http.Header, err error) error {
	switch {
	case status == http.StatusTooManyRequests:
		return relay.RateLimited(err, retryAfter(h, time.Now()))
	case status == http.StatusRequestTimeout || status >= 500:
		return relay.Retryable(err, retryAfter(h, time.Now()))
	}
	return relay.Permanent(err)
}

// statusError is the error for a failed HTTP response, "<what>: 400 Bad Request: <reason>", with
// reason the redacted start of the body.
func statusError(what string, got response, reason string) error {
	if reason == "" {
		return errors.New(what + ": " + got.reason)
	}
	return errors.New(what + ": " + got.reason + ": " + reason)
}
