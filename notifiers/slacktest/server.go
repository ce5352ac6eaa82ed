// Package slacktest is a local stand-in for Slack's incoming webhooks, the Web API's
// chat.postMessage and its file upload flow (files.getUploadURLExternal, the upload URL,
// files.completeUploadExternal). It answers the way Slack does (status codes, error codes in
// bodies, Retry-After, Block Kit validation), records every message and file it accepts, and
// fails on demand, so that notifier tests and benchmarks run against something realistic without
// a network.
//
// Server serves it on a loopback httptest server; Handler serves it anywhere (a benchmark's own
// listener, say). Neither needs a *testing.T.
package slacktest

import (
	"encoding/json"
	"fmt"
	"io"
	"mime"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"time"

	"github.com/slack-go/slack"

	"github.com/mlrelay/relay/notifiers/internal/inbox"
)

// The stand-in's fixed identities.
const (
	// WebhookPath is the path of the stand-in's one incoming webhook; it posts to Channel.
	WebhookPath = "/services/T000/B000/XXXX"
	// PostMessagePath is the path of chat.postMessage, under APIPath.
	PostMessagePath = APIPath + "chat.postMessage"
	// APIPath is the prefix of the Web API.
	APIPath = "/api/"
	// Token is the bot token the Web API accepts.
	Token = "xoxb-000000000000-0000000000000-slacktestslacktest"
	// Channel is the ID of the channel that exists from the start.
	Channel = "C1"
	// ChannelName is Channel's name; "#general" and "general" both reach it.
	ChannelName = "general"
)

// maxBody bounds a request body, like Slack's own limit on payload size.
const maxBody = 1 << 20

// firstTS is the ts given to the first message; each later one is 100µs after the previous.
const firstTS = 1700000000_000100

// Message is a message the stand-in accepted.
type Message struct {
	// Webhook is true for a message posted to the incoming webhook, false for chat.postMessage.
	Webhook bool
	// Channel is the channel's ID (a webhook always posts to Channel).
	Channel string
	// TS is the message's timestamp, its reference in the Web API.
	TS string
	// Text is the message's text as sent.
	Text string
	// Blocks is the blocks array as sent, or nil.
	Blocks json.RawMessage
	// Username and IconEmoji are the overrides as sent.
	Username, IconEmoji string
	// Time is when the message was accepted.
	Time time.Time
}

// DecodeBlocks decodes Blocks with slack-go's types.
func (m Message) DecodeBlocks() (slack.Blocks, error) {
	var b slack.Blocks
	if len(m.Blocks) == 0 {
		return b, nil
	}
	err := json.Unmarshal(m.Blocks, &b)
	return b, err
}

// BlockTypes lists the types of the message's blocks, in order.
func (m Message) BlockTypes() []string {
	var blocks []struct {
		Type string `json:"type"`
	}
	_ = json.Unmarshal(m.Blocks, &blocks)
	out := make([]string, len(blocks))
	for i, b := range blocks {
		out[i] = b.Type
	}
	return out
}

// Failure is a scripted answer to one request, in place of the normal one.
type Failure struct {
	// Status is the HTTP status to answer with. 0 means 429 when RetryAfter is set, 200 with
	// APIError on the Web API, 400 with APIError on the webhook, and, with only Delay set, the
	// normal answer once the delay is over.
	Status int
	// Body is the response body. Default: the webhook's plain-text code (APIError, or one
	// derived from Status), or the Web API's {"ok":false,"error":...}.
	Body string
	// APIError is the Slack error code to answer with, e.g. "invalid_blocks".
	APIError string
	// RetryAfter, when positive, sets a Retry-After header of that many seconds.
	RetryAfter int
	// Header holds further response headers (a Retry-After in date form, say).
	Header http.Header
	// Delay holds the answer back this long. A client that gives up meanwhile (a delay longer
	// than its timeout makes a hang), or the stand-in closing, ends the request without an
	// answer and without a message.
	Delay time.Duration
}

// Handler is the stand-in as an http.Handler. It is safe for concurrent use.
type Handler struct {
	mu       sync.Mutex
	channels map[string]string // an ID or name (without #) → the channel's ID
	inbox    inbox.Inbox[Message]
	failures []Failure
	requests int
	rate     float64
	buckets  map[string]*bucket
	nextTS   int64

	// The file upload flow: see files.go.
	uploads      map[string]*upload   // file ID → an upload not yet completed
	uploadIDs    map[string]*upload   // upload ID (in the upload URL's path) → the same uploads
	files        inbox.Inbox[File]    // files shared by files.completeUploadExternal
	fileFailures map[string][]Failure // step path → scripted failures
	fileRequests int
	nextFile     int

	done      chan struct{} // closed by Close, to release held requests
	closeOnce sync.Once
}

// NewHandler returns a stand-in with one channel, Channel, named ChannelName.
func NewHandler() *Handler {
	h := &Handler{done: make(chan struct{})}
	h.reset()
	return h
}

func (h *Handler) reset() {
	h.channels = map[string]string{Channel: Channel, ChannelName: Channel}
	h.inbox.Reset()
	h.failures = nil
	h.requests = 0
	h.rate = 0
	h.buckets = map[string]*bucket{}
	h.nextTS = firstTS
	h.uploads = map[string]*upload{}
	h.uploadIDs = map[string]*upload{}
	h.files.Reset()
	h.fileFailures = map[string][]Failure{}
	h.fileRequests = 0
	h.nextFile = 0
}

// Reset forgets messages, files, uploads under way, scripted failures, the rate limit and added
// channels.
func (h *Handler) Reset() {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.reset()
}

// Close releases requests held by a Delay, dropping their connections. The handler still
// answers afterwards, without delays.
func (h *Handler) Close() { h.closeOnce.Do(func() { close(h.done) }) }

// AddChannel makes a channel exist, reachable by its ID and by name.
func (h *Handler) AddChannel(id, name string) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.channels[id] = id
	if name = strings.TrimPrefix(name, "#"); name != "" {
		h.channels[name] = id
	}
}

// FailNext scripts the next n requests to the webhook or chat.postMessage to fail with f,
// replacing any failures still scripted: FailNext(0, Failure{}) cancels them. The file upload
// flow has failures of its own: see FailNextFile.
func (h *Handler) FailNext(n int, f Failure) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.failures = nil
	for range n {
		h.failures = append(h.failures, f)
	}
}

// ThenFail scripts n more requests to fail with f, after the failures already scripted.
func (h *Handler) ThenFail(n int, f Failure) {
	h.mu.Lock()
	defer h.mu.Unlock()
	for range n {
		h.failures = append(h.failures, f)
	}
}

// SetRateLimit limits each channel to perSecond messages a second, with bursts of up to
// perSecond (at least 1) messages; a message over the limit is answered 429 with Retry-After: 1.
// 0 or less turns the limit off.
func (h *Handler) SetRateLimit(perSecond float64) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.rate = perSecond
	h.buckets = map[string]*bucket{}
}

// Messages returns the messages accepted so far, oldest first.
func (h *Handler) Messages() []Message {
	return h.inbox.All()
}

// Requests is the number of requests made to the webhook and chat.postMessage, failed ones
// included. Requests to the file upload flow are counted by FileRequests.
func (h *Handler) Requests() int {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.requests
}

// WaitFor waits until at least n messages were accepted and returns them all. After timeout it
// returns those accepted so far and an error.
func (h *Handler) WaitFor(n int, timeout time.Duration) ([]Message, error) {
	msgs, err := h.inbox.WaitFor(n, timeout)
	if err != nil {
		err = fmt.Errorf("slacktest: %w", err)
	}
	return msgs, err
}

// ServeHTTP implements http.Handler.
func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	switch p := r.URL.Path; {
	case p == WebhookPath:
		if r.Method != http.MethodPost {
			writeText(w, http.StatusMethodNotAllowed, "invalid_method")
			return
		}
		body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, maxBody))
		if err != nil {
			writeText(w, http.StatusRequestEntityTooLarge, "request_too_large")
			return
		}
		if !h.scripted(w, r, false) {
			h.serveWebhook(w, r, body)
		}
	case p == PostMessagePath:
		if r.Method != http.MethodPost {
			writeAPIError(w, "invalid_request", nil)
			return
		}
		body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, maxBody))
		if err != nil {
			writeAPIError(w, "request_too_large", nil)
			return
		}
		if !h.scripted(w, r, true) {
			h.servePostMessage(w, r, body)
		}
	case p == GetUploadURLPath, p == CompleteUploadPath:
		if r.Method != http.MethodPost {
			writeAPIError(w, "invalid_request", nil)
			return
		}
		body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, maxBody))
		if err != nil {
			writeAPIError(w, "request_too_large", nil)
			return
		}
		if h.scriptedFile(w, r, p, true) {
			return
		}
		if p == GetUploadURLPath {
			h.serveGetUploadURL(w, r, body)
		} else {
			h.serveCompleteUpload(w, r, body)
		}
	case strings.HasPrefix(p, UploadPath):
		if r.Method != http.MethodPost {
			writeText(w, http.StatusMethodNotAllowed, "invalid_method")
			return
		}
		body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, maxUploadBody))
		if err != nil {
			writeText(w, http.StatusRequestEntityTooLarge, "request_too_large")
			return
		}
		if !h.scriptedFile(w, r, UploadPath, false) {
			h.serveUpload(w, r, body)
		}
	case strings.HasPrefix(p, "/services/"):
		// Slack's answer for a webhook that does not exist or was removed.
		writeText(w, http.StatusNotFound, "no_service")
	case strings.HasPrefix(p, APIPath):
		writeAPIError(w, "unknown_method", nil)
	default:
		http.NotFound(w, r)
	}
}

// serveWebhook answers an incoming webhook post: 200 "ok", or a 4xx with a code as the body.
func (h *Handler) serveWebhook(w http.ResponseWriter, r *http.Request, body []byte) {
	m, code := CheckWebhook(r.Header.Get("Content-Type"), body)
	if code == codeInvalidPayload {
		writeText(w, http.StatusBadRequest, code)
		return
	}
	if !h.allow(Channel) {
		w.Header().Set("Retry-After", "1")
		writeText(w, http.StatusTooManyRequests, "rate_limited")
		return
	}
	if code != "" {
		writeText(w, http.StatusBadRequest, code)
		return
	}
	h.record(m)
	writeText(w, http.StatusOK, "ok")
}

// codeInvalidPayload is the webhook's answer to a body that is not a message at all.
const codeInvalidPayload = "invalid_payload"

// CheckWebhook reads the body of a post to the incoming webhook as the stand-in does: it returns
// the message that the stand-in would record (without TS and Time), or "" and the error code
// that Slack answers such a post with, in the body of a 400. It lets a caller that answers
// posts itself check them later, as a benchmark does to keep the checks off the machine's time
// under load.
func CheckWebhook(contentType string, body []byte) (Message, string) {
	var p payload
	if err := decodeWebhook(contentType, body, &p); err != nil {
		return Message{}, codeInvalidPayload
	}
	if code, _ := validate(p.Text, p.Blocks); code != "" {
		return Message{}, code
	}
	return Message{Webhook: true, Channel: Channel, Text: p.Text, Blocks: p.Blocks, Username: p.Username, IconEmoji: p.IconEmoji}, ""
}

// servePostMessage answers chat.postMessage: always 200 with {"ok":...}, except for the rate
// limit (429).
func (h *Handler) servePostMessage(w http.ResponseWriter, r *http.Request, body []byte) {
	var p payload
	if code := decodeAPI(r.Header.Get("Content-Type"), body, &p); code != "" {
		writeAPIError(w, code, nil)
		return
	}
	if code := authError(r, p.Token); code != "" {
		writeAPIError(w, code, nil)
		return
	}
	h.mu.Lock()
	channel, ok := h.channels[strings.TrimPrefix(p.Channel, "#")]
	h.mu.Unlock()
	if !ok {
		writeAPIError(w, "channel_not_found", nil)
		return
	}
	if !h.allow(channel) {
		w.Header().Set("Retry-After", "1")
		w.Header().Set("Content-Type", "application/json; charset=utf-8")
		w.WriteHeader(http.StatusTooManyRequests)
		_, _ = io.WriteString(w, `{"ok":false,"error":"ratelimited"}`)
		return
	}
	if code, details := validate(p.Text, p.Blocks); code != "" {
		writeAPIError(w, code, details)
		return
	}
	m := h.record(Message{Channel: channel, Text: p.Text, Blocks: p.Blocks, Username: p.Username, IconEmoji: p.IconEmoji})
	answer := map[string]any{
		"ok":      true,
		"channel": m.Channel,
		"ts":      m.TS,
		"message": map[string]any{
			"type":    "message",
			"subtype": "bot_message",
			"text":    m.Text,
			"ts":      m.TS,
			"bot_id":  "B000",
			"blocks":  m.Blocks,
		},
	}
	writeJSON(w, http.StatusOK, answer)
}

// authError checks a Web API call's token, from the Authorization header or else the token
// field, and returns Slack's error code when it is missing or wrong.
func authError(r *http.Request, token string) string {
	if auth := r.Header.Get("Authorization"); auth != "" {
		token = strings.TrimPrefix(auth, "Bearer ")
	}
	switch token {
	case "":
		return "not_authed"
	case Token:
		return ""
	}
	return "invalid_auth"
}

// scripted answers a message request with the next scripted failure, if any, and reports
// whether it did. The body must have been read already: only then does the server notice a
// client that gives up.
func (h *Handler) scripted(w http.ResponseWriter, r *http.Request, api bool) bool {
	h.mu.Lock()
	h.requests++
	if len(h.failures) == 0 {
		h.mu.Unlock()
		return false
	}
	f := h.failures[0]
	h.failures = h.failures[1:]
	h.mu.Unlock()
	return h.fail(w, r, f, api)
}

// fail answers r with f and reports whether it did; with only a Delay, it waits and leaves the
// answer to the normal handling.
func (h *Handler) fail(w http.ResponseWriter, r *http.Request, f Failure, api bool) bool {
	if f.Delay > 0 {
		t := time.NewTimer(f.Delay)
		defer t.Stop()
		select {
		case <-t.C:
		case <-r.Context().Done():
			// The client gave up: like Slack, nothing is posted and nothing is answered.
			panic(http.ErrAbortHandler)
		case <-h.done:
			panic(http.ErrAbortHandler)
		}
		if f.Status == 0 && f.APIError == "" && f.RetryAfter == 0 {
			return false
		}
	}
	for k, vs := range f.Header {
		for _, v := range vs {
			w.Header().Add(k, v)
		}
	}
	if f.RetryAfter > 0 {
		w.Header().Set("Retry-After", fmt.Sprint(f.RetryAfter))
	}
	status := f.Status
	if status == 0 {
		switch {
		case f.RetryAfter > 0:
			status = http.StatusTooManyRequests
		case api:
			status = http.StatusOK
		default:
			status = http.StatusBadRequest
		}
	}
	if f.Body != "" {
		if w.Header().Get("Content-Type") == "" {
			w.Header().Set("Content-Type", "text/html") // Slack's label, whatever the body
		}
		w.WriteHeader(status)
		_, _ = io.WriteString(w, f.Body)
		return true
	}
	code := f.APIError
	if code == "" {
		code = defaultCode(status)
	}
	if api {
		writeJSON(w, status, map[string]any{"ok": false, "error": code})
	} else {
		writeText(w, status, code)
	}
	return true
}

// defaultCode is an error code that suits an HTTP status.
func defaultCode(status int) string {
	switch {
	case status == http.StatusTooManyRequests:
		return "rate_limited"
	case status >= 500:
		return "internal_error"
	case status == http.StatusNotFound:
		return "no_service"
	case status == http.StatusGone:
		return "channel_is_archived"
	case status == http.StatusForbidden:
		return "action_prohibited"
	}
	return strings.ReplaceAll(strings.ToLower(http.StatusText(status)), " ", "_")
}

// record stores an accepted message, giving it a ts.
func (h *Handler) record(m Message) Message {
	h.mu.Lock()
	defer h.mu.Unlock()
	m.TS = fmt.Sprintf("%d.%06d", h.nextTS/1_000_000, h.nextTS%1_000_000)
	h.nextTS += 100
	m.Time = time.Now()
	h.inbox.Add(m)
	return m
}

// bucket is one channel's token bucket.
type bucket struct {
	tokens float64
	last   time.Time
}

// allow takes a token from channel's bucket, if the rate limit is on.
func (h *Handler) allow(channel string) bool {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.rate <= 0 {
		return true
	}
	burst := max(1, h.rate)
	now := time.Now()
	b := h.buckets[channel]
	if b == nil {
		b = &bucket{tokens: burst, last: now}
		h.buckets[channel] = b
	}
	b.tokens = min(burst, b.tokens+now.Sub(b.last).Seconds()*h.rate)
	b.last = now
	if b.tokens < 1 {
		return false
	}
	b.tokens--
	return true
}

// payload is the part of a message the stand-in looks at.
type payload struct {
	Token     string          `json:"token"`
	Channel   string          `json:"channel"`
	Text      string          `json:"text"`
	Blocks    json.RawMessage `json:"blocks"`
	Username  string          `json:"username"`
	IconEmoji string          `json:"icon_emoji"`
}

// decodeWebhook reads a webhook body: JSON, or a form with the JSON in its payload field.
func decodeWebhook(contentType string, body []byte, p *payload) error {
	mt, _, _ := mime.ParseMediaType(contentType)
	if mt == "application/x-www-form-urlencoded" {
		v, err := url.ParseQuery(string(body))
		if err != nil {
			return err
		}
		body = []byte(v.Get("payload"))
	}
	if err := json.Unmarshal(body, p); err != nil {
		return err
	}
	if isNull(p.Blocks) {
		p.Blocks = nil
	}
	return nil
}

// decodeAPI reads a Web API body, JSON or form, and returns an error code when it cannot.
func decodeAPI(contentType string, body []byte, p *payload) string {
	mt, _, _ := mime.ParseMediaType(contentType)
	switch mt {
	case "application/json":
		if err := json.Unmarshal(body, p); err != nil {
			return "invalid_json"
		}
		// blocks may also come as a JSON string holding the array.
		var s string
		if json.Unmarshal(p.Blocks, &s) == nil {
			p.Blocks = json.RawMessage(s)
		}
	case "application/x-www-form-urlencoded", "":
		v, err := url.ParseQuery(string(body))
		if err != nil {
			return "invalid_form_data"
		}
		p.Token, p.Channel, p.Text = v.Get("token"), v.Get("channel"), v.Get("text")
		p.Username, p.IconEmoji = v.Get("username"), v.Get("icon_emoji")
		if b := v.Get("blocks"); b != "" {
			p.Blocks = json.RawMessage(b)
		}
	default:
		return "invalid_form_data"
	}
	if isNull(p.Blocks) {
		p.Blocks = nil
	}
	if len(p.Blocks) > 0 && !json.Valid(p.Blocks) {
		return "invalid_blocks_format"
	}
	return ""
}

func isNull(raw json.RawMessage) bool {
	return len(raw) == 0 || strings.TrimSpace(string(raw)) == "null"
}

// writeText answers with a short code as the whole body, labelled text/html as Slack labels
// its incoming webhooks' answers, "ok" and error codes alike.
func writeText(w http.ResponseWriter, status int, body string) {
	w.Header().Set("Content-Type", "text/html")
	w.WriteHeader(status)
	_, _ = io.WriteString(w, body)
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json; charset=utf-8")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}

// writeAPIError answers like the Web API does: 200 with ok false.
func writeAPIError(w http.ResponseWriter, code string, details []string) {
	v := map[string]any{"ok": false, "error": code}
	if len(details) > 0 {
		v["response_metadata"] = map[string]any{"messages": details}
	}
	writeJSON(w, http.StatusOK, v)
}

// Server is the stand-in served on a loopback httptest server.
type Server struct {
	*Handler
	srv *httptest.Server
}

// NewServer starts a stand-in on a loopback port. Close it when done.
func NewServer() *Server {
	h := NewHandler()
	return &Server{Handler: h, srv: httptest.NewServer(h)}
}

// URL is the server's base URL, e.g. http://127.0.0.1:41234.
func (s *Server) URL() string { return s.srv.URL }

// APIURL is the base of the Web API, for slack.OptionAPIURL.
func (s *Server) APIURL() string { return s.srv.URL + APIPath }

// WebhookURL is the incoming webhook's URL.
func (s *Server) WebhookURL() string { return s.srv.URL + WebhookPath }

// Client returns an HTTP client for the server.
func (s *Server) Client() *http.Client { return s.srv.Client() }

// Close releases held requests and shuts the server down.
func (s *Server) Close() {
	s.Handler.Close()
	s.srv.Close()
}
