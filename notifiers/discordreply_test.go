package notifiers

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/mlrelay/relay/notifiers/discordtest"
	"github.com/mlrelay/relay/relay"
)

func newReply(t *testing.T, srv *discordtest.Server, launches map[string]relay.Launch, now time.Time) *DiscordReply {
	t.Helper()
	return newReplyAt(t, srv.URL(), launches, now)
}

// newReplyAt is newReply with Discord's API at apiURL (a proxy in front of the stand-in).
func newReplyAt(t *testing.T, apiURL string, launches map[string]relay.Launch, now time.Time) *DiscordReply {
	t.Helper()
	r, err := NewDiscordReply(DiscordReplyOptions{AppID: discordtest.ApplicationID, BotToken: discordtest.BotToken, APIURL: apiURL,
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
	// Discord failing the edit (of another launch's reply, still "Started"): classified, and
	// the interaction token is not in the error.
	const token2 = "interaction-token-secret-2"
	srv.AddInteraction(discordtest.ApplicationID, token2, discordtest.Original{Content: "Started"})
	launches[ev.ID] = relay.Launch{PredictionID: ev.ID, ChannelID: discordtest.ChannelID, UserID: "42", Token: token2, TokenExpires: now.Add(10 * time.Minute)}
	srv.FailNext(2, discordtest.Failure{Status: 500}) // the read of the original, then the edit
	_, err = newReply(t, srv, launches, now).Notify(context.Background(), m)
	if err == nil || relay.Classify(err).Permanent {
		t.Fatalf("a 500 on the edit: %v, want retryable", err)
	}
	if strings.Contains(err.Error(), token2) || strings.Contains(err.Error(), discordtest.BotToken) {
		t.Errorf("a secret is in the error: %v", err)
	}
}

// TestDiscordReplyEditAnswerLost has Discord apply the edit of the original reply, with two
// images, and a proxy lose its answer: the retry must not attach the images a second time.
func TestDiscordReplyEditAnswerLost(t *testing.T) {
	srv := discordtest.NewServer()
	defer srv.Close()
	target, _ := url.Parse(srv.BaseURL())
	var lost atomic.Bool
	forward := httputil.NewSingleHostReverseProxy(target)
	proxy := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method == http.MethodPatch && lost.CompareAndSwap(false, true) {
			forward.ServeHTTP(httptest.NewRecorder(), r) // Discord acts; its answer goes nowhere
			http.Error(w, "<html>502 Bad Gateway</html>", http.StatusBadGateway)
			return
		}
		forward.ServeHTTP(w, r)
	}))
	defer proxy.Close()

	now := time.Now()
	const token = "interaction-token-secret"
	srv.AddInteraction(discordtest.ApplicationID, token, discordtest.Original{Content: "Started"})
	ev := sampleEvents(t)["prediction-succeeded"]
	launches := map[string]relay.Launch{ev.ID: {PredictionID: ev.ID, ChannelID: discordtest.ChannelID, UserID: "42", Token: token, TokenExpires: now.Add(10 * time.Minute)}}
	m := discordMsg(ev)
	for i := range 2 {
		m.Attachments = append(m.Attachments, relay.Attachment{Name: fmt.Sprintf("out-%d.png", i), ContentType: "image/png",
			Data: []byte{0x89, 'P', 'N', 'G', byte(i)}, URL: fmt.Sprintf("https://replicate.delivery/x/out-%d.png", i)})
	}
	r := newReplyAt(t, proxy.URL+discordtest.APIPath, launches, now)
	if _, err := r.Notify(context.Background(), m); err == nil || relay.Classify(err).Permanent {
		t.Fatalf("first attempt: %v, want a retryable error", err)
	}
	if _, err := r.Notify(context.Background(), m); err != nil {
		t.Fatalf("retry: %v", err)
	}
	orig, ok := srv.Original(discordtest.ApplicationID, token)
	if !ok || !strings.Contains(orig.Content, "<@42>") {
		t.Fatalf("original %+v", orig)
	}
	if len(orig.Attachments) != 2 {
		names := []string{}
		for _, a := range orig.Attachments {
			names = append(names, a.Name)
		}
		t.Fatalf("the original has %d attachments %q, want the 2 images once", len(orig.Attachments), names)
	}
}
