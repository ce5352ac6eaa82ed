package smtptest

import (
	"errors"
	"net/smtp"
	"net/textproto"
	"strings"
	"testing"
	"time"
)

const testMsg = "From: a@example.com\r\nTo: b@example.com\r\nSubject: =?UTF-8?q?h=C3=A9llo?=\r\n" +
	"MIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary=OUT\r\n\r\n" +
	"--OUT\r\nContent-Type: multipart/alternative; boundary=IN\r\n\r\n" +
	"--IN\r\nContent-Type: text/plain; charset=UTF-8\r\nContent-Transfer-Encoding: quoted-printable\r\n\r\nh=C3=A9llo=\r\n world\r\n" +
	"--IN\r\nContent-Type: text/html; charset=UTF-8\r\n\r\n<p>hi</p>\r\n--IN--\r\n" +
	"--OUT\r\nContent-Type: image/png; name=\"x.png\"\r\nContent-Disposition: inline; filename=\"x.png\"\r\n" +
	"Content-ID: <x.png>\r\nContent-Transfer-Encoding: base64\r\n\r\niVBO\r\nRw0K\r\n--OUT--\r\n"

func send(s *Server, to ...string) error {
	return smtp.SendMail(s.Addr(), nil, "a@example.com", to, []byte(testMsg))
}

func TestServerRecordsAndParses(t *testing.T) {
	s, err := NewServer()
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if err := send(s, "b@example.com", "c@example.com"); err != nil {
		t.Fatal(err)
	}
	msgs, err := s.WaitFor(1, time.Second)
	if err != nil {
		t.Fatal(err)
	}
	m := msgs[0]
	if m.From != "a@example.com" || strings.Join(m.To, ",") != "b@example.com,c@example.com" || string(m.Data) != testMsg {
		t.Fatalf("recorded %+v", m)
	}
	p, err := m.Parse()
	if err != nil {
		t.Fatal(err)
	}
	want := "multipart/mixed\n  multipart/alternative\n    text/plain; charset=UTF-8 (quoted-printable)\n    text/html; charset=UTF-8\n" +
		"  image/png; inline; cid=x.png; filename=x.png (base64)\n"
	if got := p.Structure(); got != want {
		t.Errorf("structure:\n%s\nwant:\n%s", got, want)
	}
	if p.Subject() != "héllo" {
		t.Errorf("subject %q", p.Subject())
	}
	if got := string(p.Find("text/plain").Body); got != "héllo world" {
		t.Errorf("text %q", got)
	}
	if got := p.Find("image/png").Body; string(got) != "\x89PNG\r\n" {
		t.Errorf("image %q", got)
	}
	if _, err := s.WaitFor(2, 50*time.Millisecond); err == nil {
		t.Error("WaitFor(2) returned with one message")
	}
}

func TestServerFailNext(t *testing.T) {
	s, err := NewServer()
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	s.FailNext(1, Reply{Code: 550, Enhanced: "5.1.1", Message: "no such user", At: AtRcpt})
	s.FailNext(1, Reply{Code: 451, Enhanced: "4.3.0", Message: "try later"})
	for _, want := range []string{"550 5.1.1 no such user", "451 4.3.0 try later", ""} {
		err := send(s, "b@example.com")
		var te *textproto.Error
		switch {
		case want == "" && err != nil:
			t.Errorf("after the script: %v", err)
		case want != "" && (!errors.As(err, &te) || !strings.Contains(err.Error(), strings.SplitN(want, " ", 2)[1])):
			t.Errorf("err = %v, want %s", err, want)
		}
	}
	if n := len(s.Messages()); n != 1 {
		t.Errorf("%d messages, want 1", n)
	}
}

func TestServerStopStart(t *testing.T) {
	s, err := NewServer(WithSTARTTLS())
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	addr := s.Addr()
	// A delayed reply is cut short by Stop.
	s.FailNext(1, Reply{Delay: time.Minute})
	done := make(chan error, 1)
	go func() { done <- sendTLS(s) }()
	time.Sleep(100 * time.Millisecond)
	start := time.Now()
	s.Stop()
	if err := <-done; err == nil {
		t.Error("a send cut by Stop succeeded")
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Errorf("Stop took %s", d)
	}
	if err := sendTLS(s); err == nil || !strings.Contains(err.Error(), "refused") {
		t.Errorf("while stopped: %v", err)
	}
	if err := s.Start(); err != nil {
		t.Fatal(err)
	}
	if s.Addr() != addr {
		t.Errorf("restarted on %s, want %s", s.Addr(), addr)
	}
	if s.TLSConfig() == nil {
		t.Fatal("no TLSConfig")
	}
	if err := sendTLS(s); err != nil {
		t.Fatal(err)
	}
	msgs, err := s.WaitFor(1, time.Second)
	if err != nil {
		t.Fatal(err)
	}
	if !msgs[0].TLS {
		t.Error("message not marked as sent over TLS")
	}
}

// sendTLS sends testMsg over STARTTLS, trusting the server's certificate, which net/smtp's
// SendMail cannot be told to.
func sendTLS(s *Server) error {
	c, err := smtp.Dial(s.Addr())
	if err != nil {
		return err
	}
	defer c.Close()
	if err := c.StartTLS(s.TLSConfig()); err != nil {
		return err
	}
	if err := c.Mail("a@example.com"); err != nil {
		return err
	}
	if err := c.Rcpt("b@example.com"); err != nil {
		return err
	}
	w, err := c.Data()
	if err != nil {
		return err
	}
	if _, err := w.Write([]byte(testMsg)); err != nil {
		return err
	}
	if err := w.Close(); err != nil {
		return err
	}
	return c.Quit()
}

func TestStopRightAfterStart(t *testing.T) {
	for range 50 {
		s, err := NewServer()
		if err != nil {
			t.Fatal(err)
		}
		done := make(chan struct{})
		go func() { s.Stop(); s.Close(); close(done) }()
		select {
		case <-done:
		case <-time.After(5 * time.Second):
			t.Fatal("Stop right after Start did not return")
		}
	}
}
