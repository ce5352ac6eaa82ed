package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/mlrelay/relay/notifiers/slacktest"
	"github.com/mlrelay/relay/relay/postgres/pgtest"
	"github.com/mlrelay/relay/relay/replicate"
)

// replica is one relay process of TestReplicasOnPostgres.
type replica struct {
	t      *testing.T
	config string
	addr   string
	cmd    *exec.Cmd
	exited chan error
	stderr *syncBuffer
}

func startReplica(t *testing.T, config, addr string) *replica {
	t.Helper()
	r := &replica{t: t, config: config, addr: addr}
	r.start()
	return r
}

func (r *replica) start() {
	r.t.Helper()
	r.cmd = exec.Command(os.Args[0], "serve", "--config", r.config)
	r.cmd.Env = append(os.Environ(), "RELAY_TEST_MAIN=1")
	if r.stderr == nil {
		r.stderr = &syncBuffer{}
	}
	r.cmd.Stderr = r.stderr // a restarted replica's log follows the killed one's
	if err := r.cmd.Start(); err != nil {
		r.t.Fatal(err)
	}
	r.exited = make(chan error, 1)
	cmd, exited := r.cmd, r.exited
	go func() { exited <- cmd.Wait() }()
	r.t.Cleanup(func() { _ = cmd.Process.Kill() })
	deadline := time.Now().Add(30 * time.Second)
	for {
		resp, err := http.Get("http://" + r.addr + "/readyz")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == 200 {
				return
			}
		}
		select {
		case werr := <-r.exited:
			r.t.Fatalf("replica %s exited before it was ready: %v\n%s", r.addr, werr, r.stderr.String())
		case <-time.After(50 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			r.t.Fatalf("replica %s not ready: %v\n%s", r.addr, err, r.stderr.String())
		}
	}
}

// kill stops the process with SIGKILL: no shutdown, leases held, sends cut off.
func (r *replica) kill() {
	r.t.Helper()
	if err := r.cmd.Process.Signal(syscall.SIGKILL); err != nil {
		r.t.Fatal(err)
	}
	<-r.exited
}

// TestReplicasOnPostgres runs three relay processes on one PostgreSQL database behind a
// "load balancer" (each webhook to any replica, retried on another when one fails, as
// Replicate retries), kills one with SIGKILL in the middle of the load and starts it again:
// every prediction reaches Slack exactly once, and the digest of the failures, asked of all
// three replicas at once, goes out once.
func TestReplicasOnPostgres(t *testing.T) {
	dbURL := pgtest.URL(t)
	slack := newSlack(t)
	dir := t.TempDir()
	var replicas []*replica
	for i := range 3 {
		addr := freeAddr(t)
		config := filepath.Join(dir, fmt.Sprintf("replica%d.toml", i))
		text := fmt.Sprintf(`
[server]
addr = %q
shutdown_timeout = "10s"
[store]
url = %q
[replicate]
webhook_secrets = %q
[dispatch]
workers = 4
lease = "24s"
send_timeout = "10s"
backoff_min = "50ms"
backoff_max = "500ms"
[log]
level = "warn"
[notifiers.slack]
type = "slack"
webhook_url = %q
rate = 0
[digests.failures]
schedule = "@daily"
notify = ["slack"]
[[rules]]
name = "finished"
statuses = ["succeeded", "failed"]
notify = ["slack"]
[[rules]]
name = "failures"
statuses = ["failed"]
digest = ["failures"]
`, addr, dbURL, replicate.SampleSecret, slack.WebhookURL())
		if err := os.WriteFile(config, []byte(text), 0o600); err != nil {
			t.Fatal(err)
		}
		replicas = append(replicas, startReplica(t, config, addr))
	}

	// The load: every prediction's terminal event, a tenth of them sent twice (to different
	// replicas), each sender retrying on another replica until one answers 2xx.
	const predictions = 240
	base := sample(t, "prediction-succeeded.json").Body
	var (
		sent, failedCount atomic.Int64
		wg                sync.WaitGroup
		next              atomic.Int64
	)
	post := func(id string, body []byte, msgID string, first int) {
		for try := 0; ; try++ {
			r := replicas[(first+try)%len(replicas)]
			h, err := replicate.SignHeaders(replicate.SampleSecret, msgID, time.Now(), body)
			if err != nil {
				t.Error(err)
				return
			}
			req, _ := http.NewRequest(http.MethodPost, "http://"+r.addr+"/hooks/replicate?kind=prediction", bytes.NewReader(body))
			req.Header = h
			resp, err := http.DefaultClient.Do(req)
			if err == nil {
				resp.Body.Close()
				if resp.StatusCode/100 == 2 {
					return
				}
			}
			if try > 200 {
				t.Errorf("%s never acknowledged", id)
				return
			}
			time.Sleep(50 * time.Millisecond)
		}
	}
	for w := range 8 {
		wg.Go(func() {
			rng := rand.New(rand.NewPCG(uint64(w), 7))
			for {
				i := int(next.Add(1) - 1)
				if i >= predictions {
					return
				}
				var p map[string]any
				if err := json.Unmarshal(base, &p); err != nil {
					t.Error(err)
					return
				}
				id := fmt.Sprintf("pred%04d", i)
				p["id"], p["model"] = id, fmt.Sprintf("acme/m-%04d", i)
				if i%5 == 0 {
					p["status"], p["output"], p["error"] = "failed", nil, "boom "+id
					failedCount.Add(1)
				}
				body, _ := json.Marshal(p)
				post(id, body, "msg_"+id, rng.IntN(3))
				if rng.IntN(10) == 0 {
					post(id, body, "msg_"+id, rng.IntN(3)) // Replicate's retry of the same message
				}
				sent.Add(1)
			}
		})
	}
	// Mid-load: Slack refuses everything for a moment while replica 1 is killed and started
	// again, so that the kill cannot fall between a send Slack accepted and its record (the
	// one case in which a delivery is sent twice; see the README). Its claimed deliveries are
	// taken over when their leases expire. The send timeout is generous for the same reason: a
	// send that times out after Slack took it is sent again, and under -race on two cores with
	// four processes Slack's answers can take over a second (and past 4 s, with the rest of the
	// test suite running beside it: two duplicates in six full runs, before it was raised to
	// 10 s).
	for sent.Load() < predictions/2 {
		time.Sleep(10 * time.Millisecond)
	}
	slack.FailNext(1_000_000, slacktest.Failure{Status: 503})
	time.Sleep(300 * time.Millisecond)
	replicas[1].kill()
	time.Sleep(500 * time.Millisecond)
	replicas[1].start()
	slack.FailNext(0, slacktest.Failure{})
	wg.Wait()

	// Every prediction, once.
	seen := map[string]int{}
	deadline := time.Now().Add(90 * time.Second)
	for {
		clear(seen)
		for _, m := range slack.Messages() {
			text := m.Text + string(m.Blocks)
			if i := strings.Index(text, "acme/m-"); i >= 0 && len(text) >= i+11 {
				seen[text[i:i+11]]++
			}
		}
		if len(seen) == predictions || time.Now().After(deadline) {
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	time.Sleep(2 * time.Second) // late duplicates would arrive now
	clear(seen)
	for _, m := range slack.Messages() {
		text := m.Text + string(m.Blocks)
		if i := strings.Index(text, "acme/m-"); i >= 0 && len(text) >= i+11 {
			seen[text[i:i+11]]++
		}
	}
	lost, dup := 0, 0
	var which []string
	for i := range predictions {
		switch n := seen[fmt.Sprintf("acme/m-%04d", i)]; {
		case n == 0:
			lost++
			which = append(which, fmt.Sprintf("pred%04d lost", i))
		case n > 1:
			dup++
			which = append(which, fmt.Sprintf("pred%04d ×%d", i, n))
		}
	}
	if lost != 0 || dup != 0 {
		var logs strings.Builder
		for i, r := range replicas {
			fmt.Fprintf(&logs, "--- replica %d\n%s\n", i, r.stderr.String())
		}
		t.Fatalf("%d predictions lost, %d duplicated at Slack (of %d): %v\n%s", lost, dup, predictions, which, logs.String())
	}

	// The digest, asked of every replica at once: one message with every failure.
	var dwg sync.WaitGroup
	outs := make([]bytes.Buffer, len(replicas))
	for i, r := range replicas {
		dwg.Go(func() {
			var errOut bytes.Buffer
			if code := run(context.Background(), []string{"digest", "send", "failures", "--config", r.config}, &outs[i], &errOut); code != 0 {
				t.Errorf("digest send on replica %d: exit %d: %s%s", i, code, outs[i].String(), errOut.String())
			}
		})
	}
	dwg.Wait()
	want := fmt.Sprintf("%d failed predictions", failedCount.Load())
	deadline = time.Now().Add(20 * time.Second)
	for {
		digests := 0
		for _, m := range slack.Messages() {
			if strings.Contains(strings.ToLower(m.Text), "failure digest") {
				digests++
				if !strings.Contains(m.Text, want) {
					t.Errorf("digest %q does not count %s", m.Text, want)
				}
			}
		}
		if digests == 1 {
			break
		}
		if digests > 1 || time.Now().After(deadline) {
			t.Fatalf("%d digest messages, want 1; the sends said:\n%s\n%s\n%s", digests, outs[0].String(), outs[1].String(), outs[2].String())
		}
		time.Sleep(100 * time.Millisecond)
	}
}
