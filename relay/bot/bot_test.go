package bot_test

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/bwmarrin/discordgo"

	"github.com/mlrelay/relay/relay"
	"github.com/mlrelay/relay/relay/bot"
	"github.com/mlrelay/relay/relay/discordbot"
	"github.com/mlrelay/relay/relay/replicate"
	"github.com/mlrelay/relay/relay/replicate/api"
	"github.com/mlrelay/relay/relay/replicate/replicatetest"
	"github.com/mlrelay/relay/relay/sqlite"
)

const hook = "https://relay.example.com/hooks/replicate?kind=prediction&via=discord"

type fixture struct {
	bot   *bot.Bot
	store relay.Store
	rep   *replicatetest.Server
	now   time.Time
	n     int // interactions made, for their ids
}

func newFixture(t *testing.T, mutate func(*bot.Config)) *fixture {
	t.Helper()
	rep := replicatetest.NewServer()
	t.Cleanup(rep.Close)
	client, err := api.New(api.Options{BaseURL: rep.URL(), Token: replicatetest.Token, HTTPClient: rep.Client()})
	if err != nil {
		t.Fatal(err)
	}
	st, err := sqlite.Open(context.Background(), filepath.Join(t.TempDir(), "relay.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	f := &fixture{store: st, rep: rep, now: time.Date(2026, 11, 22, 12, 0, 0, 0, time.UTC)}
	cfg := bot.Config{Store: st, Replicate: client, HookURL: hook,
		Models:       []string{replicatetest.FluxSchnell, replicatetest.SDXL + ":" + replicatetest.SDXLVersion},
		DefaultModel: replicatetest.FluxSchnell, AdminRole: "900",
		PerUser: bot.Limit{N: 2, Window: time.Minute}, Now: func() time.Time { return f.now }}
	if mutate != nil {
		mutate(&cfg)
	}
	f.bot, err = bot.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return f
}

// command is an interaction of name from user in channel c1, with string options.
// command makes an interaction, each with an id of its own (i1, i2, ...), as Discord does.
func (f *fixture) command(name, user string, roles []string, opts map[string]string) *discordbot.Interaction {
	f.n++
	data := discordgo.ApplicationCommandInteractionData{Name: name}
	for k, v := range opts {
		data.Options = append(data.Options, &discordgo.ApplicationCommandInteractionDataOption{Name: k, Type: discordgo.ApplicationCommandOptionString, Value: v})
	}
	return &discordbot.Interaction{Interaction: &discordgo.Interaction{
		ID: fmt.Sprintf("i%d", f.n), AppID: "100", Type: discordgo.InteractionApplicationCommand, Data: data, GuildID: "g1", ChannelID: "c1",
		Member: &discordgo.Member{User: &discordgo.User{ID: user}, Roles: roles}, Token: "interaction-token-" + user,
	}, Received: f.now}
}

func text(r *discordgo.InteractionResponse) (string, bool) {
	if r == nil || r.Data == nil {
		return "", false
	}
	return r.Data.Content, r.Data.Flags&discordgo.MessageFlagsEphemeral != 0
}

func TestPredictLaunches(t *testing.T) {
	f := newFixture(t, nil)
	resp := f.bot.Predict(context.Background(), f.command("predict", "u1", nil, map[string]string{"prompt": "a corgi", "inputs": "seed=42 guidance=3.5"}))
	msg, ephemeral := text(resp)
	if ephemeral || !strings.Contains(msg, "Started") || !strings.Contains(msg, "<@u1>") || !strings.Contains(msg, "a corgi") {
		t.Fatalf("reply %q (ephemeral %v)", msg, ephemeral)
	}
	creates := f.rep.Creates()
	if len(creates) != 1 {
		t.Fatalf("%d create calls", len(creates))
	}
	c := creates[0]
	if c.Model != replicatetest.FluxSchnell || c.Webhook != hook+"&launch=i1" || strings.Join(c.WebhookEventsFilter, ",") != "start,completed" {
		t.Errorf("create %+v", c)
	}
	if c.Input["prompt"] != "a corgi" || c.Input["seed"] != float64(42) || c.Input["guidance"] != 3.5 {
		t.Errorf("input %v", c.Input)
	}
	l, err := f.store.Launch(context.Background(), c.PredictionID)
	if err != nil {
		t.Fatal(err)
	}
	if l.UserID != "u1" || l.ChannelID != "c1" || l.GuildID != "g1" || l.Token != "interaction-token-u1" ||
		!l.TokenExpires.Equal(f.now.Add(15*time.Minute)) || l.Model != replicatetest.FluxSchnell {
		t.Errorf("launch %+v", l)
	}
	if !strings.Contains(msg, c.PredictionID) {
		t.Errorf("reply %q lacks the prediction id", msg)
	}
}

func TestPredictRefusals(t *testing.T) {
	f := newFixture(t, nil)
	ctx := context.Background()
	for _, tt := range []struct {
		name string
		opts map[string]string
		want string
	}{
		{"model not allowed", map[string]string{"prompt": "x", "model": "evil/miner"}, "is not allowed here"},
		{"version not allowed", map[string]string{"prompt": "x", "model": replicatetest.SDXL + ":" + strings.Repeat("0", 64)}, "is not allowed here"},
		{"empty prompt", map[string]string{"prompt": "  "}, "the prompt is empty"},
		{"bad inputs", map[string]string{"prompt": "x", "inputs": "seed = 4"}, "Not started"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			msg, ephemeral := text(f.bot.Predict(ctx, f.command("predict", "u1", nil, tt.opts)))
			if !ephemeral || !strings.Contains(msg, tt.want) {
				t.Errorf("reply %q (ephemeral %v), want an ephemeral %q", msg, ephemeral, tt.want)
			}
		})
	}
	if n := len(f.rep.Creates()); n != 0 {
		t.Errorf("%d predictions created for refused commands", n)
	}
}

func TestPredictReplicateErrors(t *testing.T) {
	f := newFixture(t, nil)
	ctx := context.Background()
	f.rep.FailNext(1, replicatetest.Failure{Op: replicatetest.OpCreate, Status: http.StatusUnprocessableEntity,
		Title: "Input validation failed", Detail: "- input.width: Must be less than or equal to 1440"})
	msg, ephemeral := text(f.bot.Predict(ctx, f.command("predict", "u1", nil, map[string]string{"prompt": "x", "inputs": "width=5000"})))
	if !ephemeral || !strings.Contains(msg, "width") {
		t.Errorf("422: reply %q (ephemeral %v), want the field named", msg, ephemeral)
	}
	f.rep.FailNext(1, replicatetest.Failure{Op: replicatetest.OpCreate, Status: http.StatusTooManyRequests, RetryAfter: 8 * time.Second})
	msg, ephemeral = text(f.bot.Predict(ctx, f.command("predict", "u2", nil, map[string]string{"prompt": "x"})))
	if !ephemeral || !strings.Contains(msg, "8s") {
		t.Errorf("429: reply %q (ephemeral %v), want when to try again", msg, ephemeral)
	}
	if strings.Contains(msg, replicatetest.Token) {
		t.Error("the API token is in the reply")
	}
	// Failed creations do not count against the user's limit.
	for i := range 2 {
		if msg, eph := text(f.bot.Predict(ctx, f.command("predict", "u1", nil, map[string]string{"prompt": "x"}))); eph {
			t.Fatalf("launch %d after failures refused: %q", i, msg)
		}
	}
}

func TestPredictRateLimit(t *testing.T) {
	f := newFixture(t, nil)
	ctx := context.Background()
	for i := range 2 {
		if msg, eph := text(f.bot.Predict(ctx, f.command("predict", "u1", nil, map[string]string{"prompt": "x"}))); eph {
			t.Fatalf("launch %d refused: %q", i, msg)
		}
	}
	msg, eph := text(f.bot.Predict(ctx, f.command("predict", "u1", nil, map[string]string{"prompt": "x"})))
	if !eph || !strings.Contains(msg, "too many predictions") || !strings.Contains(msg, "1m0s") {
		t.Fatalf("third launch in a minute: %q (ephemeral %v)", msg, eph)
	}
	if _, eph := text(f.bot.Predict(ctx, f.command("predict", "u2", nil, map[string]string{"prompt": "x"}))); eph {
		t.Error("another user was refused by u1's limit")
	}
	f.now = f.now.Add(time.Minute)
	if msg, eph := text(f.bot.Predict(ctx, f.command("predict", "u1", nil, map[string]string{"prompt": "x"}))); eph {
		t.Errorf("after the window: %q", msg)
	}
}

func TestCancelAndStatus(t *testing.T) {
	f := newFixture(t, nil)
	ctx := context.Background()
	f.bot.Predict(ctx, f.command("predict", "u1", nil, map[string]string{"prompt": "x"}))
	id := f.rep.Creates()[0].PredictionID

	msg, eph := text(f.bot.Status(ctx, f.command("status", "u2", nil, map[string]string{"id": "https://replicate.com/p/" + id})))
	if !eph || !strings.Contains(msg, id) {
		t.Errorf("status: %q", msg)
	}
	msg, eph = text(f.bot.Cancel(ctx, f.command("cancel", "u2", nil, map[string]string{"id": id})))
	if !eph || !strings.Contains(msg, "Only <@u1>") {
		t.Errorf("cancel by another user: %q", msg)
	}
	msg, _ = text(f.bot.Cancel(ctx, f.command("cancel", "u3", []string{"900"}, map[string]string{"id": id})))
	if !strings.Contains(msg, "is **canceled**") {
		t.Errorf("cancel by an admin: %q", msg)
	}
	f.bot.Predict(ctx, f.command("predict", "u1", nil, map[string]string{"prompt": "y"}))
	id2 := f.rep.Creates()[1].PredictionID
	if msg, _ := text(f.bot.Cancel(ctx, f.command("cancel", "u1", nil, map[string]string{"id": id2}))); !strings.Contains(msg, "is **canceled**") {
		t.Errorf("cancel by the launcher: %q", msg)
	}
	if msg, _ := text(f.bot.Cancel(ctx, f.command("cancel", "u1", nil, map[string]string{"id": "zzzz"}))); !strings.Contains(msg, "not started with /predict here") {
		t.Errorf("cancel of a foreign prediction: %q", msg)
	}
}

func TestAutocomplete(t *testing.T) {
	f := newFixture(t, nil)
	in := f.command("predict", "u1", nil, nil)
	in.Type = discordgo.InteractionApplicationCommandAutocomplete
	data := in.Data.(discordgo.ApplicationCommandInteractionData)
	data.Options = []*discordgo.ApplicationCommandInteractionDataOption{{Name: "model", Type: discordgo.ApplicationCommandOptionString, Value: "flux", Focused: true}}
	in.Data = data
	resp := f.bot.Autocomplete(context.Background(), in)
	if resp == nil || resp.Data == nil || len(resp.Data.Choices) != 1 || resp.Data.Choices[0].Value != replicatetest.FluxSchnell {
		t.Fatalf("autocomplete %+v", resp)
	}
}

func TestNewRefusesBadConfig(t *testing.T) {
	f := newFixture(t, nil)
	client, err := api.New(api.Options{BaseURL: f.rep.URL(), Token: "t"})
	if err != nil {
		t.Fatal(err)
	}
	good := bot.Config{Store: f.store, Replicate: client, HookURL: hook, Models: []string{"a/b"}, DefaultModel: "a/b"}
	if _, err := bot.New(good); err != nil {
		t.Fatalf("a good config was refused: %v", err)
	}
	for name, mutate := range map[string]func(*bot.Config){
		"no models":           func(c *bot.Config) { c.Models = nil },
		"default not allowed": func(c *bot.Config) { c.DefaultModel = "other/model" },
		"no hook URL":         func(c *bot.Config) { c.HookURL = "" },
		"bad model":           func(c *bot.Config) { c.Models = []string{"not a model"} },
		"no store":            func(c *bot.Config) { c.Store = nil },
	} {
		cfg := good
		mutate(&cfg)
		if _, err := bot.New(cfg); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
}

// TestPredictReplayedInteractionLaunchesOnce posts the same interaction twice to the bot, as a
// replica that never saw it, or the relay after a restart, would get a captured one replayed:
// one prediction, and the replay costs the user no slot.
func TestPredictReplayedInteractionLaunchesOnce(t *testing.T) {
	f := newFixture(t, nil)
	ctx := context.Background()
	in := f.command("predict", "u1", nil, map[string]string{"prompt": "x"})
	if msg, eph := text(f.bot.Predict(ctx, in)); eph || !strings.Contains(msg, "Started") {
		t.Fatalf("first: %q", msg)
	}
	f.now = f.now.Add(time.Second) // a replay comes later
	if msg, eph := text(f.bot.Predict(ctx, in)); !eph || !strings.Contains(msg, "already answered") {
		t.Fatalf("replayed: %q (ephemeral %v)", msg, eph)
	}
	if n := len(f.rep.Creates()); n != 1 {
		t.Fatalf("%d predictions created, want 1", n)
	}
	// The limit is 2 a minute: the replay took none of it.
	if msg, eph := text(f.bot.Predict(ctx, f.command("predict", "u1", nil, map[string]string{"prompt": "y"}))); eph {
		t.Fatalf("second launch refused: %q", msg)
	}
}

// failSaveStore fails SaveLaunch, the record under a prediction's id made after its create.
type failSaveStore struct{ relay.Store }

func (failSaveStore) SaveLaunch(context.Context, relay.Launch) error {
	return errors.New("database is locked")
}

// TestPredictWithoutRecordUnderPredictionID checks that a launch whose record under the
// prediction's id fails is still answered as started, not canceled: its record under the
// interaction brings the result back, and lets /cancel find it.
func TestPredictWithoutRecordUnderPredictionID(t *testing.T) {
	f := newFixture(t, func(c *bot.Config) { c.Store = failSaveStore{c.Store} })
	ctx := context.Background()
	if msg, eph := text(f.bot.Predict(ctx, f.command("predict", "u1", nil, map[string]string{"prompt": "x"}))); eph || !strings.Contains(msg, "Started") {
		t.Fatalf("answer %q", msg)
	}
	id := f.rep.Creates()[0].PredictionID
	if p, ok := f.rep.Prediction(id); !ok || p.Status == replicate.Canceled {
		t.Fatalf("prediction %s: %+v", id, p)
	}
	if msg, _ := text(f.bot.Cancel(ctx, f.command("cancel", "u2", nil, map[string]string{"id": id}))); !strings.Contains(msg, "Only <@u1>") {
		t.Errorf("cancel by another user: %q", msg)
	}
	if msg, _ := text(f.bot.Cancel(ctx, f.command("cancel", "u1", nil, map[string]string{"id": id}))); !strings.Contains(msg, "is **canceled**") {
		t.Errorf("cancel by the launcher: %q", msg)
	}
}

// TestCancelAfterUnclearCreate cancels a prediction whose create was carried out but whose
// answer was lost: only its interaction's record knows who launched it.
func TestCancelAfterUnclearCreate(t *testing.T) {
	f := newFixture(t, nil)
	ctx := context.Background()
	f.rep.FailNext(1, replicatetest.Failure{Op: replicatetest.OpCreate, AnswerLost: true, Delay: 50 * time.Millisecond})
	if msg, _ := text(f.bot.Predict(ctx, f.command("predict", "u1", nil, map[string]string{"prompt": "x"}))); !strings.Contains(msg, "no clear answer") {
		t.Fatalf("answer %q", msg)
	}
	id := f.rep.Creates()[0].PredictionID
	if id == "" {
		t.Fatal("the stand-in made no prediction")
	}
	if msg, _ := text(f.bot.Cancel(ctx, f.command("cancel", "u1", nil, map[string]string{"id": id}))); !strings.Contains(msg, "is **canceled**") {
		t.Errorf("cancel by the launcher: %q", msg)
	}
	// A prediction this relay did not launch is still refused.
	if msg, _ := text(f.bot.Cancel(ctx, f.command("cancel", "u1", nil, map[string]string{"id": "zzzzzzzzzzzzzzzzzzzzzzzzzz"}))); !strings.Contains(msg, "was not started with /predict here") {
		t.Errorf("cancel of a stranger's prediction: %q", msg)
	}
}

// lostAnswerStore writes a launch and then answers as if a second attempt found it there, as
// PostgreSQL's store does when the connection drops after its INSERT committed.
type lostAnswerStore struct{ relay.Store }

func (s lostAnswerStore) AddLaunch(ctx context.Context, l relay.Launch) error {
	if err := s.Store.AddLaunch(ctx, l); err != nil {
		return err
	}
	return fmt.Errorf("add launch %s: %w", l.PredictionID, relay.ErrLaunchExists)
}

// TestPredictAfterLostAnswerToItsRecord checks that a launch whose own record was written by an
// attempt whose answer was lost is not mistaken for a replay.
func TestPredictAfterLostAnswerToItsRecord(t *testing.T) {
	f := newFixture(t, func(c *bot.Config) { c.Store = lostAnswerStore{c.Store} })
	if msg, eph := text(f.bot.Predict(context.Background(), f.command("predict", "u1", nil, map[string]string{"prompt": "x"}))); eph || !strings.Contains(msg, "Started") {
		t.Fatalf("answer %q", msg)
	}
	if n := len(f.rep.Creates()); n != 1 {
		t.Fatalf("%d predictions created, want 1", n)
	}
}
