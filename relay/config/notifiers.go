package config

import (
	"net/mail"
	"sort"
	"strings"
	"time"
)

// Notifier is one [notifiers.NAME] table: the keys every type has, and the type's own settings
// in the one field that matches Type.
type Notifier struct {
	// Name is the NAME of the table: lowercase letters, digits, "_" and "-".
	Name string `toml:"-"`
	// Type is "console", "slack", "discord" or "email". Required.
	Type string `toml:"type"`
	// Fallback names another notifier that gets this one's messages while this one is not
	// configured (a Slack notifier with neither webhook_url nor token). Fallbacks do not
	// chain. Default "" (none).
	Fallback string `toml:"fallback"`
	// Rate is how many messages per second may be sent; 0 means no limit.
	// Default 1 for slack, 0 for console.
	Rate float64 `toml:"rate"`
	// Burst is how many messages may be sent at once before Rate applies.
	// Default 3 for slack, 0 for console.
	Burst int `toml:"burst"`
	// Attach sends a run's output files with its message, so that they outlive Replicate's
	// links, which expire about an hour after the run: Discord and email attach them, Slack
	// uploads them when it has a bot token (through a webhook it keeps links). Files are
	// downloaded only from [attachments] hosts; one that cannot be downloaded stays a link.
	// Default false.
	Attach bool `toml:"attach"`
	// AttachMaxSize bounds one attached file; larger ones stay links. Default "8MiB".
	AttachMaxSize Size `toml:"attach_max_size"`
	// AttachMaxFiles bounds the files attached to one message; the rest stay links. Default 4.
	AttachMaxFiles int `toml:"attach_max_files"`

	// Slack is set when Type is "slack".
	Slack *Slack `toml:"-"`
	// Console is set when Type is "console".
	Console *Console `toml:"-"`
	// Discord is set when Type is "discord".
	Discord *Discord `toml:"-"`
	// Email is set when Type is "email".
	Email *Email `toml:"-"`
}

// settings is what each notifier type's own table does for the loader.
type settings interface {
	// check reports problems with the settings of the notifier at p.
	check(l *loader, p path)
	// configured reports whether the settings are enough to send anything.
	configured() bool
	// hint says what to set when the settings are not configured.
	hint() string
}

// notifierTypes makes, for each type, its settings with their defaults, and sets the type's
// default pacing. Adding a type (discord, email) takes four small steps: a struct with toml tags
// that implements settings, a field for it on Notifier, a case in Notifier.settings, and an
// entry here.
var notifierTypes = map[string]func(n *Notifier) settings{
	"console": func(n *Notifier) settings {
		n.Console = &Console{Output: "stdout"}
		return n.Console
	},
	"slack": func(n *Notifier) settings {
		n.Rate, n.Burst = 1, 3
		n.Slack = &Slack{Timeout: Duration(10 * time.Second)}
		return n.Slack
	},
	"discord": func(n *Notifier) settings {
		// Discord allows about five messages every few seconds per webhook or channel.
		n.Rate, n.Burst = 1, 5
		n.Discord = &Discord{Timeout: Duration(10 * time.Second)}
		return n.Discord
	},
	"email": func(n *Notifier) settings {
		n.Rate, n.Burst = 1, 5
		n.Email = &Email{TLS: "starttls", Timeout: Duration(30 * time.Second)}
		return n.Email
	},
}

// settings returns the type-specific part of n, or nil when n has none.
func (n *Notifier) settings() settings {
	switch {
	case n.Console != nil:
		return n.Console
	case n.Slack != nil:
		return n.Slack
	case n.Discord != nil:
		return n.Discord
	case n.Email != nil:
		return n.Email
	}
	return nil
}

// Configured reports whether n can send: a console always can, a Slack notifier when its
// webhook_url or token is set.
func (n *Notifier) Configured() bool {
	s := n.settings()
	return s != nil && s.configured()
}

// Hint says what would configure n, such as "set webhook_url, or token and channel".
func (n *Notifier) Hint() string {
	if s := n.settings(); s != nil {
		return s.hint()
	}
	return "its type is unknown"
}

// typeNames lists the notifier types for messages.
func typeNames() string {
	names := make([]string, 0, len(notifierTypes))
	for name := range notifierTypes {
		names = append(names, name)
	}
	sort.Strings(names)
	return strings.Join(names, ", ")
}

// Console prints messages instead of sending them: the notifier that works with no account.
type Console struct {
	// Output is "stdout" or "stderr". Default "stdout".
	Output string `toml:"output"`
}

func (c *Console) check(l *loader, p path) {
	if c.Output != "stdout" && c.Output != "stderr" {
		l.fail(p.add("output"), "unknown output %q (want stdout or stderr)", c.Output)
	}
}

func (c *Console) configured() bool { return true }
func (c *Console) hint() string     { return "" }

// Slack posts to Slack, through an incoming webhook or with a bot token and chat.postMessage.
type Slack struct {
	// WebhookURL is an incoming webhook URL (https://hooks.slack.com/services/...).
	// Default "" (use Token instead).
	WebhookURL Secret `toml:"webhook_url"`
	// Token is a bot token (xoxb-...) with chat:write; Channel must be set with it.
	// Default "" (use WebhookURL instead).
	Token Secret `toml:"token"`
	// Channel is the channel to post to with Token: "#name" or an id such as "C0123ABCD".
	// Default "".
	Channel string `toml:"channel"`
	// APIURL is the base of Slack's Web API, for tests and proxies. Default "" (Slack's own,
	// https://slack.com/api/).
	APIURL string `toml:"api_url"`
	// Timeout bounds one request to Slack. Default "10s".
	Timeout Duration `toml:"timeout"`
	// Username overrides the name messages are posted under. Default "" (the app's name).
	Username string `toml:"username"`
	// IconEmoji overrides the icon messages are posted with, such as ":robot_face:".
	// Default "" (the app's icon).
	IconEmoji string `toml:"icon_emoji"`
}

func (s *Slack) check(l *loader, p path) {
	if s.WebhookURL != "" && s.Token != "" {
		l.fail(p, "webhook_url and token are both set; use one")
	}
	if s.Token != "" && s.Channel == "" {
		l.fail(p, "token is set, channel must be set too")
	}
	if s.WebhookURL != "" && !isHTTPURL(s.WebhookURL.Reveal()) {
		l.fail(p.add("webhook_url"), "not an absolute http(s) URL such as https://hooks.slack.com/services/... (the value is a secret and is not shown)")
	}
	if strings.ContainsFunc(s.Token.Reveal(), isSpace) {
		l.fail(p.add("token"), "contains white space; check the variable it comes from (the value is a secret and is not shown)")
	}
	if s.APIURL != "" && !isHTTPURL(s.APIURL) {
		l.fail(p.add("api_url"), `not an absolute http(s) URL: %s (want one such as "https://slack.com/api/", or "" for Slack's own)`, shownURL(s.APIURL))
	}
	if s.Timeout <= 0 {
		l.fail(p.add("timeout"), "must be positive, got %q", s.Timeout)
	}
	if s.IconEmoji != "" && (len(s.IconEmoji) < 3 || s.IconEmoji[0] != ':' || s.IconEmoji[len(s.IconEmoji)-1] != ':') {
		l.fail(p.add("icon_emoji"), `want an emoji code such as ":robot_face:", got %q`, s.IconEmoji)
	}
}

func (s *Slack) configured() bool { return s.WebhookURL != "" || s.Token != "" }
func (s *Slack) hint() string     { return "set webhook_url, or token and channel" }

// Discord posts to a Discord channel, through a channel webhook or with a bot token.
type Discord struct {
	// WebhookURL is a channel webhook URL (https://discord.com/api/webhooks/ID/TOKEN).
	// Default "" (use BotToken instead).
	WebhookURL Secret `toml:"webhook_url"`
	// BotToken is a bot token; ChannelID must be set with it. Default "".
	BotToken Secret `toml:"bot_token"`
	// ChannelID is the numeric id of the channel to post to with BotToken. Default "".
	ChannelID string `toml:"channel_id"`
	// APIURL is the base of Discord's API, for tests and proxies. Default "" (Discord's own,
	// https://discord.com/api/v10).
	APIURL string `toml:"api_url"`
	// Timeout bounds one request to Discord. Default "10s".
	Timeout Duration `toml:"timeout"`
	// Username and AvatarURL override how webhook messages are signed. Default "" (the
	// webhook's own).
	Username  string `toml:"username"`
	AvatarURL string `toml:"avatar_url"`
}

// UsesWebhook reports whether d posts through its webhook: webhook_url wins over bot_token,
// which the [bot] may share (DISCORD_BOT_TOKEN) without meaning this notifier to use it.
func (d *Discord) UsesWebhook() bool { return d.WebhookURL != "" }

func (d *Discord) check(l *loader, p path) {
	if d.ChannelID != "" && strings.Trim(d.ChannelID, "0123456789") != "" {
		l.fail(p.add("channel_id"), "want a numeric channel id such as \"123456789012345678\", got %q", d.ChannelID)
	}
	if d.WebhookURL != "" && !isHTTPURL(d.WebhookURL.Reveal()) {
		l.fail(p.add("webhook_url"), "not an absolute http(s) URL such as https://discord.com/api/webhooks/... (the value is a secret and is not shown)")
	}
	if strings.ContainsFunc(d.BotToken.Reveal(), isSpace) {
		l.fail(p.add("bot_token"), "contains white space; check the variable it comes from (the value is a secret and is not shown)")
	}
	if d.APIURL != "" && !isHTTPURL(d.APIURL) {
		l.fail(p.add("api_url"), `not an absolute http(s) URL: %s (want one such as "https://discord.com/api/v10", or "" for Discord's own)`, shownURL(d.APIURL))
	}
	if d.AvatarURL != "" && !isHTTPURL(d.AvatarURL) {
		l.fail(p.add("avatar_url"), "not an absolute http(s) URL: %s", shownURL(d.AvatarURL))
	}
	if d.Timeout <= 0 {
		l.fail(p.add("timeout"), "must be positive, got %q", d.Timeout)
	}
}

// configured: a webhook, or a bot token with the channel to post to. A bot token alone (the
// [bot]'s, shared through DISCORD_BOT_TOKEN) does not configure the notifier.
func (d *Discord) configured() bool {
	return d.WebhookURL != "" || (d.BotToken != "" && d.ChannelID != "")
}
func (d *Discord) hint() string { return "set webhook_url, or bot_token and channel_id" }

// Email sends mail through an SMTP server.
type Email struct {
	// Host is the SMTP server. Default "" (not configured).
	Host string `toml:"host"`
	// Port is the SMTP port. Default 0: the usual one for TLS, 587 for starttls, 465 for tls
	// and 25 for none.
	Port int `toml:"port"`
	// TLS is "starttls" (upgrade, required), "tls" (TLS from the start, usually port 465) or
	// "none" (a local relay only). Default "starttls".
	TLS string `toml:"tls"`
	// Username and Password authenticate (PLAIN); both empty means no authentication.
	Username string `toml:"username"`
	Password Secret `toml:"password"`
	// From is the sender address, such as "relay@example.com". Required when Host is set.
	From string `toml:"from"`
	// To and Cc list recipients; each entry may itself be a comma-separated list, so that one
	// variable can carry several (to = ["${EMAIL_TO}"]). To is required when Host is set.
	To []string `toml:"to"`
	Cc []string `toml:"cc"`
	// Timeout bounds connecting and sending one message. Default "30s".
	Timeout Duration `toml:"timeout"`
}

// Recipients splits To or Cc entries on commas, dropping empty ones.
func Recipients(list []string) []string {
	var out []string
	for _, e := range list {
		for _, a := range strings.Split(e, ",") {
			if a = strings.TrimSpace(a); a != "" {
				out = append(out, a)
			}
		}
	}
	return out
}

func (e *Email) check(l *loader, p path) {
	if e.Host == "" {
		return // not configured: the fallback, or an error naming what to set, applies
	}
	switch e.TLS {
	case "starttls", "tls", "none":
	default:
		l.fail(p.add("tls"), "unknown TLS policy %q (want starttls, tls or none)", e.TLS)
	}
	if e.Port < 0 || e.Port > 65535 {
		l.fail(p.add("port"), "must be between 1 and 65535 (or 0 for the usual port for tls), got %d", e.Port)
	}
	if (e.Username == "") != (e.Password == "") {
		l.fail(p, "username and password go together: set both, or neither for no authentication")
	}
	if e.From == "" {
		l.fail(p.add("from"), "is required when host is set")
	} else if _, err := mail.ParseAddress(e.From); err != nil {
		l.fail(p.add("from"), "not an email address: %q", e.From)
	}
	if len(Recipients(e.To)) == 0 {
		l.fail(p.add("to"), "names no recipient; set at least one address")
	}
	for key, list := range map[string][]string{"to": e.To, "cc": e.Cc} {
		for _, a := range Recipients(list) {
			if _, err := mail.ParseAddress(a); err != nil {
				l.fail(p.add(key), "not an email address: %q", a)
			}
		}
	}
	if e.Timeout <= 0 {
		l.fail(p.add("timeout"), "must be positive, got %q", e.Timeout)
	}
}

func (e *Email) configured() bool { return e.Host != "" && len(Recipients(e.To)) > 0 }
func (e *Email) hint() string     { return "set host and to" }
