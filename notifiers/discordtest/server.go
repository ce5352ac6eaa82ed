// Package discordtest is a local stand-in for the Discord endpoints the relay calls: a channel
// webhook (POST /api/v10/webhooks/{id}/{token}), a bot's channel messages (POST
// /api/v10/channels/{id}/messages), the webhooks of answered interactions (the original
// response's GET and PATCH .../messages/@original, and follow-ups; see AddInteraction), and the
// application commands (GET and PUT /applications/{id}/commands and the guild variant; see
// Commands). It answers the way Discord does (status codes, JSON error bodies with Discord's
// codes, 429s with retry_after and X-RateLimit-* headers, form validation of a message's limits
// and of command definitions), accepts JSON and multipart bodies with files, records every
// message it accepts with its embeds and files, and every edit, and fails on demand, so that
// tests run against something realistic without a network.
//
// Server serves it on a loopback httptest server; Handler serves it anywhere. Neither needs a
// *testing.T.
package discordtest

import (
	"encoding/json"
	"fmt"
	"io"
	"math"
	"mime"
	"mime/multipart"
	"net/http"
	"net/http/httptest"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/bwmarrin/discordgo"

	"github.com/mlrelay/relay/notifiers/internal/inbox"
)

// The stand-in's fixed identities.
const (
	// APIPath is the prefix of the REST API, with its version.
	APIPath = "/api/v10"
	// WebhookID and WebhookToken identify the stand-in's one channel webhook; it posts to
	// ChannelID.
	WebhookID    = "1200000000000000001"
	WebhookToken = "discordtest-webhook-token_0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJ"
	// WebhookPath is the path of the webhook.
	WebhookPath = APIPath + "/webhooks/" + WebhookID + "/" + WebhookToken
	// BotToken is the bot token the channel and application command endpoints accept, sent as
	// "Authorization: Bot <token>".
	BotToken = "MTIwMDAwMDAwMDAwMDAwMDAwMg.discordtest.bot-token_0123456789abcdefghijk"
	// ApplicationID is the application BotToken belongs to: the one whose commands the bot may
	// read and overwrite. As on Discord, it is also the bot user's id.
	ApplicationID = "1000000000000000001"
	// ChannelID is the channel that exists, reachable by the bot and the webhook.
	ChannelID = "1100000000000000001"
	// GuildID is the server the application was added to with the applications.commands scope:
	// the one whose commands it may overwrite.
	GuildID = "1150000000000000001"
)

// Limits Discord enforces on a message, from its API reference.
const (
	maxContent     = 2000
	maxEmbeds      = 10
	maxTitle       = 256
	maxDescription = 4096
	maxFields      = 25
	maxFieldName   = 256
	maxFieldValue  = 1024
	maxFooter      = 2048
	maxAuthorName  = 256
	maxEmbedTotal  = 6000
	maxFiles       = 10
	maxUsername    = 80
	maxURL         = 2048
	// maxBody bounds a request, like Discord's upload limit (25 MiB for the largest tier).
	maxBody = 25 << 20
)

// firstID is the id given to the first message; each later one is one more.
const firstID = 1300000000000000001

// Attachment is a file received with a message.
type Attachment struct {
	// ID is the attachment's id, as the API reports it and as an edit's attachments list refers
	// to it to keep it.
	ID string
	// Field is the multipart field it came in, e.g. "files[0]".
	Field string
	// Name is the file name as sent.
	Name string
	// ContentType is the part's Content-Type as sent.
	ContentType string
	// Data is the file's bytes.
	Data []byte
}

// Message is a message the stand-in accepted.
type Message struct {
	// ID is the message's id, its reference in the API.
	ID string
	// Webhook is true for a message posted through a webhook (the channel webhook, or an
	// interaction's for a follow-up), false for the bot.
	Webhook bool
	// ChannelID is the channel posted to.
	ChannelID string
	// ThreadID is the thread_id the webhook was called with, or "".
	ThreadID string
	// Multipart is true when the body was multipart/form-data (payload_json and files).
	Multipart bool
	// Content is the message's content.
	Content string
	// Username and AvatarURL are the webhook's overrides as sent.
	Username, AvatarURL string
	// Embeds are the embeds as sent.
	Embeds []*discordgo.MessageEmbed
	// AllowedMentions is the allowed_mentions object as sent, or nil when absent.
	AllowedMentions *discordgo.MessageAllowedMentions
	// Attachments are the files received, in order.
	Attachments []Attachment
	// Payload is the JSON payload as sent (the body, or the payload_json part). For an edit, the
	// edit's payload.
	Payload json.RawMessage
	// Time is when the message was accepted (for an original response, when AddInteraction
	// added it).
	Time time.Time

	// ApplicationID and InteractionToken name the interaction the message answers: set on an
	// interaction's original response (AddInteraction), its edits and its follow-ups, "" on
	// other messages. Follow-ups also have Webhook set, as they come through the interaction's
	// webhook.
	ApplicationID, InteractionToken string
	// Edited is when the message was last edited, zero if it never was. A message returned by
	// Edits is the message as that edit left it: Content, Embeds and Attachments are its whole
	// state after the edit (files kept and files added), while Multipart, AllowedMentions and
	// Payload are those of the edit request.
	Edited time.Time
}

// Attachment returns the file named name, if one was received.
func (m Message) Attachment(name string) (Attachment, bool) {
	for _, a := range m.Attachments {
		if a.Name == name {
			return a, true
		}
	}
	return Attachment{}, false
}

// Failure is a scripted answer to one request, in place of the normal one.
type Failure struct {
	// Status is the HTTP status to answer with. 0 means 429 when RetryAfter is set and, with
	// only Delay set, the normal answer once the delay is over.
	Status int
	// Body is the response body, sent as JSON. Default: Discord's error for the status, e.g.
	// {"message": "401: Unauthorized", "code": 0}; for a 429, the rate limit's body.
	Body string
	// RetryAfter, when positive, makes a 429 in Discord's shape: a JSON body with retry_after
	// (float seconds) and global, and the Retry-After and X-RateLimit-* headers. With another
	// Status it only sets Retry-After (whole seconds, rounded up).
	RetryAfter float64
	// Global makes a 429 the global rate limit rather than the route's.
	Global bool
	// Header holds further response headers.
	Header http.Header
	// Delay holds the answer back this long. A client that gives up meanwhile, or the stand-in
	// closing, ends the request without an answer and without a message.
	Delay time.Duration
}

// Handler is the stand-in as an http.Handler. It is safe for concurrent use.
type Handler struct {
	mu       sync.Mutex
	channels map[string]bool
	inbox    inbox.Inbox[Message]
	failures []Failure
	requests int
	nextID   int64

	interactions map[interactionKey]*interaction
	edits        inbox.Inbox[Message]

	guilds        map[string]bool
	commands      map[string][]*discordgo.ApplicationCommand // by guild id, "" for global
	nextCommandID int64

	done      chan struct{} // closed by Close, to release held requests
	closeOnce sync.Once
}

// NewHandler returns a stand-in with one channel, ChannelID, one guild, GuildID, and no
// commands.
func NewHandler() *Handler {
	h := &Handler{done: make(chan struct{})}
	h.reset()
	return h
}

func (h *Handler) reset() {
	h.channels = map[string]bool{ChannelID: true}
	h.inbox.Reset()
	h.failures = nil
	h.requests = 0
	h.nextID = firstID
	h.interactions = map[interactionKey]*interaction{}
	h.edits.Reset()
	h.guilds = map[string]bool{GuildID: true}
	h.commands = map[string][]*discordgo.ApplicationCommand{}
	h.nextCommandID = firstCommandID
}

// Reset forgets messages, edits, interactions, commands, scripted failures and added channels
// and guilds.
func (h *Handler) Reset() {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.reset()
}

// Close releases requests held by a Delay, dropping their connections. The handler still
// answers afterwards, without delays.
func (h *Handler) Close() { h.closeOnce.Do(func() { close(h.done) }) }

// AddChannel makes a channel exist for the bot.
func (h *Handler) AddChannel(id string) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.channels[id] = true
}

// FailNext scripts the next n requests to fail with f, replacing any failures still scripted:
// FailNext(0, Failure{}) cancels them.
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

// Messages returns the messages accepted so far, oldest first.
func (h *Handler) Messages() []Message {
	return h.inbox.All()
}

// Requests is the number of requests made to the stand-in's endpoints (webhooks, channel
// messages, interaction messages, application commands), failed ones included.
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
		err = fmt.Errorf("discordtest: %w", err)
	}
	return msgs, err
}

// ServeHTTP implements http.Handler.
func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	rest, ok := strings.CutPrefix(r.URL.Path, APIPath+"/")
	if !ok {
		writeError(w, http.StatusNotFound, 0, "404: Not Found", nil)
		return
	}
	parts := strings.Split(rest, "/")
	switch {
	case len(parts) == 3 && parts[0] == "webhooks":
		if !h.allowed(w, r, http.MethodPost) {
			return
		}
		if h.isInteraction(parts[1], parts[2]) {
			h.serveFollowup(w, r, interactionKey{parts[1], parts[2]})
			return
		}
		h.serveWebhook(w, r, parts[1], parts[2])
	case len(parts) == 5 && parts[0] == "webhooks" && parts[3] == "messages":
		if !h.allowed(w, r, http.MethodGet, http.MethodPatch) {
			return
		}
		h.serveInteractionMessage(w, r, interactionKey{parts[1], parts[2]}, parts[4])
	case len(parts) == 3 && parts[0] == "channels" && parts[2] == "messages":
		if !h.allowed(w, r, http.MethodPost) {
			return
		}
		h.serveChannel(w, r, parts[1])
	case len(parts) == 3 && parts[0] == "applications" && parts[2] == "commands":
		if !h.allowed(w, r, http.MethodGet, http.MethodPut) {
			return
		}
		h.serveCommands(w, r, parts[1], "")
	case len(parts) == 5 && parts[0] == "applications" && parts[2] == "guilds" && parts[4] == "commands":
		if !h.allowed(w, r, http.MethodGet, http.MethodPut) {
			return
		}
		h.serveCommands(w, r, parts[1], parts[3])
	default:
		writeError(w, http.StatusNotFound, 0, "404: Not Found", nil)
	}
}

// allowed answers a request whose method is not one of methods, or that is too large, and
// reports whether it is neither.
func (h *Handler) allowed(w http.ResponseWriter, r *http.Request, methods ...string) bool {
	if !slices.Contains(methods, r.Method) {
		w.Header().Set("Allow", strings.Join(methods, ", "))
		writeError(w, http.StatusMethodNotAllowed, 0, "405: Method Not Allowed", nil)
		return false
	}
	if r.ContentLength > maxBody {
		writeError(w, http.StatusRequestEntityTooLarge, 40005, "Request entity too large", nil)
		return false
	}
	return true
}

// serveWebhook answers POST /webhooks/{id}/{token}: 204 without ?wait=true, else 200 with the
// message.
func (h *Handler) serveWebhook(w http.ResponseWriter, r *http.Request, id, token string) {
	p, status := h.read(w, r)
	if status != 0 {
		return
	}
	if h.scripted(w, r) {
		return
	}
	switch {
	case id != WebhookID:
		writeError(w, http.StatusNotFound, 10015, "Unknown Webhook", nil)
		return
	case token != WebhookToken:
		writeError(w, http.StatusUnauthorized, 50027, "Invalid Webhook Token", nil)
		return
	}
	if errs := validate(p, true); len(errs) > 0 {
		writeError(w, http.StatusBadRequest, 50035, "Invalid Form Body", errs)
		return
	}
	if p.empty() {
		writeError(w, http.StatusBadRequest, 50006, "Cannot send an empty message", nil)
		return
	}
	m := h.record(Message{Webhook: true, ChannelID: ChannelID, ThreadID: r.URL.Query().Get("thread_id"), Multipart: p.multipart,
		Content: p.Content, Username: p.Username, AvatarURL: p.AvatarURL, Embeds: p.Embeds, AllowedMentions: p.AllowedMentions,
		Attachments: p.files, Payload: p.raw})
	if wait, _ := strconv.ParseBool(r.URL.Query().Get("wait")); !wait {
		w.WriteHeader(http.StatusNoContent)
		return
	}
	writeJSON(w, http.StatusOK, answer(m))
}

// serveChannel answers POST /channels/{id}/messages for the bot: 200 with the message.
func (h *Handler) serveChannel(w http.ResponseWriter, r *http.Request, channel string) {
	p, status := h.read(w, r)
	if status != 0 {
		return
	}
	if h.scripted(w, r) {
		return
	}
	if r.Header.Get("Authorization") != "Bot "+BotToken {
		writeError(w, http.StatusUnauthorized, 0, "401: Unauthorized", nil)
		return
	}
	h.mu.Lock()
	known := h.channels[channel]
	h.mu.Unlock()
	if !known {
		writeError(w, http.StatusNotFound, 10003, "Unknown Channel", nil)
		return
	}
	if errs := validate(p, false); len(errs) > 0 {
		writeError(w, http.StatusBadRequest, 50035, "Invalid Form Body", errs)
		return
	}
	if p.empty() {
		writeError(w, http.StatusBadRequest, 50006, "Cannot send an empty message", nil)
		return
	}
	m := h.record(Message{ChannelID: channel, Multipart: p.multipart, Content: p.Content, Embeds: p.Embeds,
		AllowedMentions: p.AllowedMentions, Attachments: p.files, Payload: p.raw})
	writeJSON(w, http.StatusOK, answer(m))
}

// read reads and decodes the body, answering with Discord's error when it cannot; status is
// then not 0. The body is read before any scripted answer: only then does the server notice a
// client that gives up.
func (h *Handler) read(w http.ResponseWriter, r *http.Request) (*payload, int) {
	p, code, msg := decode(w, r)
	if code != 0 {
		// A scripted failure still counts the request, as Discord would have seen it.
		h.mu.Lock()
		h.requests++
		h.mu.Unlock()
		status := http.StatusBadRequest
		if code == 40005 {
			status = http.StatusRequestEntityTooLarge
		}
		writeError(w, status, code, msg, nil)
		return nil, status
	}
	return p, 0
}

// answer is the message object Discord returns for m.
func answer(m Message) map[string]any {
	atts := []map[string]any{}
	for _, a := range m.Attachments {
		atts = append(atts, map[string]any{
			"id":           a.ID,
			"filename":     a.Name,
			"size":         len(a.Data),
			"content_type": a.ContentType,
			"url":          "https://cdn.discordapp.com/attachments/" + m.ChannelID + "/" + a.ID + "/" + a.Name,
		})
	}
	embeds := m.Embeds
	if embeds == nil {
		embeds = []*discordgo.MessageEmbed{}
	}
	v := map[string]any{
		"id":          m.ID,
		"type":        0,
		"channel_id":  m.ChannelID,
		"content":     m.Content,
		"embeds":      embeds,
		"attachments": atts,
		"mentions":    []any{},
		"timestamp":   m.Time.UTC().Format(time.RFC3339Nano),
		"tts":         false,
		"pinned":      false,
	}
	v["edited_timestamp"] = nil
	if !m.Edited.IsZero() {
		v["edited_timestamp"] = m.Edited.UTC().Format(time.RFC3339Nano)
	}
	if m.InteractionToken != "" {
		// An interaction's messages come from its application, through the interaction's
		// webhook.
		v["webhook_id"] = m.ApplicationID
		v["application_id"] = m.ApplicationID
		v["author"] = map[string]any{"id": m.ApplicationID, "username": "relay-bot", "bot": true, "discriminator": "0000"}
		return v
	}
	if m.Webhook {
		name := m.Username
		if name == "" {
			name = "Relay"
		}
		v["webhook_id"] = WebhookID
		v["author"] = map[string]any{"id": WebhookID, "username": name, "bot": true, "discriminator": "0000"}
	} else {
		v["author"] = map[string]any{"id": ApplicationID, "username": "relay-bot", "bot": true, "discriminator": "0000"}
	}
	return v
}

// scripted answers r with the next scripted failure, if any, and reports whether it did.
func (h *Handler) scripted(w http.ResponseWriter, r *http.Request) bool {
	h.mu.Lock()
	h.requests++
	if len(h.failures) == 0 {
		h.mu.Unlock()
		return false
	}
	f := h.failures[0]
	h.failures = h.failures[1:]
	h.mu.Unlock()

	if f.Delay > 0 {
		t := time.NewTimer(f.Delay)
		defer t.Stop()
		select {
		case <-t.C:
		case <-r.Context().Done():
			// The client gave up: nothing is posted and nothing is answered.
			panic(http.ErrAbortHandler)
		case <-h.done:
			panic(http.ErrAbortHandler)
		}
		if f.Status == 0 && f.RetryAfter == 0 {
			return false
		}
	}
	status := f.Status
	if status == 0 {
		status = http.StatusTooManyRequests
	}
	for k, vs := range f.Header {
		for _, v := range vs {
			w.Header().Add(k, v)
		}
	}
	if f.RetryAfter > 0 {
		w.Header().Set("Retry-After", strconv.FormatInt(int64(math.Ceil(f.RetryAfter)), 10))
	}
	if status == http.StatusTooManyRequests {
		rateLimitHeaders(w.Header(), f)
	}
	body := f.Body
	if body == "" {
		body = defaultBody(status, f)
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_, _ = io.WriteString(w, body)
	return true
}

// rateLimitHeaders sets the headers of a 429 the way Discord does.
func rateLimitHeaders(hd http.Header, f Failure) {
	after := strconv.FormatFloat(f.RetryAfter, 'f', 3, 64)
	reset := float64(time.Now().UnixMilli())/1000 + f.RetryAfter
	if f.Global {
		hd.Set("X-RateLimit-Global", "true")
		hd.Set("X-RateLimit-Scope", "global")
		return
	}
	hd.Set("X-RateLimit-Limit", "5")
	hd.Set("X-RateLimit-Remaining", "0")
	hd.Set("X-RateLimit-Reset", strconv.FormatFloat(reset, 'f', 3, 64))
	hd.Set("X-RateLimit-Reset-After", after)
	hd.Set("X-RateLimit-Bucket", "discordtest0bucket")
	hd.Set("X-RateLimit-Scope", "user")
}

// defaultBody is Discord's JSON error body for a status.
func defaultBody(status int, f Failure) string {
	var v map[string]any
	switch {
	case status == http.StatusTooManyRequests:
		v = map[string]any{"message": "You are being rate limited.", "retry_after": f.RetryAfter, "global": f.Global}
		if !f.Global {
			v["code"] = 0
		}
	case status == http.StatusBadRequest:
		v = map[string]any{"message": "Invalid Form Body", "code": 50035, "errors": map[string]any{}}
	case status == http.StatusForbidden:
		v = map[string]any{"message": "Missing Permissions", "code": 50013}
	case status == http.StatusNotFound:
		v = map[string]any{"message": "Unknown Channel", "code": 10003}
	default:
		v = map[string]any{"message": fmt.Sprintf("%d: %s", status, http.StatusText(status)), "code": 0}
	}
	b, _ := json.Marshal(v)
	return string(b)
}

// record stores an accepted message, giving it an id.
func (h *Handler) record(m Message) Message {
	h.mu.Lock()
	defer h.mu.Unlock()
	m = h.identify(m)
	h.inbox.Add(m)
	return m
}

// identify gives a new message its id, its attachments theirs, and its time. The caller holds
// mu.
func (h *Handler) identify(m Message) Message {
	m.ID = strconv.FormatInt(h.nextID, 10)
	h.nextID++
	m.Time = time.Now()
	m.Attachments = slices.Clone(m.Attachments)
	for i := range m.Attachments {
		m.Attachments[i].ID = attachmentID(m.ID, i)
	}
	return m
}

// attachmentID is the id of a message's n-th attachment (counting every file it was ever
// given).
func attachmentID(messageID string, n int) string { return fmt.Sprintf("%s%02d", messageID, n) }

// payload is the part of a message the stand-in looks at.
type payload struct {
	Content         string                            `json:"content"`
	Username        string                            `json:"username"`
	AvatarURL       string                            `json:"avatar_url"`
	Embeds          []*discordgo.MessageEmbed         `json:"embeds"`
	AllowedMentions *discordgo.MessageAllowedMentions `json:"allowed_mentions"`

	raw       json.RawMessage
	multipart bool
	files     []Attachment
}

// empty reports whether the message has nothing to show.
func (p *payload) empty() bool {
	return strings.TrimSpace(p.Content) == "" && len(p.Embeds) == 0 && len(p.files) == 0
}

// decode reads a JSON or multipart/form-data body. On failure it returns Discord's code and
// message for it.
func decode(w http.ResponseWriter, r *http.Request) (*payload, int, string) {
	body := http.MaxBytesReader(w, r.Body, maxBody)
	p := &payload{}
	mt, params, _ := mime.ParseMediaType(r.Header.Get("Content-Type"))
	switch mt {
	case "application/json":
		b, err := io.ReadAll(body)
		if err != nil {
			return nil, 40005, "Request entity too large"
		}
		p.raw = b
	case "multipart/form-data":
		p.multipart = true
		mr := multipart.NewReader(body, params["boundary"])
		for {
			part, err := mr.NextPart()
			if err == io.EOF {
				break
			}
			if err != nil {
				return nil, 50109, "The request body contains invalid JSON."
			}
			data, err := io.ReadAll(part)
			if err != nil {
				return nil, 40005, "Request entity too large"
			}
			switch name := part.FormName(); {
			case name == "payload_json":
				p.raw = data
			case strings.HasPrefix(name, "files[") || name == "file":
				p.files = append(p.files, Attachment{Field: name, Name: part.FileName(), ContentType: part.Header.Get("Content-Type"), Data: data})
			}
		}
		if p.raw == nil {
			p.raw = json.RawMessage("{}")
		}
	default:
		// Discord reads anything else as an empty form.
		_, _ = io.Copy(io.Discard, body)
		return nil, 50006, "Cannot send an empty message"
	}
	if err := json.Unmarshal(p.raw, p); err != nil {
		return nil, 50109, "The request body contains invalid JSON."
	}
	return p, 0, ""
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}

// writeError answers with Discord's error shape: {"code": ..., "errors": ..., "message": ...}.
func writeError(w http.ResponseWriter, status, code int, message string, errs map[string]any) {
	v := map[string]any{"message": message, "code": code}
	if errs != nil {
		v["errors"] = errs
	}
	writeJSON(w, status, v)
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

// URL is the base of the REST API, e.g. http://127.0.0.1:41234/api/v10, for the notifier's
// API URL.
func (s *Server) URL() string { return s.srv.URL + APIPath }

// BaseURL is the server's root, e.g. http://127.0.0.1:41234.
func (s *Server) BaseURL() string { return s.srv.URL }

// WebhookURL is the webhook's URL.
func (s *Server) WebhookURL() string { return s.srv.URL + WebhookPath }

// Client returns an HTTP client for the server.
func (s *Server) Client() *http.Client { return s.srv.Client() }

// Close releases held requests and shuts the server down.
func (s *Server) Close() {
	s.Handler.Close()
	s.srv.Close()
}
