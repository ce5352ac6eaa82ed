package discordtest

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"mime/multipart"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/bwmarrin/discordgo"
)

// post sends body to path and returns the response's status, headers and body.
func post(t *testing.T, s *Server, path, contentType, body string, header http.Header) (int, http.Header, string) {
	t.Helper()
	return do(t, s, http.MethodPost, path, contentType, body, header)
}

// do sends a request to path and returns the response's status, headers and body.
func do(t *testing.T, s *Server, method, path, contentType, body string, header http.Header) (int, http.Header, string) {
	t.Helper()
	req, err := http.NewRequest(method, s.BaseURL()+path, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", contentType)
	for k, v := range header {
		req.Header[k] = v
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, resp.Header, strings.TrimSpace(string(b))
}

var bot = http.Header{"Authorization": {"Bot " + BotToken}}

const channelPath = APIPath + "/channels/" + ChannelID + "/messages"

func TestEndpoints(t *testing.T) {
	longTitle := `{"embeds":[{"title":"` + strings.Repeat("t", 257) + `"}]}`
	bigEmbeds := `{"embeds":[{"description":"` + strings.Repeat("d", 4000) + `"},{"description":"` + strings.Repeat("d", 2001) + `"}]}`
	tests := []struct {
		name       string
		path       string
		header     http.Header
		body       string
		wantStatus int
		wantBody   string // a part of the body
		recorded   bool
	}{
		{"webhook wait", WebhookPath + "?wait=true", nil, `{"content":"hi"}`, 200, `"id":"1300000000000000001"`, true},
		{"webhook no wait", WebhookPath, nil, `{"content":"hi"}`, 204, "", true},
		{"webhook unknown", APIPath + "/webhooks/1/" + WebhookToken, nil, `{"content":"hi"}`, 404, `"code":10015`, false},
		{"webhook wrong token", APIPath + "/webhooks/" + WebhookID + "/nope", nil, `{"content":"hi"}`, 401, `"code":50027`, false},
		{"webhook empty", WebhookPath, nil, `{"content":""}`, 400, `"code":50006`, false},
		{"webhook not JSON", WebhookPath, nil, `{"content":`, 400, `"code":50109`, false},
		{"webhook title too long", WebhookPath, nil, longTitle, 400, `"title":{"_errors":[{"code":"BASE_TYPE_MAX_LENGTH"`, false},
		{"webhook embeds over 6000", WebhookPath, nil, bigEmbeds, 400, `MAX_EMBED_SIZE_EXCEEDED`, false},
		{"webhook content too long", WebhookPath, nil, `{"content":"` + strings.Repeat("c", 2001) + `"}`, 400, `"content":{"_errors"`, false},
		{"webhook username", WebhookPath, nil, `{"content":"x","username":"discord bot"}`, 400, `USERNAME_INVALID_CONTAINS`, false},
		{"bot", channelPath, bot, `{"content":"hi","embeds":[{"title":"t","image":{"url":"attachment://a.png"}}]}`, 200, `"channel_id":"` + ChannelID + `"`, true},
		{"bot no token", channelPath, nil, `{"content":"hi"}`, 401, `{"code":0,"message":"401: Unauthorized"}`, false},
		{"bot wrong token", channelPath, http.Header{"Authorization": {"Bot nope"}}, `{"content":"hi"}`, 401, `401: Unauthorized`, false},
		{"bot unknown channel", APIPath + "/channels/9/messages", bot, `{"content":"hi"}`, 404, `{"code":10003,"message":"Unknown Channel"}`, false},
		{"bot bad image url", channelPath, bot, `{"embeds":[{"image":{"url":"javascript:x"}}]}`, 400, `URL_TYPE_INVALID_URL`, false},
		{"bot bad field", channelPath, bot, `{"embeds":[{"fields":[{"name":"n","value":""}]}]}`, 400, `"value":{"_errors"`, false},
		{"bot parse choice", channelPath, bot, `{"content":"x","allowed_mentions":{"parse":["all"]}}`, 400, `BASE_TYPE_CHOICES`, false},
		{"unknown route", APIPath + "/users/@me", nil, `{}`, 404, `404: Not Found`, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := NewServer()
			defer s.Close()
			status, _, body := post(t, s, tt.path, "application/json", tt.body, tt.header)
			if status != tt.wantStatus || !strings.Contains(body, tt.wantBody) {
				t.Errorf("got %d %s, want %d with %s", status, body, tt.wantStatus, tt.wantBody)
			}
			if n := len(s.Messages()); n != map[bool]int{true: 1}[tt.recorded] {
				t.Errorf("%d messages recorded", n)
			}
		})
	}
}

func TestMultipart(t *testing.T) {
	s := NewServer()
	defer s.Close()
	var buf bytes.Buffer
	mw := multipart.NewWriter(&buf)
	pj, _ := mw.CreateFormField("payload_json")
	_, _ = io.WriteString(pj, `{"content":"with files","embeds":[{"image":{"url":"attachment://a.png"}}],"allowed_mentions":{"parse":[]}}`)
	for i, data := range []string{"\x89PNG-a", "plain text"} {
		h := make(map[string][]string)
		h["Content-Disposition"] = []string{`form-data; name="files[` + string(rune('0'+i)) + `]"; filename="` + []string{"a.png", "b.txt"}[i] + `"`}
		h["Content-Type"] = []string{[]string{"image/png", "text/plain"}[i]}
		w, _ := mw.CreatePart(h)
		_, _ = io.WriteString(w, data)
	}
	mw.Close()
	status, _, body := post(t, s, channelPath, mw.FormDataContentType(), buf.String(), bot)
	if status != 200 {
		t.Fatalf("%d %s", status, body)
	}
	var answer struct {
		ID          string `json:"id"`
		Attachments []struct {
			Filename string `json:"filename"`
			Size     int    `json:"size"`
		} `json:"attachments"`
	}
	if err := json.Unmarshal([]byte(body), &answer); err != nil || len(answer.Attachments) != 2 || answer.Attachments[0].Size != 6 {
		t.Errorf("answer %s (%v)", body, err)
	}
	m := s.Messages()[0]
	a, ok := m.Attachment("a.png")
	if !m.Multipart || !ok || string(a.Data) != "\x89PNG-a" || a.ContentType != "image/png" || a.Field != "files[0]" {
		t.Errorf("message %+v", m)
	}
	if m.AllowedMentions == nil || m.AllowedMentions.Parse == nil || m.Embeds[0].Image.URL != "attachment://a.png" || m.ID != answer.ID {
		t.Errorf("message %+v", m)
	}
}

func TestFailures(t *testing.T) {
	tests := []struct {
		name       string
		f          Failure
		wantStatus int
		wantBody   string
		wantHeader map[string]string
	}{
		{"route 429", Failure{RetryAfter: 1.5}, 429, `"retry_after":1.5`,
			map[string]string{"Retry-After": "2", "X-RateLimit-Remaining": "0", "X-RateLimit-Reset-After": "1.500", "X-RateLimit-Scope": "user"}},
		{"global 429", Failure{Status: 429, RetryAfter: 3, Global: true}, 429, `"global":true`,
			map[string]string{"Retry-After": "3", "X-RateLimit-Global": "true", "X-RateLimit-Scope": "global"}},
		{"500", Failure{Status: 500}, 500, `"message":"500: Internal Server Error"`, nil},
		{"body", Failure{Status: 403, Body: `{"message":"x","code":1}`}, 403, `{"message":"x","code":1}`, nil},
		{"delay then normal", Failure{Delay: 10 * time.Millisecond}, 204, "", nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := NewServer()
			defer s.Close()
			s.FailNext(1, tt.f)
			status, h, body := post(t, s, WebhookPath, "application/json", `{"content":"x"}`, nil)
			if status != tt.wantStatus || !strings.Contains(body, tt.wantBody) {
				t.Errorf("got %d %s, want %d with %s", status, body, tt.wantStatus, tt.wantBody)
			}
			for k, v := range tt.wantHeader {
				if h.Get(k) != v {
					t.Errorf("%s: %q, want %q", k, h.Get(k), v)
				}
			}
			// The next request is served normally.
			if status, _, _ := post(t, s, WebhookPath, "application/json", `{"content":"x"}`, nil); status != 204 {
				t.Errorf("second request: %d", status)
			}
			if s.Requests() != 2 {
				t.Errorf("%d requests", s.Requests())
			}
		})
	}
}

func TestWaitFor(t *testing.T) {
	s := NewServer()
	defer s.Close()
	done := make(chan error, 1)
	go func() {
		_, err := s.WaitFor(2, 5*time.Second)
		done <- err
	}()
	for range 2 {
		post(t, s, WebhookPath, "application/json", `{"content":"x"}`, nil)
	}
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if _, err := s.WaitFor(3, 10*time.Millisecond); err == nil {
		t.Error("WaitFor(3) succeeded with 2 messages")
	}
}

// An interaction the tests answered, as a Discord application would have.
const (
	testApp   = "1250000000000000001"
	testToken = "aW50ZXJhY3Rpb246MTI2MDAwMDAwMDAwMDAwMDAwMTp0ZXN0.interaction-token_0123456789"
)

var originalPath = APIPath + "/webhooks/" + testApp + "/" + testToken + "/messages/@original"

// session is a discordgo session whose requests reach the stand-in. discordgo builds its URLs
// from package variables (https://discord.com/api/v9/...), so its client is routed instead.
func session(t *testing.T, s *Server, token string) *discordgo.Session {
	t.Helper()
	sess, err := discordgo.New(token)
	if err != nil {
		t.Fatal(err)
	}
	from, _ := url.Parse(discordgo.EndpointAPI)
	to, _ := url.Parse(s.URL() + "/")
	sess.Client = &http.Client{Transport: toStandIn{from: from, to: to}}
	sess.MaxRestRetries = 0
	sess.ShouldRetryOnRateLimit = false
	return sess
}

// toStandIn moves requests under from to the same place under to.
type toStandIn struct{ from, to *url.URL }

func (tr toStandIn) RoundTrip(r *http.Request) (*http.Response, error) {
	rest, ok := strings.CutPrefix(r.URL.Path, tr.from.Path)
	if r.URL.Host != tr.from.Host || !ok {
		return nil, fmt.Errorf("request outside the API: %s", r.URL)
	}
	r = r.Clone(r.Context())
	r.URL.Scheme, r.URL.Host, r.Host = tr.to.Scheme, tr.to.Host, tr.to.Host
	r.URL.Path, r.URL.RawPath = tr.to.Path+rest, ""
	return http.DefaultTransport.RoundTrip(r)
}

// form builds a multipart body: payload_json, then files[i] for each name and its data.
func form(t *testing.T, payloadJSON string, files ...string) (contentType, body string) {
	t.Helper()
	var buf bytes.Buffer
	mw := multipart.NewWriter(&buf)
	pj, _ := mw.CreateFormField("payload_json")
	_, _ = io.WriteString(pj, payloadJSON)
	for i := 0; i+1 < len(files); i += 2 {
		fw, err := mw.CreateFormFile(fmt.Sprintf("files[%d]", i/2), files[i])
		if err != nil {
			t.Fatal(err)
		}
		_, _ = io.WriteString(fw, files[i+1])
	}
	if err := mw.Close(); err != nil {
		t.Fatal(err)
	}
	return mw.FormDataContentType(), buf.String()
}

func TestInteractionEditWithDiscordgo(t *testing.T) {
	s := NewServer()
	defer s.Close()
	orig := s.AddInteraction(testApp, testToken, Original{Content: "Started owner/model…"})
	if orig.ID == "" || orig.InteractionToken != testToken || orig.ChannelID != ChannelID {
		t.Fatalf("original %+v", orig)
	}
	sess := session(t, s, "")
	in := &discordgo.Interaction{AppID: testApp, Token: testToken}

	content := "Done, <@42>"
	embeds := []*discordgo.MessageEmbed{{Title: "owner/model", Image: &discordgo.MessageEmbedImage{URL: "attachment://out-0.png"}}}
	got, err := sess.InteractionResponseEdit(in, &discordgo.WebhookEdit{
		Content: &content, Embeds: &embeds,
		Files:           []*discordgo.File{{Name: "out-0.png", ContentType: "image/png", Reader: strings.NewReader("\x89PNG-0")}},
		AllowedMentions: &discordgo.MessageAllowedMentions{Users: []string{"42"}},
	})
	if err != nil {
		t.Fatal(err)
	}
	if got.ID != orig.ID || got.Content != content || len(got.Attachments) != 1 || got.Attachments[0].Filename != "out-0.png" || got.EditedTimestamp == nil {
		t.Errorf("answer %+v", got)
	}

	edits, err := s.WaitForEdits(1, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	e := edits[0]
	a, ok := e.Attachment("out-0.png")
	if e.ID != orig.ID || e.ApplicationID != testApp || e.InteractionToken != testToken || e.Edited.IsZero() || !e.Multipart {
		t.Errorf("edit %+v", e)
	}
	if !ok || string(a.Data) != "\x89PNG-0" || a.ContentType != "image/png" || a.ID != got.Attachments[0].ID {
		t.Errorf("attachment %+v", a)
	}
	if e.Content != content || len(e.Embeds) != 1 || e.Embeds[0].Image.URL != "attachment://out-0.png" || e.AllowedMentions == nil || e.AllowedMentions.Users[0] != "42" {
		t.Errorf("edit %+v", e)
	}

	// GET reads the response as edited, as does Original.
	cur, err := sess.InteractionResponse(in)
	if err != nil || cur.Content != content || len(cur.Attachments) != 1 {
		t.Errorf("GET: %+v, %v", cur, err)
	}
	if o, ok := s.Original(testApp, testToken); !ok || o.Content != content || o.Edited.IsZero() {
		t.Errorf("Original: %+v", o)
	}
	// An edit creates no message.
	if n := len(s.Messages()); n != 0 {
		t.Errorf("%d messages", n)
	}
}

func TestInteractionEditAttachments(t *testing.T) {
	s := NewServer()
	defer s.Close()
	s.AddInteraction(testApp, testToken, Original{})
	names := func(m Message) string {
		var out []string
		for _, a := range m.Attachments {
			out = append(out, a.Name)
		}
		return strings.Join(out, " ")
	}
	ct, twoFiles := form(t, `{"content":"two","embeds":[{"title":"t"}]}`, "a.png", "A", "b.png", "B")
	status, _, body := do(t, s, http.MethodPatch, originalPath, ct, twoFiles, nil)
	if status != 200 {
		t.Fatalf("%d %s", status, body)
	}
	first, _ := s.Original(testApp, testToken)
	if names(first) != "a.png b.png" {
		t.Fatalf("attachments %q", names(first))
	}
	keepA := first.Attachments[0].ID
	ct, replace := form(t, `{"attachments":[{"id":0}]}`, "c.png", "C")

	steps := []struct {
		name, contentType, body string
		wantStatus              int
		wantBody                string // a part of the body
		wantContent, wantFiles  string // the response afterwards
	}{
		{"fields left out stay", "application/json", `{"content":"text only"}`, 200, `"content":"text only"`, "text only", "a.png b.png"},
		{"attachments keep one", "application/json", `{"attachments":[{"id":"` + keepA + `"}]}`, 200, `"filename":"a.png"`, "text only", "a.png"},
		{"a file replaces the rest", ct, replace, 200, `"filename":"c.png"`, "text only", "c.png"},
		{"unknown attachment", "application/json", `{"attachments":[{"id":"` + keepA + `"}]}`, 400, `ATTACHMENT_NOT_FOUND`, "text only", "c.png"},
		{"null clears", "application/json", `{"content":null}`, 200, `"content":""`, "", "c.png"},
		{"nothing left", "application/json", `{"embeds":[],"attachments":[]}`, 400, `"code":50006`, "", "c.png"},
		{"content too long", "application/json", `{"content":"` + strings.Repeat("x", 2001) + `"}`, 400, `"content":{"_errors"`, "", "c.png"},
	}
	for _, st := range steps {
		status, _, body := do(t, s, http.MethodPatch, originalPath, st.contentType, st.body, nil)
		if status != st.wantStatus || !strings.Contains(body, st.wantBody) {
			t.Errorf("%s: got %d %s, want %d with %s", st.name, status, body, st.wantStatus, st.wantBody)
		}
		m, _ := s.Original(testApp, testToken)
		if m.Content != st.wantContent || names(m) != st.wantFiles || len(m.Embeds) != 1 {
			t.Errorf("%s: response now %q with %q and %d embeds", st.name, m.Content, names(m), len(m.Embeds))
		}
	}
	edits := s.Edits()
	if len(edits) != 5 {
		t.Fatalf("%d edits, want 5", len(edits))
	}
	if c, ok := edits[3].Attachment("c.png"); !ok || string(c.Data) != "C" || c.ID == keepA {
		t.Errorf("replacing edit: %+v", edits[3].Attachments)
	}
}

func TestInteractionRefusals(t *testing.T) {
	unknownToken := APIPath + "/webhooks/" + testApp + "/nope/messages/@original"
	otherApp := APIPath + "/webhooks/1/" + testToken + "/messages/@original"
	followup := APIPath + "/webhooks/" + testApp + "/" + testToken
	tests := []struct {
		name       string
		setup      func(*Server)
		method     string
		path       string
		body       string
		wantStatus int
		wantBody   string
	}{
		{"unknown token", nil, http.MethodPatch, unknownToken, `{"content":"x"}`, 404, `{"code":10015,"message":"Unknown Webhook"}`},
		{"other application", nil, http.MethodPatch, otherApp, `{"content":"x"}`, 404, `"code":10015`},
		{"expired", func(s *Server) { s.ExpireInteraction(testApp, testToken) }, http.MethodPatch, originalPath, `{"content":"x"}`, 401,
			`{"code":50027,"message":"Invalid Webhook Token"}`},
		{"expired GET", func(s *Server) { s.ExpireInteraction(testApp, testToken) }, http.MethodGet, originalPath, ``, 401, `"code":50027`},
		{"expired follow-up", func(s *Server) { s.ExpireInteraction(testApp, testToken) }, http.MethodPost, followup, `{"content":"x"}`, 401, `"code":50027`},
		{"expiry given", func(s *Server) {
			s.AddInteraction(testApp, testToken, Original{Content: "old", Expires: time.Now().Add(-time.Second)})
		}, http.MethodPatch, originalPath, `{"content":"x"}`, 401, `"code":50027`},
		{"other message", nil, http.MethodPatch, APIPath + "/webhooks/" + testApp + "/" + testToken + "/messages/1", `{"content":"x"}`, 404,
			`{"code":10008,"message":"Unknown Message"}`},
		{"not JSON", nil, http.MethodPatch, originalPath, `{"content":`, 400, `"code":50109`},
		{"method", nil, http.MethodDelete, originalPath, ``, 405, `405: Method Not Allowed`},
		{"rate limited", func(s *Server) { s.FailNext(1, Failure{RetryAfter: 0.5}) }, http.MethodPatch, originalPath, `{"content":"x"}`, 429, `"retry_after":0.5`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := NewServer()
			defer s.Close()
			s.AddInteraction(testApp, testToken, Original{Content: "started"})
			if tt.setup != nil {
				tt.setup(s)
			}
			status, _, body := do(t, s, tt.method, tt.path, "application/json", tt.body, nil)
			if status != tt.wantStatus || !strings.Contains(body, tt.wantBody) {
				t.Errorf("got %d %s, want %d with %s", status, body, tt.wantStatus, tt.wantBody)
			}
			if n, m := len(s.Edits()), len(s.Messages()); n+m != 0 {
				t.Errorf("%d edits and %d messages recorded", n, m)
			}
		})
	}

	// The interaction's token works until the expiry given.
	s := NewServer()
	defer s.Close()
	s.AddInteraction(testApp, testToken, Original{Content: "started", Expires: time.Now().Add(time.Hour)})
	if status, _, body := do(t, s, http.MethodPatch, originalPath, "application/json", `{"content":"x"}`, nil); status != 200 {
		t.Errorf("before expiry: %d %s", status, body)
	}
}

func TestFollowup(t *testing.T) {
	s := NewServer()
	defer s.Close()
	const channel = "1100000000000000009"
	s.AddInteraction(testApp, testToken, Original{ChannelID: channel})
	sess := session(t, s, "")
	in := &discordgo.Interaction{AppID: testApp, Token: testToken}
	got, err := sess.FollowupMessageCreate(in, true, &discordgo.WebhookParams{Content: "one more thing",
		Files: []*discordgo.File{{Name: "x.txt", ContentType: "text/plain", Reader: strings.NewReader("x")}}})
	if err != nil {
		t.Fatal(err)
	}
	msgs, err := s.WaitFor(1, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	m := msgs[0]
	if got.ID != m.ID || got.ChannelID != channel || m.ChannelID != channel || !m.Webhook || m.InteractionToken != testToken || m.ApplicationID != testApp {
		t.Errorf("answer %+v, message %+v", got, m)
	}
	if a, ok := m.Attachment("x.txt"); !ok || string(a.Data) != "x" {
		t.Errorf("attachments %+v", m.Attachments)
	}
	if original, _ := s.Original(testApp, testToken); original.ID == m.ID {
		t.Error("the follow-up replaced the original response")
	}
	// Without wait, 204; the channel of the interaction exists for the bot too.
	if status, _, body := post(t, s, APIPath+"/webhooks/"+testApp+"/"+testToken, "application/json", `{"content":"x"}`, nil); status != 204 {
		t.Errorf("no wait: %d %s", status, body)
	}
	if status, _, body := post(t, s, APIPath+"/channels/"+channel+"/messages", "application/json", `{"content":"x"}`, bot); status != 200 {
		t.Errorf("bot in the interaction's channel: %d %s", status, body)
	}
}

// commandsPath is where the application's global commands are.
const commandsPath = APIPath + "/applications/" + ApplicationID + "/commands"

func TestCommandsWithDiscordgo(t *testing.T) {
	s := NewServer()
	defer s.Close()
	sess := session(t, s, "Bot "+BotToken)
	zero := 0.0
	predict := &discordgo.ApplicationCommand{Name: "predict", Description: "Run a model", Options: []*discordgo.ApplicationCommandOption{
		{Type: discordgo.ApplicationCommandOptionString, Name: "prompt", Description: "What to make", Required: true},
		{Type: discordgo.ApplicationCommandOptionInteger, Name: "seed", Description: "Random seed", MinValue: &zero},
	}}
	status := &discordgo.ApplicationCommand{Name: "status", Description: "Show a prediction"}

	first, err := sess.ApplicationCommandBulkOverwrite(ApplicationID, "", []*discordgo.ApplicationCommand{predict, status})
	if err != nil {
		t.Fatal(err)
	}
	if len(first) != 2 || first[0].ID == "" || first[0].ID == first[1].ID || first[0].Version == "" || first[0].ApplicationID != ApplicationID ||
		first[0].Type != discordgo.ChatApplicationCommand || first[0].GuildID != "" {
		t.Fatalf("overwrite answered %+v", first)
	}
	if o := first[0].Options[1]; o.Required || o.MinValue == nil || *o.MinValue != 0 {
		t.Errorf("seed option came back as %+v", o)
	}
	listed, err := sess.ApplicationCommands(ApplicationID, "")
	if err != nil || len(listed) != 2 || listed[0].ID != first[0].ID || listed[1].Name != "status" {
		t.Errorf("GET: %+v, %v", listed, err)
	}
	if got := s.Commands(""); len(got) != 2 || got[0].ID != first[0].ID {
		t.Errorf("Commands(\"\") = %+v", got)
	}

	// Overwriting keeps the ids of the commands that stay, with a new version where they changed.
	changed := *status
	changed.Description = "Show how a prediction is doing"
	cancel := &discordgo.ApplicationCommand{Name: "cancel", Description: "Cancel a prediction"}
	second, err := sess.ApplicationCommandBulkOverwrite(ApplicationID, "", []*discordgo.ApplicationCommand{predict, &changed, cancel})
	if err != nil {
		t.Fatal(err)
	}
	if second[0].ID != first[0].ID || second[0].Version != first[0].Version {
		t.Errorf("unchanged /predict: %s v%s, was %s v%s", second[0].ID, second[0].Version, first[0].ID, first[0].Version)
	}
	if second[1].ID != first[1].ID || second[1].Version == first[1].Version || second[1].Description != changed.Description {
		t.Errorf("changed /status: %+v, was %+v", second[1], first[1])
	}
	if second[2].ID == first[0].ID || second[2].ID == first[1].ID {
		t.Errorf("new /cancel reused an id: %s", second[2].ID)
	}

	// Those left out are deleted; guild commands are apart from the global ones.
	if _, err := sess.ApplicationCommandBulkOverwrite(ApplicationID, "", []*discordgo.ApplicationCommand{cancel}); err != nil {
		t.Fatal(err)
	}
	guild, err := sess.ApplicationCommandBulkOverwrite(ApplicationID, GuildID, []*discordgo.ApplicationCommand{predict})
	if err != nil {
		t.Fatal(err)
	}
	if global := s.Commands(""); len(global) != 1 || global[0].Name != "cancel" || global[0].ID != second[2].ID {
		t.Errorf("global commands %+v", global)
	}
	if g := s.Commands(GuildID); len(g) != 1 || g[0].GuildID != GuildID || g[0].ID != guild[0].ID || g[0].ID == first[0].ID {
		t.Errorf("guild commands %+v", g)
	}
	if listed, err := sess.ApplicationCommands(ApplicationID, GuildID); err != nil || len(listed) != 1 || listed[0].Name != "predict" {
		t.Errorf("GET guild: %+v, %v", listed, err)
	}

	// An empty list deletes them all.
	if _, err := sess.ApplicationCommandBulkOverwrite(ApplicationID, GuildID, []*discordgo.ApplicationCommand{}); err != nil || len(s.Commands(GuildID)) != 0 {
		t.Errorf("empty overwrite: %v, left %+v", err, s.Commands(GuildID))
	}
}

func TestCommandsAsDiscordListsThem(t *testing.T) {
	s := NewServer()
	defer s.Close()
	body := `[{"name":"predict","description":"Run","options":[{"type":3,"name":"prompt","description":"What","required":true,"autocomplete":false,"choices":null},` +
		`{"type":4,"name":"seed","description":"Seed","required":false,"min_value":0}]}]`
	if status, _, answer := do(t, s, http.MethodPut, commandsPath, "application/json", body, bot); status != 200 {
		t.Fatalf("%d %s", status, answer)
	}
	_, _, listed := do(t, s, http.MethodGet, commandsPath, "", "", bot)
	for _, want := range []string{`"required":true`, `"min_value":0`, `"contexts":null`, `"default_member_permissions":null`, `"integration_types":[0]`, `"nsfw":false`, `"version":"`} {
		if !strings.Contains(listed, want) {
			t.Errorf("listing lacks %s: %s", want, listed)
		}
	}
	for _, unwanted := range []string{`"required":false`, `"autocomplete"`, `"choices"`, `"channel_types"`} {
		if strings.Contains(listed, unwanted) {
			t.Errorf("listing has %s: %s", unwanted, listed)
		}
	}
}

func TestCommandsRefused(t *testing.T) {
	opt := func(name string, required bool) string {
		return fmt.Sprintf(`{"type":3,"name":%q,"description":"d","required":%t}`, name, required)
	}
	many := make([]string, 26)
	for i := range many {
		many[i] = opt(fmt.Sprintf("o%d", i), false)
	}
	cmd := func(name, description string, opts ...string) string {
		return fmt.Sprintf(`{"name":%q,"description":%q,"options":[%s]}`, name, description, strings.Join(opts, ","))
	}
	guildPath := APIPath + "/applications/" + ApplicationID + "/guilds/9/commands"
	tests := []struct {
		name       string
		method     string
		path       string
		header     http.Header
		body       string
		wantStatus int
		wantBody   string
	}{
		{"no token", http.MethodGet, commandsPath, nil, ``, 401, `{"code":0,"message":"401: Unauthorized"}`},
		{"wrong token", http.MethodPut, commandsPath, http.Header{"Authorization": {"Bot nope"}}, `[]`, 401, `401: Unauthorized`},
		{"webhook-style token", http.MethodGet, commandsPath, http.Header{"Authorization": {BotToken}}, ``, 401, `401: Unauthorized`},
		{"other application", http.MethodPut, APIPath + "/applications/1/commands", bot, `[]`, 403, `{"code":50001,"message":"Missing Access"}`},
		{"guild not added", http.MethodPut, guildPath, bot, `[]`, 403, `"code":50001`},
		{"not an id", http.MethodGet, APIPath + "/applications/me/commands", bot, ``, 404, `404: Not Found`},
		{"method", http.MethodPost, commandsPath, bot, `{}`, 405, `405: Method Not Allowed`},
		{"invalid JSON", http.MethodPut, commandsPath, bot, `[{`, 400, `"code":50109`},
		{"not a list", http.MethodPut, commandsPath, bot, `{"name":"x"}`, 400, `BASE_TYPE_ARRAY`},
		{"uppercase name", http.MethodPut, commandsPath, bot, `[` + cmd("Predict", "d") + `]`, 400,
			`"errors":{"0":{"name":{"_errors":[{"code":"APPLICATION_COMMAND_INVALID_NAME","message":"Command name is invalid"}]}}}`},
		{"space in name", http.MethodPut, commandsPath, bot, `[` + cmd("pre dict", "d") + `]`, 400, `STRING_TYPE_REGEX`},
		{"name too long", http.MethodPut, commandsPath, bot, `[` + cmd(strings.Repeat("p", 33), "d") + `]`, 400, `Must be between 1 and 32 in length.`},
		{"no description", http.MethodPut, commandsPath, bot, `[` + cmd("predict", "") + `]`, 400, `"description":{"_errors":[{"code":"BASE_TYPE_BAD_LENGTH"`},
		{"long description", http.MethodPut, commandsPath, bot, `[` + cmd("predict", strings.Repeat("d", 101)) + `]`, 400, `Must be between 1 and 100 in length.`},
		{"required after optional", http.MethodPut, commandsPath, bot, `[` + cmd("predict", "d", opt("model", false), opt("prompt", true)) + `]`, 400,
			`"errors":{"0":{"options":{"1":{"_errors":[{"code":"APPLICATION_COMMAND_OPTIONS_REQUIRED_INVALID","message":"Required options must be placed before non-required options"}]}}}}`},
		{"option name", http.MethodPut, commandsPath, bot, `[` + cmd("predict", "d", opt("Prompt", true)) + `]`, 400, `"options":{"0":{"name":{"_errors":[{"code":"APPLICATION_COMMAND_INVALID_NAME"`},
		{"option twice", http.MethodPut, commandsPath, bot, `[` + cmd("predict", "d", opt("prompt", true), opt("prompt", true)) + `]`, 400, `APPLICATION_COMMAND_OPTIONS_NAME_ALREADY_EXISTS`},
		{"26 options", http.MethodPut, commandsPath, bot, `[` + cmd("predict", "d", many...) + `]`, 400, `"options":{"_errors":[{"code":"BASE_TYPE_MAX_LENGTH","message":"Must be 25 or fewer in length."}]`},
		{"same name twice", http.MethodPut, commandsPath, bot, `[` + cmd("predict", "d") + `,` + cmd("predict", "e") + `]`, 400,
			`"errors":{"1":{"_errors":[{"code":"APPLICATION_COMMANDS_DUPLICATE_NAME"`},
		{"autocomplete with choices", http.MethodPut, commandsPath, bot,
			`[` + cmd("predict", "d", `{"type":3,"name":"m","description":"d","autocomplete":true,"choices":[{"name":"a","value":"a"}]}`) + `]`, 400, `"autocomplete":{"_errors"`},
		{"bad option type", http.MethodPut, commandsPath, bot, `[` + cmd("predict", "d", `{"type":12,"name":"m","description":"d"}`) + `]`, 400, `"type":{"_errors":[{"code":"BASE_TYPE_CHOICES"`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := NewServer()
			defer s.Close()
			if status, _, body := do(t, s, http.MethodPut, commandsPath, "application/json", `[`+cmd("status", "Show a prediction")+`]`, bot); status != 200 {
				t.Fatalf("registering /status: %d %s", status, body)
			}
			status, _, body := do(t, s, tt.method, tt.path, "application/json", tt.body, tt.header)
			if status != tt.wantStatus || !strings.Contains(body, tt.wantBody) {
				t.Errorf("got %d %s, want %d with %s", status, body, tt.wantStatus, tt.wantBody)
			}
			// A refused overwrite changes nothing.
			if got := s.Commands(""); len(got) != 1 || got[0].Name != "status" {
				t.Errorf("commands now %+v", got)
			}
		})
	}
}

func TestAddGuild(t *testing.T) {
	s := NewServer()
	defer s.Close()
	const other = "1150000000000000002"
	path := APIPath + "/applications/" + ApplicationID + "/guilds/" + other + "/commands"
	if status, _, _ := do(t, s, http.MethodGet, path, "", "", bot); status != 403 {
		t.Errorf("before AddGuild: %d", status)
	}
	s.AddGuild(other)
	if status, _, body := do(t, s, http.MethodGet, path, "", "", bot); status != 200 || body != "[]" {
		t.Errorf("after AddGuild: %d %s", status, body)
	}
}

func TestResetForgetsInteractionsAndCommands(t *testing.T) {
	s := NewServer()
	defer s.Close()
	s.AddInteraction(testApp, testToken, Original{Content: "x"})
	do(t, s, http.MethodPatch, originalPath, "application/json", `{"content":"y"}`, nil)
	do(t, s, http.MethodPut, commandsPath, "application/json", `[{"name":"status","description":"d"}]`, bot)
	if len(s.Edits()) != 1 || len(s.Commands("")) != 1 {
		t.Fatalf("before Reset: %d edits, %d commands", len(s.Edits()), len(s.Commands("")))
	}
	s.Reset()
	if _, ok := s.Original(testApp, testToken); ok || len(s.Edits()) != 0 || len(s.Commands("")) != 0 || s.Requests() != 0 {
		t.Error("Reset left state behind")
	}
	if status, _, _ := do(t, s, http.MethodPatch, originalPath, "application/json", `{"content":"y"}`, nil); status != 404 {
		t.Errorf("edit after Reset: %d", status)
	}
}
