package main

import (
	"fmt"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/bwmarrin/discordgo"

	"github.com/mlrelay/relay/notifiers/discordtest"
	"github.com/mlrelay/relay/relay"
)

func TestE2EDiscord(t *testing.T) {
	slack := newSlack(t)
	discord := newDiscord(t)
	db := filepath.Join(t.TempDir(), "relay.db")
	in := start(t, e2eConfig(t, db, slack.WebhookURL(), discordConfig(discord)))

	s := sample(t, "prediction-failed.json")
	if code, body := in.post(t, "?kind=prediction", s.MessageID, s.Body); code != 200 || !strings.Contains(body, `"deliveries":2`) {
		t.Fatalf("post: %d %s, want 2 deliveries (slack and discord)", code, body)
	}
	msgs, err := discord.WaitFor(1, 10*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	list := settled(t, db, 10*time.Second)
	if len(msgs) != 1 || len(msgs[0].Embeds) == 0 {
		t.Fatalf("discord got %d messages: %+v", len(msgs), msgs)
	}
	e := msgs[0].Embeds[0]
	if !strings.Contains(e.Title, "Prediction failed") || !strings.Contains(e.Title, "stability-ai/sdxl") {
		t.Errorf("embed title %q", e.Title)
	}
	if e.Color != 0xE74C3C {
		t.Errorf("embed colour %#x, want red (0xE74C3C) for a failure", e.Color)
	}
	if !strings.Contains(e.Description+fieldsText(e.Fields), "NSFW content detected") {
		t.Errorf("embed does not show the error line: %+v", e)
	}
	if msgs[0].AllowedMentions == nil || len(msgs[0].AllowedMentions.Parse) != 0 {
		t.Errorf("allowed_mentions %+v, want nothing parsed", msgs[0].AllowedMentions)
	}
	for _, d := range list {
		if d.State != relay.Sent {
			t.Errorf("delivery %s → %s is %s: %s", d.Rule, d.Notifier, d.State, d.LastError)
		}
		if d.Notifier == "discord" && d.Ref == "" {
			t.Errorf("discord delivery has no message id")
		}
	}
	if len(slack.Messages()) != 1 {
		t.Errorf("slack got %d messages, want 1", len(slack.Messages()))
	}
}

func newDiscord(t *testing.T) *discordtest.Server {
	d := discordtest.NewServer()
	t.Cleanup(d.Close)
	return d
}

// discordConfig is a Discord notifier on the stand-in and a rule sending it failures.
func discordConfig(d *discordtest.Server) string {
	return fmt.Sprintf(`
[notifiers.discord]
type = "discord"
webhook_url = %q
api_url = %q
rate = 50
burst = 10

[[rules]]
name = "failures"
statuses = ["failed", "canceled", "aborted"]
notify = ["discord"]
`, d.WebhookURL(), d.URL())
}

// fieldsText joins the embed's field values.
func fieldsText(fs []*discordgo.MessageEmbedField) string {
	var b strings.Builder
	for _, f := range fs {
		b.WriteString(f.Value)
		b.WriteByte('\n')
	}
	return b.String()
}

// TestE2EDiscordRetries shows Discord's rate limit and server errors retried until the message
// goes out once, and a 4xx ending the delivery dead with Discord's reason.
func TestE2EDiscordRetries(t *testing.T) {
	slack := newSlack(t)
	discord := newDiscord(t)
	db := filepath.Join(t.TempDir(), "relay.db")
	in := start(t, e2eConfig(t, db, slack.WebhookURL(), discordConfig(discord)))

	// A 429 with retry_after, then a 500 and a 502: three tries fail, the fourth goes through.
	discord.FailNext(1, discordtest.Failure{RetryAfter: 0.3})
	discord.ThenFail(1, discordtest.Failure{Status: 500})
	discord.ThenFail(1, discordtest.Failure{Status: 502})
	s := sample(t, "prediction-failed.json")
	start := time.Now()
	if code, body := in.post(t, "?kind=prediction", s.MessageID, s.Body); code != 200 {
		t.Fatalf("post: %d %s", code, body)
	}
	if _, err := discord.WaitFor(1, 15*time.Second); err != nil {
		t.Fatal(err)
	}
	if took := time.Since(start); took < 300*time.Millisecond {
		t.Errorf("delivered %v after a 429 asking for 300ms", took)
	}
	for _, d := range settled(t, db, 10*time.Second) {
		if d.Notifier == "discord" && (d.State != relay.Sent || d.Attempts != 2) {
			t.Errorf("discord delivery %s after %d failed attempts (want sent after 2: the 429 does not count): %s", d.State, d.Attempts, d.LastError)
		}
	}
	if n := len(discord.Messages()); n != 1 {
		t.Fatalf("discord got %d messages, want 1", n)
	}

	// A 404 (the webhook was deleted) is permanent: dead, with Discord's reason, no retry.
	discord.FailNext(1, discordtest.Failure{Status: 404, Body: `{"message": "Unknown Webhook", "code": 10015}`})
	if code, answer := in.post(t, "?kind=prediction", "msg_dead_1", withID(t, s.Body, "p-dead-1")); code != 200 {
		t.Fatalf("post: %d %s", code, answer)
	}
	var dead *relay.DeliveryInfo
	for _, d := range settled(t, db, 10*time.Second) {
		if d.Notifier == "discord" && d.State == relay.Dead {
			dead = &d
		}
	}
	if dead == nil || !strings.Contains(dead.LastError, "Unknown Webhook") || dead.Attempts != 1 {
		t.Fatalf("want a dead discord delivery after 1 attempt with Discord's reason, got %+v", deliveries(t, db))
	}
	if strings.Contains(dead.LastError, discord.WebhookURL()) {
		t.Errorf("the webhook URL, a secret, is in the error: %s", dead.LastError)
	}
	if n := len(discord.Messages()); n != 1 {
		t.Errorf("discord got %d messages, want still 1", n)
	}
}
