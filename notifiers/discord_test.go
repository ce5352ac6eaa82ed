package notifiers

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/bwmarrin/discordgo"

	"github.com/mlrelay/relay/notifiers/discordtest"
	"github.com/mlrelay/relay/relay"
)

// discordMsg wraps ev in fixed, already rendered texts, as the templates would give them for
// the discord target.
func discordMsg(ev *relay.Event) relay.Message {
	return relay.Message{
		Event:   ev,
		Rule:    "all-runs",
		Title:   "Prediction update",
		Body:    "**stability\\-ai/sdxl** changed state. [View it](https://replicate.com/p/x) & compare.",
		Context: "rule all-runs · relay",
		Text:    "Prediction update: stability-ai/sdxl changed state.",
	}
}

func newDiscordWebhook(t *testing.T, webhookURL string, timeout time.Duration) *Discord {
	t.Helper()
	d, err := NewDiscord(DiscordOptions{WebhookURL: webhookURL, Timeout: timeout})
	if err != nil {
		t.Fatal(err)
	}
	return d
}

func newDiscordBot(t *testing.T, apiURL, token, channel string, timeout time.Duration) *Discord {
	t.Helper()
	d, err := NewDiscord(DiscordOptions{BotToken: token, ChannelID: channel, APIURL: apiURL, Timeout: timeout})
	if err != nil {
		t.Fatal(err)
	}
	return d
}

// newDiscordMode returns a notifier for srv (or base, when set, in place of srv's address) in
// mode "webhook" or "bot".
func newDiscordMode(t *testing.T, mode string, srv *discordtest.Server, base string, timeout time.Duration) *Discord {
	t.Helper()
	if base == "" {
		base = srv.BaseURL()
	}
	if mode == "webhook" {
		return newDiscordWebhook(t, base+discordtest.WebhookPath, timeout)
	}
	return newDiscordBot(t, base+discordtest.APIPath, discordtest.BotToken, discordtest.ChannelID, timeout)
}

func TestNewDiscord(t *testing.T) {
	const hook = "https://discord.com/api/webhooks/123456789012345678/s3cr3t-T0ken_abcdefghijklmnop"
	tests := []struct {
		name    string
		opts    DiscordOptions
		wantErr string // "" for success
		wantTo  string // the API base requests go to
	}{
		{name: "webhook", opts: DiscordOptions{WebhookURL: hook}, wantTo: "https://discord.com/api/v10/"},
		{name: "webhook versioned", opts: DiscordOptions{WebhookURL: "https://discord.com/api/v10/webhooks/1/s3cr3t-T0ken"}, wantTo: "https://discord.com/api/v10/"},
		{name: "webhook with thread", opts: DiscordOptions{WebhookURL: hook + "?thread_id=42"}, wantTo: "https://discord.com/api/v10/"},
		{name: "webhook with username", opts: DiscordOptions{WebhookURL: hook, Username: "Relay", AvatarURL: "https://example.com/a.png"}, wantTo: "https://discord.com/api/v10/"},
		{name: "bot default API", opts: DiscordOptions{BotToken: "tok.en", ChannelID: "1100"}, wantTo: "https://discord.com/api/v10/"},
		{name: "bot with Bot prefix", opts: DiscordOptions{BotToken: "Bot tok.en", ChannelID: "1100", APIURL: "http://127.0.0.1:9/x/api/v10/"}, wantTo: "http://127.0.0.1:9/x/api/v10/"},
		{name: "nothing", opts: DiscordOptions{}, wantErr: "set webhook_url, or bot_token and channel_id"},
		{name: "both", opts: DiscordOptions{WebhookURL: hook, BotToken: "s3cr3t", ChannelID: "1"}, wantErr: "not both"},
		{name: "token without channel", opts: DiscordOptions{BotToken: "s3cr3t"}, wantErr: "if bot_token is set, channel_id must be set too"},
		{name: "channel without token", opts: DiscordOptions{ChannelID: "1"}, wantErr: "if channel_id is set, bot_token must be set too"},
		{name: "channel not numeric", opts: DiscordOptions{BotToken: "s3cr3t", ChannelID: "#general"}, wantErr: "numeric channel ID"},
		{name: "token with newline", opts: DiscordOptions{BotToken: "s3cr3t\nX-Evil: 1", ChannelID: "1"}, wantErr: "bot_token contains"},
		{name: "bad API URL", opts: DiscordOptions{BotToken: "s3cr3t", ChannelID: "1", APIURL: "discord.com/api"}, wantErr: "api_url"},
		{name: "username with bot", opts: DiscordOptions{BotToken: "s3cr3t", ChannelID: "1", Username: "x"}, wantErr: "apply only to webhook_url"},
		{name: "webhook not http", opts: DiscordOptions{WebhookURL: "ftp://discord.com/api/webhooks/1/s3cr3t"}, wantErr: "must start with https://"},
		{name: "webhook not a webhook", opts: DiscordOptions{WebhookURL: "https://discord.com/api/channels/1/s3cr3t"}, wantErr: "must look like"},
		{name: "webhook id not numeric", opts: DiscordOptions{WebhookURL: "https://discord.com/api/webhooks/abc/s3cr3t"}, wantErr: "numeric id"},
		{name: "webhook without token", opts: DiscordOptions{WebhookURL: "https://discord.com/api/webhooks/1/"}, wantErr: "must look like"},
		{name: "webhook other query", opts: DiscordOptions{WebhookURL: hook + "?wait=false"}, wantErr: "thread_id"},
		{name: "webhook user info", opts: DiscordOptions{WebhookURL: "https://u:s3cr3t@discord.com/api/webhooks/1/s3cr3t"}, wantErr: "user info"},
		{name: "username too long", opts: DiscordOptions{WebhookURL: hook, Username: strings.Repeat("x", 81)}, wantErr: "at most 80"},
		{name: "username with discord", opts: DiscordOptions{WebhookURL: hook, Username: "My Discord bot"}, wantErr: "must not contain"},
		{name: "bad avatar", opts: DiscordOptions{WebhookURL: hook, AvatarURL: "avatar.png"}, wantErr: "avatar_url"},
		// A proxy's password in a URL that is not itself a secret is not shown either.
		{name: "API URL with user info", opts: DiscordOptions{BotToken: "t", ChannelID: "1", APIURL: "https://relay:s3cr3t@proxy.example/api/v10"}, wantErr: `"https://relay:xxxxx@proxy.example/api/v10" must have no query and no user info`},
		{name: "API URL not http with user info", opts: DiscordOptions{BotToken: "t", ChannelID: "1", APIURL: "ftp://relay:s3cr3t@proxy.example/"}, wantErr: "api_url"},
		{name: "API URL unparsable with user info", opts: DiscordOptions{BotToken: "t", ChannelID: "1", APIURL: "https://relay:s3cr3t%zz@proxy.example/"}, wantErr: "not shown"},
		{name: "API URL with a password parameter", opts: DiscordOptions{BotToken: "t", ChannelID: "1", APIURL: "https://proxy.example/api?password=s3cr3t"}, wantErr: "password=xxxxx"},
		{name: "avatar with user info", opts: DiscordOptions{WebhookURL: hook, AvatarURL: "ftp://u:s3cr3t@x/a.png"}, wantErr: "avatar_url"},
		{name: "negative timeout", opts: DiscordOptions{WebhookURL: hook, Timeout: -time.Second}, wantErr: "negative"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			d, err := NewDiscord(tt.opts)
			if tt.wantErr != "" {
				if err == nil {
					t.Fatalf("no error, want %q", tt.wantErr)
				}
				if !strings.Contains(err.Error(), tt.wantErr) {
					t.Errorf("error %q, want it to contain %q", err, tt.wantErr)
				}
				if strings.Contains(err.Error(), "s3cr3t") {
					t.Errorf("error %q reveals a secret", err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if d.to.String() != tt.wantTo {
				t.Errorf("to = %q, want %q", d.to, tt.wantTo)
			}
			if d.timeout != discordDefaultTimeout {
				t.Errorf("timeout = %s, want the default", d.timeout)
			}
		})
	}
}

func TestDiscordClassification(t *testing.T) {
	formBody := `{"code": 50035, "errors": {"embeds": {"0": {"description": {"_errors": [{"code": "BASE_TYPE_MAX_LENGTH", "message": "Must be 4096 or fewer in length."}]}}}}, "message": "Invalid Form Body"}`
	tests := []struct {
		name    string
		failure *discordtest.Failure // nil: no failure scripted
		refused bool                 // send to a port nothing listens on
		token   string               // bot mode only; default discordtest.BotToken
		channel string               // bot mode only; default discordtest.ChannelID
		want    outcome              // contains without the "discord <mode>: " prefix
	}{
		{name: "200 ok", want: outcome{class: "ok"}},
		{name: "200 unreadable is sent, not posted twice", failure: &discordtest.Failure{Status: 200, Body: "{"}, want: outcome{class: "ok"}},
		{name: "400 50035", failure: &discordtest.Failure{Status: 400, Body: formBody},
			want: outcome{class: "permanent", contains: "400 Bad Request: Invalid Form Body (50035): embeds.0.description: Must be 4096 or fewer in length."}},
		{name: "401", failure: &discordtest.Failure{Status: 401},
			want: outcome{class: "permanent", contains: "401 Unauthorized: 401: Unauthorized"}},
		{name: "403", failure: &discordtest.Failure{Status: 403},
			want: outcome{class: "permanent", contains: "403 Forbidden: Missing Permissions (50013)"}},
		{name: "404", failure: &discordtest.Failure{Status: 404},
			want: outcome{class: "permanent", contains: "404 Not Found: Unknown Channel (10003)"}},
		{name: "408", failure: &discordtest.Failure{Status: 408},
			want: outcome{class: "retryable", contains: "408 Request Timeout"}},
		{name: "429 route retry_after 1.5", failure: &discordtest.Failure{Status: 429, RetryAfter: 1.5},
			want: outcome{class: "ratelimited", retryAfter: 1500 * time.Millisecond, contains: "429 Too Many Requests: You are being rate limited."}},
		{name: "429 global retry_after 1.5", failure: &discordtest.Failure{Status: 429, RetryAfter: 1.5, Global: true},
			want: outcome{class: "ratelimited", retryAfter: 1500 * time.Millisecond, contains: "429 Too Many Requests: You are being rate limited. (global)"}},
		{name: "429 Retry-After header only", failure: &discordtest.Failure{Status: 429, Body: `{"message": "You are being rate limited."}`, Header: http.Header{"Retry-After": {"3"}}},
			want: outcome{class: "ratelimited", retryAfter: 3 * time.Second, contains: "429"}},
		{name: "429 Cloudflare HTML", failure: &discordtest.Failure{Status: 429, Body: "<html>banned</html>", Header: http.Header{"Content-Type": {"text/html"}}},
			want: outcome{class: "ratelimited", contains: "429 Too Many Requests"}},
		{name: "500", failure: &discordtest.Failure{Status: 500},
			want: outcome{class: "retryable", contains: "500 Internal Server Error: 500: Internal Server Error"}},
		{name: "502", failure: &discordtest.Failure{Status: 502},
			want: outcome{class: "retryable", contains: "502 Bad Gateway"}},
		{name: "503 with Retry-After", failure: &discordtest.Failure{Status: 503, RetryAfter: 2},
			want: outcome{class: "retryable", retryAfter: 2 * time.Second, contains: "503 Service Unavailable"}},
		{name: "timeout", failure: &discordtest.Failure{Delay: 10 * time.Second},
			want: outcome{class: "retryable", contains: "context deadline exceeded"}},
		{name: "connection refused", refused: true,
			want: outcome{class: "retryable", contains: "connection refused"}},
		{name: "bot wrong token", token: "wrong.token",
			want: outcome{class: "permanent", contains: "discord bot: 401 Unauthorized: 401: Unauthorized"}},
		{name: "bot unknown channel", channel: "1100000000000000404",
			want: outcome{class: "permanent", contains: "discord bot: 404 Not Found: Unknown Channel (10003)"}},
	}
	for _, mode := range []string{"webhook", "bot"} {
		for _, tt := range tests {
			if mode == "webhook" && (tt.token != "" || tt.channel != "") {
				continue
			}
			t.Run(mode+"/"+tt.name, func(t *testing.T) {
				srv := discordtest.NewServer()
				defer srv.Close()
				if tt.failure != nil {
					srv.FailNext(1, *tt.failure)
				}
				base := ""
				if tt.refused {
					base = refusedURL(t)
				}
				d := newDiscordMode(t, mode, srv, base, 300*time.Millisecond)
				if tt.token != "" || tt.channel != "" {
					token, channel := discordtest.BotToken, discordtest.ChannelID
					if tt.token != "" {
						token = tt.token
					}
					if tt.channel != "" {
						channel = tt.channel
					}
					d = newDiscordBot(t, srv.URL(), token, channel, 300*time.Millisecond)
				}
				ref, err := d.Notify(context.Background(), plainMessage())
				checkOutcome(t, err, tt.want)
				// A webhook's whole URL is redacted, as Slack's is; the bot's API URL is no secret.
				if tt.refused && mode == "bot" && !strings.Contains(err.Error(), base+discordtest.APIPath+"/") {
					t.Errorf("error %q does not name the server that refused", err)
				}
				if err != nil && !strings.HasPrefix(err.Error(), "discord "+mode+": ") {
					t.Errorf("error %q does not start with %q", err, "discord "+mode+": ")
				}
				msgs := srv.Messages()
				if tt.want.class == "ok" && tt.failure != nil {
					// A 2xx the stand-in answered in place of Discord: sent, with no reference.
					if ref != "" {
						t.Errorf("ref %q from an unreadable answer", ref)
					}
					return
				}
				if tt.want.class == "ok" {
					if len(msgs) != 1 || ref != msgs[0].ID || ref == "" {
						t.Fatalf("ref %q, %d messages: want the one message's id", ref, len(msgs))
					}
					return
				}
				if ref != "" || len(msgs) != 0 {
					t.Errorf("ref %q and %d messages after a failure", ref, len(msgs))
				}
			})
		}
	}
}

// TestDiscordGolden pins the payload built for each sample event. Run with -update to rewrite.
func TestDiscordGolden(t *testing.T) {
	for name, ev := range sampleEvents(t) {
		t.Run(name, func(t *testing.T) {
			p := discordPayload(discordMsg(ev))
			var buf bytes.Buffer
			enc := json.NewEncoder(&buf)
			enc.SetEscapeHTML(false)
			enc.SetIndent("", "  ")
			if err := enc.Encode(p.params()); err != nil {
				t.Fatal(err)
			}
			path := filepath.Join("testdata", "discord", name+".json")
			checkGolden(t, path, buf.Bytes())
		})
	}
}

// TestDiscordSamplesAccepted sends every sample through both modes to the stand-in, which checks
// Discord's limits, and compares what arrived with what was built.
func TestDiscordSamplesAccepted(t *testing.T) {
	srv := discordtest.NewServer()
	defer srv.Close()
	n := 0
	for name, ev := range sampleEvents(t) {
		for _, mode := range []string{"webhook", "bot"} {
			t.Run(name+"/"+mode, func(t *testing.T) {
				d := newDiscordMode(t, mode, srv, "", 5*time.Second)
				ref, err := d.Notify(context.Background(), discordMsg(ev))
				if err != nil {
					t.Fatal(err)
				}
				n++
				msgs := srv.Messages()
				if len(msgs) != n {
					t.Fatalf("%d messages, want %d", len(msgs), n)
				}
				got := msgs[n-1]
				if got.ID != ref || got.Webhook != (mode == "webhook") || got.Multipart {
					t.Errorf("id %q (ref %q), webhook %v, multipart %v", got.ID, ref, got.Webhook, got.Multipart)
				}
				want := discordPayload(discordMsg(ev))
				if got.Content != want.Content {
					t.Errorf("content %q, want %q", got.Content, want.Content)
				}
				gotEmbeds, _ := json.Marshal(got.Embeds)
				wantEmbeds, _ := json.Marshal(want.Embeds)
				if !jsonEqual(t, gotEmbeds, wantEmbeds) {
					t.Errorf("embeds = %s\nwant %s", gotEmbeds, wantEmbeds)
				}
				if got.AllowedMentions == nil || len(got.AllowedMentions.Parse) != 0 {
					t.Errorf("allowed_mentions = %+v, want parse []", got.AllowedMentions)
				}
			})
		}
	}
}

func TestDiscordEmbedFacts(t *testing.T) {
	evs := sampleEvents(t)
	tests := []struct {
		name      string
		colour    int
		fields    []string // name=value
		image     string
		gallery   int // image-only embeds after the first
		wantError bool
	}{
		{name: "prediction-succeeded", colour: discordGreen, image: evs["prediction-succeeded"].Images()[0], gallery: 1},
		{name: "prediction-failed", colour: discordRed, wantError: true},
		{name: "prediction-starting", colour: discordBlue},
		{name: "training-succeeded", colour: discordGreen},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ev := evs[tt.name]
			p := discordPayload(discordMsg(ev))
			main := p.Embeds[0]
			if main.Color != tt.colour {
				t.Errorf("colour %06x, want %06x", main.Color, tt.colour)
			}
			if main.URL != ev.WebURL() {
				t.Errorf("url %q, want %q", main.URL, ev.WebURL())
			}
			names := map[string]string{}
			for _, f := range main.Fields {
				names[f.Name] = f.Value
			}
			if names["Model"] == "" || names["Status"] != string(ev.Status) {
				t.Errorf("fields %v", names)
			}
			if _, ok := names["Duration"]; ok != (ev.Duration() > 0) {
				t.Errorf("duration field present %v, event duration %s", ok, ev.Duration())
			}
			if _, ok := names["Error"]; ok != tt.wantError {
				t.Errorf("error field present %v, want %v", ok, tt.wantError)
			}
			if tt.image != "" && (main.Image == nil || main.Image.URL != tt.image) {
				t.Errorf("image %+v, want %q", main.Image, tt.image)
			}
			if tt.image == "" && main.Image != nil {
				t.Errorf("image %+v, want none", main.Image)
			}
			if len(p.Embeds)-1 != tt.gallery {
				t.Errorf("%d gallery embeds, want %d", len(p.Embeds)-1, tt.gallery)
			}
			for _, e := range p.Embeds[1:] {
				if e.URL != main.URL || e.Image == nil {
					t.Errorf("gallery embed %+v does not share the main embed's URL", e)
				}
			}
			if main.Footer == nil || main.Footer.Text != "rule all-runs · relay" {
				t.Errorf("footer %+v, want the context as given", main.Footer)
			}
		})
	}
	t.Run("colours", func(t *testing.T) {
		for status, want := range map[string]int{"succeeded": discordGreen, "failed": discordRed, "canceled": discordGrey, "aborted": discordOrange, "processing": discordBlue, "starting": discordBlue} {
			ev := parseEvent(t, `{"id":"x","status":"`+status+`"}`)
			if got := discordPayload(relay.Message{Event: ev, Title: "t"}).Embeds[0].Color; got != want {
				t.Errorf("%s: colour %06x, want %06x", status, got, want)
			}
		}
	})
}

// TestDiscordLimits builds a message over every limit and has the stand-in check it.
func TestDiscordLimits(t *testing.T) {
	var outputs []string
	for i := range 6 {
		outputs = append(outputs, fmt.Sprintf("%q", fmt.Sprintf("https://replicate.delivery/x/out-%d.webp", i)))
	}
	prompt := strings.Repeat("a *very* long_prompt ", 500) // ~10 kB
	ev := parseEvent(t, `{"id":"abc","model":"acme/model_x","version":"v","status":"failed",
		"input":{"prompt":`+fmt.Sprintf("%q", prompt)+`},
		"error":`+fmt.Sprintf("%q", strings.Repeat("boom ", 2000))+`,
		"output":[`+strings.Join(outputs, ",")+`],
		"created_at":"2025-05-01T18:00:00Z","started_at":"2025-05-01T18:00:01Z","completed_at":"2025-05-01T18:02:04.6Z"}`)
	m := relay.Message{
		Event:   ev,
		Rule:    "r",
		Title:   strings.Repeat("Title ", 2000),
		Body:    strings.Repeat("word \\* `code`\n", 300) + "```\n" + strings.Repeat("log line\n", 2000) + "```",
		Context: strings.Repeat("ctx ", 3000),
		Text:    strings.Repeat("text ", 3000),
	}
	for _, mode := range []string{"webhook", "bot"} {
		t.Run(mode, func(t *testing.T) {
			srv := discordtest.NewServer()
			defer srv.Close()
			d := newDiscordMode(t, mode, srv, "", 5*time.Second)
			if _, err := d.Notify(context.Background(), m); err != nil {
				t.Fatal(err)
			}
			msgs := srv.Messages()
			if len(msgs) != 1 {
				t.Fatalf("%d messages", len(msgs))
			}
			got := msgs[0]
			if n := utf8.RuneCountInString(got.Content); n > discordMaxFallback || !strings.HasSuffix(got.Content, "…") {
				t.Errorf("content of %d runes: %.40q", n, got.Content)
			}
			if len(got.Embeds) != discordMaxImages {
				t.Errorf("%d embeds, want %d (a gallery of four)", len(got.Embeds), discordMaxImages)
			}
			main := got.Embeds[0]
			if n := utf8.RuneCountInString(main.Title); n != discordMaxTitle || !strings.HasSuffix(main.Title, "…") {
				t.Errorf("title of %d runes", n)
			}
			if n := embedSize(main); n > discordMaxEmbedTotal {
				t.Errorf("embed of %d characters, max %d", n, discordMaxEmbedTotal)
			}
			if n := utf8.RuneCountInString(main.Description); n > discordMaxDescription || n < 1000 {
				t.Errorf("description of %d runes", n)
			}
			if strings.Count(main.Description, "```")%2 != 0 {
				t.Errorf("description leaves a code block open: ...%q", main.Description[len(main.Description)-40:])
			}
			for _, f := range main.Fields {
				if n := utf8.RuneCountInString(f.Value); n > discordMaxFieldValue || n == 0 {
					t.Errorf("field %s of %d runes", f.Name, n)
				}
			}
			var prompt string
			for _, f := range main.Fields {
				if f.Name == "Prompt" {
					prompt = f.Value
				}
			}
			if !strings.HasPrefix(prompt, `a \*very\* long\_prompt`) || !strings.HasSuffix(prompt, "…") {
				t.Errorf("prompt field %.60q", prompt)
			}
		})
	}
	t.Run("fit", func(t *testing.T) {
		// Fields near their own limits leave little for the description: the total still fits.
		e := &discordgo.MessageEmbed{
			Title:       strings.Repeat("t", discordMaxTitle),
			Description: strings.Repeat("d", discordMaxDescription),
			Footer:      &discordgo.MessageEmbedFooter{Text: strings.Repeat("f", discordMaxFooter)},
		}
		for range 3 {
			e.Fields = append(e.Fields, &discordgo.MessageEmbedField{Name: "n", Value: strings.Repeat("v", discordMaxFieldValue)})
		}
		fitEmbed(e, discordMaxEmbedTotal)
		if n := embedSize(e); n != discordMaxEmbedTotal {
			t.Errorf("size %d, want exactly %d", n, discordMaxEmbedTotal)
		}
		// 9475 characters: the 3475 over come out of the description alone.
		if n := utf8.RuneCountInString(e.Description); n != discordMaxDescription-3475 || e.Footer == nil ||
			len(e.Footer.Text) != discordMaxFooter || len(e.Fields) != 3 || len(e.Title) != discordMaxTitle {
			t.Errorf("took from the wrong parts: description %d, footer %v, %d fields", n, e.Footer != nil, len(e.Fields))
		}
	})
}

// TestDiscordHostileText: outside text can neither ping nor format.
func TestDiscordHostileText(t *testing.T) {
	prompt := "@everyone @here <@123> <@&456> <@!789> **bold** __u__ ~~s~~ `c` ||spoiler|| > quote [click](https://evil.example) \\ end"
	ev := parseEvent(t, `{"id":"abc","model":"acme/x_y","status":"failed","input":{"prompt":`+fmt.Sprintf("%q", prompt)+`},
		"error":"Traceback\nValueError: @everyone look at <@1>"}`)
	m := relay.Message{Event: ev, Title: "Failed @here", Body: "body <@42> @everyone", Context: "ctx @everyone", Text: "ping @everyone <@1>"}
	srv := discordtest.NewServer()
	defer srv.Close()
	d := newDiscordWebhook(t, srv.WebhookURL(), 5*time.Second)
	if _, err := d.Notify(context.Background(), m); err != nil {
		t.Fatal(err)
	}
	got := srv.Messages()[0]
	if got.AllowedMentions == nil || got.AllowedMentions.Parse == nil || len(got.AllowedMentions.Parse) != 0 {
		t.Fatalf("allowed_mentions %+v, want parse []", got.AllowedMentions)
	}
	if !strings.Contains(string(got.Payload), `"allowed_mentions":{"parse":[]`) {
		t.Errorf("payload %s has no allowed_mentions with parse []", got.Payload)
	}
	fields := map[string]string{}
	for _, f := range got.Embeds[0].Fields {
		fields[f.Name] = f.Value
	}
	wantPrompt := "@\u200beveryone @\u200bhere <\u200b@123\\> <\u200b@&456\\> <\u200b@!789\\> \\*\\*bold\\*\\* \\_\\_u\\_\\_ \\~\\~s\\~\\~ \\`c\\` \\|\\|spoiler\\|\\| \\> quote \\[click\\](https://evil.example) \\\\ end"
	if fields["Prompt"] != wantPrompt {
		t.Errorf("prompt\n got %q\nwant %q", fields["Prompt"], wantPrompt)
	}
	if fields["Model"] != `acme/x\_y` {
		t.Errorf("model %q", fields["Model"])
	}
	if fields["Error"] != "ValueError: @\u200beveryone look at <\u200b@1\\>" {
		t.Errorf("error %q", fields["Error"])
	}
	texts := []string{got.Content, got.Embeds[0].Title, got.Embeds[0].Description, got.Embeds[0].Footer.Text}
	for _, f := range got.Embeds[0].Fields {
		texts = append(texts, f.Value)
	}
	for _, s := range texts {
		for _, mention := range []string{"@everyone", "@here", "<@"} {
			if strings.Contains(s, mention) {
				t.Errorf("%q still holds %s", s, mention)
			}
		}
	}
}

func TestEscapeDiscord(t *testing.T) {
	tests := []struct{ in, want string }{
		{"plain text", "plain text"},
		{"# heading", `\# heading`},
		{"- item", `\- item`},
		{"  + item", `  \+ item`},
		{"1. first", `1\. first`},
		{"1.5s", "1.5s"},
		{"stability-ai/sdxl", "stability-ai/sdxl"},
		{"a\n# b", "a\n\\# b"},
		{"@everyone", "@\u200beveryone"},
		{"see https://huggingface.co/stabilityai/sd_xl_base-1.0 for *it*", `see https://huggingface.co/stabilityai/sd_xl_base-1.0 for \*it\*`},
		{"(HTTPS://x.example/a_b) and_c", `(HTTPS://x.example/a_b) and\_c`},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			if got := escapeDiscord(tt.in); got != tt.want {
				t.Errorf("got %q, want %q", got, tt.want)
			}
			if tt.in != "@everyone" {
				if back := unescapeDiscord(escapeDiscord(tt.in)); back != tt.in {
					t.Errorf("unescape gives %q", back)
				}
			}
		})
	}
}

func TestTruncateDiscord(t *testing.T) {
	tests := []struct {
		name, in string
		n        int
		want     string
	}{
		{"fits", "abc", 3, "abc"},
		{"cut", "abcdef", 4, "abc…"},
		{"zero", "abc", 0, ""},
		{"dangling escape", `ab\*cd`, 4, "ab…"},
		{"escaped backslash kept", `a\\bcdef`, 4, `a\\…`},
		{"open fence closed", "x\n```\ncode code code", 14, "x\n```\ncod…\n```"},
		{"closed fence", "```a``` tail tail", 10, "```a``` t…"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := truncateDiscord(tt.in, tt.n)
			if got != tt.want {
				t.Errorf("got %q, want %q", got, tt.want)
			}
			if n := utf8.RuneCountInString(got); n > tt.n {
				t.Errorf("%d runes, max %d", n, tt.n)
			}
		})
	}
}

// TestDiscordAttachments: files arrive whole, the embed shows the first image from its
// attachment, and files over the limit are skipped with their links kept.
func TestDiscordAttachments(t *testing.T) {
	ev := sampleEvents(t)["prediction-succeeded"]
	png := append([]byte("\x89PNG\r\n\x1a\n"), bytes.Repeat([]byte{0, 1, 2, 0xff}, 1000)...)
	var atts []relay.Attachment
	atts = append(atts, relay.Attachment{Name: "log.txt", ContentType: "text/plain", Data: []byte("hello"), URL: "https://replicate.delivery/x/log.txt"})
	for i := range 11 {
		data := append(bytes.Clone(png), byte(i))
		atts = append(atts, relay.Attachment{Name: "out.png", ContentType: "image/png", Data: data, URL: fmt.Sprintf("https://replicate.delivery/x/out-%d.png", i)})
	}
	atts[2].Name = `../we ird"name.png`
	for _, mode := range []string{"webhook", "bot"} {
		t.Run(mode, func(t *testing.T) {
			srv := discordtest.NewServer()
			defer srv.Close()
			d := newDiscordMode(t, mode, srv, "", 5*time.Second)
			m := discordMsg(ev)
			m.Attachments = atts
			ref, err := d.Notify(context.Background(), m)
			if err != nil {
				t.Fatal(err)
			}
			got := srv.Messages()[0]
			if !got.Multipart || got.ID != ref {
				t.Errorf("multipart %v, id %q, ref %q", got.Multipart, got.ID, ref)
			}
			if len(got.Attachments) != discordMaxFiles {
				t.Fatalf("%d files, want %d", len(got.Attachments), discordMaxFiles)
			}
			wantNames := []string{"log.txt", "out.png", "we_ird_name.png", "out-1.png", "out-2.png"}
			for i, want := range wantNames {
				if got.Attachments[i].Name != want {
					t.Errorf("file %d named %q, want %q", i, got.Attachments[i].Name, want)
				}
			}
			for i, a := range got.Attachments {
				if !bytes.Equal(a.Data, atts[i].Data) || a.ContentType != atts[i].ContentType || a.Field != fmt.Sprintf("files[%d]", i) {
					t.Errorf("file %d: %d bytes of %s in %s, want %d bytes of %s", i, len(a.Data), a.ContentType, a.Field, len(atts[i].Data), atts[i].ContentType)
				}
			}
			main := got.Embeds[0]
			if main.Image == nil || main.Image.URL != "attachment://out.png" {
				t.Errorf("image %+v, want attachment://out.png", main.Image)
			}
			if len(got.Embeds) != discordMaxImages || got.Embeds[1].Image.URL != "attachment://we_ird_name.png" {
				t.Errorf("%d embeds, second %+v", len(got.Embeds), got.Embeds[1].Image)
			}
			for _, e := range got.Embeds {
				if e.Image == nil {
					continue
				}
				if _, ok := got.Attachment(strings.TrimPrefix(e.Image.URL, "attachment://")); !ok {
					t.Errorf("embed image %s names no file received", e.Image.URL)
				}
			}
			for _, i := range []int{10, 11} {
				if !strings.Contains(main.Description, "("+atts[i].URL+")") {
					t.Errorf("description does not link skipped file %d: %q", i, main.Description)
				}
			}
			if strings.Contains(main.Description, atts[9].URL) {
				t.Errorf("description links a file that was sent")
			}
		})
	}
	t.Run("no image attachment", func(t *testing.T) {
		m := discordMsg(ev)
		m.Attachments = atts[:1]
		p := discordPayload(m)
		if p.Embeds[0].Image == nil || p.Embeds[0].Image.URL != ev.Images()[0] {
			t.Errorf("image %+v, want the remote output", p.Embeds[0].Image)
		}
	})
	t.Run("upload limit", func(t *testing.T) {
		big := relay.Attachment{Name: "big.png", ContentType: "image/png", Data: make([]byte, discordMaxUpload-10), URL: "https://replicate.delivery/big.png"}
		second := relay.Attachment{Name: "second.png", ContentType: "image/png", Data: make([]byte, 20), URL: "https://replicate.delivery/second.png"}
		files, skipped := discordAttachments([]relay.Attachment{big, second, {Name: "empty.png"}})
		if len(files) != 1 || len(skipped) != 2 || skipped[0].Name != "second.png" {
			t.Errorf("%d files, skipped %+v", len(files), skipped)
		}
	})
}

func TestDiscordBotReturnsID(t *testing.T) {
	srv := discordtest.NewServer()
	defer srv.Close()
	d := newDiscordBot(t, srv.URL(), "Bot "+discordtest.BotToken, discordtest.ChannelID, 5*time.Second)
	ev := sampleEvents(t)["prediction-succeeded"]
	var refs []string
	for range 2 {
		ref, err := d.Notify(context.Background(), discordMsg(ev))
		if err != nil {
			t.Fatal(err)
		}
		refs = append(refs, ref)
	}
	if refs[0] != "1300000000000000001" || refs[1] != "1300000000000000002" {
		t.Errorf("refs = %q, want the stand-in's first two ids", refs)
	}
	msgs := srv.Messages()
	if len(msgs) != 2 || msgs[0].ChannelID != discordtest.ChannelID || msgs[1].ID != refs[1] || msgs[0].Webhook {
		t.Errorf("messages = %+v", msgs)
	}
}

// TestDiscordEndpoints: requests go where the configuration says, whatever discordgo's
// built-in endpoints are: under a proxy's path prefix, and from an unversioned webhook URL.
func TestDiscordEndpoints(t *testing.T) {
	srv := discordtest.NewServer()
	defer srv.Close()
	var mu sync.Mutex
	var paths []string
	proxy := httptest.NewServer(http.StripPrefix("/proxy", http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		paths = append(paths, r.URL.RequestURI())
		mu.Unlock()
		srv.Handler.ServeHTTP(w, r)
	})))
	defer proxy.Close()
	bot := newDiscordBot(t, proxy.URL+"/proxy"+discordtest.APIPath, discordtest.BotToken, discordtest.ChannelID, 5*time.Second)
	unversioned := strings.Replace(discordtest.WebhookPath, discordtest.APIPath, "/api", 1)
	hook := newDiscordWebhook(t, proxy.URL+"/proxy"+unversioned+"?thread_id=77", 5*time.Second)
	for _, d := range []*Discord{bot, hook} {
		if _, err := d.Notify(context.Background(), plainMessage()); err != nil {
			t.Fatal(err)
		}
	}
	want := []string{
		discordtest.APIPath + "/channels/" + discordtest.ChannelID + "/messages",
		discordtest.WebhookPath + "?thread_id=77&wait=true",
	}
	mu.Lock()
	defer mu.Unlock()
	if strings.Join(paths, "\n") != strings.Join(want, "\n") {
		t.Errorf("paths\n%s\nwant\n%s", strings.Join(paths, "\n"), strings.Join(want, "\n"))
	}
	if msgs := srv.Messages(); len(msgs) != 2 || msgs[1].ThreadID != "77" {
		t.Errorf("messages %+v", msgs)
	}
	// Only discordgo's own API base is rewritten; anything else is refused before it is sent.
	tr := &discordTransport{base: http.DefaultTransport, from: bot.from, to: bot.to}
	req, _ := http.NewRequest(http.MethodGet, "https://example.com/api/v10/channels/1/messages", nil)
	if _, err := tr.RoundTrip(req); err == nil || tr.result().called {
		t.Errorf("request outside the API: err %v, called %v", err, tr.result().called)
	}
}

func TestDiscordCallerCanceled(t *testing.T) {
	srv := discordtest.NewServer()
	defer srv.Close()
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	for _, mode := range []string{"webhook", "bot"} {
		t.Run(mode, func(t *testing.T) {
			d := newDiscordMode(t, mode, srv, "", time.Second)
			_, err := d.Notify(ctx, plainMessage())
			checkOutcome(t, err, outcome{class: "retryable", contains: "context canceled"})
			if !errors.Is(err, context.Canceled) {
				t.Errorf("errors.Is(%v, context.Canceled) = false", err)
			}
		})
	}
}

func TestDiscordConcurrent(t *testing.T) {
	srv := discordtest.NewServer()
	defer srv.Close()
	d := newDiscordWebhook(t, srv.WebhookURL(), 5*time.Second)
	const n = 16
	var wg sync.WaitGroup
	errs := make(chan error, n)
	refs := make(chan string, n)
	for range n {
		// Each delivery parses its own event: relay.Event caches its decoded output unguarded.
		ev := sampleEvents(t)["prediction-succeeded"]
		wg.Go(func() {
			ref, err := d.Notify(context.Background(), discordMsg(ev))
			if err != nil {
				errs <- err
			}
			refs <- ref
		})
	}
	wg.Wait()
	close(errs)
	close(refs)
	for err := range errs {
		t.Error(err)
	}
	seen := map[string]bool{}
	for ref := range refs {
		if ref == "" || seen[ref] {
			t.Errorf("ref %q empty or repeated", ref)
		}
		seen[ref] = true
	}
	if _, err := srv.WaitFor(n, time.Second); err != nil {
		t.Error(err)
	}
}

// TestDiscordSecretsNeverLeak drives every failure path in both modes and checks that neither
// the webhook's token nor the bot token shows up in an error, however it is printed or
// unwrapped.
func TestDiscordSecretsNeverLeak(t *testing.T) {
	secrets := []string{discordtest.WebhookToken, discordtest.BotToken}
	// echo is a misbehaving server that repeats the request's path and token in its errors.
	echo := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusBadRequest)
		msg, _ := json.Marshal(fmt.Sprintf("bad request to %s with %s by %s", r.URL.String(), body, r.Header.Get("Authorization")))
		fmt.Fprintf(w, `{"message": %s, "code": 50035, "errors": {"token": {"_errors": [{"code": "X", "message": %s}]}}}`, msg, msg)
	}))
	defer echo.Close()
	// echo429 repeats them in a rate limit's body, which discordgo puts in its own errors.
	echo429 := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusTooManyRequests)
		fmt.Fprintf(w, `{"message": "limited on %s by %s", "retry_after": 1, "global": false}`, r.URL.String(), r.Header.Get("Authorization"))
	}))
	defer echo429.Close()
	// redirect sends the client elsewhere, with the secret in the new location.
	redirect := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		http.Redirect(w, r, "/moved"+r.URL.Path+"?token="+discordtest.BotToken, http.StatusTemporaryRedirect)
	}))
	defer redirect.Close()
	failures := map[string]*discordtest.Failure{
		"400":           {Status: 400},
		"401":           {Status: 401},
		"404":           {Status: 404},
		"429":           {Status: 429, RetryAfter: 1},
		"429 global":    {Status: 429, RetryAfter: 1, Global: true},
		"429 not JSON":  {Status: 429, Body: "slow down"},
		"500":           {Status: 500},
		"502":           {Status: 502},
		"timeout":       {Delay: 10 * time.Second},
		"hang then 503": {Delay: 10 * time.Millisecond, Status: 503},
	}
	type target struct {
		name string
		base string // server base URL; "" for the stand-in
	}
	targets := []target{{name: "stand-in"}, {name: "refused", base: refusedURL(t)}, {name: "echo", base: echo.URL},
		{name: "echo 429", base: echo429.URL}, {name: "redirect", base: redirect.URL}}
	for _, mode := range []string{"webhook", "bot"} {
		for _, tg := range targets {
			for fname, f := range failures {
				if tg.base != "" && fname != "400" {
					continue // one run per foreign server is enough
				}
				t.Run(mode+"/"+tg.name+"/"+fname, func(t *testing.T) {
					srv := discordtest.NewServer()
					defer srv.Close()
					if tg.base == "" {
						srv.FailNext(1, *f)
					}
					d := newDiscordMode(t, mode, srv, tg.base, 200*time.Millisecond)
					m := plainMessage()
					m.Attachments = []relay.Attachment{{Name: "a.png", ContentType: "image/png", Data: []byte("png")}}
					_, err := d.Notify(context.Background(), m)
					if err == nil {
						t.Fatal("no error")
					}
					t.Log(err)
					var texts []string
					for e := err; e != nil; e = errors.Unwrap(e) {
						texts = append(texts, e.Error(), fmt.Sprintf("%+v", e), fmt.Sprintf("%#v", e))
					}
					for _, text := range texts {
						for _, sec := range secrets {
							if strings.Contains(text, sec) {
								t.Fatalf("error reveals %q: %s", sec, text)
							}
						}
					}
				})
			}
		}
	}
}

func TestDiscordRetryAfter(t *testing.T) {
	now := time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)
	tests := []struct {
		name   string
		body   float64
		header http.Header
		want   time.Duration
	}{
		{"body", 1.5, http.Header{"Retry-After": {"2"}}, 1500 * time.Millisecond},
		{"header", 0, http.Header{"Retry-After": {"2"}}, 2 * time.Second},
		{"reset after", 0, http.Header{"X-Ratelimit-Reset-After": {"0.250"}}, 250 * time.Millisecond},
		{"nothing", 0, http.Header{}, 0},
		{"huge", 1e300, nil, maxRetryAfter},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := discordRetryAfter(discordError{RetryAfter: tt.body}, tt.header, now); got != tt.want {
				t.Errorf("got %s, want %s", got, tt.want)
			}
		})
	}
}

func FuzzDiscordPayload(f *testing.F) {
	f.Add("plain", "body", "@everyone <@1> **x**")
	f.Add(strings.Repeat("t", 300), "```\n"+strings.Repeat("code\n", 900), strings.Repeat("\\", 700))
	f.Add("", "", "")
	f.Fuzz(func(t *testing.T, title, body, prompt string) {
		if !utf8.ValidString(title) || !utf8.ValidString(body) || !utf8.ValidString(prompt) {
			return
		}
		ev, err := relay.ParseEvent([]byte(`{"id":"x","status":"failed","input":{"prompt":`+mustJSON(prompt)+`},"error":`+mustJSON(prompt)+`}`), "m", "", nil, received)
		if err != nil {
			t.Fatal(err)
		}
		p := discordPayload(relay.Message{Event: ev, Title: title, Body: body, Context: body, Text: title + body})
		if n := utf8.RuneCountInString(p.Content); n > discordMaxContent || n == 0 && len(p.Embeds) == 0 {
			t.Fatalf("content of %d runes", n)
		}
		if len(p.Embeds) > discordMaxEmbeds {
			t.Fatalf("%d embeds", len(p.Embeds))
		}
		for _, e := range p.Embeds {
			if embedSize(e) > discordMaxEmbedTotal || utf8.RuneCountInString(e.Title) > discordMaxTitle ||
				utf8.RuneCountInString(e.Description) > discordMaxDescription || len(e.Fields) > discordMaxFields {
				t.Fatalf("embed over a limit: %d total", embedSize(e))
			}
			if e.Footer != nil && utf8.RuneCountInString(e.Footer.Text) > discordMaxFooter {
				t.Fatal("footer over its limit")
			}
			for _, fl := range e.Fields {
				if n := utf8.RuneCountInString(fl.Value); n > discordMaxFieldValue || strings.TrimSpace(fl.Value) == "" {
					t.Fatalf("field %s of %d runes", fl.Name, n)
				}
				if fl.Name == "Prompt" && (strings.Contains(fl.Value, "@everyone") || strings.Contains(fl.Value, "<@")) {
					t.Fatalf("prompt field can mention: %q", fl.Value)
				}
			}
		}
	})
}

// unescapeDiscord removes markdown escapes (a backslash before punctuation), to check that
// escapeDiscord loses nothing.
func unescapeDiscord(s string) string {
	if !strings.Contains(s, `\`) {
		return s
	}
	var sb strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] == '\\' && i+1 < len(s) && isASCIIPunct(s[i+1]) {
			i++
		}
		sb.WriteByte(s[i])
	}
	return sb.String()
}

func isASCIIPunct(c byte) bool {
	return c >= '!' && c <= '/' || c >= ':' && c <= '@' || c >= '[' && c <= '`' || c >= '{' && c <= '~'
}

func mustJSON(s string) string {
	b, _ := json.Marshal(s)
	return string(b)
}

// A link from the event that reads as one host and goes to another (user info before the host)
// is not made a link.
func TestLinksWithUserInfoAreLeftOut(t *testing.T) {
	ev := sampleEvents(t)["prediction-succeeded"] // a fresh parse, changed before any use
	ev.URLs.Web = "https://replicate.com@evil.example/p/x"
	if p := discordPayload(discordMsg(ev)); p.Embeds[0].URL != "" {
		t.Errorf("discord embed links to %q", p.Embeds[0].URL)
	}
	for _, b := range slackBlocks(relay.Message{Event: ev, Title: "t", Body: "b"}, true) {
		if j, _ := json.Marshal(b); strings.Contains(string(j), "evil.example") {
			t.Errorf("slack block links to it: %s", j)
		}
	}
}
