package relay

import (
	"encoding/json"
	"fmt"
	"net/url"
	"path"
	"strings"
	"sync"
	"time"

	json2 "github.com/go-json-experiment/json"
	"github.com/go-json-experiment/json/jsontext"

	"github.com/mlrelay/relay/relay/replicate"
)

// Kind says whether an event is about a prediction or a training.
type Kind string

// The kinds of event.
const (
	KindPrediction Kind = "prediction"
	KindTraining   Kind = "training"
	// KindDigest marks a digest message in the outbox: its body is the digest's summary, not
	// a Replicate payload.
	KindDigest Kind = "digest"
)

// Event is one webhook delivery from Replicate: the prediction or training object plus what the
// relay knows of the delivery itself.
type Event struct {
	replicate.Prediction
	// MessageID is the webhook-id header, identical on every retry of one message.
	MessageID string
	// Kind is training or prediction: from ?kind= on the hook URL, else guessed from the payload.
	Kind Kind
	// Meta holds the query parameters of the hook URL (first value of each), the documented way
	// to attach metadata such as ?customId=123 or ?team=vision. Events posted to one URL may
	// share the map: it is never modified.
	Meta map[string]string
	// ReceivedAt is when the relay accepted the delivery.
	ReceivedAt time.Time

	outputOnce sync.Once
	output     any // Output decoded, once, on first use
}

// ParseEvent decodes a webhook body. kind is the value of ?kind= ("" to guess from the payload).
func ParseEvent(body []byte, messageID string, kind string, meta map[string]string, received time.Time) (*Event, error) {
	ev := &Event{MessageID: messageID, Meta: meta, ReceivedAt: received}
	if err := json2.Unmarshal(body, &ev.Prediction, parseOptions); err != nil {
		return nil, fmt.Errorf("malformed payload: %w", err)
	}
	if err := ev.settle(kind); err != nil {
		return nil, err
	}
	return ev, nil
}

// CheckEvent reports the error ParseEvent would return for body and kind, without keeping the
// event. It skips what only the text of logs and error costs (reading any JSON there as text
// never fails once the value is valid JSON, which is still checked): the receiver checks every
// event it stores this way, so that one the dispatcher could not read is refused at once.
func CheckEvent(body []byte, kind string) error {
	var p checkedPrediction
	if err := json2.Unmarshal(body, &p, parseOptions); err != nil {
		return fmt.Errorf("malformed payload: %w", err)
	}
	ev := Event{}
	ev.Prediction = p.Prediction
	return ev.settle(kind)
}

// checkedPrediction is replicate.Prediction with logs and error skipped rather than read: its own
// fields of those names hide the embedded ones, as Go's rules for embedded fields (which the
// decoder follows) have it.
type checkedPrediction struct {
	replicate.Prediction
	Logs  skippedText `json:"logs"`
	Error skippedText `json:"error"`
}

// skippedText stands for a replicate.Text: any valid JSON value, which it skips.
type skippedText struct{}

// UnmarshalJSONFrom implements the single-pass decoder's unmarshaler (encoding/json/v2).
func (*skippedText) UnmarshalJSONFrom(dec *jsontext.Decoder) error { return dec.SkipValue() }

// head is the part of a payload that routing needs: everything but the bulky input, logs,
// error and metrics. Decoding only this is several times cheaper than a full parse on the
// stream of processing events that carry growing logs.
type head struct {
	ID         string           `json:"id"`
	Model      string           `json:"model"`
	Version    string           `json:"version"`
	Status     replicate.Status `json:"status"`
	Source     string           `json:"source"`
	Deployment string           `json:"deployment"`
	URLs       replicate.URLs   `json:"urls"`
	Output     jsontext.Value   `json:"output"`
}

// parseOptions make the single-pass decoder (encoding/json/v2) read payloads as leniently as
// encoding/json does: names matched without regard to case, duplicate names and invalid
// UTF-8 accepted. ParseHead and ParseEvent share them, so they read the same fields alike.
var parseOptions = json2.JoinOptions(json2.MatchCaseInsensitiveNames(true),
	jsontext.AllowDuplicateNames(true), jsontext.AllowInvalidUTF8(true))

// ParseHead decodes only what rules without an expression need (id, model, version, status,
// source, deployment, urls, output) and checks the body is valid JSON. It uses the single-pass
// decoder that became encoding/json/v2, about five times faster than encoding/json here. The result is an Event
// whose other fields are empty: use ParseEvent for anything that is stored or rendered.
func ParseHead(body []byte, messageID string, kind string, meta map[string]string, received time.Time) (*Event, error) {
	var h head
	// The fast path decodes only the members that may matter; whatever it cannot vouch for,
	// or the decoder refuses in it, is decoded whole, so errors read the same either way.
	if !fastHead(body, &h) {
		var err error
		if h, err = wholeHead(body); err != nil {
			return nil, fmt.Errorf("malformed payload: %w", err)
		}
	}
	ev := &Event{MessageID: messageID, Meta: meta, ReceivedAt: received}
	ev.ID, ev.Model, ev.Version, ev.Status = h.ID, h.Model, h.Version, h.Status
	ev.Source, ev.Deployment, ev.URLs, ev.Output = h.Source, h.Deployment, h.URLs, json.RawMessage(h.Output)
	if err := ev.settle(kind); err != nil {
		return nil, err
	}
	return ev, nil
}

// settle checks the fields every event needs and decides the kind.
func (ev *Event) settle(kind string) error {
	if ev.ID == "" {
		return fmt.Errorf("malformed payload: no id")
	}
	if ev.Status == "" {
		return fmt.Errorf("malformed payload: no status")
	}
	if !ev.Status.Known() {
		return fmt.Errorf("malformed payload: unknown status %q", truncate(string(ev.Status), 40))
	}
	switch Kind(kind) {
	case KindPrediction, KindTraining:
		ev.Kind = Kind(kind)
	case "":
		ev.Kind = guessKind(&ev.Prediction)
	default:
		return fmt.Errorf("unknown kind %q (want prediction or training)", truncate(kind, 40))
	}
	return nil
}

// guessKind applies the fallback hints: a trainings URL, or a weights output.
func guessKind(p *replicate.Prediction) Kind {
	if strings.Contains(p.URLs.Get, "/trainings/") || strings.Contains(p.URLs.Cancel, "/trainings/") {
		return KindTraining
	}
	if len(p.Output) > 0 && p.Output[0] == '{' {
		var o struct {
			Weights json.RawMessage `json:"weights"`
		}
		if json.Unmarshal(p.Output, &o) == nil && len(o.Weights) > 0 && string(o.Weights) != "null" {
			return KindTraining
		}
	}
	return KindPrediction
}

// Terminal reports whether the event ends the run.
func (ev *Event) Terminal() bool { return ev.Status.Terminal() }

// Duration is how long the run took, from start to completion (0 until both are known, and 0
// when the completion is stamped before the start: clocks that disagree say nothing).
func (ev *Event) Duration() time.Duration {
	if ev.StartedAt.IsZero() || ev.CompletedAt.IsZero() {
		return 0
	}
	return max(ev.CompletedAt.Sub(ev.StartedAt), 0)
}

// QueueTime is how long the run waited before it started (0 until it started, and 0 when the
// start is stamped before the creation).
func (ev *Event) QueueTime() time.Duration {
	if ev.CreatedAt.IsZero() || ev.StartedAt.IsZero() {
		return 0
	}
	return max(ev.StartedAt.Sub(ev.CreatedAt), 0)
}

// PredictTime is metrics.predict_time in seconds, or 0.
func (ev *Event) PredictTime() float64 {
	if f, ok := ev.Metrics["predict_time"].(float64); ok {
		return f
	}
	return 0
}

// OutputValue is the output decoded into plain Go values (nil when absent or undecodable).
func (ev *Event) OutputValue() any {
	ev.outputOnce.Do(func() {
		if len(ev.Output) > 0 && json.Unmarshal(ev.Output, &ev.output) != nil {
			ev.output = nil
		}
	})
	return ev.output
}

// Files lists the http(s) URLs found anywhere in the output, in order.
func (ev *Event) Files() []string {
	var out []string
	var walk func(v any)
	walk = func(v any) {
		switch v := v.(type) {
		case string:
			if isFileURL(v) {
				out = append(out, v)
			}
		case []any:
			for _, e := range v {
				walk(e)
			}
		case map[string]any:
			for _, k := range sortedKeys(v) {
				walk(v[k])
			}
		}
	}
	walk(ev.OutputValue())
	return out
}

// Images lists the output files that are images, judged by their extension.
func (ev *Event) Images() []string {
	var out []string
	for _, f := range ev.Files() {
		if IsImageURL(f) {
			out = append(out, f)
		}
	}
	return out
}

// IsImageURL reports whether u names an image file (png, jpg, jpeg, webp, gif).
func IsImageURL(u string) bool {
	p, err := url.Parse(u)
	if err != nil {
		return false
	}
	switch strings.ToLower(path.Ext(p.Path)) {
	case ".png", ".jpg", ".jpeg", ".webp", ".gif":
		return true
	}
	return false
}

func isFileURL(s string) bool {
	if !strings.HasPrefix(s, "https://") && !strings.HasPrefix(s, "http://") {
		return false
	}
	u, err := url.Parse(s)
	// A URL with user info (https://replicate.com@evil.example/x.png) reads as one host and
	// goes to another: never treat it as an output file.
	return err == nil && u.Host != "" && u.User == nil
}

// WebURL is the prediction's page on replicate.com.
func (ev *Event) WebURL() string {
	if ev.URLs.Web != "" {
		return ev.URLs.Web
	}
	return "https://replicate.com/p/" + url.PathEscape(ev.ID)
}

// ErrorLine is the error reduced to one short line: the last non-empty line, at most 300 runes.
func (ev *Event) ErrorLine() string {
	s := strings.TrimSpace(string(ev.Error))
	if s == "" {
		return ""
	}
	lines := strings.Split(s, "\n")
	for i := len(lines) - 1; i >= 0; i-- {
		if l := strings.TrimSpace(lines[i]); l != "" {
			return truncate(l, 300)
		}
	}
	return ""
}

// Prompt is input.prompt when it is a string, else "".
func (ev *Event) Prompt() string {
	s, _ := ev.Input["prompt"].(string)
	return s
}

// NewVersion is the version a training created ("owner/name:hash"), or "".
func (ev *Event) NewVersion() string {
	m, _ := ev.OutputValue().(map[string]any)
	s, _ := m["version"].(string)
	return s
}

// Weights is the URL of a training's weights, or "".
func (ev *Event) Weights() string {
	m, _ := ev.OutputValue().(map[string]any)
	s, _ := m["weights"].(string)
	return s
}

// LogTail is the last n lines of the logs.
func (ev *Event) LogTail(n int) string {
	s := strings.TrimRight(string(ev.Logs), "\n")
	if n <= 0 || s == "" {
		return ""
	}
	lines := strings.Split(s, "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

// truncate cuts s to at most n runes, ending with an ellipsis when cut.
func truncate(s string, n int) string {
	if n <= 0 {
		return ""
	}
	r := []rune(s)
	if len(r) <= n {
		return s
	}
	return string(r[:n-1]) + "…"
}
