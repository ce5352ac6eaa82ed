package main

import (
	"fmt"
	"log/slog"
	"net/http"
	"net/url"
	"strings"

	"github.com/mlrelay/relay/notifiers"
	"github.com/mlrelay/relay/relay"
	"github.com/mlrelay/relay/relay/bot"
	"github.com/mlrelay/relay/relay/config"
	"github.com/mlrelay/relay/relay/discordbot"
	"github.com/mlrelay/relay/relay/replicate/api"
	"github.com/mlrelay/relay/templates"
)

// discordBot is the bot, wired: its interactions endpoint, the built-in rule that routes its
// predictions' results, and the destination that posts them.
type discordBot struct {
	handler     http.Handler
	rule        *relay.CompiledRule
	destination *relay.Destination
}

// hookURL is the relay's public hook URL for the predictions the bot launches: their webhooks
// say kind=prediction, and via=discord routes their results back (see bot.BuiltinRule).
func hookURL(cfg *config.Config) string {
	q := url.Values{"kind": {"prediction"}, bot.MetaKey: {bot.MetaValue}}
	return strings.TrimRight(cfg.Server.PublicURL, "/") + cfg.Server.HookPath + "?" + q.Encode()
}

// newDiscordBot builds the bot from cfg.Bot, or returns nil when it is off.
func newDiscordBot(cfg *config.Config, store relay.Store, set *templates.Set, log *slog.Logger) (*discordBot, error) {
	b := cfg.Bot
	if !b.Enabled() {
		return nil, nil
	}
	if !set.Has(b.Template, "discord") {
		return nil, fmt.Errorf("%s: bot.template: template set %q has nothing for discord", cfg.Source, b.Template)
	}
	client, err := api.New(api.Options{BaseURL: b.ReplicateAPIURL, Token: b.ReplicateToken.Reveal(), UserAgent: "relay/" + versionString()})
	if err != nil {
		return nil, fmt.Errorf("%s: bot: %w", cfg.Source, err)
	}
	commands, err := bot.New(bot.Config{
		Store:        store,
		Replicate:    client,
		HookURL:      hookURL(cfg),
		Models:       b.Models,
		DefaultModel: b.DefaultModel,
		AdminRole:    b.AdminRole,
		PerUser:      bot.Limit{N: b.UserLimit, Window: b.UserWindow.D()},
		PerChannel:   bot.Limit{N: b.ChannelLimit, Window: b.ChannelWindow.D()},
		Log:          log,
	})
	if err != nil {
		return nil, fmt.Errorf("%s: %w", cfg.Source, err)
	}
	handler, err := discordbot.NewHandler(discordbot.Options{PublicKey: b.PublicKey, Logger: log}, commands)
	if err != nil {
		return nil, fmt.Errorf("%s: bot.public_key: %w", cfg.Source, err)
	}
	rule, err := bot.BuiltinRule(b.Template)
	if err != nil {
		return nil, err
	}
	reply, err := notifiers.NewDiscordReply(notifiers.DiscordReplyOptions{
		AppID: b.AppID, BotToken: b.BotToken.Reveal(), APIURL: b.APIURL, Launch: store.Launch,
	})
	if err != nil {
		return nil, fmt.Errorf("%s: bot: %w", cfg.Source, err)
	}
	dest := &relay.Destination{Notifier: reply, Target: "discord", Rate: 5, Burst: 10}
	if b.Attach {
		dl, err := downloadClient(cfg)
		if err != nil {
			return nil, fmt.Errorf("%s: attachments.ca_file: %w", cfg.Source, err)
		}
		dest.Attach = newFetcher(cfg, dl, 0, 0)
	}
	return &discordBot{handler: handler, rule: rule, destination: dest}, nil
}

// botDestination names the bot's replies among the dispatcher's destinations.
const botDestination = bot.Destination
