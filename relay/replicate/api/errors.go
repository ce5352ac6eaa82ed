package api

import (
	"encoding/json"
	"fmt"
	"mime"
	"net/http"
	"regexp"
	"strconv"
	"strings"
	"time"
	"unicode"

	"github.com/mlrelay/relay/relay/replicate"
)

// Error is Replicate's refusal of a call: any answer outside 2xx. Its message is written for
// the person who asked (a chat user), e.g. "the Replicate API token was refused" or
// `Replicate rejected the input "width": must be greater than or equal to 128`; Op and
// Subject say which call it was, for logs.
type Error struct {
	// Status is the HTTP status code.
	Status int
	// Title and Detail are the problem+json fields as Replicate sent them, on one line each;
	// either may be empty. A body that is not problem+json gives its first line as Detail.
	Title, Detail string
	// Fields names what a 422 refused, when the body says which: inputs by their name
	// ("width"), the request's own fields as they are ("webhook"); nil otherwise.
	Fields []string
	// RetryAfter is how long to wait before trying again, from Retry-After, the rate-limit
	// headers or the detail of a 429; 0 when the answer does not say.
	RetryAfter time.Duration
	// ResetAt is when trying again makes sense: the time of the answer plus RetryAfter, or the
	// reset time a header gave; zero when the answer does not say.
	ResetAt time.Time
	// Op is the call, e.g. "create prediction".
	Op string
	// Subject is what the call was about, e.g. "model stability-ai/sdxl" or
	// "prediction q7vz2m5c1srj40cjx3kr8f1n2w"; empty when nothing in particular.
	Subject string

	hint404      string // said after "... was not found on Replicate"
	requestField bool   // Fields names a field of the request itself, not only inputs
}

// Error returns a message fit for a chat user; it never contains the token.
func (e *Error) Error() string {
	detail := e.Detail
	if detail == "" && e.Title != http.StatusText(e.Status) {
		detail = e.Title
	}
	switch {
	case e.Status == http.StatusUnauthorized:
		return "the Replicate API token was refused"
	case e.Status == http.StatusPaymentRequired:
		msg := "Replicate refused for billing reasons: set up billing or add credit to the account"
		if detail != "" {
			msg += " (" + detail + ")"
		}
		return msg
	case e.Status == http.StatusForbidden:
		return with("Replicate denied access to "+orDefault(e.Subject, "this"), detail)
	case e.Status == http.StatusNotFound:
		msg := orDefault(e.Subject, "what was asked for") + " was not found on Replicate"
		if e.hint404 != "" {
			msg += " (" + e.hint404 + ")"
		}
		return msg
	case e.Status == http.StatusUnprocessableEntity && len(e.Fields) > 0:
		noun := "input"
		if e.requestField {
			noun = "field"
		}
		if len(e.Fields) > 1 {
			noun += "s"
		}
		return with("Replicate rejected the "+noun+" "+quoteList(e.Fields), detail)
	case e.Status == http.StatusUnprocessableEntity:
		return with("Replicate rejected the request", detail)
	case e.Status == http.StatusTooManyRequests:
		return "Replicate is rate limiting requests; " + e.tryAgain()
	case e.Status >= 500:
		return with(fmt.Sprintf("Replicate failed to answer (%d %s)", e.Status, http.StatusText(e.Status)),
			detail) + "; " + e.tryAgain()
	}
	return with(fmt.Sprintf("Replicate refused the request (%d %s)", e.Status, http.StatusText(e.Status)), detail)
}

// Retryable reports whether the same call may succeed later unchanged: a rate limit, a
// timeout or a server error.
func (e *Error) Retryable() bool {
	return e.Status == http.StatusTooManyRequests || e.Status == http.StatusRequestTimeout || e.Status >= 500
}

// tryAgain says when to try again, as precisely as the answer allowed.
func (e *Error) tryAgain() string {
	if e.RetryAfter <= 0 {
		return "try again later"
	}
	return "try again in " + humanDuration(e.RetryAfter)
}

func with(msg, detail string) string {
	if detail == "" {
		return msg
	}
	return msg + ": " + detail
}

func orDefault(s, def string) string {
	if s == "" {
		return def
	}
	return s
}

func quoteList(names []string) string {
	q := make([]string, len(names))
	for i, n := range names {
		q[i] = strconv.Quote(n)
	}
	return strings.Join(q, ", ")
}

// humanDuration writes d rounded up to the second, leaving out zero units: "8s", "2m", "1h5m".
func humanDuration(d time.Duration) string {
	secs := int64((d + time.Second - 1) / time.Second)
	h, m, s := secs/3600, secs/60%60, secs%60
	var b strings.Builder
	if h > 0 {
		fmt.Fprintf(&b, "%dh", h)
	}
	if m > 0 {
		fmt.Fprintf(&b, "%dm", m)
	}
	if s > 0 || b.Len() == 0 {
		fmt.Fprintf(&b, "%ds", s)
	}
	return b.String()
}

// problem is an application/problem+json body as Replicate writes it. A 422 lists the fields
// at fault: {"field": "input.width", "description": "Must be greater than or equal to 128"}.
type problem struct {
	Title         replicate.Text `json:"title"`
	Detail        replicate.Text `json:"detail"`
	Status        int            `json:"status"`
	InvalidFields []struct {
		Type        string         `json:"type"`
		Field       string         `json:"field"`
		Description replicate.Text `json:"description"`
	} `json:"invalid_fields"`
}

// maxDetail bounds the detail kept for a message, so that a chat reply stays short.
const maxDetail = 500

// maxRetryAfter caps the wait an answer can ask for, so a bogus header cannot park the caller.
const maxRetryAfter = 24 * time.Hour

var (
	// detailField finds "- input.width: ..." lines in a 422 detail that lists no fields.
	detailField = regexp.MustCompile(`(?m)^\s*-\s*input\.([A-Za-z0-9_]+)\s*:`)
	// requiredField reads Replicate's description of a missing input, "prompt is required".
	requiredField = regexp.MustCompile(`^([A-Za-z0-9_]+) is required\b`)
	// availableIn reads the wait from a throttled request's detail.
	availableIn = regexp.MustCompile(`available in (\d+) seconds?`)
)

// newError builds the *Error for a non-2xx answer received at now.
func newError(k call, resp *http.Response, body []byte, now time.Time) *Error {
	e := &Error{Status: resp.StatusCode, Op: k.op, Subject: k.subject, hint404: k.hint404}
	var p problem
	if isJSON(resp.Header.Get("Content-Type"), body) && json.Unmarshal(body, &p) == nil {
		e.Title = oneLine(string(p.Title))
		e.Detail = oneLine(string(p.Detail))
		for _, f := range p.InvalidFields {
			name, isInput := strings.CutPrefix(f.Field, "input.")
			if f.Field == "input" || f.Field == "" {
				// A missing input is reported against the input object as a whole.
				m := requiredField.FindStringSubmatch(string(f.Description))
				if m == nil {
					continue
				}
				name, isInput = m[1], true
			}
			e.Fields = appendNew(e.Fields, name)
			e.requestField = e.requestField || !isInput
		}
		if len(p.InvalidFields) > 0 {
			// The field descriptions say the same as the detail, without the "- input.x:" noise.
			var parts []string
			for _, f := range p.InvalidFields {
				if d := oneLine(string(f.Description)); d != "" {
					parts = append(parts, d)
				}
			}
			if len(parts) > 0 {
				e.Detail = bounded(strings.Join(parts, "; "))
			}
		}
		if e.Status == http.StatusUnprocessableEntity && len(e.Fields) == 0 {
			for _, m := range detailField.FindAllStringSubmatch(string(p.Detail), -1) {
				e.Fields = appendNew(e.Fields, m[1])
			}
		}
	} else if !isHTML(resp.Header.Get("Content-Type")) {
		// Something in front of the API (a proxy, a load balancer) answered in plain text.
		e.Detail = oneLine(string(body))
	}
	if e.Title == "" {
		e.Title = http.StatusText(e.Status)
	}
	if e.Status == http.StatusTooManyRequests || e.Status == http.StatusServiceUnavailable {
		e.RetryAfter, e.ResetAt = retryAt(resp.Header, string(p.Detail), now)
	}
	return e
}

// retryAt reads when to try again from Retry-After (seconds or an HTTP date), then
// RateLimit-Reset or X-RateLimit-Reset (seconds to wait, or a Unix time when large), then the
// detail's "available in N seconds".
func retryAt(h http.Header, detail string, now time.Time) (time.Duration, time.Time) {
	if v := strings.TrimSpace(h.Get("Retry-After")); v != "" {
		if secs, err := strconv.ParseFloat(v, 64); err == nil {
			return wait(secs, now)
		}
		if t, err := http.ParseTime(v); err == nil {
			return until(t, now)
		}
	}
	for _, name := range []string{"Ratelimit-Reset", "X-Ratelimit-Reset"} {
		v := strings.TrimSpace(h.Get(name))
		secs, err := strconv.ParseFloat(v, 64)
		if v == "" || err != nil {
			continue
		}
		if secs > 1e9 {
			// A Unix time (some services send the reset moment rather than the wait).
			return until(time.Unix(0, int64(secs*1e9)), now)
		}
		return wait(secs, now)
	}
	if m := availableIn.FindStringSubmatch(detail); m != nil {
		secs, _ := strconv.ParseFloat(m[1], 64)
		return wait(secs, now)
	}
	return 0, time.Time{}
}

func wait(secs float64, now time.Time) (time.Duration, time.Time) {
	if secs != secs || secs <= 0 { // NaN or nothing to wait
		return 0, time.Time{}
	}
	d := maxRetryAfter
	if secs < maxRetryAfter.Seconds() {
		d = time.Duration(secs * float64(time.Second))
	}
	return d, now.Add(d)
}

func until(t, now time.Time) (time.Duration, time.Time) {
	d := t.Sub(now)
	if d <= 0 {
		return 0, time.Time{}
	}
	if d > maxRetryAfter {
		d = maxRetryAfter
		t = now.Add(d)
	}
	return d, t
}

func isJSON(contentType string, body []byte) bool {
	mt, _, _ := mime.ParseMediaType(contentType)
	if mt == "application/json" || mt == "application/problem+json" {
		return true
	}
	trimmed := strings.TrimSpace(string(body))
	return strings.HasPrefix(trimmed, "{") && mt == ""
}

func isHTML(contentType string) bool {
	mt, _, _ := mime.ParseMediaType(contentType)
	return mt == "text/html"
}

// oneLine joins the lines of s with "; ", drops list bullets and control characters, and
// bounds the result, so that a detail reads as one sentence in a chat reply.
func oneLine(s string) string {
	var parts []string
	for _, line := range strings.Split(s, "\n") {
		line = strings.TrimSpace(strings.Map(func(r rune) rune {
			if unicode.IsControl(r) {
				return ' '
			}
			return r
		}, line))
		line = strings.TrimSpace(strings.TrimPrefix(line, "- "))
		if line != "" {
			parts = append(parts, line)
		}
	}
	return bounded(strings.Join(parts, "; "))
}

func bounded(s string) string {
	if len(s) <= maxDetail {
		return s
	}
	cut := maxDetail
	for cut > 0 && !isRuneStart(s[cut]) {
		cut--
	}
	return s[:cut] + "…"
}

func isRuneStart(b byte) bool { return b&0xC0 != 0x80 }

func appendNew(list []string, s string) []string {
	for _, v := range list {
		if v == s {
			return list
		}
	}
	return append(list, s)
}
