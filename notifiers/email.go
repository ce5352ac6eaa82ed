package notifiers

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/tls"
	"encoding/base32"
	"encoding/base64"
	"errors"
	"fmt"
	"html"
	"mime"
	"net"
	netmail "net/mail"
	"net/textproto"
	"os"
	"path"
	"slices"
	"strconv"
	"strings"
	"time"

	mail "github.com/wneessen/go-mail"
	gosmtp "github.com/wneessen/go-mail/smtp"

	"github.com/mlrelay/relay/relay"
)

// Email limits and defaults.
const (
	emailDefaultTimeout = 30 * time.Second
	emailMaxSubject     = 200 // runes; RFC 5322 allows any length, mail clients show far less
	emailMaxAttachments = 10  // our bound: files per message
	// emailMaxAttachBytes bounds the attached files' total size. Base64 makes it about 20 MiB
	// on the wire, under the 25 MB that common providers accept for a whole message.
	emailMaxAttachBytes = 15 << 20
	emailMaxName        = 100 // bytes of an attachment's file name
)

// The TLS policies of EmailOptions.TLS.
const (
	EmailSTARTTLS = "starttls"
	EmailTLS      = "tls"
	EmailNoTLS    = "none"
)

// EmailOptions configures an email notifier.
type EmailOptions struct {
	// Host is the SMTP server's name or IP address, without the port.
	Host string
	// Port is the SMTP server's port. Default: 587 with "starttls", 465 with "tls", 25 with
	// "none".
	Port int
	// TLS is how the connection is encrypted: "starttls" (default) upgrades a plain connection
	// and fails when the server does not offer STARTTLS; "tls" speaks TLS from the start (port
	// 465); "none" sends in clear text, for a relay on the same machine or network.
	TLS string
	// Username and Password authenticate with AUTH PLAIN (or LOGIN when the server offers only
	// that). Default: no authentication. The password is a secret. With TLS "none" they are
	// accepted only for a loopback host, since they would otherwise cross the network in clear.
	Username, Password string
	// From is the sender, e.g. "Relay <relay@example.com>".
	From string
	// To lists the recipients; at least one is required.
	To []string
	// Cc lists recipients who get a copy. Default: none.
	Cc []string
	// Timeout bounds one send, from connecting to the server's answer to the message. Default
	// 30s.
	Timeout time.Duration
	// TLSConfig is the TLS configuration, e.g. with the RootCAs of a test server's self-signed
	// certificate. Default: the system's roots, TLS 1.2 or later, ServerName = Host.
	TLSConfig *tls.Config
}

// Email sends messages by SMTP, one connection per message. It is safe for concurrent use.
//
// It uses go-mail to build the MIME message and go-mail's smtp package for the session rather
// than go-mail's Client, whose Send abandons a message as soon as one recipient is refused and
// whose missing-STARTTLS failure cannot be told apart from others but by its text.
type Email struct {
	host      string
	addr      string // host:port
	tlsMode   string
	username  string
	password  string
	from      *netmail.Address
	to, cc    []*netmail.Address
	rcpts     []string // envelope recipients: To then Cc, without duplicates
	timeout   time.Duration
	tlsConfig *tls.Config
	helo      string // the name given in EHLO
	idDomain  string // the right-hand side of Message-IDs
	redact    redactor
}

var _ relay.Notifier = (*Email)(nil)

// NewEmail validates o, fills in its defaults and returns the notifier. Its errors never contain
// the password.
func NewEmail(o EmailOptions) (*Email, error) {
	e := &Email{
		host:     strings.TrimSuffix(strings.TrimPrefix(strings.TrimSpace(o.Host), "["), "]"),
		tlsMode:  strings.ToLower(strings.TrimSpace(o.TLS)),
		username: o.Username,
		password: o.Password,
		timeout:  o.Timeout,
	}
	switch {
	case e.host == "":
		return nil, errors.New("email: host is required")
	case strings.ContainsFunc(e.host, func(r rune) bool { return r <= ' ' || r == 0x7f || r == '/' || r == '@' }):
		return nil, fmt.Errorf("email: host %q is not a host name or IP address", e.host)
	case strings.Count(e.host, ":") == 1:
		return nil, fmt.Errorf("email: host %q includes a port: set port instead", e.host)
	}
	if e.tlsMode == "" {
		e.tlsMode = EmailSTARTTLS
	}
	port := o.Port
	switch e.tlsMode {
	case EmailSTARTTLS:
		port = cmpOr(port, 587)
	case EmailTLS:
		port = cmpOr(port, 465)
	case EmailNoTLS:
		port = cmpOr(port, 25)
	default:
		return nil, fmt.Errorf("email: tls %q is not one of %q, %q, %q", o.TLS, EmailSTARTTLS, EmailTLS, EmailNoTLS)
	}
	if port < 1 || port > 65535 {
		return nil, fmt.Errorf("email: port %d is not between 1 and 65535", port)
	}
	e.addr = net.JoinHostPort(e.host, strconv.Itoa(port))

	switch {
	case e.username != "" && e.password == "":
		return nil, errors.New("email: if username is set, password must be set too")
	case e.username == "" && e.password != "":
		return nil, errors.New("email: if password is set, username must be set too")
	case strings.ContainsFunc(e.username, func(r rune) bool { return r < ' ' || r == 0x7f }):
		return nil, errors.New("email: username contains control characters")
	case strings.ContainsRune(e.password, 0):
		// SASL PLAIN separates the fields with NUL bytes.
		return nil, errors.New("email: password contains a NUL byte")
	case e.username != "" && e.tlsMode == EmailNoTLS && !isLoopback(e.host):
		return nil, fmt.Errorf("email: with tls %q, username and password would cross the network in clear: use %q or %q, or a relay on localhost", EmailNoTLS, EmailSTARTTLS, EmailTLS)
	}

	var err error
	if strings.TrimSpace(o.From) == "" {
		return nil, errors.New("email: from is required")
	}
	if e.from, err = parseAddress("from", o.From); err != nil {
		return nil, err
	}
	if len(o.To) == 0 {
		return nil, errors.New("email: to must list at least one address")
	}
	seen := map[string]bool{}
	for _, list := range []struct {
		key string
		in  []string
		out *[]*netmail.Address
	}{{key: "to", in: o.To, out: &e.to}, {key: "cc", in: o.Cc, out: &e.cc}} {
		for i, s := range list.in {
			a, err := parseAddress(fmt.Sprintf("%s[%d]", list.key, i), s)
			if err != nil {
				return nil, err
			}
			*list.out = append(*list.out, a)
			if k := strings.ToLower(a.Address); !seen[k] {
				seen[k] = true
				e.rcpts = append(e.rcpts, a.Address)
			}
		}
	}

	if e.timeout < 0 {
		return nil, fmt.Errorf("email: timeout %s is negative", e.timeout)
	}
	if e.timeout == 0 {
		e.timeout = emailDefaultTimeout
	}
	if o.TLSConfig != nil {
		e.tlsConfig = o.TLSConfig.Clone()
	} else {
		e.tlsConfig = &tls.Config{}
	}
	if e.tlsConfig.ServerName == "" {
		e.tlsConfig.ServerName = e.host
	}
	if e.tlsConfig.MinVersion == 0 {
		e.tlsConfig.MinVersion = tls.VersionTLS12
	}

	e.helo = "localhost"
	if h, err := os.Hostname(); err == nil && h != "" && !strings.ContainsFunc(h, func(r rune) bool { return r <= ' ' || r >= 0x7f }) {
		e.helo = h
	}
	e.idDomain = e.from.Address[strings.LastIndexByte(e.from.Address, '@')+1:]

	secrets := []string{e.password}
	if e.password != "" {
		// The forms the password takes on the wire, in case a server echoes them.
		secrets = append(secrets,
			base64.StdEncoding.EncodeToString([]byte("\x00"+e.username+"\x00"+e.password)),
			base64.StdEncoding.EncodeToString([]byte(e.password)))
	}
	e.redact = newRedactor(secrets...)
	return e, nil
}

// cmpOr returns v, or def when v is 0.
func cmpOr(v, def int) int {
	if v == 0 {
		return def
	}
	return v
}

// parseAddress parses one address, naming the key in its error.
func parseAddress(key, s string) (*netmail.Address, error) {
	a, err := netmail.ParseAddress(strings.TrimSpace(s))
	if err != nil {
		return nil, fmt.Errorf("email: %s %q is not an email address: %w", key, s, err)
	}
	if strings.ContainsFunc(a.Address, func(r rune) bool { return r < ' ' || r == 0x7f }) {
		return nil, fmt.Errorf("email: %s %q contains control characters", key, s)
	}
	return a, nil
}

// isLoopback reports whether host is localhost or a loopback IP address.
func isLoopback(host string) bool {
	if strings.EqualFold(host, "localhost") {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

// Notify sends m as one message and returns its Message-ID, angle brackets included, which a
// later message can name in In-Reply-To or References.
//
// A server's 4xx replies and failures to connect or to get an answer in time are retryable; its
// 5xx replies, a missing STARTTLS and an untrusted certificate are permanent. When the server
// refuses some recipients but accepts others, the message goes to those it accepted and counts
// as sent: the Notifier interface has no way to report a partial delivery, and sending it again
// would give the others a second copy. When it refuses them all, the failure is retryable if any
// refusal was temporary (4xx), and permanent otherwise.
func (e *Email) Notify(ctx context.Context, m relay.Message) (string, error) {
	msg, id, err := e.message(m, time.Now())
	if err != nil {
		return "", relay.Permanent(fmt.Errorf("email: building the message: %w", err))
	}
	ctx, cancel := context.WithTimeout(ctx, e.timeout)
	defer cancel()
	if err := e.send(ctx, msg); err != nil {
		return "", err
	}
	return id, nil
}

// message builds the MIME message for m, sent at now, and returns it with its Message-ID.
func (e *Email) message(m relay.Message, now time.Time) (*mail.Msg, string, error) {
	msg := mail.NewMsg(mail.WithCharset(mail.CharsetUTF8), mail.WithEncoding(mail.EncodingQP))
	msg.FromMailAddress(e.from)
	msg.ToMailAddress(e.to...)
	if len(e.cc) > 0 {
		msg.CcMailAddress(e.cc...)
	}
	msg.Subject(emailSubject(m))
	id, err := e.messageID()
	if err != nil {
		return nil, "", err
	}
	msg.SetMessageIDWithValue(id)
	msg.SetDateWithValue(now)
	msg.SetUserAgent("relay")
	if rule := truncateRunes(oneLine(stripControl(m.Rule)), emailMaxSubject); rule != "" {
		msg.SetGenHeader(mail.Header("X-Relay-Rule"), rule)
	}
	text := strings.TrimSpace(stripControl(m.Text))
	if text == "" {
		text = emailSubject(m)
	}
	body := stripControl(m.Body)
	if strings.TrimSpace(body) == "" {
		body = minimalHTML(text)
	}
	files := emailFiles(m.Attachments)
	body = inlineImages(body, files)
	msg.SetBodyString(mail.TypeTextPlain, text+"\n")
	msg.AddAlternativeString(mail.TypeTextHTML, body)
	addAttachments(msg, body, files)
	return msg, "<" + id + ">", nil
}

// emailSubject is the title on one line, without control characters: a line break in it could
// otherwise start a header of its own.
func emailSubject(m relay.Message) string {
	s := truncateRunes(oneLine(stripControl(m.Title)), emailMaxSubject)
	if s == "" {
		s = "relay notification"
	}
	return s
}

// messageID makes a new Message-ID, without its angle brackets.
func (e *Email) messageID() (string, error) {
	var b [15]byte
	if _, err := rand.Read(b[:]); err != nil {
		return "", err
	}
	return "relay." + strings.ToLower(base32.StdEncoding.EncodeToString(b[:])) + "@" + e.idDomain, nil
}

// minimalHTML is an HTML body for a message that brought none: the text, escaped, with its line
// breaks kept.
func minimalHTML(text string) string {
	var sb strings.Builder
	sb.WriteString("<!DOCTYPE html>\n<html><body>\n<p>")
	sb.WriteString(strings.ReplaceAll(html.EscapeString(text), "\n", "<br>\n"))
	sb.WriteString("</p>\n</body></html>\n")
	return sb.String()
}

// emailFile is an attachment as it goes into the message: named safely and uniquely.
type emailFile struct {
	name, contentType, url string
	data                   []byte
}

// emailFiles picks the attachments to send and names them. Files past emailMaxAttachments or
// beyond emailMaxAttachBytes in all are left out; the body still has their links.
func emailFiles(atts []relay.Attachment) []emailFile {
	var files []emailFile
	used := map[string]bool{}
	total := 0
	for i, a := range atts {
		if len(a.Data) == 0 || len(files) == emailMaxAttachments || total+len(a.Data) > emailMaxAttachBytes {
			continue
		}
		total += len(a.Data)
		name := attachmentName(a.Name, i, used)
		files = append(files, emailFile{name: name, contentType: attachmentType(a.ContentType, name), url: a.URL, data: a.Data})
	}
	return files
}

// inlineImages points the HTML's images (<img src="URL">) at their attached copies
// (src="cid:NAME"), so that a picture still shows after Replicate deletes the file and its
// link dies. Links (<a href="URL">) keep the URL. A URL is matched as html/template prints it.
func inlineImages(body string, files []emailFile) string {
	for _, f := range files {
		if f.url == "" || !strings.HasPrefix(f.contentType, "image/") {
			continue
		}
		for _, u := range []string{f.url, html.EscapeString(f.url)} {
			body = strings.ReplaceAll(body, `src="`+u+`"`, `src="cid:`+f.name+`"`)
		}
	}
	return body
}

// addAttachments adds the files: an image that the HTML refers to as cid:NAME (see
// inlineImages, or a template's {{cid}}) is embedded inline with that Content-ID, everything
// else is attached.
func addAttachments(msg *mail.Msg, htmlBody string, files []emailFile) {
	for _, f := range files {
		opts := []mail.FileOption{mail.WithFileContentType(mail.ContentType(f.contentType))}
		if strings.HasPrefix(f.contentType, "image/") && strings.Contains(htmlBody, `"cid:`+f.name+`"`) {
			opts = append(opts, mail.WithFileContentID("<"+f.name+">"))
			msg.EmbedReadSeeker(f.name, bytes.NewReader(f.data), opts...)
			continue
		}
		msg.AttachReadSeeker(f.name, bytes.NewReader(f.data), opts...)
	}
}

// attachmentName makes a file name safe for a MIME header and for a Content-ID: letters, digits
// and ._+- only, unique in the message.
func attachmentName(name string, i int, used map[string]bool) string {
	name = path.Base(strings.ReplaceAll(name, "\\", "/"))
	var sb strings.Builder
	for _, r := range name {
		if sb.Len() == emailMaxName {
			break
		}
		switch {
		case r >= 'a' && r <= 'z', r >= 'A' && r <= 'Z', r >= '0' && r <= '9', r == '.', r == '_', r == '+', r == '-':
			sb.WriteRune(r)
		default:
			sb.WriteByte('_')
		}
	}
	name = strings.TrimLeft(sb.String(), ".")
	if name == "" {
		name = fmt.Sprintf("attachment-%d", i+1)
	}
	for n := 2; used[name]; n++ {
		name = fmt.Sprintf("%d-%s", n, strings.TrimLeft(name, "0123456789-"))
	}
	used[name] = true
	return name
}

// attachmentType is a bare media type for a file: the one given when it parses, else the one its
// extension implies, else application/octet-stream. Parameters are dropped, so that nothing
// from the input reaches the header but a checked type/subtype.
func attachmentType(given, name string) string {
	for _, ct := range []string{given, mime.TypeByExtension(path.Ext(name))} {
		mt, _, err := mime.ParseMediaType(ct)
		if err == nil && strings.Count(mt, "/") == 1 && !strings.HasPrefix(mt, "multipart/") {
			return mt
		}
	}
	return "application/octet-stream"
}

// send runs one SMTP session that delivers msg.
func (e *Email) send(ctx context.Context, msg *mail.Msg) error {
	conn, err := e.dial(ctx)
	if err != nil {
		return e.sessionError(ctx, "connect", err)
	}
	// Every read and write ends by ctx's deadline, and a cancelled ctx cuts the connection.
	if dl, ok := ctx.Deadline(); ok {
		_ = conn.SetDeadline(dl)
	}
	stop := context.AfterFunc(ctx, func() { conn.Close() })
	defer stop()

	c, err := gosmtp.NewClient(conn, e.host)
	if err != nil {
		conn.Close()
		return e.sessionError(ctx, "greeting", err)
	}
	defer c.Close()
	if err := c.Hello(e.helo); err != nil {
		return e.sessionError(ctx, "EHLO", err)
	}
	if e.tlsMode == EmailSTARTTLS {
		if ok, _ := c.Extension("STARTTLS"); !ok {
			return relay.Permanent(fmt.Errorf("email: %s does not offer STARTTLS, which tls %q requires (use %q for port 465, or %q for a relay that speaks no TLS)",
				e.addr, EmailSTARTTLS, EmailTLS, EmailNoTLS))
		}
		if err := c.StartTLS(e.tlsConfig); err != nil {
			return e.sessionError(ctx, "STARTTLS", err)
		}
	}
	if e.username != "" {
		if err := e.auth(ctx, c); err != nil {
			return err
		}
	}
	if err := c.Mail(envelopeAddress(e.from.Address)); err != nil {
		return e.sessionError(ctx, "MAIL FROM", err)
	}
	if err := e.recipients(ctx, c); err != nil {
		return err
	}
	w, err := c.Data()
	if err != nil {
		return e.sessionError(ctx, "DATA", err)
	}
	if _, err := msg.WriteTo(w); err != nil {
		return e.sessionError(ctx, "DATA", err)
	}
	if err := w.Close(); err != nil {
		return e.sessionError(ctx, "end of DATA", err)
	}
	// The message is the server's now; a failed QUIT changes nothing.
	_ = c.Quit()
	return nil
}

// envelopeAddress is an address as MAIL FROM and RCPT TO carry it, in angle brackets (RFC 5321:
// "MAIL FROM:<relay@example.com>"). go-mail's smtp client writes what it is given as it is, and
// strict servers (Gmail among them) refuse a bare address with 555.
func envelopeAddress(addr string) string {
	return (&netmail.Address{Address: addr}).String()
}

// dial connects to the server, in TLS from the start with tls "tls".
func (e *Email) dial(ctx context.Context) (net.Conn, error) {
	d := &net.Dialer{}
	if e.tlsMode == EmailTLS {
		td := &tls.Dialer{NetDialer: d, Config: e.tlsConfig}
		return td.DialContext(ctx, "tcp", e.addr)
	}
	return d.DialContext(ctx, "tcp", e.addr)
}

// auth authenticates with PLAIN, or LOGIN when the server offers only that.
func (e *Email) auth(ctx context.Context, c *gosmtp.Client) error {
	ok, mechs := c.Extension("AUTH")
	if !ok {
		return relay.Permanent(fmt.Errorf("email: %s offers no AUTH, but a username is set", e.addr))
	}
	offered := strings.Fields(strings.ToUpper(mechs))
	// NewEmail refuses credentials in clear text but for a loopback host, hence allowUnenc.
	var a gosmtp.Auth
	switch {
	case slices.Contains(offered, "PLAIN"):
		a = gosmtp.PlainAuth("", e.username, e.password, e.host, true)
	case slices.Contains(offered, "LOGIN"):
		a = gosmtp.LoginAuth(e.username, e.password, e.host, true)
	default:
		return relay.Permanent(fmt.Errorf("email: %s offers AUTH %s, and relay speaks only PLAIN and LOGIN",
			e.addr, cleanLine(mechs, 64)))
	}
	if err := c.Auth(a); err != nil {
		return e.sessionError(ctx, "AUTH", err)
	}
	return nil
}

// recipients sends RCPT TO for every recipient. It fails only when none was accepted: see
// Notify.
func (e *Email) recipients(ctx context.Context, c *gosmtp.Client) error {
	var first, firstTemp error
	rejected := 0
	for _, r := range e.rcpts {
		err := c.Rcpt(envelopeAddress(r))
		if err == nil {
			continue
		}
		var te *textproto.Error
		if !errors.As(err, &te) {
			// No reply: the connection is gone.
			return e.sessionError(ctx, "RCPT TO", err)
		}
		rejected++
		at := "RCPT TO <" + r + ">"
		if te.Code/100 == 4 && firstTemp == nil {
			firstTemp = e.replyError(te, at)
		}
		if first == nil {
			first = e.replyError(te, at)
		}
	}
	if rejected < len(e.rcpts) {
		return nil
	}
	err := first
	if firstTemp != nil {
		err = firstTemp
	}
	if len(e.rcpts) > 1 {
		err = fmt.Errorf("%w; all %d recipients refused", err, len(e.rcpts))
	}
	if firstTemp != nil {
		return relay.Retryable(err, 0)
	}
	return relay.Permanent(err)
}

// replyError is the error for a server's reply at a stage of the session.
func (e *Email) replyError(te *textproto.Error, at string) error {
	clean := &textproto.Error{Code: te.Code, Msg: cleanLine(e.redact.text(te.Msg), maxErrorBody)}
	return &smtpReplyError{reply: clean, at: at}
}

// smtpReplyError is a server's refusal, "email: 550 5.1.1 mailbox unavailable (at RCPT TO
// <bob@example.com>)". It unwraps to the *textproto.Error with the reply's code and text.
type smtpReplyError struct {
	reply *textproto.Error
	at    string
}

func (e *smtpReplyError) Error() string {
	return fmt.Sprintf("email: %03d %s (at %s)", e.reply.Code, e.reply.Msg, e.at)
}

func (e *smtpReplyError) Unwrap() error { return e.reply }

// sessionError classifies a failure at stage (connect, EHLO, STARTTLS, AUTH, ...). A reply
// from the server is permanent when it is a 5xx and retryable otherwise (4xx, or a code that
// makes no sense there). A connection that failed, closed or timed out is retryable, and so is
// a cancellation. An untrusted certificate or a TLS handshake with something that does not
// speak TLS is permanent: a person has to fix the configuration.
func (e *Email) sessionError(ctx context.Context, stage string, err error) error {
	var te *textproto.Error
	if errors.As(err, &te) {
		rerr := e.replyError(te, stage)
		if te.Code/100 == 5 {
			return relay.Permanent(rerr)
		}
		return relay.Retryable(rerr, 0)
	}
	ctxErr := ctx.Err()
	if dl, ok := ctx.Deadline(); ok && ctxErr == nil && !time.Now().Before(dl) {
		// The connection's deadline, which is ctx's, may fire before ctx's own timer does.
		ctxErr = context.DeadlineExceeded
	}
	if ctxErr != nil {
		// The connection was cut because time ran out or the caller gave up; say which.
		return relay.Retryable(fmt.Errorf("email: %s %s: %w", stage, e.addr, ctxErr), 0)
	}
	err = e.redact.error(err)
	var certErr *tls.CertificateVerificationError
	var recordErr tls.RecordHeaderError
	switch {
	case errors.As(err, &certErr):
		return relay.Permanent(fmt.Errorf("email: %s %s: certificate not trusted: %w", stage, e.addr, err))
	case errors.As(err, &recordErr):
		return relay.Permanent(fmt.Errorf("email: %s %s: the server does not answer in TLS (is tls %q right for this port?): %w",
			stage, e.addr, e.tlsMode, err))
	}
	return relay.Retryable(fmt.Errorf("email: %s %s: %w", stage, e.addr, err), 0)
}
