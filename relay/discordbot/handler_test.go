package discordbot

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"encoding/json"
	"io"
	"log/slog"
	"mime"
	"mime/multipart"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/bwmarrin/discordgo"
)

// fakeCommands records the interactions handed to it and answers with what a test set.
type fakeCommands struct {
	mu       sync.Mutex
	calls    []string // "predict", "status", "cancel", "autocomplete"
	got      []*Interaction
	deadline []time.Duration // time left on ctx when called
	answer   *discordgo.InteractionResponse
}

func (f *fakeCommands) record(ctx context.Context, name string, in *Interaction) *discordgo.InteractionResponse {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.calls = append(f.calls, name)
	f.got = append(f.got, in)
	d, _ := ctx.Deadline()
	f.deadline = append(f.deadline, time.Until(d))
	return f.answer
}

func (f *fakeCommands) Predict(ctx context.Context, in *Interaction) *discordgo.InteractionResponse {
	return f.record(ctx, "predict", in)
}

func (f *fakeCommands) Status(ctx context.Context, in *Interaction) *discordgo.InteractionResponse {
	return f.record(ctx, "status", in)
}

func (f *fakeCommands) Cancel(ctx context.Context, in *Interaction) *discordgo.InteractionResponse {
	return f.record(ctx, "cancel", in)
}

func (f *fakeCommands) Autocomplete(ctx context.Context, in *Interaction) *discordgo.InteractionResponse {
	return f.record(ctx, "autocomplete", in)
}

func (f *fakeCommands) Calls() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]string(nil), f.calls...)
}

func newHandler(t *testing.T, cmds Commands, o Options) *Handler {
	t.Helper()
	o.PublicKey = publicHex(testKey)
	if o.Now == nil {
		o.Now = func() time.Time { return testNow }
	}
	o.Logger = slog.New(slog.NewTextHandler(io.Discard, nil))
	h, err := NewHandler(o, cmds)
	if err != nil {
		t.Fatal(err)
	}
	return h
}

// option is an option as Discord sends it in an interaction.
type option struct {
	Name    string `json:"name"`
	Type    int    `json:"type"`
	Value   any    `json:"value,omitempty"`
	Focused bool   `json:"focused,omitempty"`
}

// interaction builds the JSON Discord sends for a command (type 2), an autocomplete (type 4)
// or anything else.
// interactionIDs numbers the test interactions: each one Discord sends has its own id.
var interactionIDs atomic.Int64

func interaction(typ int, command string, opts ...option) []byte {
	v := map[string]any{
		"id": strconv.FormatInt(1300000000000000001+interactionIDs.Add(1), 10), "application_id": "1200000000000000001", "type": typ,
		"token": "aW50ZXJhY3Rpb246MTMwMDAwMDAwMDAwMDAwMDAwMTp0b2tlbg", "version": 1,
		"guild_id": "1000000000000000001", "channel_id": "1100000000000000001",
		"member": map[string]any{"user": map[string]any{"id": "900000000000000001", "username": "ada"}, "roles": []string{}},
	}
	if typ == 2 || typ == 4 {
		if opts == nil {
			opts = []option{}
		}
		v["data"] = map[string]any{"id": "1400000000000000001", "name": command, "type": 1, "options": opts}
	}
	if typ == 3 {
		v["data"] = map[string]any{"custom_id": "button", "component_type": 2}
	}
	b, _ := json.Marshal(v)
	return b
}

// post sends body to h signed with key at time at, and returns the recorded answer.
func post(h http.Handler, key ed25519.PrivateKey, at time.Time, body []byte) *httptest.ResponseRecorder {
	req := httptest.NewRequest("POST", "/discord/interactions", bytes.NewReader(body))
	req.Header = SignHeaders(key, at, body)
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	return rec
}

func decodeAnswer(t *testing.T, rec *httptest.ResponseRecorder) discordgo.InteractionResponse {
	t.Helper()
	if rec.Code != http.StatusOK || rec.Header().Get("Content-Type") != "application/json" {
		t.Fatalf("answer %d %s: %s", rec.Code, rec.Header().Get("Content-Type"), rec.Body)
	}
	var r discordgo.InteractionResponse
	if err := json.Unmarshal(rec.Body.Bytes(), &r); err != nil {
		t.Fatalf("answer %s: %v", rec.Body, err)
	}
	return r
}

func TestPing(t *testing.T) {
	cmds := &fakeCommands{}
	h := newHandler(t, cmds, Options{})
	rec := post(h, testKey, testNow, []byte(`{"id":"1","application_id":"2","type":1,"token":"t","version":1}`))
	if rec.Code != 200 || strings.TrimSpace(rec.Body.String()) != `{"type":1}` || rec.Header().Get("Content-Type") != "application/json" {
		t.Errorf("PING answered %d %q (%s)", rec.Code, rec.Body, rec.Header().Get("Content-Type"))
	}
	if len(cmds.Calls()) != 0 {
		t.Errorf("PING reached the commands: %v", cmds.Calls())
	}
}

// TestRefusals checks every request that must not reach the commands.
func TestRefusals(t *testing.T) {
	cmds := &fakeCommands{answer: Reply("hi")}
	h := newHandler(t, cmds, Options{MaxBody: 1024})
	body := interaction(2, "predict", option{Name: "prompt", Type: 3, Value: "a cat"})
	signed := func(mutate func(r *http.Request)) *http.Request {
		r := httptest.NewRequest("POST", "/discord/interactions", bytes.NewReader(body))
		r.Header = SignHeaders(testKey, testNow, body)
		if mutate != nil {
			mutate(r)
		}
		return r
	}
	withBody := func(b []byte, key ed25519.PrivateKey, at time.Time) *http.Request {
		r := httptest.NewRequest("POST", "/discord/interactions", bytes.NewReader(b))
		r.Header = SignHeaders(key, at, b)
		return r
	}
	big := bytes.Repeat([]byte(" "), 2048)
	for _, tc := range []struct {
		name string
		req  *http.Request
		want int
	}{
		{"tampered body", signed(func(r *http.Request) {
			r.Body = io.NopCloser(bytes.NewReader(bytes.Replace(body, []byte("a cat"), []byte("a dog"), 1)))
		}), 401},
		{"tampered timestamp", signed(func(r *http.Request) {
			r.Header.Set(HeaderTimestamp, strconv.FormatInt(testNow.Unix()-1, 10))
		}), 401},
		{"missing signature", signed(func(r *http.Request) { r.Header.Del(HeaderSignature) }), 401},
		{"missing timestamp", signed(func(r *http.Request) { r.Header.Del(HeaderTimestamp) }), 401},
		{"no headers at all", signed(func(r *http.Request) { r.Header = http.Header{} }), 401},
		{"wrong key", withBody(body, otherKey, testNow), 401},
		{"stale", withBody(body, testKey, testNow.Add(-DefaultTolerance-time.Second)), 401},
		{"future", withBody(body, testKey, testNow.Add(DefaultTolerance+time.Second)), 401},
		{"body too large", withBody(append(body, big...), testKey, testNow), 413},
		{"body too large without a length", func() *http.Request {
			r := withBody(append(body, big...), testKey, testNow)
			r.ContentLength = -1
			return r
		}(), 413},
		{"not JSON, signed", withBody([]byte("type=1"), testKey, testNow), 400},
		{"no type, signed", withBody([]byte(`{"id":"1"}`), testKey, testNow), 400},
		{"command without data, signed", withBody([]byte(`{"id":"1","type":2}`), testKey, testNow), 400},
		{"GET", httptest.NewRequest("GET", "/discord/interactions", nil), 405},
	} {
		t.Run(tc.name, func(t *testing.T) {
			rec := httptest.NewRecorder()
			h.ServeHTTP(rec, tc.req)
			if rec.Code != tc.want {
				t.Errorf("status %d %s, want %d", rec.Code, rec.Body, tc.want)
			}
			var e struct{ Error string }
			if err := json.Unmarshal(rec.Body.Bytes(), &e); err != nil || e.Error == "" {
				t.Errorf("body %q is not a JSON error", rec.Body)
			}
			if tc.want == 405 && rec.Header().Get("Allow") != "POST" {
				t.Errorf("Allow = %q", rec.Header().Get("Allow"))
			}
		})
	}
	if calls := cmds.Calls(); len(calls) != 0 {
		t.Errorf("refused requests reached the commands: %v", calls)
	}
	// The same request, untouched, goes through.
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, signed(nil))
	if rec.Code != 200 {
		t.Errorf("the valid request: %d %s", rec.Code, rec.Body)
	}
}

func TestCommandsDispatched(t *testing.T) {
	answer := Deferred(false)
	cmds := &fakeCommands{answer: answer}
	h := newHandler(t, cmds, Options{AnswerWithin: 2 * time.Second})
	for _, name := range []string{"predict", "status", "cancel"} {
		rec := post(h, testKey, testNow, interaction(2, name, option{Name: "id", Type: 3, Value: "abc"}))
		if got := decodeAnswer(t, rec); got.Type != discordgo.InteractionResponseDeferredChannelMessageWithSource {
			t.Errorf("%s: answered type %d, want the commands' answer", name, got.Type)
		}
	}
	if got := cmds.Calls(); strings.Join(got, ",") != "predict,status,cancel" {
		t.Fatalf("calls = %v", got)
	}
	in := cmds.got[0]
	if !in.Received.Equal(testNow) || !in.TokenExpires().Equal(testNow.Add(15*time.Minute)) {
		t.Errorf("Received %v TokenExpires %v", in.Received, in.TokenExpires())
	}
	if in.Command() != "predict" || in.UserID() != "900000000000000001" || in.ChannelID != "1100000000000000001" || in.Token == "" {
		t.Errorf("interaction: command %q user %q channel %q", in.Command(), in.UserID(), in.ChannelID)
	}
	if s, ok := in.String("id"); !ok || s != "abc" {
		t.Errorf("option id = %q, %v", s, ok)
	}
	for _, left := range cmds.deadline {
		if left <= 0 || left > 2*time.Second {
			t.Errorf("the commands got %s to answer, want at most AnswerWithin", left)
		}
	}
}

func TestAutocomplete(t *testing.T) {
	cmds := &fakeCommands{answer: Choices("stability-ai/sdxl", "black-forest-labs/flux-schnell")}
	h := newHandler(t, cmds, Options{})
	rec := post(h, testKey, testNow, interaction(4, "predict",
		option{Name: "prompt", Type: 3, Value: "a cat"}, option{Name: "model", Type: 3, Value: "fl", Focused: true}))
	got := decodeAnswer(t, rec)
	if got.Type != discordgo.InteractionApplicationCommandAutocompleteResult || len(got.Data.Choices) != 2 {
		t.Fatalf("answer %s", rec.Body)
	}
	name, typed, ok := cmds.got[0].Focused()
	if !ok || name != "model" || typed != "fl" {
		t.Errorf("Focused = %q %q %v", name, typed, ok)
	}

	// Autocomplete of a command the bot does not have: no choices, and no call.
	rec = post(h, testKey, testNow, interaction(4, "imagine", option{Name: "x", Type: 3, Value: "a", Focused: true}))
	if got := decodeAnswer(t, rec); got.Type != 8 || got.Data == nil || len(got.Data.Choices) != 0 || !strings.Contains(rec.Body.String(), `"choices":[]`) {
		t.Errorf("unknown command's autocomplete: %s", rec.Body)
	}
	cmds.answer = nil
	rec = post(h, testKey, testNow, interaction(4, "predict", option{Name: "model", Type: 3, Value: "", Focused: true}))
	if got := decodeAnswer(t, rec); got.Type != 8 || !strings.Contains(rec.Body.String(), `"choices":[]`) {
		t.Errorf("nil autocomplete answer: %s", rec.Body)
	}
	if len(cmds.Calls()) != 2 {
		t.Errorf("calls = %v", cmds.Calls())
	}
}

func TestPoliteAnswers(t *testing.T) {
	cmds := &fakeCommands{}
	h := newHandler(t, cmds, Options{})
	for _, tc := range []struct {
		name string
		body []byte
		want string
	}{
		{"unknown command", interaction(2, "imagine"), "Sorry, I don't know /imagine. I can do /predict, /status and /cancel."},
		{"unknown command with markdown in its name", interaction(2, "**x**"), "Sorry, I don't know that command. I can do /predict, /status and /cancel."},
		{"no answer from the commands", interaction(2, "status", option{Name: "id", Type: 3, Value: "x"}), "Sorry, something went wrong with /status. Please try again."},
		{"a button", interaction(3, ""), "Sorry, I can't handle that kind of interaction."},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := decodeAnswer(t, post(h, testKey, testNow, tc.body))
			if got.Type != discordgo.InteractionResponseChannelMessageWithSource || got.Data == nil ||
				got.Data.Flags != discordgo.MessageFlagsEphemeral || got.Data.Content != tc.want {
				t.Errorf("answer type %d data %+v, want an ephemeral %q", got.Type, got.Data, tc.want)
			}
		})
	}
	if calls := cmds.Calls(); strings.Join(calls, ",") != "status" {
		t.Errorf("calls = %v, want only the known command", calls)
	}
}

func TestAnswerWithFiles(t *testing.T) {
	answer := Reply("here it is")
	answer.Data.Files = []*discordgo.File{{Name: "out-0.png", ContentType: "image/png", Reader: strings.NewReader("PNGDATA")}}
	h := newHandler(t, &fakeCommands{answer: answer}, Options{})
	rec := post(h, testKey, testNow, interaction(2, "predict", option{Name: "prompt", Type: 3, Value: "x"}))
	mt, params, err := mime.ParseMediaType(rec.Header().Get("Content-Type"))
	if rec.Code != 200 || err != nil || mt != "multipart/form-data" {
		t.Fatalf("answer %d %q", rec.Code, rec.Header().Get("Content-Type"))
	}
	mr := multipart.NewReader(rec.Body, params["boundary"])
	parts := map[string]string{}
	for {
		p, err := mr.NextPart()
		if err != nil {
			break
		}
		b, _ := io.ReadAll(p)
		parts[p.FormName()] = string(b)
	}
	if parts["files[0]"] != "PNGDATA" || !strings.Contains(parts["payload_json"], `"content":"here it is"`) {
		t.Errorf("parts = %v", parts)
	}
}

func TestNewHandlerRefuses(t *testing.T) {
	if _, err := NewHandler(Options{PublicKey: publicHex(testKey)}, nil); err == nil {
		t.Error("no commands accepted")
	}
	if _, err := NewHandler(Options{PublicKey: "abc"}, &fakeCommands{}); err == nil {
		t.Error("a bad key accepted")
	}
	if _, err := NewHandler(Options{PublicKey: publicHex(testKey), MaxBody: -1}, &fakeCommands{}); err == nil {
		t.Error("a negative body limit accepted")
	}
	h, err := NewHandler(Options{PublicKey: publicHex(testKey)}, &fakeCommands{})
	if err != nil || h.maxBody != DefaultMaxBody || h.answerWithin != DefaultAnswerWithin || h.verifier.Tolerance() != DefaultTolerance {
		t.Errorf("defaults: %v %+v", err, h)
	}
}

// TestRealClock runs a request through a handler on the real clock, as it will be served.
func TestRealClock(t *testing.T) {
	h, err := NewHandler(Options{PublicKey: publicHex(testKey), Logger: slog.New(slog.NewTextHandler(io.Discard, nil))}, &fakeCommands{})
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(h)
	defer srv.Close()
	body := []byte(`{"id":"1","application_id":"2","type":1,"token":"t","version":1}`)
	for at, want := range map[time.Time]int{time.Now(): 200, time.Now().Add(-time.Hour): 401} {
		req, _ := http.NewRequest("POST", srv.URL, bytes.NewReader(body))
		req.Header = SignHeaders(testKey, at, body)
		resp, err := srv.Client().Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != want {
			t.Errorf("signed %s ago: %d, want %d", time.Since(at).Round(time.Second), resp.StatusCode, want)
		}
	}
}

// TestReplayRefused posts one signed interaction twice: the second is refused, and the
// commands see it once. PINGs, which change nothing, may come again.
func TestReplayRefused(t *testing.T) {
	cmds := &fakeCommands{answer: Reply("ok")}
	h := newHandler(t, cmds, Options{})
	body := interaction(2, "predict", option{Name: "prompt", Type: 3, Value: "x"})
	if rec := post(h, testKey, testNow, body); rec.Code != http.StatusOK {
		t.Fatalf("first: %d %s", rec.Code, rec.Body)
	}
	rec := post(h, testKey, testNow.Add(time.Second), body)
	if rec.Code != http.StatusUnauthorized || !strings.Contains(rec.Body.String(), "already answered") {
		t.Fatalf("replay: %d %s, want 401", rec.Code, rec.Body)
	}
	if got := cmds.Calls(); len(got) != 1 {
		t.Fatalf("calls = %v, want the command once", got)
	}
	ping := interaction(1, "")
	for range 2 {
		if rec := post(h, testKey, testNow, ping); rec.Code != http.StatusOK {
			t.Fatalf("PING again: %d", rec.Code)
		}
	}
}

func TestReplayGuardWindowAndBound(t *testing.T) {
	g := newReplayGuard(time.Minute)
	g.max = 3
	now := time.Now()
	if !g.first("a", now) || g.first("a", now.Add(59*time.Second)) {
		t.Fatal("a repeat within the window was not refused")
	}
	if !g.first("a", now.Add(61*time.Second)) {
		t.Fatal("an id past the window was refused")
	}
	for i, id := range []string{"b", "c", "d", "e"} {
		if !g.first(id, now.Add(time.Duration(62+i)*time.Second)) {
			t.Fatalf("new id %s refused", id)
		}
	}
	if len(g.seen) > g.max {
		t.Fatalf("the guard holds %d ids, bound %d", len(g.seen), g.max)
	}
}
