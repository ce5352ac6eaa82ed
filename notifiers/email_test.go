package notifiers

import (
	"bufio"
	"bytes"
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"html"
	"io"
	"net"
	"net/textproto"
	"net/url"
	"path"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/mlrelay/relay/notifiers/smtptest"
	"github.com/mlrelay/relay/relay"
)

const (
	testFrom = "Relay <relay@example.com>"
	testTo   = "alice@example.com"
	testCc   = "bob@example.com"
	testUser = "relay-user"
	testPass = "s3cr3t-p4ssw0rd"
)

// pngData stands in for an image: every byte value, so that any damage in transit shows.
var pngData = func() []byte {
	b := []byte("\x89PNG\r\n\x1a\n")
	for i := range 256 {
		b = append(b, byte(i))
	}
	return b
}()

var pdfData = []byte("%PDF-1.4\r\n\x00\x01\x02 binary \xff\xfe\n.\n..\r\n.\r\nend")

// newSMTPServer starts an smtptest server that the test closes.
func newSMTPServer(t *testing.T, opts ...smtptest.Option) *smtptest.Server {
	t.Helper()
	srv, err := smtptest.NewServer(opts...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(srv.Close)
	return srv
}

// emailOptions are options for srv: no TLS unless the server has a certificate, in which case
// STARTTLS with the server's CA.
func emailOptions(srv *smtptest.Server) EmailOptions {
	o := EmailOptions{
		Host: srv.Host(), Port: srv.Port(), TLS: EmailNoTLS,
		From: testFrom, To: []string{testTo}, Cc: []string{testCc},
		Timeout: 5 * time.Second,
	}
	if cfg := srv.TLSConfig(); cfg != nil {
		o.TLS, o.TLSConfig = EmailSTARTTLS, cfg
	}
	return o
}

func newEmail(t *testing.T, o EmailOptions) *Email {
	t.Helper()
	e, err := NewEmail(o)
	if err != nil {
		t.Fatal(err)
	}
	return e
}

// emailMessage is a message with an inline image, an image the HTML does not show and a PDF.
func emailMessage() relay.Message {
	return relay.Message{
		Rule:  "all-runs",
		Title: "Prediction succeeded: stability-ai/sdxl",
		Body:  `<p>stability-ai/sdxl <b>succeeded</b> &amp; made:</p><img src="cid:out-0.png" alt="output 1">`,
		Text:  "stability-ai/sdxl succeeded & made:\nhttps://replicate.delivery/out-0.png",
		Attachments: []relay.Attachment{
			{Name: "out-0.png", ContentType: "image/png", Data: pngData, URL: "https://replicate.delivery/out-0.png"},
			{Name: "out-1.png", ContentType: "image/png", Data: pngData[8:], URL: "https://replicate.delivery/out-1.png"},
			{Name: "report.pdf", ContentType: "application/pdf", Data: pdfData},
		},
	}
}

// receive waits for the server's n-th message and parses it.
func receive(t *testing.T, srv *smtptest.Server, n int) (smtptest.Message, *smtptest.Part) {
	t.Helper()
	msgs, err := srv.WaitFor(n, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	m := msgs[n-1]
	p, err := m.Parse()
	if err != nil {
		t.Fatalf("%v\n%s", err, m.Data)
	}
	return m, p
}

func TestNewEmail(t *testing.T) {
	base := func(mod func(*EmailOptions)) EmailOptions {
		o := EmailOptions{Host: "smtp.example.com", From: testFrom, To: []string{testTo}, Username: testUser, Password: testPass}
		if mod != nil {
			mod(&o)
		}
		return o
	}
	tests := []struct {
		name     string
		opts     EmailOptions
		wantErr  string // "" for success
		wantAddr string
		wantTLS  string
	}{
		{name: "defaults", opts: base(nil), wantAddr: "smtp.example.com:587", wantTLS: "starttls"},
		{name: "implicit TLS", opts: base(func(o *EmailOptions) { o.TLS = "TLS" }), wantAddr: "smtp.example.com:465", wantTLS: "tls"},
		{name: "none on localhost with auth", opts: base(func(o *EmailOptions) { o.Host, o.TLS = "localhost", "none" }), wantAddr: "localhost:25", wantTLS: "none"},
		{name: "none on ::1", opts: base(func(o *EmailOptions) { o.Host, o.TLS, o.Port = "[::1]", "none", 2525 }), wantAddr: "[::1]:2525", wantTLS: "none"},
		{name: "none without auth", opts: base(func(o *EmailOptions) { o.TLS, o.Username, o.Password = "none", "", "" }), wantAddr: "smtp.example.com:25", wantTLS: "none"},
		{name: "no host", opts: base(func(o *EmailOptions) { o.Host = " " }), wantErr: "host is required"},
		{name: "host with port", opts: base(func(o *EmailOptions) { o.Host = "smtp.example.com:587" }), wantErr: "set port instead"},
		{name: "host with space", opts: base(func(o *EmailOptions) { o.Host = "smtp example" }), wantErr: "not a host name"},
		{name: "bad tls", opts: base(func(o *EmailOptions) { o.TLS = "ssl" }), wantErr: `tls "ssl" is not one of`},
		{name: "bad port", opts: base(func(o *EmailOptions) { o.Port = 70000 }), wantErr: "port 70000"},
		{name: "username without password", opts: base(func(o *EmailOptions) { o.Password = "" }), wantErr: "if username is set, password must be set too"},
		{name: "password without username", opts: base(func(o *EmailOptions) { o.Username = "" }), wantErr: "if password is set, username must be set too"},
		{name: "password with NUL", opts: base(func(o *EmailOptions) { o.Password = testPass + "\x00" }), wantErr: "NUL"},
		{name: "username with newline", opts: base(func(o *EmailOptions) { o.Username = "a\r\nb" }), wantErr: "username contains control"},
		{name: "auth in clear over the network", opts: base(func(o *EmailOptions) { o.TLS = "none" }), wantErr: "would cross the network in clear"},
		{name: "no from", opts: base(func(o *EmailOptions) { o.From = "" }), wantErr: "from is required"},
		{name: "bad from", opts: base(func(o *EmailOptions) { o.From = "relay at example" }), wantErr: `from "relay at example" is not an email address`},
		{name: "no to", opts: base(func(o *EmailOptions) { o.To = nil }), wantErr: "to must list at least one address"},
		{name: "bad to", opts: base(func(o *EmailOptions) { o.To = []string{testTo, "bob@"} }), wantErr: `to[1] "bob@"`},
		{name: "injected to", opts: base(func(o *EmailOptions) { o.To = []string{"a@example.com\r\nBcc: evil@example.com"} }), wantErr: "to[0]"},
		{name: "bad cc", opts: base(func(o *EmailOptions) { o.Cc = []string{"<nope"} }), wantErr: `cc[0] "<nope"`},
		{name: "negative timeout", opts: base(func(o *EmailOptions) { o.Timeout = -time.Second }), wantErr: "negative"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e, err := NewEmail(tt.opts)
			if tt.wantErr != "" {
				if err == nil {
					t.Fatalf("no error, want %q", tt.wantErr)
				}
				if !strings.Contains(err.Error(), tt.wantErr) {
					t.Errorf("error %q, want it to contain %q", err, tt.wantErr)
				}
				if strings.Contains(err.Error(), "s3cr3t") {
					t.Errorf("error %q reveals the password", err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if e.addr != tt.wantAddr || e.tlsMode != tt.wantTLS {
				t.Errorf("addr, tls = %s, %s; want %s, %s", e.addr, e.tlsMode, tt.wantAddr, tt.wantTLS)
			}
			if e.timeout != emailDefaultTimeout {
				t.Errorf("timeout = %s, want the default", e.timeout)
			}
		})
	}
}

func TestNewEmailDeduplicatesRecipients(t *testing.T) {
	e := newEmail(t, EmailOptions{Host: "localhost", From: testFrom, To: []string{testTo, "Alice <ALICE@example.com>"}, Cc: []string{testTo, testCc}})
	if want := []string{testTo, testCc}; !slices.Equal(e.rcpts, want) {
		t.Errorf("rcpts = %q, want %q", e.rcpts, want)
	}
}

// TestEmailDelivers sends a message with attachments and checks every part of what arrives.
func TestEmailDelivers(t *testing.T) {
	srv := newSMTPServer(t)
	e := newEmail(t, emailOptions(srv))
	m := emailMessage()
	ref, err := e.Notify(context.Background(), m)
	if err != nil {
		t.Fatal(err)
	}
	got, root := receive(t, srv, 1)

	if got.From != "relay@example.com" || !slices.Equal(got.To, []string{testTo, testCc}) {
		t.Errorf("envelope = %s -> %q", got.From, got.To)
	}
	if !strings.HasPrefix(ref, "<relay.") || !strings.HasSuffix(ref, "@example.com>") {
		t.Errorf("ref = %q, want a Message-ID", ref)
	}
	for name, want := range map[string]string{
		"From":         `"Relay" <relay@example.com>`,
		"To":           "<" + testTo + ">",
		"Cc":           "<" + testCc + ">",
		"Subject":      m.Title,
		"Message-Id":   ref,
		"X-Relay-Rule": "all-runs",
		"Mime-Version": "1.0",
	} {
		if got := root.HeaderText(name); got != want {
			t.Errorf("%s: %q, want %q", name, got, want)
		}
	}
	if d, err := mail822Date(root.Header.Get("Date")); err != nil || time.Since(d) > time.Minute {
		t.Errorf("Date %q: %v", root.Header.Get("Date"), err)
	}
	if root.Header.Get("Bcc") != "" {
		t.Error("a Bcc header was sent")
	}

	wantStructure := `multipart/mixed
  multipart/related
    multipart/alternative
      text/plain; charset=UTF-8 (quoted-printable)
      text/html; charset=UTF-8 (quoted-printable)
    image/png; inline; cid=out-0.png; filename=out-0.png (base64)
  image/png; attachment; filename=out-1.png (base64)
  application/pdf; attachment; filename=report.pdf (base64)
`
	if s := root.Structure(); s != wantStructure {
		t.Errorf("structure:\n%s\nwant:\n%s", s, wantStructure)
	}
	leaves := root.Leaves()
	if len(leaves) != 5 {
		t.Fatalf("%d leaves", len(leaves))
	}
	if got := string(leaves[0].Body); got != strings.ReplaceAll(m.Text, "\n", "\r\n")+"\r\n" {
		t.Errorf("text body %q", got)
	}
	if got := string(leaves[1].Body); got != m.Body {
		t.Errorf("html body %q, want %q", got, m.Body)
	}
	for i, want := range [][]byte{pngData, pngData[8:], pdfData} {
		if !bytes.Equal(leaves[2+i].Body, want) {
			t.Errorf("attachment %d: %d bytes differ from the %d sent", i, len(leaves[2+i].Body), len(want))
		}
	}
}

func mail822Date(s string) (time.Time, error) {
	return time.Parse(time.RFC1123Z, s)
}

// TestEmailMinimalHTML checks the HTML part made when the message brings none.
func TestEmailMinimalHTML(t *testing.T) {
	srv := newSMTPServer(t)
	e := newEmail(t, emailOptions(srv))
	m := relay.Message{Title: "T", Text: "a <b> & \"c\"\nline two"}
	if _, err := e.Notify(context.Background(), m); err != nil {
		t.Fatal(err)
	}
	_, root := receive(t, srv, 1)
	h := root.Find("text/html")
	if h == nil {
		t.Fatalf("no html part:\n%s", root.Structure())
	}
	want := "<!DOCTYPE html>\r\n<html><body>\r\n<p>a &lt;b&gt; &amp; &#34;c&#34;<br>\r\nline two</p>\r\n</body></html>\r\n"
	if string(h.Body) != want {
		t.Errorf("html = %q, want %q", h.Body, want)
	}
	if s := root.Structure(); strings.Contains(s, "mixed") || strings.Contains(s, "related") {
		t.Errorf("a message without attachments is more than multipart/alternative:\n%s", s)
	}
}

// refusedPort is a loopback port that nothing listens on.
func refusedPort(t *testing.T) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := l.Addr().(*net.TCPAddr).Port
	l.Close()
	return port
}

func TestEmailClassification(t *testing.T) {
	tests := []struct {
		name     string
		reply    *smtptest.Reply
		n        int  // times the reply is given; default 1
		auth     bool // the server wants AUTH and the client gives a wrong password
		refused  bool
		want     string // ok, retryable, permanent
		contains string
	}{
		{name: "250 ok", want: "ok"},
		{name: "421 at DATA", reply: &smtptest.Reply{Code: 421, Enhanced: "4.3.2", Message: "service not available"},
			want: "retryable", contains: "email: 421 4.3.2 service not available (at end of DATA)"},
		{name: "450 at RCPT", reply: &smtptest.Reply{Code: 450, Enhanced: "4.2.1", Message: "mailbox busy", At: smtptest.AtRcpt}, n: 2,
			want: "retryable", contains: "email: 450 4.2.1 mailbox busy (at RCPT TO <alice@example.com>); all 2 recipients refused"},
		{name: "451 at DATA", reply: &smtptest.Reply{Code: 451, Enhanced: "4.3.0", Message: "try later"},
			want: "retryable", contains: "email: 451 4.3.0 try later"},
		{name: "451 at MAIL", reply: &smtptest.Reply{Code: 451, Enhanced: "4.3.0", Message: "try later", At: smtptest.AtMail},
			want: "retryable", contains: "451 4.3.0 try later (at MAIL FROM)"},
		{name: "452 at DATA", reply: &smtptest.Reply{Code: 452, Enhanced: "4.3.1", Message: "insufficient system storage"},
			want: "retryable", contains: "452 4.3.1 insufficient system storage"},
		{name: "535 at AUTH", auth: true,
			want: "permanent", contains: "email: 535 5.7.8 authentication failed (at AUTH)"},
		{name: "550 at RCPT", reply: &smtptest.Reply{Code: 550, Enhanced: "5.1.1", Message: "mailbox unavailable", At: smtptest.AtRcpt}, n: 2,
			want: "permanent", contains: "email: 550 5.1.1 mailbox unavailable (at RCPT TO <alice@example.com>)"},
		{name: "550 at DATA", reply: &smtptest.Reply{Code: 550, Enhanced: "5.7.1", Message: "message refused as spam"},
			want: "permanent", contains: "email: 550 5.7.1 message refused as spam"},
		{name: "553 at MAIL", reply: &smtptest.Reply{Code: 553, Enhanced: "5.1.8", Message: "sender address rejected", At: smtptest.AtMail},
			want: "permanent", contains: "553 5.1.8 sender address rejected"},
		{name: "554 at DATA", reply: &smtptest.Reply{Code: 554, Enhanced: "5.6.0", Message: "transaction failed"},
			want: "permanent", contains: "554 5.6.0 transaction failed"},
		{name: "5xx without enhanced code", reply: &smtptest.Reply{Code: 554, Message: "no"},
			want: "permanent", contains: "email: 554 5.0.0 no"},
		{name: "connection refused", refused: true, want: "retryable", contains: "connection refused"},
		{name: "timeout", reply: &smtptest.Reply{Delay: 10 * time.Second},
			want: "retryable", contains: "context deadline exceeded"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			var opts []smtptest.Option
			if tt.auth {
				opts = append(opts, smtptest.WithAuth(testUser, "right"))
			}
			srv := newSMTPServer(t, opts...)
			o := emailOptions(srv)
			o.Timeout = 2 * time.Second
			if tt.auth {
				o.Username, o.Password = testUser, testPass
			}
			if tt.refused {
				o.Port = refusedPort(t)
			}
			if tt.reply != nil {
				n := tt.n
				if n == 0 {
					n = 1
				}
				srv.FailNext(n, *tt.reply)
			}
			if tt.reply != nil && tt.reply.Delay > 0 {
				o.Timeout = 300 * time.Millisecond
			}
			e := newEmail(t, o)
			ref, err := e.Notify(context.Background(), plainMessage())
			if got := class(err); got != tt.want {
				t.Fatalf("class = %s, want %s (err: %v)", got, tt.want, err)
			}
			if err == nil {
				if ref == "" {
					t.Error("no ref")
				}
				if _, err := srv.WaitFor(1, time.Second); err != nil {
					t.Error(err)
				}
				return
			}
			if ref != "" {
				t.Errorf("ref = %q after a failure", ref)
			}
			if !strings.Contains(err.Error(), tt.contains) {
				t.Errorf("error %q does not contain %q", err, tt.contains)
			}
			if strings.Contains(err.Error(), testPass) {
				t.Errorf("error %q reveals the password", err)
			}
			var te *textproto.Error
			if tt.reply != nil && tt.reply.Code != 0 && (!errors.As(err, &te) || te.Code != tt.reply.Code) {
				t.Errorf("error does not unwrap to the reply %d: %#v", tt.reply.Code, te)
			}
			if n := len(srv.Messages()); n != 0 {
				t.Errorf("%d messages accepted", n)
			}
		})
	}
}

func TestEmailRecipients(t *testing.T) {
	no := smtptest.Reply{Code: 550, Enhanced: "5.1.1", Message: "no such user", At: smtptest.AtRcpt}
	later := smtptest.Reply{Code: 451, Enhanced: "4.3.0", Message: "try later", At: smtptest.AtRcpt}
	tests := []struct {
		name     string
		replies  []smtptest.Reply // for the recipients in order: alice, then bob
		want     string
		wantTo   []string
		contains string
	}{
		{name: "first refused, second accepted", replies: []smtptest.Reply{no}, want: "ok", wantTo: []string{testCc}},
		{name: "all refused for good", replies: []smtptest.Reply{no, no}, want: "permanent",
			contains: "email: 550 5.1.1 no such user (at RCPT TO <alice@example.com>); all 2 recipients refused"},
		{name: "all refused, one for now", replies: []smtptest.Reply{no, later}, want: "retryable",
			contains: "email: 451 4.3.0 try later (at RCPT TO <bob@example.com>); all 2 recipients refused"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			srv := newSMTPServer(t)
			for _, r := range tt.replies {
				srv.FailNext(1, r)
			}
			_, err := newEmail(t, emailOptions(srv)).Notify(context.Background(), plainMessage())
			if got := class(err); got != tt.want {
				t.Fatalf("class = %s, want %s (err: %v)", got, tt.want, err)
			}
			if err != nil {
				if !strings.Contains(err.Error(), tt.contains) {
					t.Errorf("error %q does not contain %q", err, tt.contains)
				}
				return
			}
			got, root := receive(t, srv, 1)
			if !slices.Equal(got.To, tt.wantTo) {
				t.Errorf("delivered to %q, want %q", got.To, tt.wantTo)
			}
			// The headers still name everyone the message was meant for.
			if root.Header.Get("To") != "<"+testTo+">" || root.Header.Get("Cc") != "<"+testCc+">" {
				t.Errorf("To %q, Cc %q", root.Header.Get("To"), root.Header.Get("Cc"))
			}
		})
	}
}

func TestEmailTLSAndAuth(t *testing.T) {
	tests := []struct {
		name     string
		server   []smtptest.Option
		mod      func(o *EmailOptions)
		want     string
		wantUser string
		wantTLS  bool
		contains string
	}{
		{name: "STARTTLS with AUTH PLAIN", server: []smtptest.Option{smtptest.WithSTARTTLS(), smtptest.WithAuth(testUser, testPass)},
			mod: func(o *EmailOptions) { o.Username, o.Password = testUser, testPass }, want: "ok", wantUser: testUser, wantTLS: true},
		{name: "STARTTLS with a wrong password", server: []smtptest.Option{smtptest.WithSTARTTLS(), smtptest.WithAuth(testUser, "other")},
			mod: func(o *EmailOptions) { o.Username, o.Password = testUser, testPass }, want: "permanent", contains: "535 5.7.8 authentication failed (at AUTH)"},
		{name: "STARTTLS without AUTH", server: []smtptest.Option{smtptest.WithSTARTTLS()}, want: "ok", wantTLS: true},
		{name: "STARTTLS with the system roots", server: []smtptest.Option{smtptest.WithSTARTTLS()},
			mod: func(o *EmailOptions) { o.TLSConfig = nil }, want: "permanent", contains: "certificate not trusted"},
		{name: "STARTTLS against a server without it", mod: func(o *EmailOptions) { o.TLS = EmailSTARTTLS },
			want: "permanent", contains: "does not offer STARTTLS"},
		{name: "no TLS against a plain server", want: "ok"},
		{name: "AUTH required but not given", server: []smtptest.Option{smtptest.WithAuth(testUser, testPass)},
			want: "permanent", contains: "530 5.7.0 authentication required (at MAIL FROM)"},
		{name: "AUTH given to a server without it", mod: func(o *EmailOptions) { o.Username, o.Password = testUser, testPass },
			want: "permanent", contains: "offers no AUTH"},
		{name: "implicit TLS", server: []smtptest.Option{smtptest.WithImplicitTLS(), smtptest.WithAuth(testUser, testPass)},
			mod: func(o *EmailOptions) { o.TLS, o.Username, o.Password = EmailTLS, testUser, testPass }, want: "ok", wantUser: testUser, wantTLS: true},
		{name: "implicit TLS against a plain server", mod: func(o *EmailOptions) { o.TLS, o.TLSConfig = EmailTLS, nil },
			want: "permanent", contains: "does not answer in TLS"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			srv := newSMTPServer(t, tt.server...)
			o := emailOptions(srv)
			if tt.mod != nil {
				tt.mod(&o)
			}
			_, err := newEmail(t, o).Notify(context.Background(), plainMessage())
			if got := class(err); got != tt.want {
				t.Fatalf("class = %s, want %s (err: %v)", got, tt.want, err)
			}
			if err != nil {
				if !strings.Contains(err.Error(), tt.contains) {
					t.Errorf("error %q does not contain %q", err, tt.contains)
				}
				if strings.Contains(err.Error(), testPass) {
					t.Errorf("error %q reveals the password", err)
				}
				return
			}
			got, _ := receive(t, srv, 1)
			if got.Auth != tt.wantUser || got.TLS != tt.wantTLS {
				t.Errorf("auth %q, tls %v; want %q, %v", got.Auth, got.TLS, tt.wantUser, tt.wantTLS)
			}
		})
	}
}

// TestEmailServerDownThenBack plays a server that goes away for a while.
func TestEmailServerDownThenBack(t *testing.T) {
	srv := newSMTPServer(t, smtptest.WithSTARTTLS())
	e := newEmail(t, emailOptions(srv))
	if _, err := e.Notify(context.Background(), plainMessage()); err != nil {
		t.Fatal(err)
	}
	srv.Stop()
	_, err := e.Notify(context.Background(), plainMessage())
	if class(err) != "retryable" || !strings.Contains(err.Error(), "connection refused") {
		t.Fatalf("while down: %v (%s)", err, class(err))
	}
	if err := srv.Start(); err != nil {
		t.Fatal(err)
	}
	if _, err := e.Notify(context.Background(), plainMessage()); err != nil {
		t.Fatalf("once back: %v", err)
	}
	if n := len(srv.Messages()); n != 2 {
		t.Errorf("%d messages, want 2", n)
	}
}

func TestEmailCallerCanceled(t *testing.T) {
	srv := newSMTPServer(t)
	srv.FailNext(1, smtptest.Reply{Delay: 10 * time.Second})
	e := newEmail(t, emailOptions(srv))
	ctx, cancel := context.WithCancel(context.Background())
	time.AfterFunc(100*time.Millisecond, cancel)
	start := time.Now()
	_, err := e.Notify(ctx, plainMessage())
	if class(err) != "retryable" || !errors.Is(err, context.Canceled) {
		t.Fatalf("err = %v (%s), want a retryable cancellation", err, class(err))
	}
	if d := time.Since(start); d > 3*time.Second {
		t.Errorf("took %s to give up", d)
	}
}

// TestEmailHostileInput checks that nothing from a message can add a header or a recipient.
func TestEmailHostileInput(t *testing.T) {
	srv := newSMTPServer(t)
	e := newEmail(t, emailOptions(srv))
	m := relay.Message{
		Rule:  "rule\r\nBcc: evil@example.com",
		Title: "x\r\nBcc: evil@example.com",
		Text:  "text\r\nBcc: evil@example.com",
		Body:  "<p>body</p>\r\nBcc: evil@example.com",
		Attachments: []relay.Attachment{
			{Name: "a\r\nBcc: evil@example.com\".png", ContentType: "image/png\r\nBcc: evil@example.com", Data: pngData},
			{Name: "../../etc/passwd", ContentType: "text/plain; charset=\"x\r\nBcc: evil@example.com\"", Data: []byte("x")},
			{Name: "", ContentType: "", Data: []byte("y")},
		},
	}
	if _, err := e.Notify(context.Background(), m); err != nil {
		t.Fatal(err)
	}
	got, root := receive(t, srv, 1)
	if !slices.Equal(got.To, []string{testTo, testCc}) {
		t.Errorf("recipients %q", got.To)
	}
	if subj := root.Subject(); subj != "x Bcc: evil@example.com" {
		t.Errorf("Subject = %q", subj)
	}
	if rule := root.Header.Get("X-Relay-Rule"); rule != "rule Bcc: evil@example.com" {
		t.Errorf("X-Relay-Rule = %q", rule)
	}
	root.Walk(func(p *smtptest.Part) {
		if _, ok := p.Header["Bcc"]; ok {
			t.Errorf("a part has a Bcc header: %v", p.Header)
		}
	})
	head, _, _ := strings.Cut(string(got.Data), "\r\n\r\n")
	for _, line := range strings.Split(head, "\r\n") {
		if strings.HasPrefix(strings.ToLower(line), "bcc:") {
			t.Errorf("line %q in the message", line)
		}
	}
	var names []string
	for _, p := range root.Leaves()[2:] {
		names = append(names, p.Filename+" "+p.ContentType)
	}
	want := []string{"a__Bcc__evil_example.com_.png image/png", "passwd application/octet-stream", "attachment-3 application/octet-stream"}
	if !slices.Equal(names, want) {
		t.Errorf("attachments %q, want %q", names, want)
	}
}

func TestEmailAttachmentLimits(t *testing.T) {
	big := relay.Attachment{Name: "big.bin", ContentType: "application/octet-stream", Data: make([]byte, emailMaxAttachBytes+1)}
	var many []relay.Attachment
	for i := range emailMaxAttachments + 2 {
		many = append(many, relay.Attachment{Name: fmt.Sprintf("f%d.txt", i), ContentType: "text/plain", Data: []byte{byte('a' + i)}})
	}
	dup := []relay.Attachment{
		{Name: "out.png", ContentType: "image/png", Data: pngData},
		{Name: "out.png", ContentType: "image/png", Data: pngData},
	}
	tests := []struct {
		name string
		atts []relay.Attachment
		want []string // file names of the attached parts
	}{
		{name: "too big in all", atts: []relay.Attachment{{Name: "small.txt", Data: []byte("s")}, big}, want: []string{"small.txt"}},
		{name: "too many", atts: many, want: []string{"f0.txt", "f1.txt", "f2.txt", "f3.txt", "f4.txt", "f5.txt", "f6.txt", "f7.txt", "f8.txt", "f9.txt"}},
		{name: "same name twice", atts: dup, want: []string{"out.png", "2-out.png"}},
		{name: "empty files", atts: []relay.Attachment{{Name: "empty.txt"}}, want: nil},
	}
	e := newEmail(t, EmailOptions{Host: "localhost", TLS: EmailNoTLS, From: testFrom, To: []string{testTo}})
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m := plainMessage()
			m.Attachments = tt.atts
			root := buildEmail(t, e, m)
			var names []string
			for _, p := range root.Leaves()[2:] {
				names = append(names, p.Filename)
			}
			if !slices.Equal(names, tt.want) {
				t.Errorf("attached %q, want %q", names, tt.want)
			}
		})
	}
}

// buildEmail builds m's MIME message without sending it, and parses it.
func buildEmail(t *testing.T, e *Email, m relay.Message) *smtptest.Part {
	t.Helper()
	msg, _, err := e.message(m, received)
	if err != nil {
		t.Fatal(err)
	}
	var buf bytes.Buffer
	if _, err := msg.WriteTo(&buf); err != nil {
		t.Fatal(err)
	}
	root, err := smtptest.ParseMessage(buf.Bytes())
	if err != nil {
		t.Fatalf("%v\n%s", err, buf.Bytes())
	}
	return root
}

func TestEmailConcurrent(t *testing.T) {
	srv := newSMTPServer(t, smtptest.WithSTARTTLS())
	e := newEmail(t, emailOptions(srv))
	const n = 8
	var wg sync.WaitGroup
	refs := make([]string, n)
	errs := make([]error, n)
	for i := range n {
		wg.Go(func() { refs[i], errs[i] = e.Notify(context.Background(), emailMessage()) })
	}
	wg.Wait()
	seen := map[string]bool{}
	for i := range n {
		if errs[i] != nil {
			t.Fatal(errs[i])
		}
		if seen[refs[i]] {
			t.Errorf("Message-ID %s twice", refs[i])
		}
		seen[refs[i]] = true
	}
	if _, err := srv.WaitFor(n, 5*time.Second); err != nil {
		t.Fatal(err)
	}
}

// goldenMessage is the message for a sample event: fixed texts, and the event's images as
// attachments, the first of them shown inline.
func goldenMessage(ev *relay.Event) relay.Message {
	m := relay.Message{
		Event: ev,
		Rule:  "all-runs",
		Title: "Prediction update: stability-ai/sdxl",
		Body:  "<!DOCTYPE html>\n<html><body>\n<p><b>stability-ai/sdxl</b> changed state &amp; <a href=\"https://replicate.com/p/x\">View it</a>.</p>\n",
		Text:  "Prediction update: stability-ai/sdxl changed state.\nhttps://replicate.com/p/x",
	}
	for i, u := range ev.Files() {
		p, _ := url.Parse(u)
		name := path.Base(p.Path)
		// Not mime.TypeByExtension, which reads the system's tables: the files must not depend
		// on the machine.
		ct := map[string]string{".png": "image/png", ".jpg": "image/jpeg", ".webp": "image/webp"}[path.Ext(name)]
		if ct == "" {
			ct = "application/octet-stream"
		}
		if i == 0 && relay.IsImageURL(u) {
			m.Body += fmt.Sprintf("<img src=\"cid:%s\" alt=\"output 1\">\n", name)
		}
		m.Attachments = append(m.Attachments, relay.Attachment{Name: name, ContentType: ct, Data: []byte("data of " + u), URL: u})
	}
	m.Body += "</body></html>\n"
	return m
}

// describeEmail renders a parsed message for a golden file: its headers but Date, Message-ID
// and the multipart boundaries, its structure, and its text bodies.
func describeEmail(root *smtptest.Part) string {
	var sb strings.Builder
	var keys []string
	for k := range root.Header {
		if k != "Date" && k != "Message-Id" && k != "Content-Type" {
			keys = append(keys, k)
		}
	}
	sort.Strings(keys)
	for _, k := range keys {
		for _, v := range root.Header[k] {
			fmt.Fprintf(&sb, "%s: %s\n", k, v)
		}
	}
	sb.WriteString("\n" + root.Structure())
	for _, p := range root.Leaves() {
		if strings.HasPrefix(p.ContentType, "text/") && p.Disposition == "" {
			fmt.Fprintf(&sb, "\n--- %s\n%s", p.ContentType, strings.ReplaceAll(string(p.Body), "\r\n", "\n"))
		} else {
			fmt.Fprintf(&sb, "\n--- %s %s: %d bytes, sha256 %x\n", p.ContentType, p.Filename, len(p.Body), sha256.Sum256(p.Body))
		}
	}
	return sb.String()
}

// TestEmailGolden pins the message built for each sample event. Run with -update to rewrite.
func TestEmailGolden(t *testing.T) {
	e := newEmail(t, EmailOptions{Host: "localhost", TLS: EmailNoTLS, From: testFrom, To: []string{testTo}, Cc: []string{testCc}})
	for name, ev := range sampleEvents(t) {
		t.Run(name, func(t *testing.T) {
			got := describeEmail(buildEmail(t, e, goldenMessage(ev)))
			file := filepath.Join("testdata", "email", name+".txt")
			checkGolden(t, file, []byte(got))
		})
	}
}

// TestEmailInlinesImagesShownByURL checks that an image the HTML shows from its output URL is
// shown from the attached copy instead, which outlives the URL, while links keep the URL.
func TestEmailInlinesImagesShownByURL(t *testing.T) {
	e := newEmail(t, EmailOptions{Host: "localhost", TLS: EmailNoTLS, From: testFrom, To: []string{testTo}})
	const (
		u0 = "https://replicate.delivery/pbxt/abc/out-0.png"
		u1 = "https://replicate.delivery/pbxt/abc/out-1.png?sig=a&exp=1" // as html/template prints it: &amp;
		u2 = "https://replicate.delivery/pbxt/abc/weights.tar"
	)
	m := relay.Message{
		Title: "Prediction succeeded",
		Body: `<a href="` + u0 + `"><img src="` + u0 + `" alt="out-0.png"></a>` +
			`<img src="` + html.EscapeString(u1) + `" alt="out-1.png">` +
			`<img src="https://replicate.delivery/pbxt/abc/not-attached.png">` +
			`<a href="` + u2 + `">weights</a>`,
		Text: "Prediction succeeded",
		Attachments: []relay.Attachment{
			{Name: "out-0.png", ContentType: "image/png", Data: pngData, URL: u0},
			{Name: "out-1.png", ContentType: "image/png", Data: pngData[8:], URL: u1},
			{Name: "weights.tar", ContentType: "application/x-tar", Data: pdfData, URL: u2},
		},
	}
	root := buildEmail(t, e, m)
	want := `multipart/mixed
  multipart/related
    multipart/alternative
      text/plain; charset=UTF-8 (quoted-printable)
      text/html; charset=UTF-8 (quoted-printable)
    image/png; inline; cid=out-0.png; filename=out-0.png (base64)
    image/png; inline; cid=out-1.png; filename=out-1.png (base64)
  application/x-tar; attachment; filename=weights.tar (base64)
`
	if s := root.Structure(); s != want {
		t.Errorf("structure:\n%s\nwant:\n%s", s, want)
	}
	body := string(root.Leaves()[1].Body)
	for _, want := range []string{
		`<a href="` + u0 + `"><img src="cid:out-0.png" alt="out-0.png"></a>`,
		`<img src="cid:out-1.png" alt="out-1.png">`,
		`<img src="https://replicate.delivery/pbxt/abc/not-attached.png">`,
		`<a href="` + u2 + `">weights</a>`,
	} {
		if !strings.Contains(body, want) {
			t.Errorf("HTML body lacks %s:\n%s", want, body)
		}
	}
}

// TestEmailEnvelopeInAngleBrackets talks to a strict SMTP server, which refuses MAIL FROM and
// RCPT TO without the angle brackets RFC 5321 requires, as Gmail does (555 5.5.2), and checks
// the commands as they were written on the wire.
func TestEmailEnvelopeInAngleBrackets(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	commands := make(chan []string, 1)
	go func() {
		conn, err := ln.Accept()
		if err != nil {
			return
		}
		defer conn.Close()
		_ = conn.SetDeadline(time.Now().Add(10 * time.Second))
		var seen []string
		defer func() { commands <- seen }()
		r := bufio.NewReader(conn)
		reply := func(s string) { _, _ = io.WriteString(conn, s+"\r\n") }
		reply("220 strict.example ESMTP")
		for {
			line, err := r.ReadString('\n')
			if err != nil {
				return
			}
			line = strings.TrimRight(line, "\r\n")
			seen = append(seen, line)
			verb := strings.ToUpper(line)
			switch {
			case strings.HasPrefix(verb, "EHLO"), strings.HasPrefix(verb, "HELO"):
				reply("250-strict.example\r\n250 8BITMIME")
			case strings.HasPrefix(verb, "MAIL FROM:"), strings.HasPrefix(verb, "RCPT TO:"):
				_, arg, _ := strings.Cut(line, ":")
				if !strings.HasPrefix(arg, "<") {
					reply("555 5.5.2 Syntax error")
					continue
				}
				reply("250 2.1.0 OK")
			case verb == "DATA":
				reply("354 Go ahead")
				for {
					l, err := r.ReadString('\n')
					if err != nil {
						return
					}
					if l == ".\r\n" {
						break
					}
				}
				reply("250 2.0.0 Queued")
			case verb == "QUIT":
				reply("221 2.0.0 Bye")
				return
			default:
				reply("250 OK")
			}
		}
	}()
	port := ln.Addr().(*net.TCPAddr).Port
	e := newEmail(t, EmailOptions{Host: "127.0.0.1", Port: port, TLS: EmailNoTLS, From: "Relay <relay@example.com>",
		To: []string{"alice@example.com"}, Cc: []string{"Bob <bob@example.com>"}})
	if _, err := e.Notify(context.Background(), emailMessage()); err != nil {
		t.Fatalf("Notify: %v", err)
	}
	seen := <-commands
	var envelope []string
	for _, c := range seen {
		if strings.HasPrefix(c, "MAIL") || strings.HasPrefix(c, "RCPT") {
			envelope = append(envelope, c)
		}
	}
	want := []string{"MAIL FROM:<relay@example.com>", "RCPT TO:<alice@example.com>", "RCPT TO:<bob@example.com>"}
	if len(envelope) != len(want) {
		t.Fatalf("envelope commands %q, want %q", envelope, want)
	}
	for i := range want {
		if !strings.HasPrefix(envelope[i], want[i]) {
			t.Errorf("command %d is %q, want %q", i, envelope[i], want[i])
		}
	}
}
