// Package replicate holds what the relay knows of Replicate itself: the prediction and training
// objects that webhooks carry, and the Standard Webhooks signature scheme that signs them.
package replicate

import (
	"bytes"
	"encoding/json"
	"time"
	"unicode/utf8"
	"unsafe"

	jsonv2 "github.com/go-json-experiment/json"
	"github.com/go-json-experiment/json/jsontext"
)

// Status is the lifecycle state of a prediction or training.
type Status string

// The statuses Replicate reports. Aborted means the deadline passed before the run started.
const (
	Starting   Status = "starting"
	Processing Status = "processing"
	Succeeded  Status = "succeeded"
	Failed     Status = "failed"
	Canceled   Status = "canceled"
	Aborted    Status = "aborted"
)

// Statuses lists every known status in lifecycle order.
var Statuses = []Status{Starting, Processing, Succeeded, Failed, Canceled, Aborted}

// Known reports whether s is one of the statuses Replicate documents.
func (s Status) Known() bool {
	for _, k := range Statuses {
		if s == k {
			return true
		}
	}
	return false
}

// Terminal reports whether s ends the run: only terminal deliveries are retried by Replicate.
func (s Status) Terminal() bool {
	return s == Succeeded || s == Failed || s == Canceled || s == Aborted
}

// Stage orders statuses along the lifecycle (starting 0, processing 1, terminal 2, unknown -1),
// so that an event older than one already seen can be recognised as stale.
func (s Status) Stage() int {
	switch {
	case s == Starting:
		return 0
	case s == Processing:
		return 1
	case s.Terminal():
		return 2
	}
	return -1
}

// Prediction is the object Replicate sends in a webhook and returns from GET /v1/predictions/{id}.
// A training has the same shape; its Output is {"version": ..., "weights": ...}.
// Unknown fields are ignored so that new API fields never break ingestion.
type Prediction struct {
	ID                  string          `json:"id"`
	Model               string          `json:"model"`
	Version             string          `json:"version"`
	Input               map[string]any  `json:"input"`
	Output              json.RawMessage `json:"output"`
	Logs                Text            `json:"logs"`
	Error               Text            `json:"error"`
	Status              Status          `json:"status"`
	Source              string          `json:"source"`
	DataRemoved         bool            `json:"data_removed"`
	CreatedAt           time.Time       `json:"created_at"`
	StartedAt           time.Time       `json:"started_at"`
	CompletedAt         time.Time       `json:"completed_at"`
	Metrics             map[string]any  `json:"metrics"`
	URLs                URLs            `json:"urls"`
	Deployment          string          `json:"deployment"`
	Webhook             string          `json:"webhook"`
	WebhookEventsFilter []string        `json:"webhook_events_filter"`
}

// URLs are the API and web links Replicate attaches to a prediction.
type URLs struct {
	Get    string `json:"get"`
	Cancel string `json:"cancel"`
	Web    string `json:"web"`
	Stream string `json:"stream"`
}

// Text is a JSON value read as text: a string stays as it is, null is empty, and anything else
// (a model that reports its error as an object, say) keeps its JSON form rather than failing.
type Text string

// UnmarshalJSONFrom implements the single-pass decoder's unmarshaler (encoding/json/v2).
func (t *Text) UnmarshalJSONFrom(dec *jsontext.Decoder) error {
	v, err := dec.ReadValue()
	if err != nil {
		return err
	}
	switch v.Kind() {
	case 'n':
		*t = ""
	case '"':
		// Logs are most of a payload. The text is unquoted into one allocation the size of the
		// quoted value (which it does not outgrow but for invalid UTF-8, which takes more room
		// replaced), and that allocation, referenced by nothing else and never written again,
		// becomes the string without a copy.
		s, err := jsontext.AppendUnquote(make([]byte, 0, len(v)), v)
		if err != nil && !utf8.Valid(v) {
			// The error only reports invalid UTF-8, which the decoder was told to allow: the
			// text has U+FFFD in its place, as encoding/json would read it.
			err = nil
		}
		if err != nil {
			// Valid JSON still fails to unquote when it escapes half of a surrogate pair
			// ("\udce9", as Python writes text decoded with surrogateescape): the decoder's
			// lenient path reads it as U+FFFD too.
			var str string
			if err := jsonv2.Unmarshal(v, &str, jsontext.AllowInvalidUTF8(true)); err != nil {
				return err
			}
			*t = Text(str)
			return nil
		}
		*t = Text(unsafe.String(unsafe.SliceData(s), len(s)))
	default:
		// A copy is compacted: v is the decoder's view of the payload itself, which parsing
		// must leave as it is (it is stored, and parsed again to be sent).
		c := v.Clone()
		if err := c.Compact(); err != nil {
			return err
		}
		*t = Text(c)
	}
	return nil
}

// UnmarshalJSON implements json.Unmarshaler.
func (t *Text) UnmarshalJSON(b []byte) error {
	if string(b) == "null" {
		*t = ""
		return nil
	}
	var s string
	if len(b) > 0 && b[0] == '"' {
		if err := json.Unmarshal(b, &s); err != nil {
			return err
		}
		*t = Text(s)
		return nil
	}
	// Keep other JSON as compact text, so that an object spread over lines reads as one line.
	var buf bytes.Buffer
	if err := json.Compact(&buf, b); err != nil {
		return err
	}
	*t = Text(buf.String())
	return nil
}
