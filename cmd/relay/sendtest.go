package main

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/mlrelay/relay/relay/replicate"
)

func cmdSendTest(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs, configPath := commandFlags("send-test", stderr)
	kind := fs.String("kind", "all", "prediction, training or all")
	status := fs.String("status", "", "status to send (starting, processing, succeeded, failed, canceled, aborted); default: every sample of the kind")
	target := fs.String("url", "", "hook URL (default: http://<server.addr><server.hook_path>)")
	repeat := fs.Int("repeat", 1, "send each message this many times with the same webhook-id, as Replicate's retries do")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("%w: send-test takes no arguments, got %q", errUsage, fs.Args())
	}
	if *kind != "all" && *kind != "prediction" && *kind != "training" {
		return fmt.Errorf("%w: --kind must be prediction, training or all", errUsage)
	}
	if *status != "" && !replicate.Status(*status).Known() {
		return fmt.Errorf("%w: --status %q is not one of %v", errUsage, *status, replicate.Statuses)
	}
	if *repeat < 1 || *repeat > 100 {
		return fmt.Errorf("%w: --repeat must be between 1 and 100", errUsage)
	}
	cfg, err := loadConfig(*configPath)
	if err != nil {
		return err
	}
	secrets := cfg.Replicate.Secrets()
	if len(secrets) == 0 {
		store, err := openStore(ctx, cfg)
		if err != nil {
			return err
		}
		secrets, _, err = webhookSecrets(ctx, cfg, store)
		store.Close()
		if err != nil {
			return err
		}
	}
	base := *target
	if base == "" {
		base = "http://" + dialAddr(cfg.Server.Addr) + cfg.Server.HookPath
	}
	msgs, err := testMessages(*kind, replicate.Status(*status))
	if err != nil {
		return err
	}
	client := &http.Client{Timeout: 15 * time.Second}
	failed := 0
	for _, m := range msgs {
		u, err := withKind(base, m.kind)
		if err != nil {
			return fmt.Errorf("--url: %w", err)
		}
		msgID := "msg_" + randomHex(12)
		for range *repeat {
			h, err := replicate.SignHeaders(secrets[0], msgID, time.Now(), m.body)
			if err != nil {
				return err
			}
			req, err := http.NewRequestWithContext(ctx, http.MethodPost, u, bytes.NewReader(m.body))
			if err != nil {
				return err
			}
			req.Header = h
			resp, err := client.Do(req)
			if err != nil {
				return fmt.Errorf("posting to %s: %w (is `relay serve` running?)", u, err)
			}
			answer, _ := io.ReadAll(io.LimitReader(resp.Body, 1024))
			resp.Body.Close()
			if resp.StatusCode/100 != 2 {
				failed++
			}
			fmt.Fprintf(stdout, "%-10s %-10s id=%s webhook-id=%s → %d %s\n", m.kind, m.status, m.id, msgID, resp.StatusCode, bytes.TrimSpace(answer))
		}
	}
	if failed > 0 {
		return fmt.Errorf("%d of %d deliveries were refused", failed, len(msgs)**repeat)
	}
	return nil
}

type testMessage struct {
	kind, id string
	status   replicate.Status
	body     []byte
}

// testMessages builds sample bodies with fresh ids, so every run notifies anew, while events of
// one sample prediction keep sharing an id. Statuses without a sample are made from the kind's
// succeeded sample.
func testMessages(kind string, status replicate.Status) ([]testMessage, error) {
	samples := replicate.Samples()
	ids := map[string]string{}
	fresh := func(old string) string {
		if ids[old] == "" {
			ids[old] = "test" + randomHex(11)
		}
		return ids[old]
	}
	var out []testMessage
	for _, k := range []string{"prediction", "training"} {
		if kind != "all" && kind != k {
			continue
		}
		var base *replicate.Sample
		for i, s := range samples {
			if s.Kind != k {
				continue
			}
			if s.Status == replicate.Succeeded {
				base = &samples[i]
			}
			if status == "" {
				m, err := rewrite(s.Body, fresh, s.Status)
				if err != nil {
					return nil, err
				}
				m.kind = k
				out = append(out, m)
			} else if s.Status == status {
				base = &samples[i]
				break
			}
		}
		if status != "" && base != nil {
			m, err := rewrite(base.Body, fresh, status)
			if err != nil {
				return nil, err
			}
			m.kind = k
			out = append(out, m)
		}
	}
	return out, nil
}

// rewrite gives a sample body a fresh id and, if needed, another status with fields to match.
func rewrite(body []byte, fresh func(string) string, status replicate.Status) (testMessage, error) {
	var p map[string]any
	if err := json.Unmarshal(body, &p); err != nil {
		return testMessage{}, err
	}
	old, _ := p["id"].(string)
	id := fresh(old)
	p["id"] = id
	if urls, ok := p["urls"].(map[string]any); ok {
		for k, v := range urls {
			if s, ok := v.(string); ok {
				urls[k] = strings.ReplaceAll(s, old, id)
			}
		}
	}
	if cur, _ := p["status"].(string); cur != string(status) {
		p["status"] = string(status)
		switch status {
		case replicate.Failed:
			p["output"] = nil
			p["error"] = "synthetic failure sent by relay send-test"
		case replicate.Canceled:
			p["output"] = nil
		case replicate.Aborted:
			p["output"], p["started_at"] = nil, nil
		case replicate.Starting, replicate.Processing:
			p["output"], p["completed_at"], p["metrics"] = nil, nil, map[string]any{}
		}
	}
	b, err := json.Marshal(p)
	return testMessage{id: id, status: status, body: b}, err
}

func withKind(base, kind string) (string, error) {
	u, err := url.Parse(base)
	if err != nil {
		return "", err
	}
	q := u.Query()
	q.Set("kind", kind)
	u.RawQuery = q.Encode()
	return u.String(), nil
}

// dialAddr turns a listen address into one to dial (":8080" → "127.0.0.1:8080").
func dialAddr(addr string) string {
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return addr
	}
	if host == "" || host == "0.0.0.0" || host == "::" {
		host = "127.0.0.1"
	}
	return net.JoinHostPort(host, port)
}

func randomHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}
