package config

import (
	"encoding/hex"
	"strings"
	"time"
	"unicode"

	"github.com/mlrelay/relay/relay/replicate/api"
)

// Bot is the [bot] table: the Discord bot whose /predict launches predictions on Replicate and
// posts their results back. It is on when app_id or public_key is set.
type Bot struct {
	// AppID is the Discord application's id; PublicKey its public key (hex), which signs the
	// interactions Discord posts to Path. Default "" (the bot is off).
	AppID     string `toml:"app_id"`
	PublicKey string `toml:"public_key"`
	// BotToken is the bot's token, for results posted after the interaction's 15 minutes and
	// for `relay discord register`. Required with the bot.
	BotToken Secret `toml:"bot_token"`
	// APIURL is the base of Discord's API, for tests and proxies. Default "" (Discord's own).
	APIURL string `toml:"api_url"`
	// Path is where Discord posts interactions. Default "/discord/interactions".
	Path string `toml:"path"`
	// ReplicateToken is the Replicate API token the bot creates predictions with. Required
	// with the bot.
	ReplicateToken Secret `toml:"replicate_token"`
	// ReplicateAPIURL is the base of Replicate's API. Default "" (https://api.replicate.com/v1).
	ReplicateAPIURL string `toml:"replicate_api_url"`
	// Models is the allow-list: "owner/name" allows any version, "owner/name:version" one.
	// Required with the bot.
	Models []string `toml:"models"`
	// DefaultModel is used when /predict names none; it must be allowed. Default "" (the
	// model must be named).
	DefaultModel string `toml:"default_model"`
	// AdminRole is the id of a role whose members may cancel anyone's predictions. Default "".
	AdminRole string `toml:"admin_role"`
	// UserLimit launches per UserWindow for one user, ChannelLimit per ChannelWindow for one
	// channel; 0 means no limit. Defaults 5 per "10m" and 20 per "10m".
	UserLimit     int      `toml:"user_limit"`
	UserWindow    Duration `toml:"user_window"`
	ChannelLimit  int      `toml:"channel_limit"`
	ChannelWindow Duration `toml:"channel_window"`
	// Template is the template set results are rendered with. Default "default".
	Template string `toml:"template"`
	// Attach sends the output images as attachments, so that they outlive Replicate's links
	// (downloads as [attachments] allows). Default true.
	Attach bool `toml:"attach"`
}

func defaultBot() Bot {
	return Bot{Path: "/discord/interactions", UserLimit: 5, UserWindow: Duration(10 * time.Minute),
		ChannelLimit: 20, ChannelWindow: Duration(10 * time.Minute), Template: "default", Attach: true}
}

// Enabled reports whether the bot is configured to run.
func (b Bot) Enabled() bool { return b.AppID != "" || b.PublicKey != "" }

func (l *loader) checkBot(p path, c *Config) {
	b := c.Bot
	if !b.Enabled() {
		return
	}
	if b.AppID == "" || strings.Trim(b.AppID, "0123456789") != "" {
		l.fail(p.add("app_id"), "want the numeric application id from the developer portal, got %q", b.AppID)
	}
	if k, err := hex.DecodeString(b.PublicKey); err != nil || len(k) != 32 {
		l.fail(p.add("public_key"), "want the application's public key, 64 hex digits (General Information in the developer portal)")
	}
	if b.BotToken == "" {
		l.fail(p.add("bot_token"), "is required with the bot (it posts results after the interaction's 15 minutes)")
	}
	if b.ReplicateToken == "" {
		l.fail(p.add("replicate_token"), "is required with the bot (it creates the predictions)")
	}
	if c.Server.PublicURL == "" {
		l.fail(path{"server", "public_url"}, "is required with the bot: Replicate posts the results of its predictions there")
	}
	for key, tok := range map[string]Secret{"bot_token": b.BotToken, "replicate_token": b.ReplicateToken} {
		if strings.ContainsFunc(tok.Reveal(), func(r rune) bool { return isSpace(r) || unicode.IsControl(r) }) {
			l.fail(p.add(key), "contains white space or control characters; check the variable it comes from (the value is a secret and is not shown)")
		}
	}
	for key, u := range map[string]string{"api_url": b.APIURL, "replicate_api_url": b.ReplicateAPIURL} {
		switch {
		case u != "" && !isHTTPURL(u):
			l.fail(p.add(key), "not an absolute http(s) URL: %s", shownURL(u))
		case strings.ContainsAny(u, "?#"):
			l.fail(p.add(key), "must not have a query or fragment: %s", shownURL(u))
		}
	}
	if problem := routeProblem(b.Path); problem != "" {
		l.fail(p.add("path"), "%s", problem)
	} else if routeCovers(b.Path, c.Server.HookPath) {
		l.fail(p.add("path"), "would take the webhooks of server.hook_path (%s); use another path", c.Server.HookPath)
	}
	if len(b.Models) == 0 {
		l.fail(p.add("models"), `names no model; list the models /predict may run, such as ["black-forest-labs/flux-schnell"]`)
	}
	for _, m := range b.Models {
		if _, err := api.ParseRef(m); err != nil {
			l.fail(p.add("models"), "%v", err)
		}
	}
	if b.DefaultModel != "" {
		ok := false
		for _, m := range b.Models {
			mr, err1 := api.ParseRef(m)
			dr, err2 := api.ParseRef(b.DefaultModel)
			if err1 == nil && err2 == nil && mr.Owner == dr.Owner && mr.Name == dr.Name && (mr.Version == "" || mr.Version == dr.Version) {
				ok = true
			}
		}
		if !ok {
			l.fail(p.add("default_model"), "%q is not among the allowed models", b.DefaultModel)
		}
	}
	if b.AdminRole != "" && strings.Trim(b.AdminRole, "0123456789") != "" {
		l.fail(p.add("admin_role"), "want a numeric role id, got %q", b.AdminRole)
	}
	for _, lim := range []struct {
		key, wkey string
		n         int
		w         Duration
	}{{"user_limit", "user_window", b.UserLimit, b.UserWindow}, {"channel_limit", "channel_window", b.ChannelLimit, b.ChannelWindow}} {
		if lim.n < 0 {
			l.fail(p.add(lim.key), "must not be negative, got %d", lim.n)
		}
		if lim.n > 0 && lim.w <= 0 {
			l.fail(p.add(lim.wkey), "must be more than 0 with a limit, got %s", lim.w)
		}
	}
}
