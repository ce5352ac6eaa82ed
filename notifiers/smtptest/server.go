// Package smtptest runs a real SMTP server (github.com/emersion/go-smtp) on a loopback port for
// tests and benchmarks: it records the messages it accepts, can require AUTH PLAIN, can offer
// STARTTLS or speak implicit TLS with a self-signed certificate, can fail the next commands with
// scripted replies, and can be stopped and started again on the same port to play a server that
// is down for a while.
package smtptest

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"errors"
	"fmt"
	"io"
	"log"
	"math/big"
	"net"
	"strconv"
	"sync"
	"time"

	"github.com/emersion/go-sasl"
	"github.com/emersion/go-smtp"

	"github.com/mlrelay/relay/notifiers/internal/inbox"
)

// Domain is the name the server gives itself in its greeting.
const Domain = "smtptest.local"

// Stage is the SMTP command at which a scripted reply is given.
type Stage string

// The stages a Reply can be given at.
const (
	AtMail Stage = "MAIL"
	AtRcpt Stage = "RCPT"
	AtData Stage = "DATA" // the reply to the end of the message data
)

// Reply is a scripted answer to one command, such as 451 4.3.0 "try later" or 550 5.1.1 "no such
// user".
type Reply struct {
	Code     int    // e.g. 451; 0 with a Delay: wait, then go on as usual
	Enhanced string // e.g. "4.3.0"; "" for the class default (X.0.0)
	Message  string // e.g. "try later"
	// At is the command answered. Default AtData.
	At Stage
	// Delay is how long the server waits before it answers, to make a client time out. Stop
	// and Close cut it short.
	Delay time.Duration
}

// Message is one message the server accepted.
type Message struct {
	From string   // the envelope sender (MAIL FROM)
	To   []string // the envelope recipients that were accepted (RCPT TO)
	Data []byte   // the message as received, headers and body, dot-unstuffed, with CRLF line ends
	Auth string   // the username the client authenticated as, or ""
	TLS  bool     // whether the session was encrypted
}

// Parse parses the message's MIME structure; see ParseMessage.
func (m Message) Parse() (*Part, error) { return ParseMessage(m.Data) }

// Option configures a Server.
type Option func(*Server)

// WithAuth requires AUTH PLAIN with this username and password before MAIL. Without TLS the
// server still offers AUTH, as a relay on localhost may.
func WithAuth(username, password string) Option {
	return func(s *Server) { s.username, s.password, s.auth = username, password, true }
}

// WithSTARTTLS offers STARTTLS with a self-signed certificate for 127.0.0.1 and localhost;
// clients trust it through TLSConfig.
func WithSTARTTLS() Option { return func(s *Server) { s.starttls = true } }

// WithImplicitTLS makes the server speak TLS from the first byte, as on port 465, with the same
// certificate as WithSTARTTLS.
func WithImplicitTLS() Option { return func(s *Server) { s.implicitTLS = true } }

// Server is an SMTP server on 127.0.0.1. It is safe for concurrent use.
type Server struct {
	username, password string
	auth               bool
	starttls           bool
	implicitTLS        bool
	cert               *tls.Certificate
	pool               *x509.CertPool
	addr               string // fixed at the first start, reused by Start

	mu       sync.Mutex
	inbox    inbox.Inbox[Message]
	failures []Reply   // scripted, in order
	running  *instance // nil while stopped
	closed   bool
	quit     chan struct{} // closed by Stop and Close, to cut Delays short
}

// instance is one run of the server, from Start to Stop.
type instance struct {
	srv   *smtp.Server
	ln    *trackingListener
	serve chan struct{} // closed when Serve has returned
}

// NewServer starts a server on 127.0.0.1 with a port of the system's choosing.
func NewServer(opts ...Option) (*Server, error) {
	s := &Server{}
	for _, o := range opts {
		o(s)
	}
	if s.starttls && s.implicitTLS {
		return nil, errors.New("smtptest: WithSTARTTLS and WithImplicitTLS exclude each other")
	}
	if s.starttls || s.implicitTLS {
		cert, pool, err := selfSigned()
		if err != nil {
			return nil, err
		}
		s.cert, s.pool = cert, pool
	}
	s.addr = "127.0.0.1:0"
	if err := s.Start(); err != nil {
		return nil, err
	}
	return s, nil
}

// Addr is the server's host:port.
func (s *Server) Addr() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.addr
}

// Host is the server's IP address, 127.0.0.1.
func (s *Server) Host() string {
	h, _, _ := net.SplitHostPort(s.Addr())
	return h
}

// Port is the server's port.
func (s *Server) Port() int {
	_, p, _ := net.SplitHostPort(s.Addr())
	n, _ := strconv.Atoi(p)
	return n
}

// TLSConfig is a client configuration that trusts the server's certificate, or nil when the
// server speaks no TLS. Each call returns a new copy.
func (s *Server) TLSConfig() *tls.Config {
	if s.pool == nil {
		return nil
	}
	return &tls.Config{RootCAs: s.pool, ServerName: "127.0.0.1", MinVersion: tls.VersionTLS12}
}

// Start listens again on the same port after Stop. It is a no-op while the server runs.
func (s *Server) Start() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return errors.New("smtptest: server closed")
	}
	if s.running != nil {
		return nil
	}
	var ln net.Listener
	var err error
	// The port was just released by Stop; the kernel may take a moment to let it go.
	for i := 0; ; i++ {
		ln, err = net.Listen("tcp", s.addr)
		if err == nil || i == 50 {
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	if err != nil {
		return fmt.Errorf("smtptest: listen on %s: %w", s.addr, err)
	}
	s.addr = ln.Addr().String()
	tl := &trackingListener{Listener: ln}

	srv := smtp.NewServer(&backend{s: s})
	srv.Domain = Domain
	srv.ReadTimeout = 30 * time.Second
	srv.WriteTimeout = 30 * time.Second
	srv.ErrorLog = log.New(io.Discard, "", 0)
	srv.AllowInsecureAuth = true
	if s.cert != nil {
		srv.TLSConfig = &tls.Config{Certificates: []tls.Certificate{*s.cert}, MinVersion: tls.VersionTLS12}
	}
	var served net.Listener = tl
	if s.implicitTLS {
		served = tls.NewListener(tl, srv.TLSConfig)
		// With implicit TLS there is nothing to STARTTLS; go-smtp offers STARTTLS whenever it has a
		// TLSConfig and the connection is not already TLS, which it is here.
	}
	inst := &instance{srv: srv, ln: tl, serve: make(chan struct{})}
	go func() {
		defer close(inst.serve)
		_ = srv.Serve(served)
	}()
	s.running = inst
	s.quit = make(chan struct{})
	return nil
}

// Stop closes the listener and every connection, so that clients get "connection refused"
// until Start. It waits until the server's goroutines are done with their connections.
func (s *Server) Stop() {
	s.mu.Lock()
	inst := s.running
	s.running = nil
	if inst != nil {
		close(s.quit)
	}
	s.mu.Unlock()
	if inst == nil {
		return
	}
	_ = inst.srv.Close()
	// go-smtp closes only the listeners its Serve has registered; a Stop right after Start can
	// come first, so close ours too, or Serve would wait in Accept for good.
	_ = inst.ln.Close()
	<-inst.serve
	inst.ln.wait()
}

// Close stops the server for good.
func (s *Server) Close() {
	s.Stop()
	s.mu.Lock()
	s.closed = true
	s.mu.Unlock()
}

// FailNext makes the next n commands at reply.At (DATA by default) get reply instead of going
// through. Scripts queue up in order: a second FailNext applies once the first is used up.
func (s *Server) FailNext(n int, reply Reply) {
	if reply.At == "" {
		reply.At = AtData
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	for range n {
		s.failures = append(s.failures, reply)
	}
}

// Messages returns the messages accepted so far, in order.
func (s *Server) Messages() []Message {
	return s.inbox.All()
}

// WaitFor waits until at least n messages were accepted and returns them all, or returns an
// error once timeout has passed.
func (s *Server) WaitFor(n int, timeout time.Duration) ([]Message, error) {
	msgs, err := s.inbox.WaitFor(n, timeout)
	if err != nil {
		err = fmt.Errorf("smtptest: %w", err)
	}
	return msgs, err
}

// next takes the scripted reply for stage, if one is due, and the channel that Stop closes.
func (s *Server) next(stage Stage) (*Reply, <-chan struct{}) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if len(s.failures) == 0 || s.failures[0].At != stage {
		return nil, s.quit
	}
	r := s.failures[0]
	s.failures = s.failures[1:]
	return &r, s.quit
}

// scripted applies a scripted reply for stage: nil to go on as usual.
func (s *Server) scripted(stage Stage) error {
	r, quit := s.next(stage)
	if r == nil {
		return nil
	}
	if r.Delay > 0 {
		t := time.NewTimer(r.Delay)
		defer t.Stop()
		select {
		case <-t.C:
		case <-quit:
			return &smtp.SMTPError{Code: 421, EnhancedCode: smtp.EnhancedCode{4, 3, 2}, Message: "shutting down"}
		}
	}
	if r.Code == 0 {
		return nil
	}
	return r.smtpError()
}

func (r Reply) smtpError() *smtp.SMTPError {
	e := &smtp.SMTPError{Code: r.Code, EnhancedCode: smtp.EnhancedCodeNotSet, Message: r.Message}
	if r.Enhanced != "" {
		var a, b, c int
		if n, _ := fmt.Sscanf(r.Enhanced, "%d.%d.%d", &a, &b, &c); n == 3 {
			e.EnhancedCode = smtp.EnhancedCode{a, b, c}
		}
	}
	return e
}

// record keeps an accepted message.
func (s *Server) record(m Message) {
	s.inbox.Add(m)
}

// backend makes a session per connection.
type backend struct{ s *Server }

func (b *backend) NewSession(c *smtp.Conn) (smtp.Session, error) {
	_, isTLS := c.TLSConnectionState()
	return &session{s: b.s, conn: c, tls: isTLS}, nil
}

// session is one client's conversation.
type session struct {
	s    *Server
	conn *smtp.Conn
	tls  bool
	user string // authenticated as
	from string
	to   []string
}

var _ smtp.AuthSession = (*session)(nil)

func (ss *session) AuthMechanisms() []string {
	if !ss.s.auth {
		return nil
	}
	return []string{sasl.Plain}
}

func (ss *session) Auth(mech string) (sasl.Server, error) {
	if mech != sasl.Plain || !ss.s.auth {
		return nil, &smtp.SMTPError{Code: 504, EnhancedCode: smtp.EnhancedCode{5, 5, 4}, Message: "unsupported mechanism"}
	}
	return sasl.NewPlainServer(func(identity, username, password string) error {
		if (identity != "" && identity != username) || username != ss.s.username || password != ss.s.password {
			return &smtp.SMTPError{Code: 535, EnhancedCode: smtp.EnhancedCode{5, 7, 8}, Message: "authentication failed"}
		}
		ss.user = username
		return nil
	}), nil
}

func (ss *session) Mail(from string, _ *smtp.MailOptions) error {
	if ss.s.auth && ss.user == "" {
		return &smtp.SMTPError{Code: 530, EnhancedCode: smtp.EnhancedCode{5, 7, 0}, Message: "authentication required"}
	}
	if err := ss.s.scripted(AtMail); err != nil {
		return err
	}
	ss.from = from
	ss.to = nil
	return nil
}

func (ss *session) Rcpt(to string, _ *smtp.RcptOptions) error {
	if err := ss.s.scripted(AtRcpt); err != nil {
		return err
	}
	ss.to = append(ss.to, to)
	return nil
}

func (ss *session) Data(r io.Reader) error {
	data, err := io.ReadAll(r)
	if err != nil {
		return err
	}
	if err := ss.s.scripted(AtData); err != nil {
		return err
	}
	_, isTLS := ss.conn.TLSConnectionState()
	ss.s.record(Message{From: ss.from, To: append([]string(nil), ss.to...), Data: data, Auth: ss.user, TLS: isTLS || ss.tls})
	return nil
}

func (ss *session) Reset() { ss.from, ss.to = "", nil }

func (ss *session) Logout() error { return nil }

// trackingListener counts the connections it accepted that are still open, so that Stop can
// wait for the server to be done with them.
type trackingListener struct {
	net.Listener
	wg sync.WaitGroup
}

func (l *trackingListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	l.wg.Add(1)
	return &trackedConn{Conn: c, done: l.wg.Done}, nil
}

// wait waits, for at most a few seconds, until every accepted connection was closed.
func (l *trackingListener) wait() {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	done := make(chan struct{})
	go func() {
		defer close(done)
		l.wg.Wait()
	}()
	select {
	case <-done:
	case <-ctx.Done():
	}
}

// trackedConn reports its first Close.
type trackedConn struct {
	net.Conn
	once sync.Once
	done func()
}

func (c *trackedConn) Close() error {
	err := c.Conn.Close()
	c.once.Do(c.done)
	return err
}

var (
	certOnce sync.Once
	certVal  *tls.Certificate
	certPool *x509.CertPool
	certErr  error
)

// selfSigned returns a certificate for 127.0.0.1, ::1 and localhost and a pool that trusts it,
// made once per process.
func selfSigned() (*tls.Certificate, *x509.CertPool, error) {
	certOnce.Do(func() {
		key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		if err != nil {
			certErr = err
			return
		}
		now := time.Now()
		tmpl := &x509.Certificate{
			SerialNumber:          big.NewInt(1),
			Subject:               pkix.Name{CommonName: "smtptest"},
			NotBefore:             now.Add(-time.Hour),
			NotAfter:              now.Add(24 * time.Hour),
			KeyUsage:              x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign,
			ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
			BasicConstraintsValid: true,
			IsCA:                  true,
			DNSNames:              []string{"localhost"},
			IPAddresses:           []net.IP{net.IPv4(127, 0, 0, 1), net.IPv6loopback},
		}
		der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
		if err != nil {
			certErr = err
			return
		}
		leaf, err := x509.ParseCertificate(der)
		if err != nil {
			certErr = err
			return
		}
		certVal = &tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key, Leaf: leaf}
		certPool = x509.NewCertPool()
		certPool.AddCert(leaf)
	})
	if certErr != nil {
		return nil, nil, fmt.Errorf("smtptest: self-signed certificate: %w", certErr)
	}
	return certVal, certPool, nil
}
