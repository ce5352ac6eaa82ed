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
	discord := discordtest.NewServer()
	t.Cleanup(discord.Close)
	db := filepath.Join(t.TempDir(), "relay.db")
	in := start(t, e2eConfig(t, db, slack.WebhookURL(), fmt.Sprintf(`
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
`, discord.WebhookURL(), discord.URL())))

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

// fieldsText joins the embed's field values.
func fieldsText(fs []*discordgo.MessageEmbedField) string {
	var b strings.Builder
	for _, f := range fs {
		b.WriteString(f.Value)
		b.WriteByte('\n')
	}
	return b.String()
}
