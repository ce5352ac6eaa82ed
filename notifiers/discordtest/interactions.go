package discordtest

import (
	"encoding/json"
	"fmt"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/bwmarrin/discordgo"
)

// TokenLifetime is how long an interaction's token works after the interaction, as on Discord:
// until then the application edits its original response and adds follow-ups through the
// interaction's webhook, afterwards only a bot token can post.
const TokenLifetime = 15 * time.Minute

// Original is the original response an application gave to an interaction, in its first
// answer.
type Original struct {
	// ChannelID is the channel the interaction came from, where the response shows. Default
	// ChannelID. The channel is made to exist for the bot too.
	ChannelID string
	// Content is the response's content: "" for a deferred response (Discord shows
	// "thinking…" until it is edited).
	Content string
	// Embeds are the response's embeds, if any.
	Embeds []*discordgo.MessageEmbed
	// Expires is when the interaction's token stops working. Default: TokenLifetime after
	// AddInteraction.
	Expires time.Time
}

// interactionKey names an interaction the way its webhook's URL does.
type interactionKey struct{ app, token string }

// interaction is an answered interaction the stand-in knows.
type interaction struct {
	expires  time.Time
	original Message // as it stands, edits applied
	files    int     // files the original was ever given, which numbers their ids
}

// AddInteraction makes the stand-in know an interaction that application appID answered, with
// token as its token, as Discord knows it once the application answered: the original response
// is a message (returned, with its id) that GET and PATCH
// /webhooks/{appID}/{token}/messages/@original read and edit, and POST /webhooks/{appID}/{token}
// adds follow-ups to, until the token expires. The application needs no bot token for that: the
// interaction's token is the credential. Adding an interaction again replaces it.
//
// The original response is not among Messages, which holds the messages created through the
// API; follow-ups are.
func (h *Handler) AddInteraction(appID, token string, o Original) Message {
	if appID == "" || token == "" || strings.Contains(appID+token, "/") {
		panic(fmt.Sprintf("discordtest: AddInteraction(%q, %q): an interaction needs an application id and a token, without slashes", appID, token))
	}
	if o.ChannelID == "" {
		o.ChannelID = ChannelID
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	m := h.identify(Message{ChannelID: o.ChannelID, Content: o.Content, Embeds: o.Embeds, ApplicationID: appID, InteractionToken: token})
	if o.Expires.IsZero() {
		o.Expires = m.Time.Add(TokenLifetime)
	}
	h.channels[o.ChannelID] = true
	h.interactions[interactionKey{appID, token}] = &interaction{expires: o.Expires, original: m}
	return m
}

// ExpireInteraction makes an interaction's token expire now, as if its 15 minutes were over:
// its webhook answers 401 Invalid Webhook Token from then on. An unknown interaction is left
// unknown.
func (h *Handler) ExpireInteraction(appID, token string) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if it, ok := h.interactions[interactionKey{appID, token}]; ok {
		it.expires = time.Now()
	}
}

// Original returns an interaction's original response as it stands, edits applied, and
// whether the interaction is known.
func (h *Handler) Original(appID, token string) (Message, bool) {
	h.mu.Lock()
	defer h.mu.Unlock()
	it, ok := h.interactions[interactionKey{appID, token}]
	if !ok {
		return Message{}, false
	}
	return it.original, true
}

// Edits returns the edits of original responses accepted so far, oldest first: each the
// message as that edit left it (see Message.Edited).
func (h *Handler) Edits() []Message {
	return h.edits.All()
}

// WaitForEdits waits until at least n edits were accepted and returns them all. After timeout
// it returns those accepted so far and an error.
func (h *Handler) WaitForEdits(n int, timeout time.Duration) ([]Message, error) {
	edits, err := h.edits.WaitFor(n, timeout)
	if err != nil {
		err = fmt.Errorf("discordtest: edits: %w", err)
	}
	return edits, err
}

// isInteraction reports whether an interaction with that application id and token was added,
// expired or not.
func (h *Handler) isInteraction(app, token string) bool {
	h.mu.Lock()
	defer h.mu.Unlock()
	_, ok := h.interactions[interactionKey{app, token}]
	return ok
}

// usable returns the interaction while its token works; otherwise Discord's answer: 404 for a
// token it does not know, 401 for one that expired. The caller holds mu.
func (h *Handler) usable(key interactionKey) (*interaction, apiError) {
	it, ok := h.interactions[key]
	switch {
	case !ok:
		return nil, apiError{http.StatusNotFound, 10015, "Unknown Webhook"}
	case !time.Now().Before(it.expires):
		return nil, apiError{http.StatusUnauthorized, 50027, "Invalid Webhook Token"}
	}
	return it, apiError{}
}

// apiError is an error answer: its status, Discord's code and message. The zero value is no
// error.
type apiError struct {
	status, code int
	message      string
}

// serveFollowup answers POST /webhooks/{app}/{token} for an interaction: a follow-up message,
// in the interaction's channel. Like a channel webhook, it answers 204 without ?wait=true, else
// 200 with the message.
func (h *Handler) serveFollowup(w http.ResponseWriter, r *http.Request, key interactionKey) {
	p, status := h.read(w, r)
	if status != 0 {
		return
	}
	if h.scripted(w, r) {
		return
	}
	h.mu.Lock()
	it, refused := h.usable(key)
	var channel string
	if it != nil {
		channel = it.original.ChannelID
	}
	h.mu.Unlock()
	if refused.status != 0 {
		writeError(w, refused.status, refused.code, refused.message, nil)
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
	m := h.record(Message{Webhook: true, ChannelID: channel, Multipart: p.multipart, Content: p.Content,
		Username: p.Username, AvatarURL: p.AvatarURL, Embeds: p.Embeds, AllowedMentions: p.AllowedMentions,
		Attachments: p.files, Payload: p.raw, ApplicationID: key.app, InteractionToken: key.token})
	if wait, _ := strconv.ParseBool(r.URL.Query().Get("wait")); !wait {
		w.WriteHeader(http.StatusNoContent)
		return
	}
	writeJSON(w, http.StatusOK, answer(m))
}

// serveInteractionMessage answers GET and PATCH /webhooks/{app}/{token}/messages/{id}, where
// id is @original or the original response's id: the message, or the message as the edit left
// it. Follow-ups cannot be read or edited here: 404 Unknown Message.
func (h *Handler) serveInteractionMessage(w http.ResponseWriter, r *http.Request, key interactionKey, messageID string) {
	var p *payload
	if r.Method == http.MethodPatch {
		var status int
		if p, status = h.read(w, r); status != 0 {
			return
		}
	}
	if h.scripted(w, r) {
		return
	}
	m, refused, errs := h.editOriginal(r.Method, key, messageID, p)
	switch {
	case refused.status != 0:
		writeError(w, refused.status, refused.code, refused.message, nil)
	case errs != nil:
		writeError(w, http.StatusBadRequest, 50035, "Invalid Form Body", errs)
	default:
		writeJSON(w, http.StatusOK, answer(m))
	}
}

// editOriginal reads (GET) or edits (PATCH, with p) an interaction's original response, all
// under mu so that edits apply one after the other. It returns the message to answer with, or
// the refusal, or the form errors found.
func (h *Handler) editOriginal(method string, key interactionKey, messageID string, p *payload) (Message, apiError, map[string]any) {
	h.mu.Lock()
	defer h.mu.Unlock()
	it, refused := h.usable(key)
	if refused.status != 0 {
		return Message{}, refused, nil
	}
	if messageID != "@original" && messageID != it.original.ID {
		return Message{}, apiError{http.StatusNotFound, 10008, "Unknown Message"}, nil
	}
	if method == http.MethodGet {
		return it.original, apiError{}, nil
	}
	next, added, errs := edit(*it, p)
	if errs == nil {
		errs = validate(&payload{Content: next.Content, Embeds: next.Embeds, AllowedMentions: p.AllowedMentions, files: next.Attachments}, false)
	}
	if len(errs) > 0 {
		return Message{}, apiError{}, errs
	}
	if strings.TrimSpace(next.Content) == "" && len(next.Embeds) == 0 && len(next.Attachments) == 0 {
		return Message{}, apiError{http.StatusBadRequest, 50006, "Cannot send an empty message"}, nil
	}
	next.Edited = time.Now()
	it.original = next
	it.files += added
	h.edits.Add(next)
	return next, apiError{}, nil
}

// edit applies an edit to the original response the way Discord applies a PATCH: fields left
// out stay as they were, fields present (null included) replace them. Without an attachments
// list, the files sent are added to those kept; with one, the message has exactly the
// attachments listed, each an existing attachment's id or the n of a files[n] sent (API v10).
// It returns the message as edited, how many files were added, and the problems found in the
// attachments list.
func edit(it interaction, p *payload) (Message, int, map[string]any) {
	fields := map[string]json.RawMessage{}
	_ = json.Unmarshal(p.raw, &fields) // decode already read p.raw as an object
	next := it.original
	next.Multipart, next.Payload, next.AllowedMentions = p.multipart, p.raw, p.AllowedMentions
	if _, ok := fields["content"]; ok {
		next.Content = p.Content
	}
	if _, ok := fields["embeds"]; ok {
		next.Embeds = p.Embeds
	}

	files := make([]Attachment, len(p.files))
	for i, f := range p.files {
		f.ID = attachmentID(it.original.ID, it.files+i)
		files[i] = f
	}
	list, ok := fields["attachments"]
	if !ok {
		next.Attachments = append(slices.Clone(it.original.Attachments), files...)
		return next, len(files), nil
	}
	var refs []struct {
		ID json.RawMessage `json:"id"`
	}
	e := formErrors{}
	if err := json.Unmarshal(list, &refs); err != nil {
		e.add("BASE_TYPE_ARRAY", "Must be an array.", "attachments")
		return next, 0, e
	}
	next.Attachments = nil
	for i, ref := range refs {
		id := strings.Trim(string(ref.ID), `"`)
		if a, ok := findAttachment(it.original.Attachments, func(a Attachment) bool { return a.ID == id }); ok {
			next.Attachments = append(next.Attachments, a)
			continue
		}
		if a, ok := findAttachment(files, func(a Attachment) bool { return a.Field == "files["+id+"]" }); ok {
			next.Attachments = append(next.Attachments, a)
			continue
		}
		e.add("ATTACHMENT_NOT_FOUND", "Unknown attachment: "+id+" is neither an attachment of the message nor the n of a files[n] sent", "attachments", strconv.Itoa(i), "id")
	}
	if len(e) > 0 {
		return next, 0, e
	}
	return next, len(files), nil
}

// findAttachment returns the first attachment that match accepts.
func findAttachment(as []Attachment, match func(Attachment) bool) (Attachment, bool) {
	i := slices.IndexFunc(as, match)
	if i < 0 {
		return Attachment{}, false
	}
	return as[i], true
}
