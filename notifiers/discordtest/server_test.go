package discordtest

import (
	"bytes"
	"encoding/json"
	"io"
	"mime/multipart"
	"net/http"
	"strings"
	"testing"
	"time"
)

// post sends body to path and returns the response's status, headers and body.
func post(t *testing.T, s *Server, path, contentType, body string, header http.Header) (int, http.Header, string) {
	t.Helper()
	req, err := http.NewRequest(http.MethodPost, s.BaseURL()+path, strings.NewReader(body))
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
