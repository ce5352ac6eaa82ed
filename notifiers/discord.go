package notifiers

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"net/http"
	"net/url"
	"path"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/bwmarrin/discordgo"

	"github.com/mlrelay/relay/relay"
	"github.com/mlrelay/relay/relay/replicate"

	"github.com/mlrelay/relay/relay/discordbot"
)

// Discord's message limits, from its API reference. Texts are counted in characters (runes).
const (
	discordMaxContent     = 2000
	discordMaxTitle       = 256
	discordMaxDescription = 4096
	discordMaxFields      = 25
	discordMaxFieldName   = 256
	discordMaxFieldValue  = 1024
	discordMaxFooter      = 2048
	discordMaxEmbeds      = 10
	discordMaxEmbedTotal  = 6000 // title, description, field names and values, footer, author, over all embeds
	discordMaxFiles       = 10
	discordMaxURL         = 2048
	discordMaxUsername    = 80
	// discordMaxUpload is Discord's upload limit per message in a server without boosts.
	discordMaxUpload = 10 << 20

	discordMaxFallback    = 200 // our bound: runes of the plain fallback content
	discordMaxPrompt      = 500 // our bound: prompt runes quoted in a field, before escaping
	discordMaxFactValue   = 256 // our bound: model, status and the like
	discordMaxImages      = 4   // Discord shows up to four images of embeds sharing a URL as a gallery
	discordMaxFileName    = 100 // our bound on an attachment's name
	discordDefaultTimeout = 10 * time.Second
	// discordMaxCaptureBody bounds the part of an error body read for Discord's reason. A 50035
	// body lists its errors before its message, so it is read far enough to hold both.
	discordMaxCaptureBody = 64 << 10
)

// discordDefaultAPIURL is Discord's REST API at its current version. discordgo v0.29 builds
// v9 URLs; its payloads are the same in v10, and its requests are sent here instead.
const discordDefaultAPIURL = "https://discord.com/api/v10"

// Embed colours by status.
const (
	discordGreen  = 0x2ECC71 // succeeded
	discordRed    = 0xE74C3C // failed
	discordGrey   = 0x95A5A6 // canceled
	discordOrange = 0xE67E22 // aborted
	discordBlue   = 0x3498DB // anything else (starting, processing)
)

// DiscordOptions configures a Discord notifier. Set either WebhookURL, or BotToken and ChannelID.
type DiscordOptions struct {
	// WebhookURL is a channel webhook (https://discord.com/api/webhooks/{id}/{token}), optionally
	// with ?thread_id= to post in a thread. It is a secret. It carries its own API base, so
	// APIURL does not apply to it.
	WebhookURL string
	// BotToken is a bot's token (with or without the "Bot " prefix), used with ChannelID to post
	// through the channel messages endpoint. The bot needs the Send Messages, Embed Links and
	// Attach Files permissions in the channel. It is a secret.
	BotToken string
	// ChannelID is the numeric ID of the channel the bot posts to.
	ChannelID string
	// APIURL is the base of the REST API, used with BotToken. Default https://discord.com/api/v10.
	APIURL string
	// Timeout bounds one send. Default 10s.
	Timeout time.Duration
	// HTTPClient sends the requests. Default: a client that follows no redirects.
	HTTPClient *http.Client
	// Username overrides the webhook's name (at most 80 characters, without "discord" or
	// "clyde"). Default: none (the name set on the webhook). Webhooks only: a bot always posts
	// under its own name.
	Username string
	// AvatarURL overrides the webhook's avatar. Default: none. Webhooks only.
	AvatarURL string
}

// Discord sends messages to a Discord channel as embeds, through a channel webhook or a bot. It
// is safe for concurrent use.
type Discord struct {
	webhookID    string // webhook mode when set
	webhookToken string
	threadID     string
	auth         string // bot mode: the Authorization header, "Bot <token>"
	channel      string
	username     string
	avatarURL    string
	from, to     *url.URL // discordgo's API base and where its requests are sent instead
	timeout      time.Duration
	client       *http.Client
	redact       redactor
}

var _ relay.Notifier = (*Discord)(nil)

// NewDiscord validates o, fills in its defaults and returns the notifier. Its errors never
// contain the webhook URL's token or the bot token.
func NewDiscord(o DiscordOptions) (*Discord, error) {
	token := strings.TrimSpace(o.BotToken)
	token = strings.TrimSpace(strings.TrimPrefix(token, "Bot "))
	d := &Discord{
		channel:   strings.TrimSpace(o.ChannelID),
		username:  strings.TrimSpace(o.Username),
		avatarURL: strings.TrimSpace(o.AvatarURL),
		timeout:   o.Timeout,
		client:    o.HTTPClient,
	}
	webhook := strings.TrimSpace(o.WebhookURL)
	switch {
	case webhook != "" && (token != "" || d.channel != ""):
		return nil, errors.New("discord: set either webhook_url, or bot_token and channel_id, not both")
	case webhook == "" && token == "" && d.channel == "":
		return nil, errors.New("discord: set webhook_url, or bot_token and channel_id")
	case webhook == "" && token == "":
		return nil, errors.New("discord: if channel_id is set, bot_token must be set too")
	case webhook == "" && d.channel == "":
		return nil, errors.New("discord: if bot_token is set, channel_id must be set too")
	}
	from, err := url.Parse(discordgo.EndpointAPI)
	if err != nil {
		return nil, fmt.Errorf("discord: discordgo's endpoint: %w", err)
	}
	d.from = from
	if webhook != "" {
		if err := d.parseWebhook(webhook); err != nil {
			return nil, err
		}
		if n := utf8.RuneCountInString(d.username); n > discordMaxUsername {
			return nil, fmt.Errorf("discord: username has %d characters, at most %d are allowed", n, discordMaxUsername)
		}
		if l := strings.ToLower(d.username); strings.Contains(l, "discord") || strings.Contains(l, "clyde") {
			return nil, errors.New(`discord: username must not contain "discord" or "clyde" (Discord refuses it)`)
		}
		if d.avatarURL != "" {
			if err := checkHTTPURL(d.avatarURL); err != nil {
				return nil, fmt.Errorf("discord: avatar_url %s %s", shownURL(d.avatarURL), err)
			}
		}
	} else {
		if d.username != "" || d.avatarURL != "" {
			return nil, errors.New("discord: username and avatar_url apply only to webhook_url; a bot posts under its own name")
		}
		if strings.ContainsFunc(token, func(r rune) bool { return r <= ' ' || r == 0x7f }) {
			return nil, errors.New("discord: bot_token contains spaces or control characters")
		}
		if !discordbot.IsSnowflake(d.channel) {
			return nil, fmt.Errorf("discord: channel_id %q must be a numeric channel ID (Developer Mode, then Copy Channel ID)", d.channel)
		}
		d.auth = "Bot " + token
		api := strings.TrimSpace(o.APIURL)
		if api == "" {
			api = discordDefaultAPIURL
		}
		if err := checkHTTPURL(api); err != nil {
			return nil, fmt.Errorf("discord: api_url %s %s", shownURL(api), err)
		}
		to, _ := url.Parse(strings.TrimRight(api, "/") + "/")
		if to.RawQuery != "" || to.User != nil {
			return nil, fmt.Errorf("discord: api_url %s must have no query and no user info", shownURL(api))
		}
		d.to = to
	}
	if d.timeout < 0 {
		return nil, fmt.Errorf("discord: timeout %s is negative", d.timeout)
	}
	if d.timeout == 0 {
		d.timeout = discordDefaultTimeout
	}
	if d.client == nil {
		d.client = defaultHTTPClient()
	}
	secrets := []string{token, d.webhookToken, url.PathEscape(d.webhookToken)}
	if webhook != "" {
		secrets = append(secrets, urlSecrets(webhook)...)
	}
	d.redact = newRedactor(secrets...)
	return d, nil
}

// parseWebhook splits a webhook URL into the API base it lives under, its id, token and thread.
// Its errors describe the URL without repeating it.
func (d *Discord) parseWebhook(raw string) error {
	if err := checkHTTPURL(raw); err != nil {
		return fmt.Errorf("discord: webhook_url %s", err)
	}
	u, _ := url.Parse(raw)
	if u.User != nil {
		return errors.New("discord: webhook_url must not have user info")
	}
	i := strings.LastIndex(u.Path, "/webhooks/")
	if i < 0 {
		return errors.New("discord: webhook_url must look like https://discord.com/api/webhooks/{id}/{token}")
	}
	prefix := u.Path[:i]
	parts := strings.Split(u.Path[i+len("/webhooks/"):], "/")
	if len(parts) != 2 || !discordbot.IsSnowflake(parts[0]) || !isWebhookToken(parts[1]) {
		return errors.New("discord: webhook_url must look like https://discord.com/api/webhooks/{id}/{token}, with a numeric id")
	}
	for k, v := range u.Query() {
		if k != "thread_id" || len(v) != 1 || !discordbot.IsSnowflake(v[0]) {
			return errors.New("discord: webhook_url may only have a numeric thread_id query parameter")
		}
		d.threadID = v[0]
	}
	// The URLs Discord shows have no API version, which would mean an old one: use the
	// version the bot mode defaults to.
	if strings.HasSuffix(prefix, "/api") {
		prefix += "/" + path.Base(discordDefaultAPIURL)
	}
	d.webhookID, d.webhookToken = parts[0], parts[1]
	d.to = &url.URL{Scheme: u.Scheme, Host: u.Host, Path: prefix + "/"}
	return nil
}

// isWebhookToken reports whether s can be a webhook token (URL-safe base64 and dots).
func isWebhookToken(s string) bool {
	if s == "" {
		return false
	}
	for _, r := range s {
		if !isFileNameRune(r) {
			return false
		}
	}
	return true
}

// Notify sends m. The reference returned is the created message's ID, in both modes (a webhook
// is called with wait=true so that it answers with the message). Failures are classified here:
// see classify.
func (d *Discord) Notify(ctx context.Context, m relay.Message) (string, error) {
	ctx, cancel := context.WithTimeout(ctx, d.timeout)
	defer cancel()
	p := discordPayload(m)
	sess, tr, err := d.session()
	if err != nil {
		return "", err
	}
	opts := requestOptions(ctx)
	files := p.discordFiles()

	var sent *discordgo.Message
	what := "discord bot"
	if d.webhookID != "" {
		what = "discord webhook"
		params := &discordgo.WebhookParams{
			Content:         p.Content,
			Username:        d.username,
			AvatarURL:       d.avatarURL,
			Embeds:          p.Embeds,
			AllowedMentions: p.AllowedMentions,
			Files:           files,
		}
		if d.threadID != "" {
			sent, err = sess.WebhookThreadExecute(d.webhookID, d.webhookToken, true, d.threadID, params, opts...)
		} else {
			sent, err = sess.WebhookExecute(d.webhookID, d.webhookToken, true, params, opts...)
		}
	} else {
		sent, err = sess.ChannelMessageSendComplex(d.channel, &discordgo.MessageSend{
			Content:         p.Content,
			Embeds:          p.Embeds,
			AllowedMentions: p.AllowedMentions,
			Files:           files,
		}, opts...)
	}
	got := tr.result()
	if err = d.classify(what, got, tr.destination(err)); err != nil {
		return "", err
	}
	if sent == nil {
		return "", nil
	}
	return sent.ID, nil
}

// session makes a discordgo session for one call, its requests sent through a transport that
// points them at the configured API and records Discord's answer for classify. A session per
// call: discordgo's rate limiter would otherwise remember one call's 429 and make a later call
// sleep without regard for its context. Pacing is the dispatcher's job.
func (d *Discord) session() (*discordgo.Session, *discordTransport, error) {
	sess, err := discordgo.New(d.auth)
	if err != nil {
		return nil, nil, relay.Permanent(d.redact.error(fmt.Errorf("discord: %w", err)))
	}
	tr := &discordTransport{base: d.client.Transport, from: d.from, to: d.to}
	if tr.base == nil {
		tr.base = http.DefaultTransport
	}
	client := *d.client
	client.Transport = tr
	sess.Client = &client
	sess.ShouldRetryOnRateLimit = false
	sess.MaxRestRetries = 0
	// discordgo logs some failures (a 429 it cannot read) to the standard logger; they are
	// reported here, as errors.
	sess.LogLevel = discordgo.LogError - 1
	return sess, tr, nil
}

// requestOptions are the options of every call: ctx, and no retries of discordgo's own.
func requestOptions(ctx context.Context) []discordgo.RequestOption {
	return []discordgo.RequestOption{discordgo.WithContext(ctx), discordgo.WithRetryOnRatelimit(false), discordgo.WithRestRetries(0)}
}

// classify turns the outcome of one call into nil or a classified error, from what the
// transport saw rather than from discordgo's errors, which differ by status (a 502 is a plain
// error, a 429 with an unreadable body an unmarshal error) and carry the request with its
// secrets. 2xx is sent, readable or not; 429 is the rate limit, global or the route's, waiting for Discord's
// retry_after; 408 and 5xx are temporary; any other status is permanent; no answer at all is
// temporary, unless the request could not even be built.
func (d *Discord) classify(what string, got discordResponse, err error) error {
	switch {
	case got.status >= 200 && got.status <= 299:
		// Discord took the message, even when discordgo could not read its answer (a cut
		// body): sending it again would post it twice. It is sent, without a reference.
		return nil
	case got.status == 0:
		if err == nil {
			return nil
		}
		cancelled := errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded)
		err = d.redact.error(err)
		if !got.called && !cancelled {
			return relay.Permanent(fmt.Errorf("%s: cannot build request: %w", what, err))
		}
		return relay.Retryable(fmt.Errorf("%s: %w", what, err), 0)
	}
	body := parseDiscordError(got.body)
	reason := d.reason(got, body)
	serr := d.redact.error(statusError(what, response{reason: got.reason}, reason))
	if got.status == http.StatusTooManyRequests {
		return relay.RateLimited(serr, discordRetryAfter(body, got.header, time.Now()))
	}
	return classifyStatus(got.status, got.header, serr)
}

// discordError is Discord's JSON error body.
type discordError struct {
	ok         bool            // the body was Discord's JSON
	Message    string          `json:"message"`
	Code       int             `json:"code"`
	RetryAfter float64         `json:"retry_after"`
	Global     bool            `json:"global"`
	Errors     json.RawMessage `json:"errors"`
}

// parseDiscordError reads an error body; ok is false when it is not Discord's JSON.
func parseDiscordError(b []byte) discordError {
	var e discordError
	if json.Unmarshal(b, &e) == nil && (e.Message != "" || e.Code != 0 || e.RetryAfter > 0) {
		e.ok = true
	}
	return e
}

// reason is Discord's explanation of a failure, redacted, then cut to size: "Invalid Form Body
// (50035): embeds.0.title: Must be 256 or fewer in length.", or the start of a body that is not
// Discord's JSON.
func (d *Discord) reason(got discordResponse, e discordError) string {
	if !e.ok {
		return cleanLine(d.redact.text(cleanSnippet(got.body[:min(len(got.body), maxCaptureBody)])), maxErrorBody)
	}
	msg := e.Message
	if e.Code != 0 {
		msg += " (" + strconv.Itoa(e.Code) + ")"
	}
	if e.Global {
		msg += " (global)"
	}
	if details := formErrorDetails(e.Errors, 3); len(details) > 0 {
		msg += ": " + strings.Join(details, "; ")
	}
	return cleanLine(d.redact.text(msg), maxErrorBody)
}

// formErrorDetails flattens the first n problems of a 50035 body's errors object
// ({"embeds": {"0": {"title": {"_errors": [{"message": ...}]}}}}) to "embeds.0.title: ...".
func formErrorDetails(raw json.RawMessage, n int) []string {
	var out []string
	var walk func(prefix string, v any)
	walk = func(prefix string, v any) {
		m, ok := v.(map[string]any)
		if !ok {
			return
		}
		if list, ok := m["_errors"].([]any); ok {
			for _, item := range list {
				if e, ok := item.(map[string]any); ok && len(out) < n {
					msg, _ := e["message"].(string)
					out = append(out, strings.TrimPrefix(prefix+": ", ": ")+msg)
				}
			}
		}
		keys := make([]string, 0, len(m))
		for k := range m {
			if k != "_errors" {
				keys = append(keys, k)
			}
		}
		sort.Strings(keys)
		for _, k := range keys {
			if len(out) >= n {
				return
			}
			p := k
			if prefix != "" {
				p = prefix + "." + k
			}
			walk(p, m[k])
		}
	}
	var v any
	if len(raw) > 0 && json.Unmarshal(raw, &v) == nil {
		walk("", v)
	}
	return out
}

// discordRetryAfter is the wait a 429 asks for: the body's retry_after (float seconds, the most
// precise), else the Retry-After header, else X-RateLimit-Reset-After.
func discordRetryAfter(e discordError, h http.Header, now time.Time) time.Duration {
	secs := e.RetryAfter
	if secs <= 0 {
		if d := retryAfter(h, now); d > 0 {
			return d
		}
		secs, _ = strconv.ParseFloat(strings.TrimSpace(h.Get("X-RateLimit-Reset-After")), 64)
	}
	if secs <= 0 || math.IsNaN(secs) {
		return 0
	}
	if secs >= maxRetryAfter.Seconds() {
		return maxRetryAfter
	}
	return time.Duration(secs * float64(time.Second)).Round(time.Millisecond)
}

// discordResponse is what a discordTransport saw of one call.
type discordResponse struct {
	called bool        // the request reached the transport
	status int         // 0 when no response arrived
	reason string      // resp.Status, e.g. "400 Bad Request"
	header http.Header // the response headers, rate-limit headers included
	body   []byte      // the start of a non-2xx body, raw
}

// discordTransport sends discordgo's requests to the configured API base, and records the
// status, headers and start of the body of the answer. discordgo builds its URLs from package
// variables fixed at start-up (https://discord.com/api/v10/...); rewriting them here, per
// notifier, points it at a proxy or a stand-in without changing them for every other user of
// the package. A request for anything outside that base is refused, so that a token is never
// sent elsewhere. One discordTransport serves one call.
type discordTransport struct {
	base     http.RoundTripper
	from, to *url.URL

	mu  sync.Mutex
	got discordResponse
}

// RoundTrip implements http.RoundTripper.
func (t *discordTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	u, err := t.rewrite(req.URL)
	if err != nil {
		if req.Body != nil {
			req.Body.Close()
		}
		return nil, err
	}
	out := req.Clone(req.Context())
	out.URL, out.Host = u, u.Host
	t.mu.Lock()
	t.got.called = true
	t.mu.Unlock()
	resp, err := t.base.RoundTrip(out)
	if err != nil {
		return nil, err
	}
	got := discordResponse{called: true, status: resp.StatusCode, reason: resp.Status, header: resp.Header.Clone()}
	if got.reason == "" {
		got.reason = strconv.Itoa(resp.StatusCode) + " " + http.StatusText(resp.StatusCode)
	}
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		head, _ := io.ReadAll(io.LimitReader(resp.Body, discordMaxCaptureBody))
		got.body = head
		resp.Body = &replayBody{Reader: io.MultiReader(bytes.NewReader(head), resp.Body), Closer: resp.Body}
	}
	// discordgo's rate limiter reads these and fails the call on values it cannot parse; the
	// session is thrown away after the call, so they would serve nothing. classify reads them
	// from the copy kept above.
	for k := range resp.Header {
		if strings.HasPrefix(strings.ToLower(k), "x-ratelimit-") {
			resp.Header.Del(k)
		}
	}
	t.mu.Lock()
	t.got = got
	t.mu.Unlock()
	return resp, nil
}

// rewrite moves a URL under from to the same place under to.
func (t *discordTransport) rewrite(in *url.URL) (*url.URL, error) {
	fromPath := t.from.EscapedPath()
	p := in.EscapedPath()
	if in.Scheme != t.from.Scheme || in.Host != t.from.Host || !strings.HasPrefix(p, fromPath) {
		return nil, errors.New("discord: request outside the API")
	}
	esc := t.to.EscapedPath() + p[len(fromPath):]
	unesc, err := url.PathUnescape(esc)
	if err != nil {
		return nil, errors.New("discord: request path cannot be rewritten")
	}
	u := *in
	u.Scheme, u.Host, u.Path, u.RawPath = t.to.Scheme, t.to.Host, unesc, ""
	if u.EscapedPath() != esc {
		u.RawPath = esc
	}
	return &u, nil
}

// destination makes the URL in a transport error the one the request went to, rather than
// the discord.com URL discordgo built, so that the error names the server that failed.
func (t *discordTransport) destination(err error) error {
	var ue *url.Error
	if !errors.As(err, &ue) {
		return err
	}
	u, perr := url.Parse(ue.URL)
	if perr != nil {
		return err
	}
	if to, rerr := t.rewrite(u); rerr == nil {
		return &url.Error{Op: ue.Op, URL: to.String(), Err: ue.Err}
	}
	return err
}

// result is what the transport saw of the last response.
func (t *discordTransport) result() discordResponse {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.got
}

// discordMessage is what Notify sends, built from a relay.Message.
type discordMessage struct {
	Content         string
	Embeds          []*discordgo.MessageEmbed
	AllowedMentions *discordgo.MessageAllowedMentions
	Files           []discordFile
}

// discordFile is an attachment under the name it is sent as.
type discordFile struct {
	Name        string
	ContentType string
	Data        []byte
}

// discordFiles gives the files as discordgo wants them, each with a fresh reader.
func (p discordMessage) discordFiles() []*discordgo.File {
	var out []*discordgo.File
	for _, f := range p.Files {
		out = append(out, &discordgo.File{Name: f.Name, ContentType: f.ContentType, Reader: bytes.NewReader(f.Data)})
	}
	return out
}

// params is the payload sent to a webhook (without Username and AvatarURL), for golden files.
func (p discordMessage) params() *discordgo.WebhookParams {
	return &discordgo.WebhookParams{Content: p.Content, Embeds: p.Embeds, AllowedMentions: p.AllowedMentions}
}

// discordPayload builds the message for m: a short plain content, one embed with the event's
// facts and its first image, up to three more image-only embeds that Discord shows with it as a
// gallery, and the attachments as files. Nothing in it can ping anyone: allowed_mentions parses
// no mention, and mentions in outside text are broken up besides. Every text is cut to
// Discord's limits, never refused.
func discordPayload(m relay.Message) discordMessage {
	files, skipped := discordAttachments(m.Attachments)
	ev := m.Event

	main := &discordgo.MessageEmbed{Type: discordgo.EmbedTypeRich, Color: discordBlue}
	main.Title = truncateDiscord(neutraliseMentions(oneLine(stripControl(m.Title))), discordMaxTitle)
	body := strings.TrimSpace(stripControl(m.Body))
	if links := skippedLinks(skipped, body); links != "" {
		body = strings.TrimSpace(body + "\n\n" + links)
	}
	main.Description = truncateDiscord(neutraliseMentions(body), discordMaxDescription)
	// A footer shows its text as written, without markdown; the templates give it plain.
	if footer := oneLine(stripControl(m.Context)); footer != "" {
		main.Footer = &discordgo.MessageEmbedFooter{Text: truncateRunes(neutraliseMentions(footer), discordMaxFooter)}
	}
	var images []string
	if ev != nil {
		main.Color = discordColour(ev.Status)
		if u := ev.WebURL(); len(u) <= discordMaxURL && checkLinkURL(u) == nil {
			main.URL = u
		}
		main.Fields = discordFields(ev)
		switch ts := ev.CompletedAt; {
		case !ts.IsZero():
			main.Timestamp = ts.UTC().Format(time.RFC3339)
		case !ev.ReceivedAt.IsZero():
			main.Timestamp = ev.ReceivedAt.UTC().Format(time.RFC3339)
		}
	}
	// Attached images outlive Replicate's links, which expire after an hour: prefer them.
	for _, f := range files {
		if isImageFile(f.Name, f.ContentType) {
			images = append(images, "attachment://"+f.Name)
		}
	}
	if len(images) == 0 && ev != nil {
		for _, u := range ev.Images() {
			if len(u) <= discordMaxURL && checkLinkURL(u) == nil {
				images = append(images, u)
			}
		}
	}
	embeds := []*discordgo.MessageEmbed{main}
	for i, img := range images {
		if i == 0 {
			main.Image = &discordgo.MessageEmbedImage{URL: img}
			continue
		}
		// A gallery needs the embeds to share a URL; without one, only the first image shows.
		if main.URL == "" || i == discordMaxImages || len(embeds) == discordMaxEmbeds {
			break
		}
		embeds = append(embeds, &discordgo.MessageEmbed{Type: discordgo.EmbedTypeRich, URL: main.URL, Image: &discordgo.MessageEmbedImage{URL: img}})
	}
	fitEmbed(main, discordMaxEmbedTotal)

	p := discordMessage{
		Content:         truncateDiscord(neutraliseMentions(oneLine(stripControl(m.Text))), discordMaxFallback),
		AllowedMentions: &discordgo.MessageAllowedMentions{Parse: []discordgo.AllowedMentionType{}},
		Files:           files,
	}
	if embedEmpty(main) {
		embeds = embeds[1:]
	}
	if len(embeds) > 0 {
		p.Embeds = embeds
	}
	if p.Content == "" && len(p.Embeds) == 0 && len(p.Files) == 0 {
		// Discord refuses an empty message.
		p.Content = "relay notification"
	}
	return p
}

// embedEmpty reports whether e shows nothing, which Discord refuses.
func embedEmpty(e *discordgo.MessageEmbed) bool {
	return e.Title == "" && e.Description == "" && len(e.Fields) == 0 && e.Footer == nil && e.Image == nil
}

// discordColour is the embed's colour for a status.
func discordColour(s replicate.Status) int {
	switch s {
	case replicate.Succeeded:
		return discordGreen
	case replicate.Failed:
		return discordRed
	case replicate.Canceled:
		return discordGrey
	case replicate.Aborted:
		return discordOrange
	}
	return discordBlue
}

// discordFields is the event's facts as embed fields, their values escaped for Discord
// markdown.
func discordFields(ev *relay.Event) []*discordgo.MessageEmbedField {
	var fields []*discordgo.MessageEmbedField
	add := func(name, value string, inline bool, max int) {
		value = oneLine(stripControl(value))
		if value == "" || len(fields) == discordMaxFields {
			return
		}
		value = truncateDiscord(escapeDiscord(truncateRunes(value, max)), discordMaxFieldValue)
		fields = append(fields, &discordgo.MessageEmbedField{Name: truncateRunes(name, discordMaxFieldName), Value: value, Inline: inline})
	}
	add("Model", ev.Model, true, discordMaxFactValue)
	add("Status", string(ev.Status), true, discordMaxFactValue)
	if d := ev.Duration(); d > 0 {
		add("Duration", formatDuration(d), true, discordMaxFactValue)
	}
	if ev.Kind == relay.KindTraining {
		add("New version", ev.NewVersion(), false, discordMaxFactValue)
	}
	add("Prompt", ev.Prompt(), false, discordMaxPrompt)
	add("Error", ev.ErrorLine(), false, discordMaxFieldValue)
	return fields
}

// fitEmbed cuts e's texts until they add up to at most budget characters, taking from the
// least important first: the description, the footer, the fields (last first), the title.
func fitEmbed(e *discordgo.MessageEmbed, budget int) {
	over := embedSize(e) - budget
	if over <= 0 {
		return
	}
	cut := func(s string, markdown bool) string {
		n := utf8.RuneCountInString(s)
		keep := max(0, n-over)
		var out string
		if markdown {
			out = truncateDiscord(s, keep)
		} else {
			out = truncateRunes(s, keep)
		}
		over -= n - utf8.RuneCountInString(out)
		return out
	}
	e.Description = cut(e.Description, true)
	if over > 0 && e.Footer != nil {
		if e.Footer.Text = cut(e.Footer.Text, false); e.Footer.Text == "" {
			e.Footer = nil
		}
	}
	for i := len(e.Fields) - 1; i >= 0 && over > 0; i-- {
		if e.Fields[i].Value = cut(e.Fields[i].Value, true); e.Fields[i].Value == "" {
			over -= utf8.RuneCountInString(e.Fields[i].Name)
			e.Fields = append(e.Fields[:i], e.Fields[i+1:]...)
		}
	}
	if over > 0 {
		e.Title = cut(e.Title, true)
	}
}

// embedSize is what Discord counts of an embed against the 6000-character total.
func embedSize(e *discordgo.MessageEmbed) int {
	n := utf8.RuneCountInString(e.Title) + utf8.RuneCountInString(e.Description)
	for _, f := range e.Fields {
		n += utf8.RuneCountInString(f.Name) + utf8.RuneCountInString(f.Value)
	}
	if e.Footer != nil {
		n += utf8.RuneCountInString(e.Footer.Text)
	}
	if e.Author != nil {
		n += utf8.RuneCountInString(e.Author.Name)
	}
	return n
}

// discordAttachments picks the attachments to send as files, under names Discord keeps as they
// are (it rewrites others, which would break attachment:// references): at most ten, and no
// more bytes than Discord accepts in one message. The others are returned as skipped.
func discordAttachments(atts []relay.Attachment) (files []discordFile, skipped []relay.Attachment) {
	used := map[string]bool{}
	total := 0
	for i, a := range atts {
		if len(files) == discordMaxFiles || len(a.Data) == 0 || total+len(a.Data) > discordMaxUpload {
			skipped = append(skipped, a)
			continue
		}
		name := uniqueName(sanitizeFileName(a.Name, i), used)
		used[name] = true
		total += len(a.Data)
		files = append(files, discordFile{Name: name, ContentType: a.ContentType, Data: a.Data})
	}
	return files, skipped
}

// sanitizeFileName keeps letters, digits, dots, dashes and underscores, the characters Discord
// leaves alone in a file name.
func sanitizeFileName(name string, i int) string {
	name = path.Base(strings.ReplaceAll(name, `\`, "/"))
	var sb strings.Builder
	for _, r := range name {
		if isFileNameRune(r) {
			sb.WriteRune(r)
		} else {
			sb.WriteByte('_')
		}
	}
	s := strings.TrimLeft(sb.String(), ".")
	if strings.Trim(s, "_") == "" {
		s = fmt.Sprintf("file-%d", i)
	}
	if len(s) > discordMaxFileName {
		ext := path.Ext(s)
		if len(ext) > 10 {
			ext = ""
		}
		s = s[:discordMaxFileName-len(ext)] + ext
	}
	return s
}

func isFileNameRune(r rune) bool {
	return r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '.' || r == '-' || r == '_'
}

// uniqueName makes name differ from the names already used, as out-1.png, out-2.png...
func uniqueName(name string, used map[string]bool) string {
	if !used[name] {
		return name
	}
	ext := path.Ext(name)
	stem := strings.TrimSuffix(name, ext)
	for i := 1; ; i++ {
		if c := fmt.Sprintf("%s-%d%s", stem, i, ext); !used[c] {
			return c
		}
	}
}

// isImageFile reports whether a file is an image Discord can show in an embed.
func isImageFile(name, contentType string) bool {
	switch strings.ToLower(path.Ext(name)) {
	case ".png", ".jpg", ".jpeg", ".webp", ".gif":
		return true
	}
	return strings.HasPrefix(strings.ToLower(contentType), "image/")
}

// skippedLinks lists, as markdown links, the attachments that were not sent and whose link the
// body does not already have, so that they can still be reached.
func skippedLinks(skipped []relay.Attachment, body string) string {
	var links []string
	for _, a := range skipped {
		if a.URL == "" || strings.Contains(body, a.URL) || checkLinkURL(a.URL) != nil || strings.ContainsAny(a.URL, " ()<>") {
			continue
		}
		name := a.Name
		if name == "" {
			name = "file"
		}
		links = append(links, "["+escapeDiscord(oneLine(stripControl(name)))+"]("+a.URL+")")
	}
	return strings.Join(links, " · ")
}

// discordEscaper escapes the characters Discord markdown gives a meaning to anywhere in a line:
// bold and italics, underline, strike-through, code, spoilers, quotes and masked links.
var discordEscaper = strings.NewReplacer(
	`\`, `\\`, `*`, `\*`, `_`, `\_`, `~`, `\~`, "`", "\\`", `|`, `\|`, `>`, `\>`, `[`, `\[`, `]`, `\]`,
)

// escapeDiscord escapes outside text (a prompt, an error, a model name) for Discord markdown,
// and breaks up mentions so that they show as text even where allowed_mentions does not apply.
// Headings and lists only start a line, so only a leading #, - or + and "1." are escaped.
//
// URLs (from http:// or https:// to the next space) are copied as they are: Discord makes them
// links before it reads markdown in them, and a backslash would break the link.
func escapeDiscord(s string) string {
	s = escapeOutsideURLs(s)
	var out strings.Builder
	for i, line := range strings.Split(s, "\n") {
		if i > 0 {
			out.WriteByte('\n')
		}
		out.WriteString(escapeLineStart(line))
	}
	return neutraliseMentions(out.String())
}

// escapeLineStart escapes the markdown that only counts at the start of a line.
func escapeLineStart(line string) string {
	trimmed := strings.TrimLeft(line, " ")
	lead := line[:len(line)-len(trimmed)]
	switch {
	case strings.HasPrefix(trimmed, "#"), strings.HasPrefix(trimmed, "-"), strings.HasPrefix(trimmed, "+"):
		return lead + `\` + trimmed
	}
	digits := len(trimmed) - len(strings.TrimLeft(trimmed, "0123456789"))
	if digits > 0 && strings.HasPrefix(trimmed[digits:], ". ") {
		return lead + trimmed[:digits] + `\` + trimmed[digits:]
	}
	return line
}

// mentionBreaker puts a zero-width space into @everyone, @here, <@...> (users and roles) and
// <#...> (channels), so that they show as written and ping no one, as the templates do.
var mentionBreaker = strings.NewReplacer("@everyone", "@\u200beveryone", "@here", "@\u200bhere", "<@", "<\u200b@", "<#", "<\u200b#")

func neutraliseMentions(s string) string { return mentionBreaker.Replace(s) }

// truncateDiscord cuts Discord markdown to at most n runes, ending with an ellipsis when cut,
// without leaving an escape dangling or a code block open.
func truncateDiscord(s string, n int) string {
	if n <= 0 {
		return ""
	}
	r := []rune(s)
	if len(r) <= n {
		return s
	}
	const closing = "\n```"
	cut := n - 1
	fenced := strings.Count(string(r[:cut]), "```")%2 == 1
	if fenced {
		cut -= len(closing)
	}
	if cut < 0 {
		cut, fenced = 0, false
	}
	// Drop backticks left of the cut, which could be half a fence.
	for fenced && cut > 0 && r[cut-1] == '`' {
		cut--
	}
	// A backslash escaping nothing would escape the ellipsis instead.
	slashes := 0
	for i := cut - 1; i >= 0 && r[i] == '\\'; i-- {
		slashes++
	}
	if slashes%2 == 1 {
		cut--
	}
	out := string(r[:cut]) + "…"
	if fenced {
		out += closing
	}
	return out
}

// escapeOutsideURLs applies discordEscaper to s but for the URLs in it.
func escapeOutsideURLs(s string) string {
	var b strings.Builder
	for s != "" {
		i := urlStart(s)
		if i < 0 {
			b.WriteString(discordEscaper.Replace(s))
			break
		}
		b.WriteString(discordEscaper.Replace(s[:i]))
		end := i + strings.IndexFunc(s[i:], unicode.IsSpace)
		if end < i {
			end = len(s)
		}
		b.WriteString(s[i:end])
		s = s[end:]
	}
	return b.String()
}

// urlStart is the index of the first http:// or https:// in s that starts a word, or -1.
func urlStart(s string) int {
	for i := 0; i < len(s); i++ {
		if (s[i] == 'h' || s[i] == 'H') && (i == 0 || !isWordByte(s[i-1])) {
			rest := strings.ToLower(s[i:min(len(s), i+8)])
			if strings.HasPrefix(rest, "http://") || strings.HasPrefix(rest, "https://") {
				return i
			}
		}
	}
	return -1
}

func isWordByte(c byte) bool {
	return c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '_'
}
