package notifiers

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/bwmarrin/discordgo"

	"github.com/mlrelay/relay/relay"

	"github.com/mlrelay/relay/relay/discordbot"
)

// DiscordReplyOptions configure a DiscordReply.
type DiscordReplyOptions struct {
	// AppID is the Discord application's id; BotToken its bot's token (a secret).
	AppID    string
	BotToken string
	// APIURL is the base of Discord's API. Default https://discord.com/api/v10.
	APIURL string
	// Launch finds where a prediction's result goes back to (relay.Store.Launch).
	Launch func(ctx context.Context, predictionID string) (relay.Launch, error)
	// Timeout bounds one call. Default 10s.
	Timeout    time.Duration
	HTTPClient *http.Client
	// Now is the clock [time.Now].
	Now func() time.Time
}

// DiscordReply sends the result of a prediction launched with the bot's /predict back to where
// it was asked for: it edits the original reply while the interaction's token is valid (15
// minutes), and otherwise posts a new message in the channel, with the bot's token, mentioning
// the user who launched it. The message is the one the templates render for Discord, with its
// attachments (the output images, so that they outlive Replicate's links).
type DiscordReply struct {
	d      *Discord
	appID  string
	launch func(ctx context.Context, predictionID string) (relay.Launch, error)
	now    func() time.Time
}

// replyTokenMargin is how long before the interaction token expires the reply stops using it:
// an edit that starts just before the expiry could arrive just after.
const replyTokenMargin = time.Minute

// NewDiscordReply validates o and returns the notifier.
func NewDiscordReply(o DiscordReplyOptions) (*DiscordReply, error) {
	token := strings.TrimSpace(strings.TrimPrefix(strings.TrimSpace(o.BotToken), "Bot "))
	switch {
	case !discordbot.IsSnowflake(o.AppID):
		return nil, fmt.Errorf("discord bot: app id %q must be the numeric application id", o.AppID)
	case token == "":
		return nil, errors.New("discord bot: a bot token is needed to post results once the interaction has expired")
	case strings.ContainsFunc(token, func(r rune) bool { return r <= ' ' || r == 0x7f }):
		return nil, errors.New("discord bot: bot_token contains spaces or control characters")
	case o.Launch == nil:
		return nil, errors.New("discord bot: no way to find launches")
	}
	from, err := url.Parse(discordgo.EndpointAPI)
	if err != nil {
		return nil, fmt.Errorf("discord bot: discordgo's endpoint: %w", err)
	}
	api := strings.TrimSpace(o.APIURL)
	if api == "" {
		api = discordDefaultAPIURL
	}
	if err := checkHTTPURL(api); err != nil {
		return nil, fmt.Errorf("discord bot: api_url %s %s", shownURL(api), err)
	}
	to, _ := url.Parse(strings.TrimRight(api, "/") + "/")
	d := &Discord{auth: "Bot " + token, from: from, to: to, timeout: o.Timeout, client: o.HTTPClient, redact: newRedactor(token)}
	if d.timeout <= 0 {
		d.timeout = discordDefaultTimeout
	}
	if d.client == nil {
		d.client = defaultHTTPClient()
	}
	r := &DiscordReply{d: d, appID: o.AppID, launch: o.Launch, now: o.Now}
	if r.now == nil {
		r.now = time.Now
	}
	return r, nil
}

// Notify sends m, the result of the prediction m.Event is about, to where it was launched from.
// It returns the message's id. A launch not (yet) recorded is retried: the completion webhook
// can overtake the bot recording it.
func (r *DiscordReply) Notify(ctx context.Context, m relay.Message) (string, error) {
	if m.Event == nil {
		return "", relay.Permanent(errors.New("discord bot: the message is about no prediction"))
	}
	l, err := r.launch(ctx, m.Event.ID)
	if id := m.Event.Meta[relay.LaunchMetaKey]; errors.Is(err, relay.ErrNoLaunch) && id != "" {
		// Launched, but the answer to the create was lost: recorded under the interaction.
		l, err = r.launch(ctx, relay.PendingLaunchID(id))
	}
	if errors.Is(err, relay.ErrNoLaunch) {
		return "", relay.Retryable(fmt.Errorf("discord bot: prediction %s: no launch recorded yet", m.Event.ID), 5*time.Second)
	}
	if err != nil {
		return "", relay.Retryable(fmt.Errorf("discord bot: %w", err), 0)
	}
	ctx, cancel := context.WithTimeout(ctx, r.d.timeout)
	defer cancel()
	p := discordPayload(m)
	mention := "<@" + l.UserID + ">"
	if r.now().Add(replyTokenMargin).Before(l.TokenExpires) {
		id, status, err := r.edit(ctx, l, p, mention)
		// An interaction token that Discord no longer takes (expired early, or the reply was
		// deleted) leaves the channel message; anything else is the edit's own outcome.
		if status != http.StatusUnauthorized && status != http.StatusNotFound {
			return id, err
		}
	}
	return r.post(ctx, l, p, mention)
}

// edit replaces the original reply with the result. It returns Discord's status too.
func (r *DiscordReply) edit(ctx context.Context, l relay.Launch, p discordMessage, mention string) (string, int, error) {
	sess, tr, err := r.d.session()
	if err != nil {
		return "", 0, err
	}
	// The interaction token is a secret of its own, in the URL: keep it out of errors.
	d := *r.d
	d.redact = newRedactor(strings.TrimPrefix(d.auth, "Bot "), l.Token)
	content := truncateDiscord(strings.TrimSpace(mention+" "+p.Content), discordMaxContent)
	// An edit whose answer was lost (a timeout, a proxy's 5xx) may have been applied, and doing
	// it again would attach its files a second time: Discord adds uploads to those the message
	// has. An original that already reads as this edit would make it was edited.
	if id, ok := r.alreadyEdited(ctx, l, content); ok {
		return id, http.StatusOK, nil
	}
	edit := &discordgo.WebhookEdit{Content: &content, Embeds: &p.Embeds, AllowedMentions: replyMentions(l.UserID), Files: p.discordFiles()}
	sent, err := sess.WebhookMessageEdit(r.appID, l.Token, "@original", edit, requestOptions(ctx)...)
	got := tr.result()
	if err = d.classify("discord interaction reply", got, tr.destination(err)); err != nil {
		return "", got.status, err
	}
	if sent == nil {
		return "", got.status, nil
	}
	return sent.ID, got.status, nil
}

// alreadyEdited reports whether the original reply already has content, and its id. Any failure
// to read it says no: the edit then goes ahead and meets the same failure itself.
func (r *DiscordReply) alreadyEdited(ctx context.Context, l relay.Launch, content string) (string, bool) {
	sess, _, err := r.d.session()
	if err != nil {
		return "", false
	}
	msg, err := sess.WebhookMessage(r.appID, l.Token, "@original", requestOptions(ctx)...)
	if err != nil || msg == nil || msg.Content != content {
		return "", false
	}
	return msg.ID, true
}

// post sends the result as a new channel message that mentions the user.
func (r *DiscordReply) post(ctx context.Context, l relay.Launch, p discordMessage, mention string) (string, error) {
	sess, tr, err := r.d.session()
	if err != nil {
		return "", err
	}
	sent, err := sess.ChannelMessageSendComplex(l.ChannelID, &discordgo.MessageSend{
		Content:         truncateDiscord(strings.TrimSpace(mention+" "+p.Content), discordMaxContent),
		Embeds:          p.Embeds,
		AllowedMentions: replyMentions(l.UserID),
		Files:           p.discordFiles(),
	}, requestOptions(ctx)...)
	got := tr.result()
	if err = r.d.classify("discord bot", got, tr.destination(err)); err != nil {
		return "", err
	}
	if sent == nil {
		return "", nil
	}
	return sent.ID, nil
}

// replyMentions lets the reply ping the user who launched the prediction, and nobody else.
func replyMentions(userID string) *discordgo.MessageAllowedMentions {
	return &discordgo.MessageAllowedMentions{Parse: []discordgo.AllowedMentionType{}, Users: []string{userID}}
}
