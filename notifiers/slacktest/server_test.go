package slacktest

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"mime/multipart"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/slack-go/slack"
)

// post sends body to path and returns the status, the Retry-After header and the body.
func post(t *testing.T, s *Server, path, contentType, body string, header http.Header) (int, string, string) {
	t.Helper()
	req, err := http.NewRequest(http.MethodPost, s.URL()+path, strings.NewReader(body))
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
	return resp.StatusCode, resp.Header.Get("Retry-After"), strings.TrimSpace(string(b))
}

var bearer = http.Header{"Authorization": {"Bearer " + Token}}

func TestWebhook(t *testing.T) {
	longHeader := `[{"type":"header","text":{"type":"plain_text","text":"` + strings.Repeat("h", 151) + `"}}]`
	tests := []struct {
		name       string
		path       string
		body       string
		wantStatus int
		wantBody   string
		recorded   bool
	}{
		{"text", WebhookPath, `{"text":"hi"}`, 200, "ok", true},
		{"blocks", WebhookPath, `{"text":"hi","blocks":[{"type":"section","text":{"type":"mrkdwn","text":"*hi*"}}]}`, 200, "ok", true},
		{"unknown webhook", "/services/T000/B000/YYYY", `{"text":"hi"}`, 404, "no_service", false},
		{"not JSON", WebhookPath, `{"text":`, 400, "invalid_payload", false},
		{"no text", WebhookPath, `{"text":""}`, 400, "no_text", false},
		{"header too long", WebhookPath, `{"text":"x","blocks":` + longHeader + `}`, 400, "invalid_blocks", false},
		{"image without alt text", WebhookPath, `{"text":"x","blocks":[{"type":"image","image_url":"https://x/y.png","alt_text":""}]}`, 400, "invalid_blocks", false},
		{"eleven fields", WebhookPath, `{"text":"x","blocks":[{"type":"section","fields":[` + strings.Repeat(`{"type":"mrkdwn","text":"f"},`, 10) + `{"type":"mrkdwn","text":"f"}]}]}`, 400, "invalid_blocks", false},
		{"blocks not an array", WebhookPath, `{"text":"x","blocks":{"type":"divider"}}`, 400, "invalid_blocks_format", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := NewServer()
			defer s.Close()
			status, _, body := post(t, s, tt.path, "application/json", tt.body, nil)
			if status != tt.wantStatus || body != tt.wantBody {
				t.Errorf("got %d %q, want %d %q", status, body, tt.wantStatus, tt.wantBody)
			}
			if got := len(s.Messages()); got != map[bool]int{true: 1}[tt.recorded] {
				t.Errorf("%d messages recorded", got)
			}
		})
	}
}

func TestWebhookForm(t *testing.T) {
	s := NewServer()
	defer s.Close()
	form := url.Values{"payload": {`{"text":"from a form"}`}}.Encode()
	if status, _, body := post(t, s, WebhookPath, "application/x-www-form-urlencoded", form, nil); status != 200 || body != "ok" {
		t.Fatalf("got %d %q", status, body)
	}
	msgs := s.Messages()
	if len(msgs) != 1 || msgs[0].Text != "from a form" || !msgs[0].Webhook || msgs[0].Channel != Channel {
		t.Errorf("messages %+v", msgs)
	}
}

func TestPostMessage(t *testing.T) {
	tests := []struct {
		name        string
		contentType string
		body        string
		header      http.Header
		wantError   string // "" for ok
	}{
		{"JSON with bearer", "application/json", `{"channel":"C1","text":"hi"}`, bearer, ""},
		{"form with token", "application/x-www-form-urlencoded", url.Values{"token": {Token}, "channel": {"#general"}, "text": {"hi"}}.Encode(), nil, ""},
		{"form with blocks", "application/x-www-form-urlencoded", url.Values{"channel": {"general"}, "blocks": {`[{"type":"divider"}]`}}.Encode(), bearer, ""},
		{"no token", "application/json", `{"channel":"C1","text":"hi"}`, nil, "not_authed"},
		{"wrong token", "application/json", `{"channel":"C1","text":"hi"}`, http.Header{"Authorization": {"Bearer xoxb-nope"}}, "invalid_auth"},
		{"unknown channel", "application/json", `{"channel":"C9","text":"hi"}`, bearer, "channel_not_found"},
		{"no text", "application/json", `{"channel":"C1"}`, bearer, "no_text"},
		{"too long", "application/json", `{"channel":"C1","text":"` + strings.Repeat("x", 40001) + `"}`, bearer, "msg_too_long"},
		{"bad blocks", "application/x-www-form-urlencoded", url.Values{"channel": {"C1"}, "blocks": {`[{`}}.Encode(), bearer, "invalid_blocks_format"},
		{"bad JSON", "application/json", `{`, bearer, "invalid_json"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := NewServer()
			defer s.Close()
			status, _, body := post(t, s, PostMessagePath, tt.contentType, tt.body, tt.header)
			if status != 200 {
				t.Fatalf("status %d", status)
			}
			var r struct {
				OK      bool   `json:"ok"`
				Error   string `json:"error"`
				TS      string `json:"ts"`
				Channel string `json:"channel"`
			}
			if err := json.Unmarshal([]byte(body), &r); err != nil {
				t.Fatalf("%v: %s", err, body)
			}
			if tt.wantError != "" {
				if r.OK || r.Error != tt.wantError {
					t.Errorf("got %s, want error %s", body, tt.wantError)
				}
				if n := len(s.Messages()); n != 0 {
					t.Errorf("%d messages recorded", n)
				}
				return
			}
			if !r.OK || r.TS != "1700000000.000100" || r.Channel != Channel {
				t.Errorf("got %s", body)
			}
		})
	}
}

// TestWithSlackGo drives the stand-in with slack-go's own client.
func TestWithSlackGo(t *testing.T) {
	s := NewServer()
	defer s.Close()
	s.AddChannel("C2", "#alerts")
	api := slack.New(Token, slack.OptionAPIURL(s.APIURL()))
	for i, want := range []string{"1700000000.000100", "1700000000.000200"} {
		ch, ts, err := api.PostMessage("#alerts", slack.MsgOptionText("hello", false),
			slack.MsgOptionBlocks(slack.NewSectionBlock(slack.NewTextBlockObject("mrkdwn", "*hi*", false, false), nil, nil)))
		if err != nil || ch != "C2" || ts != want {
			t.Fatalf("message %d: %q %q %v", i, ch, ts, err)
		}
	}
	if err := slack.PostWebhook(s.WebhookURL(), &slack.WebhookMessage{Text: "via webhook"}); err != nil {
		t.Fatal(err)
	}
	msgs, err := s.WaitFor(3, time.Second)
	if err != nil {
		t.Fatal(err)
	}
	if got := msgs[0].BlockTypes(); len(got) != 1 || got[0] != "section" {
		t.Errorf("block types %q", got)
	}
	if msgs[2].Text != "via webhook" {
		t.Errorf("webhook message %+v", msgs[2])
	}
	_, _, err = slack.New("xoxb-wrong", slack.OptionAPIURL(s.APIURL())).PostMessage("C1", slack.MsgOptionText("x", false))
	if err == nil || err.Error() != "invalid_auth" {
		t.Errorf("wrong token: %v", err)
	}
}

func TestFailNext(t *testing.T) {
	s := NewServer()
	defer s.Close()
	s.FailNext(5, Failure{Status: 503})
	s.FailNext(0, Failure{}) // cancels the above
	s.FailNext(1, Failure{Status: 500, Body: "rollup_error"})
	s.ThenFail(1, Failure{RetryAfter: 3})
	s.ThenFail(1, Failure{APIError: "channel_is_archived", Status: 410})
	s.ThenFail(1, Failure{Delay: time.Millisecond})
	wants := []struct {
		status     int
		retryAfter string
		body       string
	}{
		{500, "", "rollup_error"},
		{429, "3", "rate_limited"},
		{410, "", "channel_is_archived"},
		{200, "", "ok"}, // a delay alone ends in the normal answer
		{200, "", "ok"},
	}
	for i, want := range wants {
		status, retryAfter, body := post(t, s, WebhookPath, "application/json", `{"text":"x"}`, nil)
		if status != want.status || retryAfter != want.retryAfter || body != want.body {
			t.Errorf("request %d: got %d %q %q, want %d %q %q", i, status, retryAfter, body, want.status, want.retryAfter, want.body)
		}
	}
	if n := len(s.Messages()); n != 2 {
		t.Errorf("%d messages, want 2", n)
	}
	if n := s.Requests(); n != 5 {
		t.Errorf("%d requests, want 5", n)
	}

	s.FailNext(1, Failure{APIError: "is_archived"})
	_, _, body := post(t, s, PostMessagePath, "application/json", `{"channel":"C1","text":"x"}`, bearer)
	if body != `{"error":"is_archived","ok":false}` {
		t.Errorf("API failure body %s", body)
	}
}

// TestFailNextDelay: a client that gives up during a delay gets nothing posted, even when the
// delay ends while the stand-in is still open.
func TestFailNextDelay(t *testing.T) {
	s := NewServer()
	defer s.Close()
	s.FailNext(1, Failure{Delay: 200 * time.Millisecond})
	client := &http.Client{Timeout: 30 * time.Millisecond}
	if _, err := client.Post(s.WebhookURL(), "application/json", strings.NewReader(`{"text":"x"}`)); err == nil {
		t.Fatal("no timeout")
	}
	time.Sleep(400 * time.Millisecond)
	if n := len(s.Messages()); n != 0 {
		t.Errorf("%d messages from a request the client gave up on", n)
	}
}

func TestFailNextHang(t *testing.T) {
	s := NewServer()
	s.FailNext(2, Failure{Delay: time.Hour})
	client := &http.Client{Timeout: 50 * time.Millisecond}
	_, err := client.Post(s.WebhookURL(), "application/json", strings.NewReader(`{"text":"x"}`))
	var ue *url.Error
	if !errors.As(err, &ue) || !ue.Timeout() {
		t.Fatalf("err = %v, want a timeout", err)
	}
	// A request still held when the server closes is dropped, and Close does not wait an hour.
	done := make(chan error, 1)
	go func() {
		_, err := http.Post(s.WebhookURL(), "application/json", strings.NewReader(`{"text":"x"}`))
		done <- err
	}()
	for s.Requests() < 2 {
		time.Sleep(time.Millisecond)
	}
	closed := make(chan struct{})
	go func() {
		s.Close()
		close(closed)
	}()
	select {
	case <-closed:
	case <-time.After(5 * time.Second):
		t.Fatal("Close blocked on a held request")
	}
	if err := <-done; err == nil {
		t.Error("held request answered, want a dropped connection")
	}
	if n := len(s.Messages()); n != 0 {
		t.Errorf("%d messages", n)
	}
}

func TestRateLimit(t *testing.T) {
	s := NewServer()
	defer s.Close()
	s.AddChannel("C2", "other")
	s.SetRateLimit(2)
	send := func(channel string) (int, string) {
		status, retryAfter, _ := post(t, s, PostMessagePath, "application/json", `{"channel":"`+channel+`","text":"x"}`, bearer)
		return status, retryAfter
	}
	// A burst of two passes, the third is limited; another channel has its own budget.
	for i, want := range []int{200, 200, 429} {
		if status, retryAfter := send("C1"); status != want || (want == 429 && retryAfter != "1") {
			t.Errorf("message %d: %d (Retry-After %q), want %d", i, status, retryAfter, want)
		}
	}
	if status, _ := send("C2"); status != 200 {
		t.Errorf("other channel: %d", status)
	}
	time.Sleep(600 * time.Millisecond)
	if status, _ := send("C1"); status != 200 {
		t.Errorf("after a pause: %d", status)
	}
	s.SetRateLimit(0)
	for range 5 {
		if status, _ := send("C1"); status != 200 {
			t.Fatalf("limit off: %d", status)
		}
	}
}

func TestWaitFor(t *testing.T) {
	s := NewServer()
	defer s.Close()
	if msgs, err := s.WaitFor(1, 20*time.Millisecond); err == nil || len(msgs) != 0 {
		t.Fatalf("WaitFor on nothing: %v, %v", msgs, err)
	}
	go func() {
		for range 3 {
			_ = slack.PostWebhookContext(context.Background(), s.WebhookURL(), &slack.WebhookMessage{Text: "x"})
		}
	}()
	msgs, err := s.WaitFor(3, 5*time.Second)
	if err != nil || len(msgs) != 3 {
		t.Fatalf("%d messages, %v", len(msgs), err)
	}
	s.Reset()
	if n := len(s.Messages()); n != 0 || s.Requests() != 0 {
		t.Errorf("after Reset: %d messages, %d requests", n, s.Requests())
	}
}

// TestHandler uses the handler without Server, as a benchmark serving it on its own listener
// would.
func TestHandler(t *testing.T) {
	h := NewHandler()
	defer h.Close()
	req := httptest.NewRequest(http.MethodPost, WebhookPath, strings.NewReader(`{"text":"direct"}`))
	req.Header.Set("Content-Type", "application/json")
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	if rec.Code != 200 || rec.Body.String() != "ok" {
		t.Errorf("got %d %q", rec.Code, rec.Body.String())
	}
	if msgs := h.Messages(); len(msgs) != 1 || msgs[0].Text != "direct" {
		t.Errorf("messages %+v", msgs)
	}
}

// getUploadURL asks the stand-in for an upload URL and returns it with the file ID.
func getUploadURL(t *testing.T, s *Server, name string, length int) (uploadURL, fileID string) {
	t.Helper()
	form := url.Values{"filename": {name}, "length": {strconv.Itoa(length)}}.Encode()
	status, _, body := post(t, s, GetUploadURLPath, "application/x-www-form-urlencoded", form, bearer)
	var r struct {
		OK        bool   `json:"ok"`
		UploadURL string `json:"upload_url"`
		FileID    string `json:"file_id"`
	}
	if err := json.Unmarshal([]byte(body), &r); status != 200 || err != nil || !r.OK {
		t.Fatalf("files.getUploadURLExternal: %d %s", status, body)
	}
	return r.UploadURL, r.FileID
}

// uploadPath is the part of an upload URL after the server's base URL, for post.
func uploadPath(t *testing.T, s *Server, uploadURL string) string {
	t.Helper()
	if !strings.HasPrefix(uploadURL, s.URL()+UploadPath) {
		t.Fatalf("upload URL %q is not on the stand-in", uploadURL)
	}
	return strings.TrimPrefix(uploadURL, s.URL())
}

// complete calls files.completeUploadExternal and returns the error code, "" for ok.
func complete(t *testing.T, s *Server, args url.Values) string {
	t.Helper()
	status, _, body := post(t, s, CompleteUploadPath, "application/x-www-form-urlencoded", args.Encode(), bearer)
	var r struct {
		OK    bool   `json:"ok"`
		Error string `json:"error"`
	}
	if err := json.Unmarshal([]byte(body), &r); status != 200 || err != nil {
		t.Fatalf("files.completeUploadExternal: %d %s", status, body)
	}
	if r.OK {
		return ""
	}
	return r.Error
}

// TestFileUploadWithSlackGo drives the whole flow with slack-go's own client, into the thread of
// a message posted first.
func TestFileUploadWithSlackGo(t *testing.T) {
	s := NewServer()
	defer s.Close()
	ctx := context.Background()
	api := slack.New(Token, slack.OptionAPIURL(s.APIURL()))
	ch, ts, err := api.PostMessageContext(ctx, "#general", slack.MsgOptionText("outputs", false))
	if err != nil {
		t.Fatal(err)
	}
	contents := map[string][]byte{"a.png": []byte("\x89PNG first"), "b.webp": []byte("RIFF second file")}
	var sent []slack.FileSummary
	for _, name := range []string{"a.png", "b.webp"} {
		u, err := api.GetUploadURLExternalContext(ctx, slack.GetUploadURLExternalParameters{FileName: name, FileSize: len(contents[name])})
		if err != nil {
			t.Fatal(err)
		}
		if err := api.UploadToURL(ctx, slack.UploadToURLParameters{UploadURL: u.UploadURL, Reader: bytes.NewReader(contents[name]), Filename: name}); err != nil {
			t.Fatal(err)
		}
		sent = append(sent, slack.FileSummary{ID: u.FileID, Title: "title of " + name})
	}
	resp, err := api.CompleteUploadExternalContext(ctx, slack.CompleteUploadExternalParameters{Files: sent, Channel: ch, ThreadTimestamp: ts})
	if err != nil {
		t.Fatal(err)
	}
	if len(resp.Files) != 2 || resp.Files[0].ID != sent[0].ID || resp.Files[1].Title != "title of b.webp" {
		t.Errorf("answer %+v", resp.Files)
	}
	files, err := s.WaitForFiles(2, time.Second)
	if err != nil {
		t.Fatal(err)
	}
	for i, name := range []string{"a.png", "b.webp"} {
		f := files[i]
		if f.ID != sent[i].ID || f.Name != name || f.Title != "title of "+name || !bytes.Equal(f.Data, contents[name]) ||
			f.Channel != Channel || f.ThreadTS != ts || f.Time.IsZero() {
			t.Errorf("file %d: %+v", i, f)
		}
	}
	if n := len(s.Messages()); n != 1 {
		t.Errorf("%d messages, want the one posted (files are not messages)", n)
	}
	if n := s.FileRequests(); n != 5 {
		t.Errorf("%d file requests, want 5", n)
	}
	if n := s.Requests(); n != 1 {
		t.Errorf("%d message requests, want 1", n)
	}
}

func TestGetUploadURL(t *testing.T) {
	tests := []struct {
		name        string
		contentType string
		body        string
		header      http.Header
		wantError   string // "" for ok
	}{
		{"form with bearer", "application/x-www-form-urlencoded", "filename=out.png&length=12", bearer, ""},
		{"form with token", "application/x-www-form-urlencoded", url.Values{"token": {Token}, "filename": {"out.png"}, "length": {"12"}}.Encode(), nil, ""},
		{"JSON", "application/json", `{"filename":"out.png","length":12}`, bearer, ""},
		{"no token", "application/x-www-form-urlencoded", "filename=out.png&length=12", nil, "not_authed"},
		{"wrong token", "application/x-www-form-urlencoded", "filename=out.png&length=12", http.Header{"Authorization": {"Bearer xoxb-nope"}}, "invalid_auth"},
		{"no filename", "application/x-www-form-urlencoded", "length=12", bearer, "invalid_arguments"},
		{"blank filename", "application/x-www-form-urlencoded", "filename=+&length=12", bearer, "invalid_arguments"},
		{"no length", "application/x-www-form-urlencoded", "filename=out.png", bearer, "invalid_arguments"},
		{"length not a number", "application/x-www-form-urlencoded", "filename=out.png&length=twelve", bearer, "invalid_arguments"},
		{"length zero", "application/x-www-form-urlencoded", "filename=out.png&length=0", bearer, "invalid_arguments"},
		{"bad JSON", "application/json", `{`, bearer, "invalid_json"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := NewServer()
			defer s.Close()
			status, _, body := post(t, s, GetUploadURLPath, tt.contentType, tt.body, tt.header)
			var r struct {
				OK        bool   `json:"ok"`
				Error     string `json:"error"`
				UploadURL string `json:"upload_url"`
				FileID    string `json:"file_id"`
			}
			if err := json.Unmarshal([]byte(body), &r); status != 200 || err != nil {
				t.Fatalf("%d %s", status, body)
			}
			if tt.wantError != "" {
				if r.OK || r.Error != tt.wantError {
					t.Errorf("got %s, want error %s", body, tt.wantError)
				}
				return
			}
			if !r.OK || r.FileID != "F00000001" || !strings.HasPrefix(r.UploadURL, s.URL()+UploadPath) || !strings.Contains(r.UploadURL, "?sig=") {
				t.Errorf("got %s", body)
			}
		})
	}
}

func TestUpload(t *testing.T) {
	data := []byte("twelve bytes")
	s := NewServer()
	defer s.Close()
	uploadURL, _ := getUploadURL(t, s, "out.png", len(data))
	path := uploadPath(t, s, uploadURL)
	u, _ := url.Parse(uploadURL)

	// A multipart form, as slack-go sends it.
	var form bytes.Buffer
	mw := multipart.NewWriter(&form)
	fw, _ := mw.CreateFormFile("file", "out.png")
	fw.Write(data)
	mw.Close()

	tests := []struct {
		name        string
		path        string
		contentType string
		body        string
		wantStatus  int
		wantBody    string
	}{
		{"unknown upload id", UploadPath + "UP99999999?" + u.RawQuery, "application/octet-stream", string(data), 404, "not_found"},
		{"wrong signature", u.Path + "?sig=forged", "application/octet-stream", string(data), 404, "not_found"},
		{"no signature", u.Path, "application/octet-stream", string(data), 404, "not_found"},
		{"too short", path, "application/octet-stream", "short", 400, "length_mismatch: 5 bytes, 12 declared"},
		{"form without a file", path, "multipart/form-data; boundary=x", "--x--\r\n", 400, "invalid_form_data"},
		{"raw bytes", path, "application/octet-stream", string(data), 200, "OK - 12"},
		{"multipart again", path, mw.FormDataContentType(), form.String(), 200, "OK - 12"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			status, _, body := post(t, s, tt.path, tt.contentType, tt.body, nil)
			if status != tt.wantStatus || body != tt.wantBody {
				t.Errorf("got %d %q, want %d %q", status, body, tt.wantStatus, tt.wantBody)
			}
		})
	}
	if n := len(s.Files()); n != 0 {
		t.Errorf("%d files shared before files.completeUploadExternal", n)
	}
}

func TestCompleteUpload(t *testing.T) {
	data := []byte("png bytes")
	// ready gets a file ID with its bytes uploaded.
	ready := func(t *testing.T, s *Server) string {
		uploadURL, id := getUploadURL(t, s, "out.png", len(data))
		if status, _, body := post(t, s, uploadPath(t, s, uploadURL), "image/png", string(data), nil); status != 200 {
			t.Fatalf("upload: %d %s", status, body)
		}
		return id
	}
	filesArg := func(ids ...string) string {
		var list []map[string]string
		for _, id := range ids {
			list = append(list, map[string]string{"id": id})
		}
		b, _ := json.Marshal(list)
		return string(b)
	}
	tests := []struct {
		name      string
		args      func(t *testing.T, s *Server) url.Values
		wantError string
		wantFiles int
	}{
		{"shared in a thread", func(t *testing.T, s *Server) url.Values {
			return url.Values{"files": {filesArg(ready(t, s))}, "channel_id": {Channel}, "thread_ts": {"1700000000.000100"}}
		}, "", 1},
		{"private without a channel", func(t *testing.T, s *Server) url.Values {
			return url.Values{"files": {filesArg(ready(t, s))}}
		}, "", 1},
		{"unknown file", func(t *testing.T, s *Server) url.Values {
			return url.Values{"files": {filesArg("F404")}, "channel_id": {Channel}}
		}, "file_not_found", 0},
		{"not uploaded", func(t *testing.T, s *Server) url.Values {
			_, id := getUploadURL(t, s, "out.png", len(data))
			return url.Values{"files": {filesArg(id)}, "channel_id": {Channel}}
		}, "file_not_found", 0},
		{"one of two unknown", func(t *testing.T, s *Server) url.Values {
			return url.Values{"files": {filesArg(ready(t, s), "F404")}, "channel_id": {Channel}}
		}, "file_not_found", 0},
		{"same file twice", func(t *testing.T, s *Server) url.Values {
			id := ready(t, s)
			return url.Values{"files": {filesArg(id, id)}, "channel_id": {Channel}}
		}, "file_not_found", 0},
		{"channel name", func(t *testing.T, s *Server) url.Values {
			return url.Values{"files": {filesArg(ready(t, s))}, "channel_id": {ChannelName}}
		}, "channel_not_found", 0},
		{"unknown channel", func(t *testing.T, s *Server) url.Values {
			return url.Values{"files": {filesArg(ready(t, s))}, "channel_id": {"C404"}}
		}, "channel_not_found", 0},
		{"no files", func(t *testing.T, s *Server) url.Values {
			return url.Values{"channel_id": {Channel}}
		}, "invalid_arguments", 0},
		{"files not JSON", func(t *testing.T, s *Server) url.Values {
			return url.Values{"files": {"F00000001"}, "channel_id": {Channel}}
		}, "invalid_arguments", 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := NewServer()
			defer s.Close()
			args := tt.args(t, s)
			if got := complete(t, s, args); got != tt.wantError {
				t.Fatalf("error %q, want %q", got, tt.wantError)
			}
			files := s.Files()
			if len(files) != tt.wantFiles {
				t.Fatalf("%d files shared, want %d", len(files), tt.wantFiles)
			}
			if tt.wantFiles == 0 {
				return
			}
			f := files[0]
			if f.Name != "out.png" || f.Title != "out.png" || !bytes.Equal(f.Data, data) ||
				f.Channel != args.Get("channel_id") || f.ThreadTS != args.Get("thread_ts") {
				t.Errorf("file %+v", f)
			}
			// A file is completed once; its upload URL is spent too.
			if got := complete(t, s, args); got != "file_not_found" {
				t.Errorf("completed again: %q, want file_not_found", got)
			}
		})
	}
}

func TestFailNextFile(t *testing.T) {
	s := NewServer()
	defer s.Close()
	s.FailNextFile(GetUploadURLPath, 3, Failure{Status: 503})
	s.FailNextFile(GetUploadURLPath, 0, Failure{}) // cancels the above
	s.FailNextFile(GetUploadURLPath, 1, Failure{APIError: "missing_scope"})
	s.FailNextFile(UploadPath, 1, Failure{Status: 500})
	s.FailNextFile(CompleteUploadPath, 1, Failure{RetryAfter: 3})

	form := "filename=out.png&length=2"
	if _, _, body := post(t, s, GetUploadURLPath, "application/x-www-form-urlencoded", form, bearer); body != `{"error":"missing_scope","ok":false}` {
		t.Errorf("files.getUploadURLExternal failure: %s", body)
	}
	uploadURL, id := getUploadURL(t, s, "out.png", 2)
	path := uploadPath(t, s, uploadURL)
	if status, _, body := post(t, s, path, "image/png", "ab", nil); status != 500 || body != "internal_error" {
		t.Errorf("upload failure: %d %q", status, body)
	}
	if status, _, body := post(t, s, path, "image/png", "ab", nil); status != 200 || body != "OK - 2" {
		t.Errorf("upload after the failure: %d %q", status, body)
	}
	args := url.Values{"files": {`[{"id":"` + id + `"}]`}, "channel_id": {Channel}}.Encode()
	if status, retryAfter, _ := post(t, s, CompleteUploadPath, "application/x-www-form-urlencoded", args, bearer); status != 429 || retryAfter != "3" {
		t.Errorf("files.completeUploadExternal failure: %d, Retry-After %q", status, retryAfter)
	}
	if got := complete(t, s, url.Values{"files": {`[{"id":"` + id + `"}]`}, "channel_id": {Channel}}); got != "" {
		t.Errorf("completing after the failure: %q", got)
	}
	if n := len(s.Files()); n != 1 {
		t.Errorf("%d files, want 1", n)
	}
	if n := s.FileRequests(); n != 6 {
		t.Errorf("%d file requests, want 6", n)
	}
	// The message requests have failures of their own, untouched by the file flow's.
	s.FailNext(1, Failure{APIError: "is_archived"})
	if _, _, body := post(t, s, GetUploadURLPath, "application/x-www-form-urlencoded", form, bearer); !strings.Contains(body, `"ok":true`) {
		t.Errorf("a message failure applied to the file flow: %s", body)
	}
	if n := s.Requests(); n != 0 {
		t.Errorf("%d message requests, want 0", n)
	}

	s.Reset()
	if s.FileRequests() != 0 || len(s.Files()) != 0 {
		t.Errorf("after Reset: %d file requests, %d files", s.FileRequests(), len(s.Files()))
	}
	if status, _, _ := post(t, s, path, "image/png", "ab", nil); status != 404 {
		t.Errorf("upload URL after Reset: %d, want 404", status)
	}
	defer func() {
		if recover() == nil {
			t.Error("FailNextFile on an unknown step did not panic")
		}
	}()
	s.FailNextFile(PostMessagePath, 1, Failure{})
}

// TestFileUploadHang: an upload held past the client's timeout records nothing.
func TestFileUploadHang(t *testing.T) {
	s := NewServer()
	defer s.Close()
	uploadURL, id := getUploadURL(t, s, "out.png", 2)
	s.FailNextFile(UploadPath, 1, Failure{Delay: time.Hour})
	client := &http.Client{Timeout: 50 * time.Millisecond}
	if _, err := client.Post(uploadURL, "image/png", strings.NewReader("ab")); err == nil {
		t.Fatal("no timeout")
	}
	if got := complete(t, s, url.Values{"files": {`[{"id":"` + id + `"}]`}, "channel_id": {Channel}}); got != "file_not_found" {
		t.Errorf("completing a file whose upload was dropped: %q, want file_not_found", got)
	}
}
