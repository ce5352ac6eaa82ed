// Package api is a small client for Replicate's HTTP API: the calls the Discord bot needs to
// launch predictions (by version, by official model name, on a deployment), follow them (get,
// cancel), describe a model's inputs, and fetch the account's webhook signing secret.
//
// There is no official Go client, so this one carries only what the relay uses. Every call takes
// a context and is bounded by a timeout; a refusal comes back as an *Error whose message can be
// shown to a chat user as it is; the API token is sent only in the Authorization header and never
// appears in an error.
package api

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"time"
)

// Defaults for Options.
const (
	// DefaultBaseURL is the root of Replicate's API.
	DefaultBaseURL = "https://api.replicate.com/v1"
	// DefaultTimeout bounds one call when Options.Timeout is 0.
	DefaultTimeout = 30 * time.Second
	// DefaultUserAgent is sent when Options.UserAgent is empty.
	DefaultUserAgent = "mlrelay-relay (+https://github.com/mlrelay/relay)"
)

// maxAnswer bounds the body of an answer: a prediction with a language model's whole output and
// logs fits well within it, and a misbehaving server cannot make the client read forever.
const maxAnswer = 16 << 20

// redacted replaces the token wherever a server echoes it.
const redacted = "[redacted]"

// Options configure a Client. Zero values take the defaults given.
type Options struct {
	// BaseURL is the API root, without a trailing slash needed. Default DefaultBaseURL; tests
	// and staging set-ups point it at a local server.
	BaseURL string
	// Token is the API token ("r8_..."), sent as "Authorization: Bearer <token>". Required.
	Token string
	// HTTPClient carries the calls. Default: a client of its own that does not follow redirects
	// (the API never redirects, and following one could carry the token elsewhere). A client
	// given here keeps its own redirect policy.
	HTTPClient *http.Client
	// Timeout bounds each call, reading the answer included. Default DefaultTimeout. A create
	// call that asks Replicate to wait (CreateOptions.Wait) gets at least Wait plus 10 s.
	Timeout time.Duration
	// UserAgent is the User-Agent header. Default DefaultUserAgent.
	UserAgent string
}

// Client calls Replicate's API. It is safe for concurrent use.
type Client struct {
	base    *url.URL
	token   string
	http    *http.Client
	timeout time.Duration
	agent   string
}

// New returns a Client for o, or an error naming the option that is wrong. Errors never contain
// the token.
func New(o Options) (*Client, error) {
	token := strings.TrimSpace(o.Token)
	switch {
	case token == "":
		return nil, errors.New("replicate api: a token is required")
	case strings.ContainsFunc(token, func(r rune) bool { return r <= ' ' || r == 0x7f }):
		return nil, errors.New("replicate api: the token contains spaces or control characters")
	}
	raw := o.BaseURL
	if raw == "" {
		raw = DefaultBaseURL
	}
	base, err := url.Parse(strings.TrimRight(raw, "/"))
	if err != nil || (base.Scheme != "https" && base.Scheme != "http") || base.Host == "" {
		return nil, fmt.Errorf("replicate api: base URL %q must be an absolute http(s) URL", raw)
	}
	if base.RawQuery != "" || base.Fragment != "" {
		return nil, fmt.Errorf("replicate api: base URL %q must not have a query or fragment", raw)
	}
	if o.Timeout < 0 {
		return nil, fmt.Errorf("replicate api: timeout must not be negative, got %s", o.Timeout)
	}
	c := &Client{base: base, token: token, http: o.HTTPClient, timeout: o.Timeout, agent: o.UserAgent}
	if c.http == nil {
		c.http = &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error {
			return http.ErrUseLastResponse
		}}
	}
	if c.timeout == 0 {
		c.timeout = DefaultTimeout
	}
	if c.agent == "" {
		c.agent = DefaultUserAgent
	}
	return c, nil
}

// BaseURL is the API root the client calls, without a trailing slash.
func (c *Client) BaseURL() string { return c.base.String() }

// call is one API call: what to send, and how to name it in errors.
type call struct {
	op      string      // what the call does, e.g. "create prediction"
	subject string      // what it is about, e.g. "model stability-ai/sdxl"; may be empty
	method  string      // HTTP method
	path    []string    // path segments under the base URL, escaped one by one
	body    any         // JSON body, or nil
	header  http.Header // further request headers
	timeout time.Duration
	hint404 string // said after "... was not found on Replicate" for this call
}

// do makes the call and decodes a 2xx answer into out. Any other answer becomes an *Error.
func (c *Client) do(ctx context.Context, k call, out any) error {
	timeout := max(c.timeout, k.timeout)
	if dl, ok := ctx.Deadline(); ok && time.Until(dl) < timeout {
		// The caller's deadline comes first: say that one when it passes.
		timeout = max(0, time.Until(dl)).Round(time.Millisecond)
	}
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()

	// Each segment is escaped on its own, so that an id can never add a path element.
	var target strings.Builder
	target.WriteString(c.base.String())
	for _, seg := range k.path {
		target.WriteString("/")
		target.WriteString(url.PathEscape(seg))
	}
	var body io.Reader
	if k.body != nil {
		b, err := json.Marshal(k.body)
		if err != nil {
			return fmt.Errorf("%s: encoding the request: %w", k.op, err)
		}
		body = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, k.method, target.String(), body)
	if err != nil {
		return fmt.Errorf("%s: %w", k.op, err)
	}
	req.Header.Set("Authorization", "Bearer "+c.token)
	req.Header.Set("Accept", "application/json")
	req.Header.Set("User-Agent", c.agent)
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	for name, vs := range k.header {
		req.Header[name] = vs
	}

	resp, err := c.http.Do(req)
	if err != nil {
		return c.transportError(ctx, k, timeout, err)
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(io.LimitReader(resp.Body, maxAnswer+1))
	if err != nil {
		return c.transportError(ctx, k, timeout, err)
	}
	if len(data) > maxAnswer {
		return fmt.Errorf("%s: Replicate's answer is larger than %d bytes", k.op, maxAnswer)
	}
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		// The token is taken out of the body before anything reads it: a server that echoes
		// it could otherwise place it in a field name, or across the cut of a long detail.
		if c.token != "" {
			data = bytes.ReplaceAll(data, []byte(c.token), []byte(redacted))
		}
		return c.redactError(newError(k, resp, data, time.Now()))
	}
	if out == nil {
		return nil
	}
	if err := json.Unmarshal(data, out); err != nil {
		return fmt.Errorf("%s: Replicate's answer (%d) is not the JSON expected: %w", k.op, resp.StatusCode, err)
	}
	return nil
}

// transportError explains a call that got no answer. net/http's errors name the URL, which
// holds no secret (the token travels in a header), so they are kept for errors.Is.
func (c *Client) transportError(ctx context.Context, k call, timeout time.Duration, err error) error {
	if errors.Is(ctx.Err(), context.DeadlineExceeded) && errors.Is(err, context.DeadlineExceeded) {
		return fmt.Errorf("%s: Replicate did not answer within %s: %w", k.op, timeout, err)
	}
	return fmt.Errorf("%s: could not reach Replicate: %w", k.op, c.scrub(err))
}

// scrub makes sure the token is nowhere in err's text. It never is in practice; if a transport
// ever put it there, the error is replaced by a redacted copy of its text.
func (c *Client) scrub(err error) error {
	if !strings.Contains(err.Error(), c.token) {
		return err
	}
	return errors.New(strings.ReplaceAll(err.Error(), c.token, redacted))
}

// redactError removes the token from the text of e, in case a server echoes it.
func (c *Client) redactError(e *Error) *Error {
	e.Title = strings.ReplaceAll(e.Title, c.token, redacted)
	e.Detail = strings.ReplaceAll(e.Detail, c.token, redacted)
	return e
}
