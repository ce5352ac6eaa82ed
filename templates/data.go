package templates

import (
	"bytes"
	"encoding/json"
	"net/url"
	"regexp"
	"strings"
	"time"

	"github.com/mlrelay/relay/relay"
	"github.com/mlrelay/relay/relay/replicate"
)

// Data is what a template sees (its dot): one event, seen through the target being rendered.
// Every string that comes from the payload or the hook URL (prompt, input values, error, logs,
// output, meta, model, version, ids) is already escaped for the target, and every URL has been
// checked to be http or https and made safe to print bare, so a template can print any field
// as it is. For Slack that means &, < and > are entities and formatting characters typed by a
// user do not format; for Discord, markdown characters are backslash-escaped and mentions
// (@everyone, @here, <@id>, <@&id>, <#id>) cannot ping; for plain text, escape sequences and
// control characters are gone. For email's HTML parts, strings are only cleaned as for plain
// text and NOT escaped for HTML: html/template escapes each where it is printed (in text, an
// attribute, a URL). Parts shown as plain text (Discord's title and context, email's title and
// text) see the plain-text view, with Discord's mentions still neutralised.
//
// Raw is the exception: the event as it arrived, unescaped, for deliberate use through the
// escape, code and link functions.
type Data struct {
	// Target is the name of the target being rendered: "slack", "discord", "email" or "text".
	Target string
	// Raw is the event itself, NOT escaped. Printing a string from it prints exactly what the
	// payload held; pass it through escape (or code, link) first.
	Raw *relay.Event

	// ID is the prediction or training id.
	ID string
	// ShortID is the first six characters of the id and an ellipsis, for footers.
	ShortID string
	// MessageID is the webhook-id of the delivery.
	MessageID string
	// Kind is "prediction" or "training".
	Kind string
	// Training is true for trainings.
	Training bool
	// Status is starting, processing, succeeded, failed, canceled or aborted.
	Status string
	// Terminal is true when the status ends the run (succeeded, failed, canceled, aborted).
	Terminal bool
	// Succeeded, Failed, Canceled and Aborted are true for that status; Aborted means the
	// deadline passed before the run started.
	Succeeded, Failed, Canceled, Aborted bool
	// Model is the model ("owner/name") that ran.
	Model string
	// Version is the version id that ran ("hidden" for official models).
	Version string
	// Deployment is the deployment ("owner/name") the prediction ran on, or "".
	Deployment string
	// Source is where the run was created: "api" or "web".
	Source string
	// Subject is what the message is about, for titles: the new model of a finished training,
	// else Model, else Deployment, else the start of Version.
	Subject string
	// Prompt is input.prompt when it is a string.
	Prompt string
	// PromptShort is Prompt on one line, cut to 200 characters.
	PromptShort string
	// Input holds every input value as text: strings as they are, other values as JSON.
	Input map[string]string
	// Meta holds the query parameters of the hook URL (the first value of each).
	Meta map[string]string
	// Metrics holds the metrics (predict_time, total_time, token counts) as text.
	Metrics map[string]string
	// Error is the whole error message.
	Error string
	// ErrorLine is the error reduced to its last non-empty line, at most 300 characters.
	ErrorLine string
	// Output is the output as text: "" when it is null or only file URLs, a string as it is,
	// a list of strings joined together (language models stream their text that way), and
	// anything else as JSON.
	Output string
	// Files lists the http(s) URLs found in the output, in order.
	Files []string
	// Images lists the Files that are images (png, jpg, jpeg, webp, gif).
	Images []string
	// WebURL is the run's page on replicate.com.
	WebURL string
	// Duration is the run time from start to completion (0 until both are known).
	Duration time.Duration
	// QueueTime is the wait from creation to start (0 until started).
	QueueTime time.Duration
	// PredictTime is metrics.predict_time (0 when absent).
	PredictTime time.Duration
	// CreatedAt, StartedAt and CompletedAt are the run's timestamps in UTC (zero when not
	// reached); ReceivedAt is when the relay accepted the delivery.
	CreatedAt, StartedAt, CompletedAt, ReceivedAt time.Time
	// When is the time of the latest step: CompletedAt, else StartedAt, else CreatedAt, else
	// ReceivedAt.
	When time.Time
	// NewVersion is the version a training created ("owner/name:hash"), or "".
	NewVersion string
	// NewModel is the model of NewVersion ("owner/name"), or "".
	NewModel string
	// NewModelURL is the page of NewModel on replicate.com, where it can be run, or "".
	NewModelURL string
	// NewVersionURL is the page of NewVersion on replicate.com, or "".
	NewVersionURL string
	// Weights is the URL of a training's weights, or "".
	Weights string
	// DataRemoved is true when Replicate has deleted the run's inputs and outputs.
	DataRemoved bool

	t *target
}

// versionRE matches "owner/name:hash", the version a training creates.
var versionRE = regexp.MustCompile(`^([A-Za-z0-9][A-Za-z0-9._-]*)/([A-Za-z0-9][A-Za-z0-9._-]*):([A-Za-z0-9]+)$`)

// newData builds the view of ev for target t.
func newData(ev *relay.Event, t *target) *Data {
	esc := t.text
	d := &Data{
		Target:      t.name,
		Raw:         ev,
		ID:          esc(ev.ID),
		ShortID:     esc(truncate(ev.ID, 7)),
		MessageID:   esc(ev.MessageID),
		Kind:        esc(string(ev.Kind)),
		Training:    ev.Kind == relay.KindTraining,
		Status:      esc(string(ev.Status)),
		Terminal:    ev.Terminal(),
		Succeeded:   ev.Status == replicate.Succeeded,
		Failed:      ev.Status == replicate.Failed,
		Canceled:    ev.Status == replicate.Canceled,
		Aborted:     ev.Status == replicate.Aborted,
		Model:       esc(ev.Model),
		Version:     esc(ev.Version),
		Deployment:  esc(ev.Deployment),
		Source:      esc(ev.Source),
		Prompt:      esc(ev.Prompt()),
		PromptShort: esc(truncate(oneLine(clean(ev.Prompt())), 200)),
		Input:       textMap(ev.Input, esc),
		Meta:        escapeMap(ev.Meta, esc),
		Metrics:     textMap(ev.Metrics, esc),
		Error:       esc(string(ev.Error)),
		ErrorLine:   esc(ev.ErrorLine()),
		Output:      esc(outputText(ev.OutputValue())),
		Files:       checkedURLs(ev.Files(), t),
		Images:      checkedURLs(ev.Images(), t),
		WebURL:      webURL(ev, t),
		Duration:    ev.Duration(),
		QueueTime:   ev.QueueTime(),
		PredictTime: time.Duration(ev.PredictTime() * float64(time.Second)),
		CreatedAt:   utc(ev.CreatedAt),
		StartedAt:   utc(ev.StartedAt),
		CompletedAt: utc(ev.CompletedAt),
		ReceivedAt:  utc(ev.ReceivedAt),
		NewVersion:  esc(ev.NewVersion()),
		DataRemoved: ev.DataRemoved,
		t:           t,
	}
	for _, w := range []time.Time{d.CompletedAt, d.StartedAt, d.CreatedAt, d.ReceivedAt} {
		if !w.IsZero() {
			d.When = w
			break
		}
	}
	if m := versionRE.FindStringSubmatch(ev.NewVersion()); m != nil {
		page := "https://replicate.com/" + url.PathEscape(m[1]) + "/" + url.PathEscape(m[2])
		d.NewModel = esc(m[1] + "/" + m[2])
		d.NewModelURL = t.url(page)
		d.NewVersionURL = t.url(page + "/versions/" + url.PathEscape(m[3]))
	}
	if u, ok := safeURL(ev.Weights()); ok {
		d.Weights = t.url(u)
	}
	switch {
	case d.Training && d.NewModel != "":
		d.Subject = d.NewModel
	case d.Model != "":
		d.Subject = d.Model
	case d.Deployment != "":
		d.Subject = d.Deployment
	case ev.Version != "":
		d.Subject = esc(truncate(ev.Version, 13))
	default:
		d.Subject = "unknown model"
	}
	return d
}

// Logs is the whole log, escaped. Logs can be long: prefer LogTail.
func (d *Data) Logs() string {
	return d.t.text(strings.Trim(clean(string(d.Raw.Logs)), "\n"))
}

// LogTail is the last n lines of the log (10 when n is not given), each cut to 300 characters,
// escaped.
func (d *Data) LogTail(n ...int) string {
	k := 10
	if len(n) > 0 {
		k = n[0]
	}
	s := strings.TrimRight(clean(string(d.Raw.Logs)), "\n \t")
	if k <= 0 || s == "" {
		return ""
	}
	lines := strings.Split(s, "\n")
	if len(lines) > k {
		lines = lines[len(lines)-k:]
	}
	for i, l := range lines {
		lines[i] = truncate(strings.TrimRight(l, " \t"), 300)
	}
	return d.t.text(strings.Join(lines, "\n"))
}

func utc(t time.Time) time.Time {
	if t.IsZero() {
		return time.Time{}
	}
	return t.UTC()
}

// webURL is the run's page: urls.web when it is a safe URL, else the page Replicate derives
// from the id.
func webURL(ev *relay.Event, t *target) string {
	if u, ok := safeURL(ev.WebURL()); ok {
		return t.url(u)
	}
	return t.url("https://replicate.com/p/" + url.PathEscape(ev.ID))
}

func checkedURLs(us []string, t *target) []string {
	var out []string
	for _, u := range us {
		if s, ok := safeURL(u); ok {
			out = append(out, t.url(s))
		}
	}
	return out
}

func escapeMap(m map[string]string, esc func(string) string) map[string]string {
	out := make(map[string]string, len(m))
	for k, v := range m {
		out[esc(k)] = esc(v)
	}
	return out
}

func textMap(m map[string]any, esc func(string) string) map[string]string {
	out := make(map[string]string, len(m))
	for k, v := range m {
		out[esc(k)] = esc(valueText(v))
	}
	return out
}

// valueText renders a JSON value as text: a string as it is, null as "", the rest as JSON.
func valueText(v any) string {
	switch v := v.(type) {
	case nil:
		return ""
	case string:
		return v
	}
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false) // escaping is the target's job; \u003c would only be noise
	if err := enc.Encode(v); err != nil {
		return ""
	}
	return strings.TrimSuffix(buf.String(), "\n")
}

// outputText is the output as text; see Data.Output.
func outputText(v any) string {
	switch v := v.(type) {
	case nil:
		return ""
	case string:
		if _, ok := safeURL(v); ok {
			return ""
		}
		return v
	case []any:
		var b strings.Builder
		files := 0
		for _, e := range v {
			s, ok := e.(string)
			if !ok {
				return valueText(v)
			}
			if _, ok := safeURL(s); ok {
				files++
			}
			b.WriteString(s)
		}
		if files == len(v) {
			return ""
		}
		if files > 0 {
			return valueText(v)
		}
		return b.String()
	}
	return valueText(v)
}
