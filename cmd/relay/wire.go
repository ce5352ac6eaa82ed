package main

import (
	"context"
	"crypto/rand"
	"crypto/tls"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"sort"
	"strings"

	"github.com/mlrelay/relay/notifiers"
	"github.com/mlrelay/relay/relay"
	"github.com/mlrelay/relay/relay/attach"
	"github.com/mlrelay/relay/relay/config"
	"github.com/mlrelay/relay/relay/postgres"
	"github.com/mlrelay/relay/relay/sqlite"
	"github.com/mlrelay/relay/templates"
)

// localSecretKey names the generated development secret in the store's settings.
const localSecretKey = "local_webhook_secret"

// loadConfig reads --config, or the embedded defaults when path is "".
func loadConfig(path string) (*config.Config, error) {
	if path == "" {
		return config.Default(nil)
	}
	return config.Load(path, nil)
}

// newLogger builds the slog logger the config asks for.
func newLogger(cfg *config.Config, w io.Writer) *slog.Logger {
	var level slog.Level
	_ = level.UnmarshalText([]byte(cfg.Log.Level))
	opts := &slog.HandlerOptions{Level: level}
	if cfg.Log.Format == "json" {
		return slog.New(slog.NewJSONHandler(w, opts))
	}
	return slog.New(slog.NewTextHandler(w, opts))
}

// openStore opens the store the config names. Its errors name the config and the key.
func openStore(ctx context.Context, cfg *config.Config) (relay.Store, error) {
	var (
		store relay.Store
		err   error
	)
	switch cfg.Store.Driver() {
	case "sqlite":
		store, err = sqlite.Open(ctx, cfg.Store.Path())
	case "postgres":
		store, err = postgres.Open(ctx, cfg.Store.URL)
	default:
		err = fmt.Errorf("driver %q is not supported", cfg.Store.Driver())
	}
	if err != nil {
		return nil, fmt.Errorf("%s: store.url: %w", cfg.Source, err)
	}
	return store, nil
}

// loadTemplates loads the templates the config names. Its errors name the config and the key.
func loadTemplates(cfg *config.Config) (*templates.Set, error) {
	set, err := templates.Load(cfg.Templates.Dir)
	if err != nil {
		return nil, fmt.Errorf("%s: templates.dir: %w", cfg.Source, err)
	}
	return set, nil
}

// webhookSecrets returns the configured secrets or, when there are none, the store's generated
// local secret, so that `relay send-test` works out of the box while real Replicate deliveries,
// which cannot know that secret, are refused.
func webhookSecrets(ctx context.Context, cfg *config.Config, store relay.Store) (secrets []string, generated bool, err error) {
	if s := cfg.Replicate.Secrets(); len(s) > 0 {
		return s, false, nil
	}
	var key [24]byte
	if _, err := rand.Read(key[:]); err != nil {
		return nil, false, err
	}
	s, err := store.EnsureSetting(ctx, localSecretKey, "whsec_"+base64.StdEncoding.EncodeToString(key[:]))
	if err != nil {
		return nil, false, fmt.Errorf("generating a local webhook secret: %w", err)
	}
	return []string{s}, true, nil
}

// target is the template target a notifier type renders for.
func target(typ string) string {
	switch typ {
	case "console":
		return "text"
	default:
		return typ
	}
}

// buildDestinations makes one notifier per configured name, resolving fallbacks: a Slack
// notifier with no webhook URL or token sends to its fallback (the console, in the example).
func buildDestinations(cfg *config.Config, stdout io.Writer, log *slog.Logger) (map[string]*relay.Destination, error) {
	names := make([]string, 0, len(cfg.Notifiers))
	for name := range cfg.Notifiers {
		names = append(names, name)
	}
	sort.Strings(names)
	out := make(map[string]*relay.Destination, len(names))
	var errs []error
	client, err := downloadClient(cfg)
	if err != nil {
		return nil, fmt.Errorf("%s: attachments.ca_file: %w", cfg.Source, err)
	}
	for _, name := range names {
		declared := cfg.Notifiers[name]
		n, err := cfg.Resolve(name)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		if n.Name != name {
			log.Warn("notifier not configured; using its fallback", "notifier", name, "fallback", n.Name, "hint", declared.Hint())
		}
		impl, err := newNotifier(n, stdout, log.With("notifier", name))
		if err != nil {
			errs = append(errs, fmt.Errorf("%s: notifiers.%s: %w", cfg.Source, n.Name, err))
			continue
		}
		// Pacing follows the declared notifier: its destination is what the limits protect.
		out[name] = &relay.Destination{Notifier: impl, Target: target(n.Type), Rate: declared.Rate, Burst: declared.Burst}
		if n.Name != name {
			fb := cfg.Notifiers[n.Name]
			out[name].Rate, out[name].Burst = fb.Rate, fb.Burst
		}
		if attaches(n) {
			out[name].Attach = newFetcher(cfg, client, int64(n.AttachMaxSize), n.AttachMaxFiles)
		}
	}
	return out, errors.Join(errs...)
}

// attaches reports whether the notifier that sends (after fallback) sends output files: it asks
// for them, and it can. Slack uploads files only with a bot token; through a webhook it keeps
// links, and downloading would be wasted.
func attaches(n *config.Notifier) bool {
	if !n.Attach {
		return false
	}
	switch n.Type {
	case "discord", "email":
		return true
	case "slack":
		return n.Slack.Token != ""
	}
	return false
}

// newFetcher downloads output files as [attachments] allows, through client (downloadClient's),
// within the bounds on one file and one message's files (0 for attach's defaults).
func newFetcher(cfg *config.Config, client *http.Client, maxBytes int64, maxFiles int) *attach.Fetcher {
	return attach.New(attach.Options{Hosts: cfg.Attachments.HostList(), MaxBytes: maxBytes, MaxFiles: maxFiles,
		Timeout: cfg.Attachments.Timeout.D(), Client: client})
}

// downloadClient is the HTTP client output files are downloaded with: the default transport,
// trusting [attachments] ca_file's authorities too when it is set.
func downloadClient(cfg *config.Config) (*http.Client, error) {
	pool, err := cfg.Attachments.CertPool()
	if err != nil || pool == nil {
		return nil, err
	}
	t := http.DefaultTransport.(*http.Transport).Clone()
	t.TLSClientConfig = &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}
	return &http.Client{Transport: t}, nil
}

// newNotifier is the one place that knows every notifier type.
func newNotifier(n *config.Notifier, stdout io.Writer, log *slog.Logger) (relay.Notifier, error) {
	switch n.Type {
	case "console":
		w := stdout
		if n.Console != nil && n.Console.Output == "stderr" {
			w = os.Stderr
		}
		return notifiers.NewConsole(w), nil
	case "discord":
		d := n.Discord
		if d.UsesWebhook() {
			return notifiers.NewDiscord(notifiers.DiscordOptions{
				WebhookURL: d.WebhookURL.Reveal(),
				APIURL:     d.APIURL,
				Timeout:    d.Timeout.D(),
				Username:   d.Username,
				AvatarURL:  d.AvatarURL,
			})
		}
		return notifiers.NewDiscord(notifiers.DiscordOptions{
			BotToken:  d.BotToken.Reveal(),
			ChannelID: d.ChannelID,
			APIURL:    d.APIURL,
			Timeout:   d.Timeout.D(),
			Username:  d.Username,
			AvatarURL: d.AvatarURL,
		})
	case "email":
		e := n.Email
		return notifiers.NewEmail(notifiers.EmailOptions{
			Host:     e.Host,
			Port:     e.Port,
			TLS:      e.TLS,
			Username: e.Username,
			Password: e.Password.Reveal(),
			From:     e.From,
			To:       config.Recipients(e.To),
			Cc:       config.Recipients(e.Cc),
			Timeout:  e.Timeout.D(),
		})
	case "slack":
		s := n.Slack
		return notifiers.NewSlack(notifiers.SlackOptions{
			WebhookURL: s.WebhookURL.Reveal(),
			Token:      s.Token.Reveal(),
			Channel:    s.Channel,
			APIURL:     s.APIURL,
			Timeout:    s.Timeout.D(),
			Username:   s.Username,
			IconEmoji:  s.IconEmoji,
			Log:        log,
		})
	}
	return nil, fmt.Errorf("unknown notifier type %q", n.Type)
}

// checkTemplates makes sure every rule's template set (and the bot's) renders for each of its notifiers'
// targets, against every sample event; it returns one error per failure.
func checkTemplates(cfg *config.Config, set *templates.Set, samples []*relay.Event) []error {
	var errs []error
	for i, rule := range cfg.Rules {
		for _, name := range rule.Notify {
			n, err := cfg.Resolve(name)
			if err != nil {
				errs = append(errs, err)
				continue
			}
			t := target(n.Type)
			if !set.Has(rule.Template, t) {
				errs = append(errs, fmt.Errorf("%s: rules[%d].template: template set %q has nothing for %s (needs %s.%s.title or %s.%s.body)",
					cfg.Source, i, rule.Template, t, rule.Template, t, rule.Template, t))
				continue
			}
			for _, ev := range samples {
				if _, err := set.Render(rule.Template, t, ev); err != nil {
					errs = append(errs, fmt.Errorf("%s: rules[%d] (%s) → %s: sample %s %s: %w", cfg.Source, i, rule.Name, name, ev.Kind, ev.Status, err))
				}
			}
		}
	}
	// The bot's results are predictions, rendered for Discord with its own template set.
	if cfg.Bot.Enabled() && set.Has(cfg.Bot.Template, "discord") {
		for _, ev := range samples {
			if ev.Kind != relay.KindPrediction {
				continue
			}
			if _, err := set.Render(cfg.Bot.Template, "discord", ev); err != nil {
				errs = append(errs, fmt.Errorf("%s: bot.template: sample %s %s: %w", cfg.Source, ev.Kind, ev.Status, err))
			}
		}
	}
	return errs
}

// joinNames lists names for messages.
func joinNames(names []string) string { return strings.Join(names, ", ") }
