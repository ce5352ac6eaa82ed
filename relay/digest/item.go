package digest

import (
	"bytes"
	"encoding/json"
	"net/url"
	"time"

	"github.com/mlrelay/relay/relay"
	"github.com/mlrelay/relay/relay/replicate"
)

// Item is what a digest keeps of one event: enough to count it, group it and link to it, and
// small enough to store one per event (a few hundred bytes of JSON). Strings are as the payload
// held them, not escaped: the templates escape them for each target.
type Item struct {
	// Kind is prediction or training.
	Kind relay.Kind `json:"kind"`
	// ID is the prediction or training id.
	ID string `json:"id"`
	// Model is the model that ran ("owner/name"), or "".
	Model string `json:"model,omitempty"`
	// Version is the version id that ran, or "".
	Version string `json:"version,omitempty"`
	// Deployment is the deployment the prediction ran on, or "".
	Deployment string `json:"deployment,omitempty"`
	// Status is the run's status when the event was received.
	Status replicate.Status `json:"status"`
	// Error is the error reduced to one line of at most 300 characters (relay.Event.ErrorLine).
	Error string `json:"error,omitempty"`
	// Web is the run's page when the payload gave one other than Replicate's usual
	// https://replicate.com/p/ID; use WebURL.
	Web string `json:"web,omitempty"`
	// CreatedAt and CompletedAt are the run's timestamps in UTC (zero when unknown).
	CreatedAt   time.Time `json:"created_at,omitzero"`
	CompletedAt time.Time `json:"completed_at,omitzero"`
	// PredictTime is metrics.predict_time in seconds: the compute time billed (0 when absent).
	PredictTime float64 `json:"predict_time,omitempty"`
	// ReceivedAt is when the relay accepted the event, in UTC.
	ReceivedAt time.Time `json:"received_at"`
}

// ItemFromEvent keeps what a digest needs of ev.
func ItemFromEvent(ev *relay.Event) Item {
	it := Item{
		Kind:        ev.Kind,
		ID:          ev.ID,
		Model:       ev.Model,
		Version:     ev.Version,
		Deployment:  ev.Deployment,
		Status:      ev.Status,
		Error:       ev.ErrorLine(),
		CreatedAt:   utc(ev.CreatedAt),
		CompletedAt: utc(ev.CompletedAt),
		PredictTime: ev.PredictTime(),
		ReceivedAt:  utc(ev.ReceivedAt),
	}
	if w := ev.WebURL(); w != defaultWebURL(ev.ID) {
		it.Web = w
	}
	return it
}

// MarshalItem encodes it as compact JSON, for storing: empty fields left out, and <, > and &
// written as they are rather than as \u003c and the like.
func MarshalItem(it Item) ([]byte, error) {
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(it); err != nil {
		return nil, err
	}
	return bytes.TrimSuffix(buf.Bytes(), []byte("\n")), nil
}

// UnmarshalItem decodes an item stored by MarshalItem.
func UnmarshalItem(b []byte) (Item, error) {
	var it Item
	err := json.Unmarshal(b, &it)
	return it, err
}

// WebURL is the run's page on replicate.com.
func (it Item) WebURL() string {
	if it.Web != "" {
		return it.Web
	}
	return defaultWebURL(it.ID)
}

// When is when the run ended, or, when that is unknown, when the event was received.
func (it Item) When() time.Time {
	if !it.CompletedAt.IsZero() {
		return it.CompletedAt
	}
	return it.ReceivedAt
}

// Subject is what the run is filed under: its model, else its deployment, else the start of its
// version, else "unknown model".
func (it Item) Subject() string {
	switch {
	case it.Model != "":
		return it.Model
	case it.Deployment != "":
		return it.Deployment
	case it.Version != "":
		v := []rune(it.Version)
		if len(v) > 12 {
			v = v[:12]
		}
		return "version " + string(v)
	}
	return "unknown model"
}

// PredictDuration is PredictTime as a duration; 0 when it is not a plausible time.
func (it Item) PredictDuration() time.Duration {
	if !(it.PredictTime > 0) || it.PredictTime > 1e9 { // also NaN
		return 0
	}
	return time.Duration(it.PredictTime * float64(time.Second))
}

// Failed reports whether the run failed: status failed, or aborted (its deadline passed before
// it started). A canceled run is not a failure: someone stopped it.
func (it Item) Failed() bool {
	return it.Status == replicate.Failed || it.Status == replicate.Aborted
}

// defaultWebURL is the page Replicate gives a run of that id (relay.Event.WebURL's fallback).
func defaultWebURL(id string) string {
	return "https://replicate.com/p/" + url.PathEscape(id)
}

func utc(t time.Time) time.Time {
	if t.IsZero() {
		return time.Time{}
	}
	return t.UTC()
}
