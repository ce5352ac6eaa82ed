package main

import (
	"bytes"
	"crypto/ed25519"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/bwmarrin/discordgo"

	"github.com/mlrelay/relay/notifiers/discordtest"
	"github.com/mlrelay/relay/relay"
	"github.com/mlrelay/relay/relay/discordbot"
	"github.com/mlrelay/relay/relay/replicate"
	"github.com/mlrelay/relay/relay/replicate/replicatetest"
)

// botWorld is everything the bot talks to, on loopback: Replicate, Discord, a file server for
// the output images, and the relay itself.
type botWorld struct {
	t       *testing.T
	key     ed25519.PrivateKey
	rep     *replicatetest.Server
	discord *discordtest.Server
	files   *fileServer
	image   []byte
	db      string
	extra   string
	slack   string
	in      *instance
	seq     atomic.Int64
}

func newBotWorld(t *testing.T) *botWorld {
	t.Helper()
	pub, key, err := ed25519.GenerateKey(nil)
	if err != nil {
		t.Fatal(err)
	}
	w := &botWorld{t: t, key: key, rep: replicatetest.NewServer(), discord: newDiscord(t),
		image: append([]byte("\x89PNG\r\n\x1a\n"), bytes.Repeat([]byte{3}, 500)...), db: filepath.Join(t.TempDir(), "relay.db")}
	t.Cleanup(w.rep.Close)
	w.files = newFileServer(t, map[string][]byte{"/pbxt/out-0.png": w.image})
	w.slack = newSlack(t).WebhookURL()
	w.extra = fmt.Sprintf(`
[attachments]
hosts = ["127.0.0.1"]
ca_file = %q

[bot]
app_id = %q
public_key = %q
bot_token = %q
api_url = %q
replicate_token = %q
replicate_api_url = %q
models = [%q, %q]
default_model = %q
user_limit = 100
`, w.files.caFile, discordtest.ApplicationID, hex.EncodeToString(pub), discordtest.BotToken, w.discord.URL(),
		replicatetest.Token, w.rep.URL(), replicatetest.FluxSchnell, replicatetest.SDXL+":"+replicatetest.SDXLVersion, replicatetest.FluxSchnell)
	w.start()
	return w
}

func (w *botWorld) start() { w.in = start(w.t, e2eConfig(w.t, w.db, w.slack, w.extra)) }

// interact posts a signed /predict interaction and returns Discord's view of the answer and
// the interaction's token.
func (w *botWorld) predict(user string, opts map[string]any) (discordgo.InteractionResponse, string) {
	w.t.Helper()
	token := fmt.Sprintf("interaction-token-%d", w.seq.Add(1))
	var options []map[string]any
	for k, v := range opts {
		options = append(options, map[string]any{"name": k, "type": 3, "value": v})
	}
	body, err := json.Marshal(map[string]any{
		"id": fmt.Sprint(1300000000000000001 + w.seq.Load()), "application_id": discordtest.ApplicationID, "type": 2, "token": token, "version": 1,
		"guild_id": discordtest.GuildID, "channel_id": discordtest.ChannelID,
		"member": map[string]any{"user": map[string]any{"id": user, "username": user}, "roles": []string{}},
		"data":   map[string]any{"id": "1", "name": "predict", "type": 1, "options": options},
	})
	if err != nil {
		w.t.Fatal(err)
	}
	code, answer := w.in.do(w.t, http.MethodPost, "/discord/interactions", discordbot.SignHeaders(w.key, time.Now(), body), body)
	if code != 200 {
		w.t.Fatalf("interaction: %d %s", code, answer)
	}
	var resp discordgo.InteractionResponse
	if err := json.Unmarshal([]byte(answer), &resp); err != nil {
		w.t.Fatalf("interaction answer %s: %v", answer, err)
	}
	if resp.Type == discordgo.InteractionResponseChannelMessageWithSource && resp.Data.Flags&discordgo.MessageFlagsEphemeral == 0 {
		// Discord keeps the answer as the interaction's original response.
		w.discord.AddInteraction(discordtest.ApplicationID, token, discordtest.Original{Content: resp.Data.Content})
	}
	return resp, token
}

// complete posts the prediction's completion webhook to the relay, as Replicate would, signed
// with the relay's secret.
func (w *botWorld) complete(id string, c replicatetest.Completion) {
	w.t.Helper()
	c.Secret = replicate.SampleSecret
	d, err := w.rep.Complete(id, c)
	if err != nil {
		w.t.Fatal(err)
	}
	u, err := url.Parse(d.URL)
	if err != nil {
		w.t.Fatal(err)
	}
	if code, answer := w.in.do(w.t, http.MethodPost, u.RequestURI(), d.Header, d.Body); code != 200 {
		w.t.Fatalf("completion webhook: %d %s", code, answer)
	}
}

func (w *botWorld) lastCreate() replicatetest.Create {
	w.t.Helper()
	cs := w.rep.Creates()
	if len(cs) == 0 {
		w.t.Fatal("no prediction was created")
	}
	return cs[len(cs)-1]
}

func TestE2EBotPredictLoop(t *testing.T) {
	w := newBotWorld(t)
	resp, token := w.predict("4242", map[string]any{"prompt": "a corgi in a spacesuit", "inputs": "seed=7"})
	if !strings.Contains(resp.Data.Content, "Started") || resp.Data.Flags&discordgo.MessageFlagsEphemeral != 0 {
		t.Fatalf("first answer %+v", resp.Data)
	}
	c := w.lastCreate()
	if !strings.HasPrefix(c.Webhook, "https://relay.example.com/hooks/replicate?kind=prediction&via=discord&launch=1") ||
		strings.Join(c.WebhookEventsFilter, ",") != "start,completed" || c.Input["prompt"] != "a corgi in a spacesuit" || c.Input["seed"] != float64(7) {
		t.Fatalf("create call %+v", c)
	}
	// The start event changes nothing; the completion edits the reply, the image attached.
	if d, err := w.rep.Webhook(c.PredictionID, replicate.SampleSecret, time.Now()); err == nil {
		u, _ := url.Parse(d.URL)
		if code, answer := w.in.do(t, http.MethodPost, u.RequestURI(), d.Header, d.Body); code != 200 {
			t.Fatalf("start webhook: %d %s", code, answer)
		}
	}
	w.complete(c.PredictionID, replicatetest.Completion{Output: []string{w.files.url("/pbxt/out-0.png")}})
	edits, err := w.discord.WaitForEdits(1, 15*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	e := edits[0]
	if e.InteractionToken != token || !strings.Contains(e.Content, "<@4242>") {
		t.Errorf("edit %q of token %q", e.Content, e.InteractionToken)
	}
	if a, ok := e.Attachment("out-0.png"); !ok || !bytes.Equal(a.Data, w.image) {
		t.Errorf("the edit's attachments %v lack the image", names(e.Attachments))
	}
	if len(e.Embeds) == 0 || !strings.Contains(e.Embeds[0].Title, "succeeded") && !strings.Contains(e.Embeds[0].Title, "Prediction") {
		t.Errorf("edit embeds %+v", e.Embeds)
	}
	if n := len(w.discord.Messages()); n != 0 {
		t.Errorf("%d channel messages besides the edit", n)
	}
	for _, d := range settled(t, w.db, 10*time.Second) {
		if d.Notifier == botDestination && (d.State != relay.Sent || d.Ref == "") {
			t.Errorf("bot delivery %+v", d)
		}
	}

	// A failure shows its error line.
	w.predict("4242", map[string]any{"prompt": "another"})
	c = w.lastCreate()
	w.complete(c.PredictionID, replicatetest.Completion{Status: replicate.Failed, Error: "Traceback...\nRuntimeError: CUDA out of memory"})
	edits, err = w.discord.WaitForEdits(2, 15*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	if got := edits[1].Content + fmt.Sprint(edits[1].Embeds[0].Description, edits[1].Embeds[0].Fields); !strings.Contains(got, "CUDA out of memory") {
		t.Errorf("the failure's edit lacks the error line: %s", got)
	}
}

func TestE2EBotExpiredTokenPostsInChannel(t *testing.T) {
	w := newBotWorld(t)
	_, token := w.predict("777", map[string]any{"prompt": "slow one"})
	c := w.lastCreate()
	w.discord.ExpireInteraction(discordtest.ApplicationID, token)
	// The relay only knows the token's age; here Discord says it expired early: 401, and the
	// result goes to the channel instead, mentioning the user.
	w.complete(c.PredictionID, replicatetest.Completion{Output: []string{w.files.url("/pbxt/out-0.png")}})
	msgs, err := w.discord.WaitFor(1, 15*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	m := msgs[0]
	if m.Webhook || m.ChannelID != discordtest.ChannelID || !strings.Contains(m.Content, "<@777>") {
		t.Errorf("channel message %+v", m)
	}
	if m.AllowedMentions == nil || len(m.AllowedMentions.Users) != 1 || m.AllowedMentions.Users[0] != "777" {
		t.Errorf("allowed mentions %+v, want the user alone", m.AllowedMentions)
	}
	if a, ok := m.Attachment("out-0.png"); !ok || !bytes.Equal(a.Data, w.image) {
		t.Errorf("attachments %v", names(m.Attachments))
	}
	if n := len(w.discord.Edits()); n != 0 {
		t.Errorf("%d edits with an expired token", n)
	}
}

func TestE2EBotRefusals(t *testing.T) {
	w := newBotWorld(t)
	ephemeral := func(resp discordgo.InteractionResponse) bool {
		return resp.Data != nil && resp.Data.Flags&discordgo.MessageFlagsEphemeral != 0
	}
	resp, _ := w.predict("1", map[string]any{"prompt": "x", "model": "evil/cryptominer"})
	if !ephemeral(resp) || !strings.Contains(resp.Data.Content, "not allowed") {
		t.Errorf("refused model: %+v", resp.Data)
	}
	// A typed option's bounds hold in inputs too: refused here, without a call.
	resp, _ = w.predict("1", map[string]any{"prompt": "x", "inputs": "num_outputs=9"})
	if !ephemeral(resp) || !strings.Contains(resp.Data.Content, "num_outputs must be a whole number from 1 to 4") {
		t.Errorf("num_outputs=9 in inputs: %+v", resp.Data)
	}
	w.rep.FailNext(1, replicatetest.Failure{Op: replicatetest.OpCreate, Status: 422, Title: "Input validation failed",
		Detail: "- input.guidance_scale: Must be less than or equal to 50"})
	resp, _ = w.predict("1", map[string]any{"prompt": "x", "inputs": "guidance_scale=99"})
	if !ephemeral(resp) || !strings.Contains(resp.Data.Content, "guidance_scale") {
		t.Errorf("422: %+v", resp.Data)
	}
	w.rep.FailNext(1, replicatetest.Failure{Op: replicatetest.OpCreate, Status: 429, RetryAfter: 12 * time.Second})
	resp, _ = w.predict("1", map[string]any{"prompt": "x"})
	if !ephemeral(resp) || !strings.Contains(resp.Data.Content, "12s") {
		t.Errorf("429: %+v", resp.Data)
	}
	if n := len(w.rep.Creates()); n != 2 {
		t.Errorf("%d create calls, want 2 (the refused model and inputs never reach Replicate)", n)
	}
	// A bad signature is refused before anything happens.
	body := []byte(`{"type":1}`)
	h := discordbot.SignHeaders(w.key, time.Now(), []byte(`{"type":2}`))
	if code, _ := w.in.do(t, http.MethodPost, "/discord/interactions", h, body); code != 401 {
		t.Errorf("tampered interaction: %d, want 401", code)
	}
	if code, answer := w.in.do(t, http.MethodPost, "/discord/interactions", discordbot.SignHeaders(w.key, time.Now(), body), body); code != 200 || !strings.Contains(answer, `"type":1`) {
		t.Errorf("PING: %d %s", code, answer)
	}
}

func TestE2EBotRestartBetweenLaunchAndCompletion(t *testing.T) {
	w := newBotWorld(t)
	_, token := w.predict("55", map[string]any{"prompt": "survives a restart"})
	c := w.lastCreate()
	w.in.shutdown()
	w.start()
	w.complete(c.PredictionID, replicatetest.Completion{Output: []string{w.files.url("/pbxt/out-0.png")}})
	edits, err := w.discord.WaitForEdits(1, 15*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	if edits[0].InteractionToken != token {
		t.Errorf("edited interaction %q, want %q", edits[0].InteractionToken, token)
	}
}

func TestE2EDiscordRegister(t *testing.T) {
	w := newBotWorld(t)
	path := e2eConfig(t, w.db, w.slack, w.extra).Source
	for i, want := range []string{"added /predict", "nothing changed"} {
		var out, errOut bytes.Buffer
		if code := run(t.Context(), []string{"discord", "register", "--config", path, "--guild", discordtest.GuildID}, &out, &errOut); code != 0 {
			t.Fatalf("register %d: exit %d: %s", i, code, errOut.String())
		}
		if !strings.Contains(out.String(), want) {
			t.Errorf("register %d said %q, want %q", i, out.String(), want)
		}
	}
	var names []string
	for _, c := range w.discord.Commands(discordtest.GuildID) {
		names = append(names, c.Name)
	}
	if strings.Join(names, ",") != "predict,status,cancel" {
		t.Errorf("registered %v", names)
	}
	if len(w.discord.Commands("")) != 0 {
		t.Error("a guild registration registered global commands")
	}
}

// Replicate creates the prediction but its answer never arrives (a gateway timing out): the
// user is told it may have started, and when it completes, its result still replaces that
// answer, found through the interaction its webhooks name.
func TestE2EBotLostCreateAnswerStillPostsTheResult(t *testing.T) {
	w := newBotWorld(t)
	w.rep.FailNext(1, replicatetest.Failure{Op: replicatetest.OpCreate, AnswerLost: true, Delay: 5 * time.Second})
	resp, token := w.predict("4242", map[string]any{"prompt": "a corgi in a spacesuit"})
	if resp.Data == nil || resp.Data.Flags&discordgo.MessageFlagsEphemeral != 0 || !strings.Contains(resp.Data.Content, "If it started") || !strings.Contains(resp.Data.Content, "no answer in time") {
		t.Fatalf("answer %+v, want a visible one saying the prediction may have started", resp.Data)
	}
	c := w.lastCreate()
	if c.PredictionID == "" {
		t.Fatalf("the stand-in made no prediction: %+v", c)
	}
	w.complete(c.PredictionID, replicatetest.Completion{Output: []string{w.files.url("/pbxt/out-0.png")}})
	edits, err := w.discord.WaitForEdits(1, 15*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	if e := edits[0]; e.InteractionToken != token || !strings.Contains(e.Content, "<@4242>") {
		t.Errorf("edit %q of token %q, want the result in the interaction's answer", e.Content, e.InteractionToken)
	}
	for _, d := range settled(t, w.db, 10*time.Second) {
		if d.Notifier == botDestination && d.State != relay.Sent {
			t.Errorf("bot delivery %+v", d)
		}
	}
}
