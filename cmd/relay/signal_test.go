package main

import (
	"context"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/mlrelay/relay/notifiers/slacktest"
	"github.com/mlrelay/relay/relay"
	"github.com/mlrelay/relay/relay/config"
)

// TestMain lets a test run this package's main as a child process (RELAY_TEST_MAIN=1), so that
// signal handling is tested on a real process without building a binary.
func TestMain(m *testing.M) {
	if os.Getenv("RELAY_TEST_MAIN") == "1" {
		os.Exit(run(context.Background(), os.Args[1:], os.Stdout, os.Stderr))
	}
	os.Exit(m.Run())
}

func freeAddr(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

func TestSIGTERMFinishesInFlightSend(t *testing.T) {
	slack := newSlack(t)
	slack.FailNext(1, slacktest.Failure{Delay: 1500 * time.Millisecond}) // slow, then OK
	dir := t.TempDir()
	db := filepath.Join(dir, "relay.db")
	cfg := e2eConfig(t, db, slack.WebhookURL(), "")
	addr := freeAddr(t)
	path := rewriteConfig(t, cfg, `addr = "127.0.0.1:0"`, `addr = "`+addr+`"`, `send_timeout = "1s"`, `send_timeout = "4s"`)

	cmd := exec.Command(os.Args[0], "serve", "--config", path)
	cmd.Env = append(os.Environ(), "RELAY_TEST_MAIN=1")
	var stderr syncBuffer
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	t.Cleanup(func() { _ = cmd.Process.Kill() })

	in := &instance{t: t, addr: addr}
	deadline := time.Now().Add(20 * time.Second)
	for {
		resp, err := http.Get("http://" + addr + "/readyz")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == 200 {
				break
			}
		}
		select {
		case werr := <-exited:
			t.Fatalf("child relay exited before it was ready: %v\n%s", werr, stderr.String())
		case <-time.After(50 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			t.Fatalf("child relay not ready: %v\n%s", err, stderr.String())
		}
	}
	s := sample(t, "training-succeeded.json")
	if code, body := in.post(t, "?kind=training", s.MessageID, s.Body); code != 200 {
		t.Fatalf("post: %d %s", code, body)
	}
	for slack.Requests() == 0 {
		if time.Now().After(deadline) {
			t.Fatal("the send never started")
		}
		time.Sleep(10 * time.Millisecond)
	}
	if err := cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-exited:
		if err != nil {
			t.Fatalf("relay exited with %v after SIGTERM\n%s", err, stderr.String())
		}
	case <-time.After(15 * time.Second):
		t.Fatalf("relay still running 15s after SIGTERM\n%s", stderr.String())
	}
	if n := len(slack.Messages()); n != 1 {
		t.Fatalf("slack got %d messages, want the in-flight one delivered\n%s", n, stderr.String())
	}
	list := deliveries(t, db)
	if len(list) != 1 || list[0].State != relay.Sent {
		t.Fatalf("deliveries after shutdown = %+v, want one sent", list)
	}
	if !strings.Contains(stderr.String(), "shutting down") {
		t.Fatalf("no shutdown log:\n%s", stderr.String())
	}
}

// A send still in flight when shutdown_timeout runs out is waited for (up to send_timeout) and
// recorded: abandoning it would leave it sending, to be sent again after its lease.
func TestShutdownWaitsForSendPastShutdownTimeout(t *testing.T) {
	slack := newSlack(t)
	slack.FailNext(1, slacktest.Failure{Delay: 2500 * time.Millisecond}) // slow, then OK
	db := filepath.Join(t.TempDir(), "relay.db")
	base := e2eConfig(t, db, slack.WebhookURL(), "")
	path := rewriteConfig(t, base, `shutdown_timeout = "10s"`, `shutdown_timeout = "1s"`,
		`send_timeout = "1s"`, `send_timeout = "4s"`, `lease = "5s"`, `lease = "20s"`)
	cfg, err := config.Load(path, func(string) (string, bool) { return "", false })
	if err != nil {
		t.Fatal(err)
	}
	in := start(t, cfg)
	s := sample(t, "training-succeeded.json")
	if code, body := in.post(t, "?kind=training", s.MessageID, s.Body); code != 200 {
		t.Fatalf("post: %d %s", code, body)
	}
	deadline := time.Now().Add(10 * time.Second)
	for slack.Requests() == 0 {
		if time.Now().After(deadline) {
			t.Fatal("the send never started")
		}
		time.Sleep(10 * time.Millisecond)
	}
	in.shutdown()
	if n := len(slack.Messages()); n != 1 {
		t.Fatalf("slack got %d messages when the relay had stopped, want the one in flight", n)
	}
	if list := deliveries(t, db); len(list) != 1 || list[0].State != relay.Sent {
		t.Fatalf("deliveries after shutdown = %+v, want one sent", list)
	}
}

// rewriteConfig writes cfg's file again with the old, new pairs replaced, and returns its path.
func rewriteConfig(t *testing.T, cfg *config.Config, oldnew ...string) string {
	t.Helper()
	text, err := os.ReadFile(cfg.Source)
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "relay.toml")
	if err := os.WriteFile(path, []byte(strings.NewReplacer(oldnew...).Replace(string(text))), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}
