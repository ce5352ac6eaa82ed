package notifiers

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/mlrelay/relay/notifiers/discordtest"
	"github.com/mlrelay/relay/relay"
)

func newReply(t *testing.T, srv *discordtest.Server, launches map[string]relay.Launch, now time.Time) *DiscordReply {
	t.Helper()
	r, err := NewDiscordReply(DiscordReplyOptions{AppID: discordtest.ApplicationID, BotToken: discordtest.BotToken, APIURL: srv.URL(),
		Timeout: 5 * time.Second, Now: func() time.Time { return now },
		Launch: func(_ context.Context, id string) (relay.Launch, error) {
			l, ok := launches[id]
			if !ok {
				return relay.Launch{}, relay.ErrNoLaunch
			}
			return l, nil
		}})
	if err != nil {
		t.Fatal(err)
	}
	return r
}

func TestDiscordReply(t *testing.T) {
	srv := discordtest.NewServer()
	defer srv.Close()
	now := time.Now()
	const token = "interaction-token-secret"
	srv.AddInteraction(discordtest.ApplicationID, token, discordtest.Original{Content: "Started"})
	ev := sampleEvents(t)["prediction-succeeded"]
	launches := map[string]relay.Launch{ev.ID: {PredictionID: ev.ID, ChannelID: discordtest.ChannelID, UserID: "42", Token: token, TokenExpires: now.Add(10 * time.Minute)}}
	m := discordMsg(ev)

	// Fresh token: the original reply is edited.
	if _, err := newReply(t, srv, launches, now).Notify(context.Background(), m); err != nil {
		t.Fatal(err)
	}
	if edits := srv.Edits(); len(edits) != 1 || !strings.Contains(edits[0].Content, "<@42>") {
		t.Fatalf("edits %+v", edits)
	}
	// Within a minute of the expiry (by the relay's clock): a channel message, no edit tried.
	late := newReply(t, srv, launches, now.Add(9*time.Minute+30*time.Second))
	if _, err := late.Notify(context.Background(), m); err != nil {
		t.Fatal(err)
	}
	if len(srv.Edits()) != 1 {
		t.Error("an edit was tried with a token about to expire")
	}
	msgs := srv.Messages()
	if len(msgs) != 1 || msgs[0].ChannelID != discordtest.ChannelID || !strings.Contains(msgs[0].Content, "<@42>") {
		t.Fatalf("channel messages %+v", msgs)
	}
	// A launch not recorded yet is retried.
	m2 := m
	m2.Event = parseEvent(t, `{"id":"unknown","status":"succeeded"}`)
	_, err := late.Notify(context.Background(), m2)
	if err == nil || relay.Classify(err).Permanent {
		t.Fatalf("unknown launch: %v, want a retryable error", err)
	}
	// Discord failing the edit: classified, and the interaction token is not in the error.
	srv.FailNext(1, discordtest.Failure{Status: 500})
	_, err = newReply(t, srv, launches, now).Notify(context.Background(), m)
	if err == nil || relay.Classify(err).Permanent {
		t.Fatalf("a 500 on the edit: %v, want retryable", err)
	}
	if strings.Contains(err.Error(), token) || strings.Contains(err.Error(), discordtest.BotToken) {
		t.Errorf("a secret is in the error: %v", err)
	}
}
