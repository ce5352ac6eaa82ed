// Package bot is the Discord bot's work: /predict launches a prediction on Replicate with the
// relay's own hook as its webhook and records where the result goes back to; /status and
// /cancel look after it; autocomplete offers the allowed models. The result itself is sent by
// the dispatcher like any notification (notifiers.DiscordReply), when the completion webhook
// arrives: see BuiltinRule.
package bot

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/url"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/bwmarrin/discordgo"

	"github.com/mlrelay/relay/relay"
	"github.com/mlrelay/relay/relay/discordbot"
	"github.com/mlrelay/relay/relay/replicate"
	"github.com/mlrelay/relay/relay/replicate/api"
)

// Destination is the notifier name of the bot's replies in the dispatcher. It cannot clash
// with a configured notifier, whose names have no ":".
const Destination = "bot:discord"

// MetaKey and MetaValue mark the webhooks of predictions the bot launched: the hook URL it
// gives Replicate carries ?via=discord, which becomes the event's meta.
const (
	MetaKey   = "via"
	MetaValue = "discord"
)

// BuiltinRule is the route of the bot's results: a launched prediction's terminal event goes
// to Destination. Ordinary rules still apply to the same events.
func BuiltinRule(template string) (*relay.CompiledRule, error) {
	return relay.CompileRule(relay.Rule{
		Name:     "discord-bot",
		Kinds:    []relay.Kind{relay.KindPrediction},
		Statuses: []replicate.Status{replicate.Succeeded, replicate.Failed, replicate.Canceled, replicate.Aborted},
		Meta:     map[string]string{MetaKey: MetaValue},
		Notify:   []string{Destination},
		Template: template,
	})
}

// Limit is at most N launches per Window.
type Limit struct {
	N      int
	Window time.Duration
}

// Config configures a Bot.
type Config struct {
	Store     relay.Store
	Replicate *api.Client
	// HookURL is the relay's public hook URL with ?kind=prediction&via=discord, given to
	// Replicate as each prediction's webhook.
	HookURL string
	// Models is the allow-list: "owner/name" allows any version of the model,
	// "owner/name:version" that version only. DefaultModel, used when /predict names none,
	// must be allowed.
	Models       []string
	DefaultModel string
	// AdminRole is the id of a role whose members may cancel anyone's predictions ("" for none).
	AdminRole string
	// PerUser and PerChannel bound launches; zero N means no limit.
	PerUser, PerChannel Limit
	Log                 *slog.Logger
	Now                 func() time.Time
}

// Bot answers the commands. It is safe for concurrent use.
type Bot struct {
	cfg Config

	mu       sync.Mutex
	launches map[string][]time.Time // "u:<id>" or "c:<id>" → recent launch times
}

var _ discordbot.Commands = (*Bot)(nil)

// New checks cfg and returns the bot.
func New(cfg Config) (*Bot, error) {
	switch {
	case cfg.Store == nil || cfg.Replicate == nil:
		return nil, errors.New("bot: a store and a Replicate client are required")
	case cfg.HookURL == "":
		return nil, errors.New("bot: the relay's public hook URL is required (server.public_url)")
	case len(cfg.Models) == 0:
		return nil, errors.New("bot: no model is allowed")
	}
	for _, m := range cfg.Models {
		if _, err := api.ParseRef(m); err != nil {
			return nil, fmt.Errorf("bot: allowed model %q: %w", m, err)
		}
	}
	if cfg.DefaultModel != "" && !allowed(cfg.Models, cfg.DefaultModel) {
		return nil, fmt.Errorf("bot: the default model %q is not among the allowed models", cfg.DefaultModel)
	}
	if cfg.Log == nil {
		cfg.Log = slog.Default()
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	return &Bot{cfg: cfg, launches: map[string][]time.Time{}}, nil
}

// allowed reports whether ref is on the allow-list.
func allowed(models []string, ref string) bool {
	r, err := api.ParseRef(ref)
	if err != nil {
		return false
	}
	for _, m := range models {
		a, err := api.ParseRef(m)
		if err != nil || a.Owner != r.Owner || a.Name != r.Name {
			continue
		}
		if a.Version == "" || a.Version == r.Version {
			return true
		}
	}
	return false
}

// Predict launches a prediction and answers with where it stands.
func (b *Bot) Predict(ctx context.Context, in *discordbot.Interaction) *discordgo.InteractionResponse {
	args, err := discordbot.ParsePredict(in)
	if err != nil {
		return discordbot.Ephemeral("Not started: " + err.Error())
	}
	model := args.Model
	if model == "" {
		model = b.cfg.DefaultModel
	}
	if model == "" {
		return discordbot.Ephemeral("Not started: name a model (" + strings.Join(b.cfg.Models, ", ") + ").")
	}
	if !allowed(b.cfg.Models, model) {
		return discordbot.Ephemeral(fmt.Sprintf("Not started: %s is not allowed here. Allowed: %s.", code(model), strings.Join(b.cfg.Models, ", ")))
	}
	user := in.UserID()
	if wait := b.admit(user, in.ChannelID); wait > 0 {
		return discordbot.Ephemeral(fmt.Sprintf("Not started: too many predictions for now; try again in %s.", wait.Round(time.Second)))
	}
	l := relay.Launch{PredictionID: relay.PendingLaunchID(in.ID), Model: model, GuildID: in.GuildID, ChannelID: in.ChannelID,
		UserID: user, Token: in.Token, TokenExpires: in.TokenExpires(), CreatedAt: b.cfg.Now()}
	hook := b.cfg.HookURL
	if in.ID != "" {
		// Recorded first, under the interaction's id, which the webhooks carry: if the answer
		// to the create is lost, the prediction may still run, and its result still finds its
		// way back here.
		// Added only if absent: an interaction posted again (a captured one replayed while its
		// signature is still fresh, to another replica or after a restart, where the handler's
		// memory of answered interactions does not reach) launches nothing.
		if err := b.addLaunch(ctx, l); err != nil {
			b.forget(user, in.ChannelID)
			if errors.Is(err, relay.ErrLaunchExists) {
				b.cfg.Log.Warn("bot: interaction already answered; nothing started", "interaction", in.ID, "user", user)
				return discordbot.Ephemeral("Not started: this command was already answered.")
			}
			b.cfg.Log.Error("bot: launch not recorded; nothing started", "interaction", in.ID, "err", err)
			return discordbot.Ephemeral("Not started: the relay could not record the prediction; please try again.")
		}
		hook = withQuery(hook, relay.LaunchMetaKey, in.ID)
	}
	p, err := b.cfg.Replicate.Launch(ctx, model, api.CreateOptions{
		Input:               args.Input,
		Webhook:             hook,
		WebhookEventsFilter: []string{api.EventStart, api.EventCompleted},
	})
	if err != nil && unclear(err) && in.ID != "" {
		// No answer, or a server error: Replicate may have created the prediction. The user's
		// slot stays taken, and the answer, which its result will replace, says so.
		b.cfg.Log.Warn("bot: no clear answer to the create; its result will be posted if it started",
			"model", model, "user", user, "interaction", in.ID, "err", err)
		return discordbot.Reply(fmt.Sprintf("⏳ Replicate gave no clear answer for %s, for <@%s> (%s).\nIf it started the prediction, the result will appear here; check before trying again.",
			bold(model), user, unclearReason(err)))
	}
	if err != nil {
		b.forget(user, in.ChannelID)
		b.cfg.Log.Warn("bot: prediction not created", "model", model, "user", user, "err", err)
		return discordbot.Ephemeral("Not started: " + userError(err))
	}
	l.PredictionID = p.ID
	if in.ID == "" {
		// Nothing recorded yet: without the record its result could not come back, so it is
		// stopped rather than left to run for nobody.
		if err := b.cfg.Store.SaveLaunch(context.WithoutCancel(ctx), l); err != nil {
			b.cfg.Log.Error("bot: launch not recorded; canceling the prediction", "prediction", p.ID, "err", err)
			cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
			defer cancel()
			if _, cerr := b.cfg.Replicate.CancelPrediction(cctx, p.ID); cerr != nil {
				b.cfg.Log.Error("bot: canceling the unrecorded prediction failed", "prediction", p.ID, "err", cerr)
			}
			return discordbot.Ephemeral("Not started: the relay could not record the prediction; please try again.")
		}
	} else if err := b.cfg.Store.SaveLaunch(ctx, l); err != nil {
		// The record under the interaction's id already brings the result back, and lets
		// /cancel find the prediction (see launchOf): this one only saves them a lookup, so
		// it is not worth answering late for (ctx ends at Discord's deadline).
		b.cfg.Log.Warn("bot: launch not recorded under the prediction's id; its interaction's record stands in",
			"prediction", p.ID, "interaction", in.ID, "err", err)
	}
	b.cfg.Log.Info("bot: prediction started", "prediction", p.ID, "model", model, "user", user, "channel", in.ChannelID)
	prompt, _ := args.Input[discordbot.OptionPrompt].(string)
	return discordbot.Reply(fmt.Sprintf("⏳ Started %s for <@%s>: %s\n%s · id %s — the result will appear here.",
		bold(model), user, quote(prompt, 300), link(webURL(p)), code(p.ID)))
}

// Status answers with a prediction's state.
func (b *Bot) Status(ctx context.Context, in *discordbot.Interaction) *discordgo.InteractionResponse {
	raw, _ := in.String(discordbot.OptionID)
	id, err := discordbot.ParsePredictionID(raw)
	if err != nil {
		return discordbot.Ephemeral(err.Error())
	}
	p, err := b.cfg.Replicate.GetPrediction(ctx, id)
	if err != nil {
		return discordbot.Ephemeral(userError(err))
	}
	var sb strings.Builder
	fmt.Fprintf(&sb, "%s %s is %s", emoji(p.Status), code(p.ID), bold(string(p.Status)))
	if p.Model != "" {
		fmt.Fprintf(&sb, " (%s)", p.Model)
	}
	if p.Status == replicate.Failed && string(p.Error) != "" {
		fmt.Fprintf(&sb, "\nError: %s", quote(lastLine(string(p.Error)), 300))
	}
	fmt.Fprintf(&sb, "\n%s", link(webURL(p)))
	return discordbot.Ephemeral(sb.String())
}

// Cancel cancels a prediction launched here, for the user who launched it or an admin.
func (b *Bot) Cancel(ctx context.Context, in *discordbot.Interaction) *discordgo.InteractionResponse {
	raw, _ := in.String(discordbot.OptionID)
	id, err := discordbot.ParsePredictionID(raw)
	if err != nil {
		return discordbot.Ephemeral(err.Error())
	}
	l, err := b.launchOf(ctx, id)
	switch {
	case errors.Is(err, relay.ErrNoLaunch):
		return discordbot.Ephemeral(fmt.Sprintf("%s was not started with /predict here, so it cannot be canceled here.", code(id)))
	case err != nil:
		b.cfg.Log.Error("bot: reading a launch failed", "prediction", id, "err", err)
		return discordbot.Ephemeral("The relay could not look the prediction up; please try again.")
	}
	if l.UserID != in.UserID() && !b.isAdmin(in) {
		return discordbot.Ephemeral(fmt.Sprintf("Only <@%s>, who started %s, or an admin can cancel it.", l.UserID, code(id)))
	}
	p, err := b.cfg.Replicate.CancelPrediction(ctx, id)
	if err != nil {
		return discordbot.Ephemeral("Not canceled: " + userError(err))
	}
	b.cfg.Log.Info("bot: prediction canceled", "prediction", id, "by", in.UserID())
	return discordbot.Ephemeral(fmt.Sprintf("%s %s is %s.", emoji(p.Status), code(id), bold(string(p.Status))))
}

// addLaunch records l unless its id is recorded already. A record with l's token and creation
// time is l itself, written by an attempt whose answer was lost (PostgreSQL's store repeats a
// statement after a dropped connection), not a replay.
func (b *Bot) addLaunch(ctx context.Context, l relay.Launch) error {
	err := b.cfg.Store.AddLaunch(ctx, l)
	if errors.Is(err, relay.ErrLaunchExists) {
		if got, gerr := b.cfg.Store.Launch(ctx, l.PredictionID); gerr == nil && got.Token == l.Token && got.CreatedAt.Equal(l.CreatedAt) {
			return nil
		}
	}
	return err
}

// launchOf finds the launch of a prediction: recorded under its id or, when the answer to its
// create was lost or its record under its id could not be saved, under the interaction whose
// id its webhook URL carries (what Replicate echoes back of the create).
func (b *Bot) launchOf(ctx context.Context, id string) (relay.Launch, error) {
	l, err := b.cfg.Store.Launch(ctx, id)
	if !errors.Is(err, relay.ErrNoLaunch) {
		return l, err
	}
	p, perr := b.cfg.Replicate.GetPrediction(ctx, id)
	if perr != nil {
		return l, err
	}
	hook, perr := url.Parse(p.Webhook)
	if perr != nil || p.Webhook == "" {
		return l, err
	}
	interaction := hook.Query().Get(relay.LaunchMetaKey)
	if interaction == "" {
		return l, err
	}
	return b.cfg.Store.Launch(ctx, relay.PendingLaunchID(interaction))
}

// Autocomplete offers the allowed models matching what was typed.
func (b *Bot) Autocomplete(ctx context.Context, in *discordbot.Interaction) *discordgo.InteractionResponse {
	name, typed, ok := in.Focused()
	if !ok || name != discordbot.OptionModel {
		return discordbot.Choices()
	}
	return discordbot.Choices(discordbot.Suggest(b.cfg.Models, typed)...)
}

// isAdmin reports whether the member has the admin role.
func (b *Bot) isAdmin(in *discordbot.Interaction) bool {
	return b.cfg.AdminRole != "" && in.Member != nil && slices.Contains(in.Member.Roles, b.cfg.AdminRole)
}

// admit counts a launch against the user's and the channel's limits, or says how long until
// one is allowed.
func (b *Bot) admit(user, channel string) time.Duration {
	now := b.cfg.Now()
	b.mu.Lock()
	defer b.mu.Unlock()
	var wait time.Duration
	for _, k := range []struct {
		key   string
		limit Limit
	}{{"u:" + user, b.cfg.PerUser}, {"c:" + channel, b.cfg.PerChannel}} {
		if k.limit.N <= 0 {
			continue
		}
		recent := b.launches[k.key][:0]
		for _, t := range b.launches[k.key] {
			if now.Sub(t) < k.limit.Window {
				recent = append(recent, t)
			}
		}
		b.launches[k.key] = recent
		if len(recent) >= k.limit.N {
			wait = max(wait, recent[len(recent)-k.limit.N].Add(k.limit.Window).Sub(now))
		}
	}
	if wait > 0 {
		return wait
	}
	for _, key := range []string{"u:" + user, "c:" + channel} {
		b.launches[key] = append(b.launches[key], now)
	}
	return 0
}

// forget takes back the last launch counted for user and channel: it was not created.
func (b *Bot) forget(user, channel string) {
	b.mu.Lock()
	defer b.mu.Unlock()
	for _, key := range []string{"u:" + user, "c:" + channel} {
		if l := b.launches[key]; len(l) > 0 {
			b.launches[key] = l[:len(l)-1]
		}
	}
}

// userError is an error as a chat user should read it: the API client's errors are written
// for them; anything else is summed up.
func userError(err error) string {
	var ae *api.Error
	if errors.As(err, &ae) {
		return ae.Error()
	}
	if errors.Is(err, context.DeadlineExceeded) {
		return "Replicate did not answer in time; please try again."
	}
	return "Replicate could not be reached; please try again."
}

func webURL(p *replicate.Prediction) string {
	if p.URLs.Web != "" {
		return p.URLs.Web
	}
	return "https://replicate.com/p/" + p.ID
}

func emoji(s replicate.Status) string {
	switch s {
	case replicate.Succeeded:
		return "✅"
	case replicate.Failed:
		return "❌"
	case replicate.Canceled, replicate.Aborted:
		return "⏹️"
	}
	return "⏳"
}

func lastLine(s string) string {
	lines := strings.Split(strings.TrimSpace(s), "\n")
	return strings.TrimSpace(lines[len(lines)-1])
}

// markdown is escaped with a backslash before each character Discord formats with.
var markdown = strings.NewReplacer(`\`, `\\`, "*", `\*`, "_", `\_`, "~", `\~`, "`", "\\`", "|", `\|`, ">", `\>`, "#", `\#`, "[", `\[`, "]", `\]`, "(", `\(`, ")", `\)`, "@", "@\u200b")

func bold(s string) string { return "**" + markdown.Replace(s) + "**" }
func code(s string) string { return "`" + strings.ReplaceAll(s, "`", "'") + "`" }
func link(u string) string {
	return "[Open on Replicate](" + strings.NewReplacer("(", "%28", ")", "%29", " ", "%20").Replace(u) + ")"
}

// quote is user text on one line, cut to n characters, with its markdown and mentions
// neutralised.
func quote(s string, n int) string {
	s = strings.Join(strings.Fields(s), " ")
	if r := []rune(s); len(r) > n {
		s = string(r[:n-1]) + "…"
	}
	return "“" + markdown.Replace(s) + "”"
}

// unclear reports whether a failed create may still have created its prediction: no answer
// came (a timeout, a dropped connection), or a server error did. A 4xx is Replicate refusing.
func unclear(err error) bool {
	var ae *api.Error
	if errors.As(err, &ae) {
		return ae.Status >= 500
	}
	return true
}

// unclearReason says, for the user, which unclear failure it was.
func unclearReason(err error) string {
	var ae *api.Error
	switch {
	case errors.As(err, &ae):
		return fmt.Sprintf("it answered %d", ae.Status)
	case errors.Is(err, context.DeadlineExceeded):
		return "no answer in time"
	}
	return "the connection failed"
}

// withQuery adds key=value to the query of the URL u.
func withQuery(u, key, value string) string {
	sep := "?"
	if strings.Contains(u, "?") {
		sep = "&"
	}
	return u + sep + url.QueryEscape(key) + "=" + url.QueryEscape(value)
}
