package notifiers

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/slack-go/slack"

	"github.com/mlrelay/relay/relay"
)

// Block Kit limits, from Slack's reference. Texts are counted in characters (runes here).
const (
	slackMaxHeader      = 150  // header block: plain_text
	slackMaxSection     = 3000 // section block: text
	slackMaxFields      = 10   // section block: number of fields
	slackMaxFieldValue  = 300  // our own bound on one field value (Slack allows 2000 per field)
	slackMaxImageURL    = 3000 // image block: image_url
	slackMaxAltText     = 2000 // image block: alt_text
	slackMaxButtonURL   = 3000 // button element: url
	slackMaxContext     = 3000 // context block: a text element
	slackMaxText        = 4000 // message text: Slack advises 4,000 and truncates beyond 40,000
	slackMaxImages      = 4    // our bound: image blocks per message
	slackMaxBodyParts   = 5    // our bound: section blocks for the body
	slackMaxPromptInAlt = 100  // our bound: prompt runes quoted in an image's alt text
	slackDefaultTimeout = 10 * time.Second
)

// Limits on the attachments uploaded after a message.
const (
	slackMaxFiles     = 10            // our bound: files per message
	slackMaxFileBytes = 1_000_000_000 // Slack's limit on one file, 1 GB
)

// slackDefaultAPIURL is Slack's Web API.
const slackDefaultAPIURL = "https://slack.com/api/"

// SlackOptions configures a Slack notifier. Set either WebhookURL, or Token and Channel.
type SlackOptions struct {
	// WebhookURL is an incoming webhook (https://hooks.slack.com/services/...). It is a secret.
	// Messages sent through it have no reference, so they cannot be edited or threaded later.
	WebhookURL string
	// Token is a bot token (xoxb-...) with the chat:write scope, used with Channel to send
	// through the Web API's chat.postMessage. Uploading a message's attachments also needs
	// files:write (and, Slack's documentation says, files:read). It is a secret.
	Token string
	// Channel is the channel ID (C0123ABCD) or name (#alerts) the bot posts to.
	Channel string
	// APIURL is the base of the Web API. Default https://slack.com/api/.
	APIURL string
	// Timeout bounds one send, retries for a rejected image included, and, separately, the
	// upload of its attachments that follows. Default 10s.
	Timeout time.Duration
	// HTTPClient sends the requests. Default: a client that follows no redirects.
	HTTPClient *http.Client
	// Username overrides the sender's name. Default: none (the app's name). With a bot token it
	// needs the chat:write.customize scope; apps' incoming webhooks ignore it.
	Username string
	// IconEmoji overrides the sender's icon, e.g. ":robot_face:". Default: none. Same caveats as
	// Username.
	IconEmoji string
	// Log receives a warning for each attachment that was not uploaded although its message
	// went out, since Notify does not fail for it. Default: slog.Default().
	Log *slog.Logger
}

// Slack sends messages to a Slack channel as Block Kit messages. It is safe for concurrent use.
//
// With a bot token, a message's attachments (relay.Message.Attachments) are uploaded after it,
// with Slack's external upload flow, into its thread. An incoming webhook cannot upload files:
// in webhook mode the attachments are ignored, and the message keeps the links it already has.
type Slack struct {
	webhook   string // webhook mode when set
	api       string // Web API base, ending in "/"
	token     string
	channel   string
	username  string
	iconEmoji string
	timeout   time.Duration
	client    *http.Client
	redact    redactor
	log       *slog.Logger
	maxFile   int // bytes of one attachment, slackMaxFileBytes (tests lower it)
}

var _ relay.Notifier = (*Slack)(nil)

// NewSlack validates o, fills in its defaults and returns the notifier. Its errors never contain
// the webhook URL or the token.
func NewSlack(o SlackOptions) (*Slack, error) {
	s := &Slack{
		token:     strings.TrimSpace(o.Token),
		channel:   strings.TrimSpace(o.Channel),
		username:  o.Username,
		iconEmoji: o.IconEmoji,
		timeout:   o.Timeout,
		client:    o.HTTPClient,
		log:       o.Log,
		maxFile:   slackMaxFileBytes,
	}
	webhook := strings.TrimSpace(o.WebhookURL)
	switch {
	case webhook != "" && (s.token != "" || s.channel != ""):
		return nil, errors.New("slack: set either webhook_url, or token and channel, not both")
	case webhook == "" && s.token == "" && s.channel == "":
		return nil, errors.New("slack: set webhook_url, or token and channel")
	case webhook == "" && s.token == "":
		return nil, errors.New("slack: if channel is set, token must be set too")
	case webhook == "" && s.channel == "":
		return nil, errors.New("slack: if token is set, channel must be set too")
	}
	if webhook != "" {
		// The URL is a secret: say what is wrong with it without repeating it.
		if err := checkHTTPURL(webhook); err != nil {
			return nil, fmt.Errorf("slack: webhook_url %s", err)
		}
		s.webhook = webhook
	} else {
		if strings.ContainsFunc(s.token, func(r rune) bool { return r <= ' ' || r == 0x7f }) {
			return nil, errors.New("slack: token contains spaces or control characters")
		}
		api := strings.TrimSpace(o.APIURL)
		if api == "" {
			api = slackDefaultAPIURL
		}
		if err := checkHTTPURL(api); err != nil {
			return nil, fmt.Errorf("slack: api_url %s %s", shownURL(api), err)
		}
		s.api = strings.TrimRight(api, "/") + "/"
	}
	if s.timeout < 0 {
		return nil, fmt.Errorf("slack: timeout %s is negative", s.timeout)
	}
	if s.timeout == 0 {
		s.timeout = slackDefaultTimeout
	}
	if s.client == nil {
		s.client = defaultHTTPClient()
	}
	if s.log == nil {
		s.log = slog.Default()
	}
	secrets := []string{s.token}
	if s.webhook != "" {
		secrets = append(secrets, urlSecrets(s.webhook)...)
	}
	s.redact = newRedactor(secrets...)
	return s, nil
}

// checkHTTPURL reports what is wrong with an http(s) URL, in words that do not repeat it.
func checkHTTPURL(raw string) error {
	u, err := url.Parse(raw)
	switch {
	case err != nil:
		return errors.New("is not a valid URL")
	case u.Scheme != "https" && u.Scheme != "http":
		return errors.New("must start with https://")
	case u.Host == "":
		return errors.New("has no host")
	case u.Fragment != "":
		return errors.New("must not have a #fragment")
	}
	return nil
}

// checkLinkURL is checkHTTPURL for a link shown to people, from an event: no user info either,
// since "https://replicate.com@evil.example/" reads as one host and goes to another.
func checkLinkURL(raw string) error {
	if err := checkHTTPURL(raw); err != nil {
		return err
	}
	if u, _ := url.Parse(raw); u.User != nil {
		return errors.New("must not have user info")
	}
	return nil
}

// Notify sends m. With a bot token, the reference returned is the message's ts; a webhook gives
// none. Failures are classified here: see classifyStatus for HTTP statuses, apiErrorClass for
// the Web API's error codes, and transportError for calls that got no answer.
//
// With a bot token, m's attachments are uploaded once the message is out, into its thread. The
// message is what counts: an attachment that cannot be uploaded is logged (see
// SlackOptions.Log) and Notify still succeeds, since an error would have the message sent again.
func (s *Slack) Notify(ctx context.Context, m relay.Message) (string, error) {
	ref, channel, err := s.post(ctx, m)
	if err != nil || s.webhook != "" {
		return ref, err
	}
	s.upload(ctx, channel, ref, m.Attachments)
	return ref, nil
}

// post sends m's message, within the timeout. With a bot token it returns the message's ts and
// the ID of the channel it went to.
func (s *Slack) post(ctx context.Context, m relay.Message) (ts, channel string, err error) {
	ctx, cancel := context.WithTimeout(ctx, s.timeout)
	defer cancel()
	text := slackText(m)
	blocks := slackBlocks(m, true)
	ts, channel, reason, err := s.send(ctx, text, blocks)
	if err != nil && strings.HasPrefix(reason, "invalid_blocks") && hasImages(blocks) {
		// Slack fetches every image when the message is posted and rejects the whole message
		// when one fails, which is what happens once Replicate has deleted its outputs (about an
		// hour after the run). The message is worth more than its pictures: send it again with
		// links in their place.
		ts, channel, _, err = s.send(ctx, text, slackBlocks(m, false))
	}
	return ts, channel, err
}

// send posts one message. reason is Slack's error code when Slack refused it, for Notify to
// decide on a second try. ts and channel are empty for a webhook.
func (s *Slack) send(ctx context.Context, text string, blocks []slack.Block) (ts, channel, reason string, err error) {
	if s.webhook != "" {
		reason, err := s.postWebhook(ctx, text, blocks)
		return "", "", reason, err
	}
	return s.postMessage(ctx, text, blocks)
}

// postWebhook posts to an incoming webhook.
func (s *Slack) postWebhook(ctx context.Context, text string, blocks []slack.Block) (reason string, err error) {
	const what = "slack webhook"
	msg := &slack.WebhookMessage{
		Text:      text,
		Blocks:    &slack.Blocks{BlockSet: blocks},
		Username:  s.username,
		IconEmoji: s.iconEmoji,
	}
	client, capture := withCapture(s.client)
	err = slack.PostWebhookCustomHTTPContext(ctx, s.webhook, client, msg)
	got := capture.result()
	switch {
	case err == nil, got.status >= 200 && got.status <= 299:
		// slack-go wants exactly 200; any 2xx means the message was taken.
		return "", nil
	case got.status == 0:
		return "", s.transportError(what, got, err)
	}
	reason = s.reason(got)
	return reason, classifyStatus(got.status, got.header, s.redact.error(statusError(what, got, reason)))
}

// reason is the start of a failed response's body, redacted, then cut to size; from a Web API
// body ({"ok":false,"error":"..."}), only the error code.
func (s *Slack) reason(got response) string {
	var body struct {
		Error string `json:"error"`
	}
	if json.Unmarshal([]byte(got.snippet), &body) == nil && body.Error != "" {
		return cleanLine(s.redact.text(body.Error), maxErrorBody)
	}
	return cleanLine(s.redact.text(got.snippet), maxErrorBody)
}

// postMessage posts through the Web API's chat.postMessage and returns the message's ts and its
// channel's ID.
func (s *Slack) postMessage(ctx context.Context, text string, blocks []slack.Block) (ts, channel, reason string, err error) {
	const what = "slack chat.postMessage"
	client, capture := withCapture(s.client)
	api := slack.New(s.token, slack.OptionAPIURL(s.api), slack.OptionHTTPClient(client))
	opts := []slack.MsgOption{slack.MsgOptionBlocks(blocks...), slack.MsgOptionText(text, false)}
	if s.username != "" {
		opts = append(opts, slack.MsgOptionUsername(s.username))
	}
	if s.iconEmoji != "" {
		opts = append(opts, slack.MsgOptionIconEmoji(s.iconEmoji))
	}
	channel, ts, err = api.PostMessageContext(ctx, s.channel, opts...)
	if err == nil {
		return ts, channel, "", nil
	}
	got := capture.result()
	var se slack.SlackErrorResponse
	switch {
	case errors.As(err, &se):
		return "", "", se.Err, s.apiError(what, se, got)
	case got.status == 0:
		return "", "", "", s.transportError(what, got, err)
	case got.status != http.StatusOK:
		reason := s.reason(got)
		return "", "", reason, classifyStatus(got.status, got.header, s.redact.error(statusError(what, got, reason)))
	}
	// A 200 that is not Slack's JSON: a proxy or a truncated body. Unknown, so retried.
	return "", "", "", relay.Retryable(s.redact.error(fmt.Errorf("%s: unreadable response: %w", what, err)), 0)
}

// slackFile is an attachment to upload, under the name it is uploaded as.
type slackFile struct {
	name string
	data []byte
}

// slackFiles picks the attachments to upload: those with data, no larger than maxBytes, at
// most slackMaxFiles of them, under safe and distinct names. It logs the ones left out for their
// size or their number; those without data have nothing to upload.
func (s *Slack) slackFiles(atts []relay.Attachment, maxBytes int) []slackFile {
	var files []slackFile
	used := map[string]bool{}
	for i, a := range atts {
		if len(a.Data) == 0 {
			continue
		}
		name := uniqueName(sanitizeFileName(a.Name, i), used)
		switch {
		case len(a.Data) > maxBytes:
			s.log.Warn("slack: attachment not uploaded: larger than Slack takes; the message keeps its link",
				"file", name, "bytes", len(a.Data), "max_bytes", maxBytes)
			continue
		case len(files) == slackMaxFiles:
			s.log.Warn("slack: attachment not uploaded: too many files; the message keeps its link",
				"file", name, "max_files", slackMaxFiles)
			continue
		}
		used[name] = true
		files = append(files, slackFile{name: name, data: a.Data})
	}
	return files
}

// upload shares atts in the thread of the message ts in channel, through Slack's external upload
// flow (files.upload is retired): files.getUploadURLExternal and a POST of the bytes for each
// file, then one files.completeUploadExternal for them all. It runs within a timeout of its own
// under ctx. It returns nothing: the message is out, so a failure is only logged, naming the
// file and Slack's reason; a file that fails is left out and the others still go.
func (s *Slack) upload(ctx context.Context, channel, ts string, atts []relay.Attachment) {
	files := s.slackFiles(atts, s.maxFile)
	if len(files) == 0 {
		return
	}
	if channel == "" {
		channel = s.channel // chat.postMessage always names the channel; this is a fallback
	}
	ctx, cancel := context.WithTimeout(ctx, s.timeout)
	defer cancel()
	api := slack.New(s.token, slack.OptionAPIURL(s.api), slack.OptionHTTPClient(s.client))
	warn := func(name, step, reason string) {
		s.log.Warn("slack: attachment not uploaded; the message keeps its link",
			"file", name, "step", step, "err", reason, "channel", channel, "ts", ts)
	}
	var sent []slack.FileSummary
	for _, f := range files {
		const getURL = "files.getUploadURLExternal"
		u, err := api.GetUploadURLExternalContext(ctx, slack.GetUploadURLExternalParameters{FileName: f.name, FileSize: len(f.data)})
		if err != nil {
			warn(f.name, getURL, s.uploadFailure(err, ""))
			continue
		}
		if u.FileID == "" || u.UploadURL == "" {
			warn(f.name, getURL, "no upload URL or file ID in the answer")
			continue
		}
		// slack-go sends the token along only to a Slack host or the configured API's.
		err = api.UploadToURL(ctx, slack.UploadToURLParameters{UploadURL: u.UploadURL, Reader: bytes.NewReader(f.data), Filename: f.name})
		if err != nil {
			warn(f.name, "upload", s.uploadFailure(err, u.UploadURL))
			continue
		}
		sent = append(sent, slack.FileSummary{ID: u.FileID, Title: f.name})
	}
	if len(sent) == 0 {
		return
	}
	_, err := api.CompleteUploadExternalContext(ctx, slack.CompleteUploadExternalParameters{
		Files:           sent,
		Channel:         channel,
		ThreadTimestamp: ts,
	})
	if err != nil {
		reason := s.uploadFailure(err, "")
		for _, f := range sent {
			warn(f.Title, "files.completeUploadExternal", reason)
		}
	}
}

// uploadFailure is a failed upload step's reason, for the log: Slack's error code, the HTTP
// status, or the error's text with the token and the upload URL scrubbed from it (the URL, its
// query string included, is a credential of its own).
func (s *Slack) uploadFailure(err error, uploadURL string) string {
	var se slack.SlackErrorResponse
	var rl *slack.RateLimitedError
	var sc slack.StatusCodeError
	switch {
	case errors.As(err, &se):
		return cleanLine(s.redact.text(se.Err), 64)
	case errors.As(err, &rl):
		return fmt.Sprintf("ratelimited (retry after %s)", rl.RetryAfter)
	case errors.As(err, &sc):
		return cleanLine(s.redact.text(sc.Status), 64)
	}
	secrets := []string{s.token}
	if uploadURL != "" {
		secrets = append(secrets, urlSecrets(uploadURL)...)
	}
	return cleanLine(newRedactor(secrets...).text(err.Error()), maxErrorBody)
}

// transportError classifies a call that got no response. A request that could not even be built
// will never succeed; a network error, a timeout or a cancellation may next time.
func (s *Slack) transportError(what string, got response, err error) error {
	cancelled := errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded)
	err = s.redact.error(err)
	if !got.called && !cancelled {
		return relay.Permanent(fmt.Errorf("%s: cannot build request: %w", what, err))
	}
	return relay.Retryable(fmt.Errorf("%s: %w", what, err), 0)
}

// apiError classifies a Web API error code; see apiErrorClass.
func (s *Slack) apiError(what string, se slack.SlackErrorResponse, got response) error {
	// Slack's texts are redacted before they are cut, so that no part of a secret survives.
	msg := what + ": " + cleanLine(s.redact.text(se.Err), 64)
	var details []string
	if se.Needed != "" {
		details = append(details, "needed: "+se.Needed)
	}
	details = append(details, se.ResponseMetadata.Messages...)
	if len(details) > 0 {
		msg += " (" + cleanLine(s.redact.text(strings.Join(details, "; ")), maxErrorBody) + ")"
	}
	err := s.redact.error(errors.New(msg))
	switch apiErrorClass(se.Err) {
	case classRateLimited:
		return relay.RateLimited(err, retryAfter(got.header, time.Now()))
	case classPermanent:
		return relay.Permanent(err)
	}
	return relay.Retryable(err, retryAfter(got.header, time.Now()))
}

// errorClass is how a failure is handled.
type errorClass int

const (
	classRetryable errorClass = iota
	classPermanent
	classRateLimited
)

// slackAPIErrors classifies chat.postMessage's error codes. Codes not listed are retried: a new
// code is more often a passing condition than a lasting one, and the dispatcher bounds attempts.
var slackAPIErrors = map[string]errorClass{
	// Rate limits.
	"ratelimited":            classRateLimited,
	"rate_limited":           classRateLimited,
	"message_limit_exceeded": classRateLimited,

	// Slack's own trouble.
	"internal_error":      classRetryable,
	"fatal_error":         classRetryable,
	"service_unavailable": classRetryable,
	"request_timeout":     classRetryable,

	// The token: a person has to fix it.
	"invalid_auth":               classPermanent,
	"not_authed":                 classPermanent,
	"account_inactive":           classPermanent,
	"token_revoked":              classPermanent,
	"token_expired":              classPermanent,
	"no_permission":              classPermanent,
	"missing_scope":              classPermanent,
	"not_allowed_token_type":     classPermanent,
	"org_login_required":         classPermanent,
	"ekm_access_denied":          classPermanent,
	"two_factor_setup_required":  classPermanent,
	"enterprise_is_restricted":   classPermanent,
	"team_access_not_granted":    classPermanent,
	"access_denied":              classPermanent,
	"accesslimited":              classPermanent,
	"invalid_arg_name":           classPermanent,
	"deprecated_endpoint":        classPermanent,
	"method_deprecated":          classPermanent,
	"as_user_not_supported":      classPermanent,
	"slack_connect_blocked_file": classPermanent,

	// The channel.
	"channel_not_found":                        classPermanent,
	"not_in_channel":                           classPermanent,
	"is_archived":                              classPermanent,
	"restricted_action":                        classPermanent,
	"restricted_action_read_only_channel":      classPermanent,
	"restricted_action_thread_only_channel":    classPermanent,
	"restricted_action_non_threadable_channel": classPermanent,
	"messages_tab_disabled":                    classPermanent,
	"team_not_found":                           classPermanent,

	// The message itself.
	"msg_too_long":                   classPermanent,
	"invalid_blocks":                 classPermanent,
	"invalid_blocks_format":          classPermanent,
	"invalid_attachments":            classPermanent,
	"too_many_attachments":           classPermanent,
	"invalid_arguments":              classPermanent,
	"invalid_array_arg":              classPermanent,
	"invalid_form_data":              classPermanent,
	"invalid_post_type":              classPermanent,
	"missing_post_type":              classPermanent,
	"invalid_charset":                classPermanent,
	"invalid_json":                   classPermanent,
	"json_not_object":                classPermanent,
	"no_text":                        classPermanent,
	"invalid_metadata_format":        classPermanent,
	"invalid_metadata_schema":        classPermanent,
	"metadata_too_large":             classPermanent,
	"metadata_must_be_sent_from_app": classPermanent,
}

// apiErrorClass classifies a Web API error code.
func apiErrorClass(code string) errorClass {
	if c, ok := slackAPIErrors[code]; ok {
		return c
	}
	return classRetryable
}

// slackText is the message's fallback text, shown in notifications. Slack reads it as mrkdwn;
// the templates already escaped it for the slack target (relay.Message.Text), so it is not
// escaped again here, which would show "&amp;" for "&".
func slackText(m relay.Message) string {
	t := strings.TrimSpace(stripControl(m.Text))
	if t == "" {
		t = oneLine(stripControl(m.Title))
	}
	if t == "" {
		t = "relay notification"
	}
	return truncateMrkdwn(t, slackMaxText)
}

// slackBlocks builds the message's Block Kit blocks. With images false, image outputs are given
// as links instead of image blocks.
func slackBlocks(m relay.Message, images bool) []slack.Block {
	var blocks []slack.Block
	// The title comes escaped for mrkdwn, but a header is plain_text, shown as written.
	if title := truncateRunes(oneLine(stripControl(unescapeMrkdwn(m.Title))), slackMaxHeader); title != "" {
		blocks = append(blocks, slack.NewHeaderBlock(slack.NewTextBlockObject(slack.PlainTextType, title, true, false)))
	}
	for _, part := range splitMrkdwn(stripControl(m.Body), slackMaxSection, slackMaxBodyParts) {
		blocks = append(blocks, slack.NewSectionBlock(slack.NewTextBlockObject(slack.MarkdownType, part, false, false), nil, nil))
	}
	ev := m.Event
	if ev != nil {
		if fields := slackFields(ev); len(fields) > 0 {
			blocks = append(blocks, slack.NewSectionBlock(nil, fields, nil))
		}
		if images {
			blocks = append(blocks, slackImages(ev)...)
		} else if links := slackImageLinks(ev); links != nil {
			blocks = append(blocks, links)
		}
		if u := ev.WebURL(); len(u) <= slackMaxButtonURL && checkLinkURL(u) == nil {
			button := slack.NewButtonBlockElement("open_replicate", "", slack.NewTextBlockObject(slack.PlainTextType, "Open on Replicate", false, false))
			button.URL = u
			blocks = append(blocks, slack.NewActionBlock("", button))
		}
	}
	if parts := splitMrkdwn(stripControl(m.Context), slackMaxContext, 1); len(parts) > 0 {
		blocks = append(blocks, slack.NewContextBlock("", slack.NewTextBlockObject(slack.MarkdownType, parts[0], false, false)))
	}
	return blocks
}

// slackFields is the event's facts as section fields.
func slackFields(ev *relay.Event) []*slack.TextBlockObject {
	var fields []*slack.TextBlockObject
	add := func(name, value string) {
		value = oneLine(stripControl(value))
		if value == "" || len(fields) == slackMaxFields {
			return
		}
		text := "*" + name + "*\n" + escapeMrkdwn(truncateRunes(value, slackMaxFieldValue))
		fields = append(fields, slack.NewTextBlockObject(slack.MarkdownType, text, false, false))
	}
	add("Model", ev.Model)
	add("Status", string(ev.Status))
	if d := ev.Duration(); d > 0 {
		add("Duration", formatDuration(d))
	}
	add("Kind", string(ev.Kind))
	if ev.Kind == relay.KindTraining {
		add("New version", ev.NewVersion())
	}
	return fields
}

// slackImages gives the first image outputs as image blocks.
func slackImages(ev *relay.Event) []slack.Block {
	urls := ev.Images()
	prompt := escapeMrkdwn(truncateRunes(oneLine(stripControl(ev.Prompt())), slackMaxPromptInAlt))
	var blocks []slack.Block
	for i, u := range urls {
		if len(blocks) == slackMaxImages {
			break
		}
		if len(u) > slackMaxImageURL {
			continue
		}
		alt := fmt.Sprintf("output %d of %d", i+1, len(urls))
		if prompt != "" {
			alt += ": " + prompt
		}
		blocks = append(blocks, slack.NewImageBlock(u, truncateRunes(alt, slackMaxAltText), "", nil))
	}
	return blocks
}

// slackImageLinks gives the first image outputs as a section of links, or nil.
func slackImageLinks(ev *relay.Event) slack.Block {
	var links []string
	for i, u := range ev.Images() {
		if len(links) == slackMaxImages {
			break
		}
		// A link's URL ends at the first | or >; such a URL cannot be linked safely.
		if len(u) > slackMaxImageURL || strings.ContainsAny(u, "<>| ") {
			continue
		}
		links = append(links, fmt.Sprintf("<%s|output %d>", escapeMrkdwn(u), i+1))
	}
	if len(links) == 0 {
		return nil
	}
	return slack.NewSectionBlock(slack.NewTextBlockObject(slack.MarkdownType, strings.Join(links, " · "), false, false), nil, nil)
}

// hasImages reports whether blocks include an image block.
func hasImages(blocks []slack.Block) bool {
	for _, b := range blocks {
		if b.BlockType() == slack.MBTImage {
			return true
		}
	}
	return false
}

// formatDuration renders a run's duration the way people say it: 850ms, 9.7s, 2m3s.
func formatDuration(d time.Duration) string {
	switch {
	case d < time.Second:
		return d.Round(time.Millisecond).String()
	case d < time.Minute:
		return fmt.Sprintf("%.1fs", d.Seconds())
	}
	return d.Round(time.Second).String()
}
