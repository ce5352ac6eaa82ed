package templates

import (
	"bytes"
	"encoding/json"
	"math"
	"net/url"
	"regexp"
	"slices"
	"strconv"
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

// eventValues are what Data derives from an event before escaping. A message needs up to three
// views of its event (Slack's, and the text target's for the fallback text; Discord's, its plain
// view and the text target's), and deriving these (decoding the output, checking each URL,
// writing numbers as JSON) costs more than escaping them, so Render derives them once and each
// view only escapes.
type eventValues struct {
	ev *relay.Event
	// prompt is input.prompt; promptShort is it on one line, cut to 200 characters.
	prompt, promptShort string
	// input and metrics are the values as text (valueText), in no particular order.
	input, metrics    []keyText
	errorLine, output string
	// files are the output URLs that passed safeURL.
	files []outputFile
	// webURL is urls.web when it passed safeURL, else the page Replicate derives from the id.
	// newVersion is the training's version; when it is well formed, newModel is its model and
	// modelPage and versionPage their pages.
	webURL, newVersion               string
	newModel, modelPage, versionPage string
	// weights passed safeURL, or is "".
	weights                                     string
	duration, queueTime, predictTime            time.Duration
	created, started, completed, received, when time.Time
}

// keyText is an entry of a map of values as text.
type keyText struct{ key, text string }

// outputFile is an output URL that passed safeURL, and whether it names an image.
type outputFile struct {
	url   string // as safeURL returned it
	image bool
}

// newEventValues derives what the views of ev share.
func newEventValues(ev *relay.Event) *eventValues {
	e := &eventValues{
		ev:          ev,
		prompt:      ev.Prompt(),
		input:       valueTexts(ev.Input),
		metrics:     valueTexts(ev.Metrics),
		errorLine:   ev.ErrorLine(),
		output:      outputText(ev.OutputValue()),
		newVersion:  ev.NewVersion(),
		duration:    ev.Duration(),
		queueTime:   ev.QueueTime(),
		predictTime: time.Duration(ev.PredictTime() * float64(time.Second)),
		created:     utc(ev.CreatedAt),
		started:     utc(ev.StartedAt),
		completed:   utc(ev.CompletedAt),
		received:    utc(ev.ReceivedAt),
	}
	e.promptShort = truncate(oneLine(clean(e.prompt)), 200)
	// ev.Images is ev.Files filtered by relay.IsImageURL: filtering here walks the output once.
	for _, f := range ev.Files() {
		if u, ok := safeURL(f); ok {
			e.files = append(e.files, outputFile{u, relay.IsImageURL(f)})
		}
	}
	if u, ok := safeURL(ev.WebURL()); ok {
		e.webURL = u
	} else {
		e.webURL = "https://replicate.com/p/" + url.PathEscape(ev.ID)
	}
	for _, w := range []time.Time{e.completed, e.started, e.created, e.received} {
		if !w.IsZero() {
			e.when = w
			break
		}
	}
	if m := versionRE.FindStringSubmatch(e.newVersion); m != nil {
		e.newModel = m[1] + "/" + m[2]
		e.modelPage = "https://replicate.com/" + url.PathEscape(m[1]) + "/" + url.PathEscape(m[2])
		e.versionPage = e.modelPage + "/versions/" + url.PathEscape(m[3])
	}
	if u, ok := safeURL(ev.Weights()); ok {
		e.weights = u
	}
	return e
}

// data builds the view of the event for target t.
func (e *eventValues) data(t *target) *Data {
	ev := e.ev
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
		Prompt:      esc(e.prompt),
		PromptShort: esc(e.promptShort),
		Input:       escapeTexts(e.input, esc),
		Meta:        escapeMap(ev.Meta, esc),
		Metrics:     escapeTexts(e.metrics, esc),
		Error:       esc(string(ev.Error)),
		ErrorLine:   esc(e.errorLine),
		Output:      esc(e.output),
		WebURL:      t.url(e.webURL),
		Duration:    e.duration,
		QueueTime:   e.queueTime,
		PredictTime: e.predictTime,
		CreatedAt:   e.created,
		StartedAt:   e.started,
		CompletedAt: e.completed,
		ReceivedAt:  e.received,
		When:        e.when,
		NewVersion:  esc(e.newVersion),
		DataRemoved: ev.DataRemoved,
		t:           t,
	}
	for _, f := range e.files {
		u := t.url(f.url)
		d.Files = append(d.Files, u)
		if f.image {
			d.Images = append(d.Images, u)
		}
	}
	if e.modelPage != "" {
		d.NewModel = esc(e.newModel)
		d.NewModelURL = t.url(e.modelPage)
		d.NewVersionURL = t.url(e.versionPage)
	}
	if e.weights != "" {
		d.Weights = t.url(e.weights)
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
	if k <= 0 {
		return ""
	}
	lines := d.lastLines(k)
	if len(lines) == 0 {
		return ""
	}
	for i, l := range lines {
		lines[i] = truncate(strings.TrimRight(l, " \t"), 300)
	}
	return d.t.text(strings.Join(lines, "\n"))
}

// lastLines is the end of strings.Split(strings.TrimRight(clean(logs), "\n \t"), "\n"): its last
// n lines at most, none when the log is blank.
func (d *Data) lastLines(n int) []string {
	logs := string(d.Raw.Logs)
	if spansLines(logs) {
		s := strings.TrimRight(clean(logs), "\n \t")
		if s == "" {
			return nil
		}
		lines := strings.Split(s, "\n")
		return lines[max(len(lines)-n, 0):]
	}
	// clean works line by line here, so only the last lines need it, read from the end: a long
	// log is neither cleaned nor split whole.
	var lines []string // from the last
	for end := len(logs); len(lines) < n; {
		start := strings.LastIndexByte(logs[:end], '\n') + 1
		l := clean(logs[start:end])
		if len(lines) == 0 {
			// The white space at the end of the log is trimmed, lines of it included.
			l = strings.TrimRight(l, " \t")
		}
		if l != "" || len(lines) > 0 {
			lines = append(lines, l)
		}
		if start == 0 {
			break
		}
		end = start - 1
	}
	slices.Reverse(lines)
	return lines
}

// spansLines reports whether clean could treat a line of s differently from the same line
// alone: only a string sequence (ESC followed by ], P, X, ^ or _, which runs to its
// terminator) can remove text beyond the end of its line. Every other sequence ends at a
// newline, invalid bytes and removed characters are each on one line, and carriage returns
// act within their line.
func spansLines(s string) bool {
	for {
		i := strings.IndexByte(s, 0x1b)
		if i < 0 || i+1 == len(s) {
			return false
		}
		if strings.IndexByte("]PX^_", s[i+1]) >= 0 {
			return true
		}
		s = s[i+1:]
	}
}

func utc(t time.Time) time.Time {
	if t.IsZero() {
		return time.Time{}
	}
	return t.UTC()
}

func escapeMap(m map[string]string, esc func(string) string) map[string]string {
	out := make(map[string]string, len(m))
	for k, v := range m {
		out[esc(k)] = esc(v)
	}
	return out
}

// valueTexts writes each value of m as text (valueText).
func valueTexts(m map[string]any) []keyText {
	out := make([]keyText, 0, len(m))
	for k, v := range m {
		out = append(out, keyText{k, valueText(v)})
	}
	return out
}

func escapeTexts(kts []keyText, esc func(string) string) map[string]string {
	out := make(map[string]string, len(kts))
	for _, kt := range kts {
		out[esc(kt.key)] = esc(kt.text)
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
	case bool:
		return strconv.FormatBool(v)
	case float64:
		// JSON numbers decode as float64, and encoding/json writes those in this range as
		// strconv does; it is much the cheaper. Exponents, -0 and NaN go the long way.
		if a := math.Abs(v); a >= 1e-6 && a < 1e21 || v == 0 && !math.Signbit(v) {
			return strconv.FormatFloat(v, 'f', -1, 64)
		}
	}
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false) // escaping is the target's job; \u003c would only be noise
	if err := enc.Encode(v); err != nil {
		return ""
	}
	return strings.TrimSuffix(buf.String(), "\n")
}

// isOutputFile reports whether an output string is a file, shown among the files rather than
// as text: a URL with nothing around it, as relay.Event.Files counts one. (" https://…", a
// token of a language model's streamed output, is text.)
func isOutputFile(s string) bool {
	_, ok := safeURL(s)
	return ok && s == strings.TrimSpace(s)
}

// outputText is the output as text; see Data.Output.
func outputText(v any) string {
	switch v := v.(type) {
	case nil:
		return ""
	case string:
		if isOutputFile(v) {
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
			if isOutputFile(s) {
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
