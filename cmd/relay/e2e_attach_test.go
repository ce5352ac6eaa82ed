package main

import (
	"bytes"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/mlrelay/relay/notifiers/discordtest"
	"github.com/mlrelay/relay/notifiers/slacktest"
	"github.com/mlrelay/relay/relay"
)

// fileServer stands in for replicate.delivery: an https server of output files, trusted
// through a CA file, that logs what was requested.
type fileServer struct {
	srv    *httptest.Server
	caFile string
	files  map[string][]byte
	mu     sync.Mutex
	asked  []string
}

func newFileServer(t *testing.T, files map[string][]byte) *fileServer {
	t.Helper()
	fs := &fileServer{files: files}
	fs.srv = httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		fs.mu.Lock()
		fs.asked = append(fs.asked, r.URL.Path)
		fs.mu.Unlock()
		data, ok := fs.files[r.URL.Path]
		if !ok {
			http.NotFound(w, r)
			return
		}
		w.Header().Set("Content-Type", http.DetectContentType(data))
		w.Write(data)
	}))
	t.Cleanup(fs.srv.Close)
	fs.caFile = filepath.Join(t.TempDir(), "ca.pem")
	pemData := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: fs.srv.Certificate().Raw})
	if err := os.WriteFile(fs.caFile, pemData, 0o600); err != nil {
		t.Fatal(err)
	}
	return fs
}

// url is the https URL of path on the server, by IP address (which the allow-list names).
func (fs *fileServer) url(path string) string { return fs.srv.URL + path }

func (fs *fileServer) requested(path string) bool {
	fs.mu.Lock()
	defer fs.mu.Unlock()
	for _, p := range fs.asked {
		if p == path {
			return true
		}
	}
	return false
}

// predictionWithOutput is the succeeded sample prediction with its output replaced by urls,
// under a fresh id.
func predictionWithOutput(t *testing.T, id string, urls ...string) []byte {
	t.Helper()
	var p map[string]any
	if err := json.Unmarshal(sample(t, "prediction-succeeded.json").Body, &p); err != nil {
		t.Fatal(err)
	}
	p["id"] = id
	p["output"] = urls
	p["urls"] = map[string]any{"get": "https://api.replicate.com/v1/predictions/" + id, "web": "https://replicate.com/p/" + id}
	b, err := json.Marshal(p)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// withID is a payload with its id replaced: another prediction with the same content.
func withID(t *testing.T, body []byte, id string) []byte {
	t.Helper()
	var p map[string]any
	if err := json.Unmarshal(body, &p); err != nil {
		t.Fatal(err)
	}
	p["id"] = id
	b, err := json.Marshal(p)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// TestE2EAttachments shows output files attached to Discord and email from an allowed host,
// and kept as links when they are too large, missing, on another host or not https.
func TestE2EAttachments(t *testing.T) {
	png := append([]byte("\x89PNG\r\n\x1a\n"), bytes.Repeat([]byte{7}, 600)...)
	big := append([]byte("\x89PNG\r\n\x1a\n"), bytes.Repeat([]byte{9}, 4000)...)
	files := newFileServer(t, map[string][]byte{"/pbxt/out-0.png": png, "/pbxt/big.png": big, "/pbxt/secret.png": png})
	slack := newSlack(t)
	discord := newDiscord(t)
	smtp := newSMTP(t)

	db := filepath.Join(t.TempDir(), "relay.db")
	in := start(t, e2eConfig(t, db, slack.WebhookURL(), fmt.Sprintf(`
[attachments]
hosts = ["127.0.0.1"]
ca_file = %q
timeout = "5s"

[notifiers.discord]
type = "discord"
webhook_url = %q
api_url = %q
attach = true
attach_max_size = "2KiB"
rate = 50
burst = 10

[notifiers.email]
type = "email"
host = %q
port = %d
tls = "none"
from = "relay@example.com"
to = ["ml-team@example.com"]
attach = true
attach_max_size = "2KiB"
rate = 50
burst = 10

[notifiers.slackbot]
type = "slack"
token = %q
channel = %q
api_url = %q
attach = true
attach_max_size = "2KiB"
rate = 50
burst = 10

[[rules]]
name = "outputs"
kinds = ["prediction"]
statuses = ["succeeded"]
notify = ["discord", "email", "slackbot"]
`, files.caFile, discord.WebhookURL(), discord.URL(), smtp.Host(), smtp.Port(),
		slacktest.Token, slacktest.Channel, slack.APIURL())))

	// The same server under a name that is not on the allow-list, and a plain-http URL.
	disallowed := strings.Replace(files.url("/pbxt/secret.png"), "127.0.0.1", "localhost", 1)
	urls := []string{
		files.url("/pbxt/out-0.png"),   // attached
		files.url("/pbxt/big.png"),     // over attach_max_size: a link
		files.url("/pbxt/missing.png"), // 404: a link
		disallowed,                     // not an allowed host: never fetched
	}
	body := predictionWithOutput(t, "attach1", urls...)
	if code, answer := in.post(t, "?kind=prediction", "msg_attach1", body); code != 200 || !strings.Contains(answer, `"deliveries":4`) {
		t.Fatalf("post: %d %s, want 4 deliveries (slack webhook and bot, discord, email)", code, answer)
	}
	for _, d := range settled(t, db, 15*time.Second) {
		if d.State != relay.Sent {
			t.Errorf("delivery to %s is %s: %s; a file that cannot be attached must not fail it", d.Notifier, d.State, d.LastError)
		}
	}

	// Discord: the image as a file with its exact bytes, shown in the embed; the rest as links.
	dm := discord.Messages()
	if len(dm) != 1 {
		t.Fatalf("discord got %d messages, want 1", len(dm))
	}
	if a, ok := dm[0].Attachment("out-0.png"); !ok || !bytes.Equal(a.Data, png) {
		t.Errorf("discord attachments %+v, want out-0.png with its %d bytes", names(dm[0].Attachments), len(png))
	}
	if len(dm[0].Attachments) != 1 {
		t.Errorf("discord attachments %v, want out-0.png only", names(dm[0].Attachments))
	}
	if img := dm[0].Embeds[0].Image; img == nil || img.URL != "attachment://out-0.png" {
		t.Errorf("embed image %+v, want the attached file", img)
	}
	payload := string(dm[0].Payload)
	for _, link := range []string{"big.png", "missing.png"} {
		if !strings.Contains(payload, link) {
			t.Errorf("discord message lost the link to %s: %s", link, payload)
		}
	}

	// Email: the image inline (cid) in the HTML, the rest as links.
	msgs, err := smtp.WaitFor(1, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	root, err := msgs[0].Parse()
	if err != nil {
		t.Fatal(err)
	}
	var html string
	var inline []string
	for _, leaf := range root.Leaves() {
		switch {
		case leaf.ContentType == "text/html":
			html = string(leaf.Body)
		case leaf.Disposition != "":
			inline = append(inline, fmt.Sprintf("%s %s %s %d", leaf.Disposition, leaf.ContentType, leaf.Filename, len(leaf.Body)))
		}
	}
	if want := []string{fmt.Sprintf("inline image/png out-0.png %d", len(png))}; strings.Join(inline, "|") != want[0] {
		t.Errorf("email files %q, want %q", inline, want)
	}
	if !strings.Contains(html, `src="cid:out-0.png"`) || !strings.Contains(html, "big.png") {
		t.Errorf("email HTML does not show the attached image by cid, or lost the link to big.png:\n%.2000s", html)
	}

	// The allow-list held: the disallowed URL was never requested, by either notifier.
	if files.requested("/pbxt/secret.png") {
		t.Error("a file on a host that is not allowed was downloaded")
	}
	// Slack: the bot's message with the image uploaded into its thread; through the webhook,
	// links only.
	sm := slack.Messages()
	if len(sm) != 2 {
		t.Fatalf("slack got %d messages, want 2 (webhook and bot)", len(sm))
	}
	up, err := slack.WaitForFiles(1, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	var botTS string
	for _, d := range deliveries(t, db) {
		if d.Notifier == "slackbot" {
			botTS = d.Ref
		}
	}
	if len(up) != 1 || up[0].Name != "out-0.png" || !bytes.Equal(up[0].Data, png) || up[0].ThreadTS == "" || up[0].ThreadTS != botTS {
		t.Errorf("slack files %+v, want out-0.png in the thread of the bot's message %q", up, botTS)
	}
}

func names(as []discordtest.Attachment) []string {
	var out []string
	for _, a := range as {
		out = append(out, a.Name)
	}
	return out
}
