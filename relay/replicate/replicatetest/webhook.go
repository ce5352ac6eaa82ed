package replicatetest

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"time"

	"github.com/mlrelay/relay/relay/replicate"
)

// prediction is a prediction the stand-in created.
type prediction struct {
	ID, Model, Version  string
	Input               map[string]any // as decoded with UseNumber, so it is echoed as sent
	Logs                string
	Output              any
	Error               string
	Status              replicate.Status
	Source              string
	CreatedAt           time.Time
	StartedAt           time.Time
	CompletedAt         time.Time
	Deployment          string
	Webhook             string
	WebhookEventsFilter []string
	api                 string // the API root the creator used, for urls
}

// timeFormat is how Replicate writes times: UTC with microseconds.
const timeFormat = "2006-01-02T15:04:05.000000Z"

// body is the prediction as GET /predictions/{id} returns it and a webhook carries it; the
// caller holds the handler's lock.
func (p *prediction) body() []byte {
	var errText, started, completed, deployment *string
	if p.Error != "" {
		errText = &p.Error
	}
	if !p.StartedAt.IsZero() {
		s := p.StartedAt.UTC().Format(timeFormat)
		started = &s
	}
	if !p.CompletedAt.IsZero() {
		s := p.CompletedAt.UTC().Format(timeFormat)
		completed = &s
	}
	if p.Deployment != "" {
		deployment = &p.Deployment
	}
	metrics := map[string]any{}
	if p.Status == replicate.Succeeded {
		// A test may complete at a fixed time before the creation; times never run backwards.
		metrics["predict_time"] = max(0, p.CompletedAt.Sub(p.StartedAt).Seconds())
		metrics["total_time"] = max(0, p.CompletedAt.Sub(p.CreatedAt).Seconds())
	}
	v := struct {
		ID                  string            `json:"id"`
		Model               string            `json:"model"`
		Version             string            `json:"version"`
		Input               map[string]any    `json:"input"`
		Logs                string            `json:"logs"`
		Output              any               `json:"output"`
		DataRemoved         bool              `json:"data_removed"`
		Error               *string           `json:"error"`
		Source              string            `json:"source"`
		Status              replicate.Status  `json:"status"`
		CreatedAt           string            `json:"created_at"`
		StartedAt           *string           `json:"started_at"`
		CompletedAt         *string           `json:"completed_at"`
		Deployment          *string           `json:"deployment,omitempty"`
		Metrics             map[string]any    `json:"metrics"`
		Webhook             string            `json:"webhook,omitempty"`
		WebhookEventsFilter []string          `json:"webhook_events_filter,omitempty"`
		URLs                map[string]string `json:"urls"`
	}{
		ID: p.ID, Model: p.Model, Version: p.Version, Input: p.Input, Logs: p.Logs, Output: p.Output,
		Error: errText, Source: p.Source, Status: p.Status, CreatedAt: p.CreatedAt.UTC().Format(timeFormat),
		StartedAt: started, CompletedAt: completed, Deployment: deployment, Metrics: metrics,
		Webhook: p.Webhook, WebhookEventsFilter: p.WebhookEventsFilter,
		URLs: map[string]string{
			"get":    p.api + "/predictions/" + p.ID,
			"cancel": p.api + "/predictions/" + p.ID + "/cancel",
			"web":    "https://replicate.com/p/" + p.ID,
		},
	}
	b, err := json.Marshal(v)
	if err != nil {
		panic(fmt.Sprintf("replicatetest: prediction %s: %v", p.ID, err)) // inputs came from JSON
	}
	return b
}

// Completion is how a prediction ends, for Complete.
type Completion struct {
	// Status is the terminal status. Default replicate.Succeeded.
	Status replicate.Status
	// Output is the output of a success. Default: one image URL on replicate.delivery per
	// num_outputs of the input (1 when absent). A test that lets the relay download the images
	// gives URLs of its own file server.
	Output any
	// Error is the error of a failure. Default for replicate.Failed: an NSFW refusal, the
	// error image models give most often.
	Error string
	// Logs are the prediction's logs. Default: none.
	Logs string
	// At is when the prediction ended and the webhook is signed. Default: now.
	At time.Time
	// Secret signs the webhook. Default: the stand-in's secret (Secret).
	Secret string
}

// defaultError is what Completion.Error defaults to for a failure.
const defaultError = "NSFW content detected. Try running it again, or try a different prompt."

// Delivery is a webhook delivery as Replicate would send it.
type Delivery struct {
	// URL is the webhook URL the prediction was created with; empty when it has none.
	URL string
	// MessageID is the webhook-id, kept by a retry.
	MessageID string
	// Body is the prediction, exactly as GET /predictions/{id} returns it at that moment.
	Body []byte
	// Header holds webhook-id, webhook-timestamp, webhook-signature and Content-Type.
	Header http.Header

	secret string
}

// Complete ends prediction id as c says and returns the completion webhook Replicate would send.
// GET /predictions/{id} returns the finished prediction from then on.
func (h *Handler) Complete(id string, c Completion) (Delivery, error) {
	if c.Status == "" {
		c.Status = replicate.Succeeded
	}
	if !c.Status.Terminal() {
		return Delivery{}, fmt.Errorf("replicatetest: complete %s: status %q is not terminal", id, c.Status)
	}
	if c.At.IsZero() {
		c.At = time.Now()
	}
	h.mu.Lock()
	p, ok := h.predictions[id]
	if !ok {
		h.mu.Unlock()
		return Delivery{}, fmt.Errorf("replicatetest: complete %s: no such prediction", id)
	}
	if p.Status.Terminal() {
		h.mu.Unlock()
		return Delivery{}, fmt.Errorf("replicatetest: complete %s: already %s", id, p.Status)
	}
	p.Status = c.Status
	if p.StartedAt.IsZero() {
		p.StartedAt = p.CreatedAt.Add(c.At.Sub(p.CreatedAt) / 10)
	}
	p.CompletedAt = c.At
	p.Logs = c.Logs
	switch c.Status {
	case replicate.Succeeded:
		p.Output = c.Output
		if p.Output == nil {
			p.Output = defaultOutput(p)
		}
	case replicate.Failed:
		p.Error = c.Error
		if p.Error == "" {
			p.Error = defaultError
		}
	}
	h.mu.Unlock()
	return h.Webhook(id, c.Secret, c.At)
}

// Webhook returns the delivery of prediction id in its current state, signed with secret
// (default: the stand-in's) at time at (default: now) under a fresh message id. Right after
// a create it is the "start" delivery.
func (h *Handler) Webhook(id, secret string, at time.Time) (Delivery, error) {
	if at.IsZero() {
		at = time.Now()
	}
	h.mu.Lock()
	p, ok := h.predictions[id]
	if !ok {
		h.mu.Unlock()
		return Delivery{}, fmt.Errorf("replicatetest: webhook %s: no such prediction", id)
	}
	if secret == "" {
		secret = h.secret
	}
	body := p.body()
	hook := p.Webhook
	h.messages++
	msgID := "msg_replicatetest_" + strconv.Itoa(h.messages) + "_" + newID()
	h.mu.Unlock()

	hd, err := replicate.SignHeaders(secret, msgID, at, body)
	if err != nil {
		return Delivery{}, fmt.Errorf("replicatetest: webhook %s: %w", id, err)
	}
	return Delivery{URL: hook, MessageID: msgID, Body: body, Header: hd, secret: secret}, nil
}

// defaultOutput is the output of a success when the test gives none: one file per requested
// output, in the requested format.
func defaultOutput(p *prediction) []any {
	n := 1
	if v, ok := p.Input["num_outputs"].(json.Number); ok {
		if i, err := v.Int64(); err == nil && i > 0 && i <= 10 {
			n = int(i)
		}
	}
	ext := "png"
	switch f, _ := p.Input["output_format"].(string); f {
	case "webp", "jpg", "png":
		ext = f
	}
	out := make([]any, n)
	for i := range out {
		out[i] = fmt.Sprintf("https://replicate.delivery/xezq/%s/out-%d.%s", p.ID, i, ext)
	}
	return out
}

// Retry returns the same message re-sent at time at, as Replicate retries a terminal delivery:
// the same webhook-id and body, a fresh timestamp and signature.
func (d Delivery) Retry(at time.Time) (Delivery, error) {
	hd, err := replicate.SignHeaders(d.secret, d.MessageID, at, d.Body)
	if err != nil {
		return Delivery{}, fmt.Errorf("replicatetest: retry %s: %w", d.MessageID, err)
	}
	d.Header = hd
	return d, nil
}

// Send posts the delivery to its URL with client (nil: http.DefaultClient) and returns the
// status the receiver answered.
func (d Delivery) Send(ctx context.Context, client *http.Client) (int, error) {
	if d.URL == "" {
		return 0, errors.New("replicatetest: the prediction has no webhook URL")
	}
	if client == nil {
		client = http.DefaultClient
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, d.URL, bytes.NewReader(d.Body))
	if err != nil {
		return 0, fmt.Errorf("replicatetest: %w", err)
	}
	req.Header = d.Header.Clone()
	resp, err := client.Do(req)
	if err != nil {
		return 0, fmt.Errorf("replicatetest: %w", err)
	}
	_, _ = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	return resp.StatusCode, nil
}
