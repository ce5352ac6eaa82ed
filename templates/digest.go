package templates

import (
	"errors"
	"fmt"
	"sort"
	"strings"
	"time"

	"github.com/mlrelay/relay/relay"
	"github.com/mlrelay/relay/relay/digest"
	"github.com/mlrelay/relay/relay/replicate"
)

// Digest sets render digests (a digest.Summary) rather than events. They are the sets named
// "digest" or "digest.NAME" ("digest.vision"), made of the same parts for the same targets as an
// event set, with a DigestData as their dot. Names, Has, Render and Check leave them out, and
// DigestNames, HasDigest, RenderDigest and CheckDigests are their counterparts.

// isDigestSet reports whether the set of that name renders digests.
func isDigestSet(set string) bool {
	return set == "digest" || strings.HasPrefix(set, "digest.")
}

// DigestNames lists the digest sets that have a title or body for at least one known target,
// sorted.
func (s *Set) DigestNames() []string {
	seen := map[string]bool{}
	var names []string
	for _, t := range s.base.Templates() {
		set, target, part, ok := splitName(t.Name())
		if ok && isDigestSet(set) && targets[target] != nil && (part == "title" || part == "body") && !seen[set] {
			seen[set] = true
			names = append(names, set)
		}
	}
	sort.Strings(names)
	return names
}

// HasDigest reports whether the digest set can be rendered for target: the target is known, the
// name is a digest set's, and the set has its title or body.
func (s *Set) HasDigest(set, target string) bool {
	return targets[target] != nil && isDigestSet(set) &&
		(s.defined(set+"."+target+".title") || s.defined(set+"."+target+".body"))
}

// RenderDigest renders the digest set for target from the summary d, as Render does for an
// event: every string from the payloads (models, errors, ids) is escaped for the target, parts
// are trimmed and held to the target's limits, and Text falls back in the same order. The
// message has no Event and no Rule.
func (s *Set) RenderDigest(set, target string, d *digest.Summary) (relay.Message, error) {
	t := targets[target]
	if t == nil {
		return relay.Message{}, fmt.Errorf("unknown template target %q (known: %s)", target, strings.Join(Targets(), ", "))
	}
	if d == nil {
		return relay.Message{}, errors.New("render digest: no summary")
	}
	if !isDigestSet(set) {
		return relay.Message{}, fmt.Errorf("template set %q is not a digest set (digest sets are named digest or digest.NAME)", set)
	}
	if !s.HasDigest(set, target) {
		return relay.Message{}, fmt.Errorf("template set %q has no %s.title or %s.body", set, target, target)
	}
	r := &rendering{s: s, has: s.HasDigest, dot: digestDot(d)}
	return r.message(set, t)
}

// DigestData is what a digest template sees (its dot): a digest.Summary seen through the target
// being rendered. As in Data, every string that comes from a payload (model names, errors, ids,
// statuses) is escaped for the target, and every URL checked and made safe to print bare; for
// email's HTML parts strings are only cleaned, html/template escaping them where they are
// printed. Times are in the digest's time zone (that of the period's end).
//
// Raw is the summary itself, NOT escaped.
type DigestData struct {
	// Target is the name of the target being rendered.
	Target string
	// Raw is the summary, NOT escaped.
	Raw *digest.Summary

	// Name is the digest's name.
	Name string
	// Cadence is "Hourly", "Daily" or "Weekly" when the period is about that long, else "".
	Cadence string
	// Date names the period briefly, for titles: "22 Nov" for a day (the day it ends), "22 Nov
	// 14:00" for a shorter period, "15 Nov – 22 Nov" for a longer one.
	Date string
	// Period is the period in full: "21 Nov 09:00 – 22 Nov 09:00 CET" ("25 Oct 09:00 CEST – 26
	// Oct 09:00 CET" across a change of the clocks), or "until 22 Nov 09:00 CET" when it has no
	// start.
	Period string
	// From and To bound the period.
	From, To time.Time

	// Total is the number of runs; ByStatus counts them by status and ByKind by kind.
	Total    int
	ByStatus []DigestCount
	ByKind   []DigestKind

	// Failures counts the failed runs (failed or aborted; canceled runs are not failures),
	// FailedPredictions and FailedTrainings by kind. FailedModels is the number of models with
	// failed predictions.
	Failures, FailedPredictions, FailedTrainings, FailedModels int
	// LostTime is the compute time of the failed runs.
	LostTime time.Duration
	// Models are the models with failed predictions, as listed; MoreModels and
	// MoreModelFailures count those left out and their failures.
	Models                        []DigestModel
	MoreModels, MoreModelFailures int
	// Trainings are the trainings listed; MoreTrainings counts those left out.
	Trainings     []DigestRun
	MoreTrainings int
	// Limit is the limit the lists were held to.
	Limit int
}

// DigestCount is a number of runs with one status.
type DigestCount struct {
	// Status is the status, escaped.
	Status string
	Count  int
}

// DigestKind is the number of runs of one kind ("prediction", "training") and their statuses.
type DigestKind struct {
	Kind     string
	Count    int
	ByStatus []DigestCount
}

// DigestModel is one model's failed predictions, grouped by error.
type DigestModel struct {
	// Model is the model, escaped.
	Model string
	// Failures counts the model's failed predictions; LostTime is their compute time.
	Failures int
	LostTime time.Duration
	// Groups are the failures grouped by error, as listed; MoreGroups and MoreFailures count
	// the groups left out and their failures.
	Groups                   []DigestGroup
	MoreGroups, MoreFailures int
}

// DigestGroup is one model's failures with the same error.
type DigestGroup struct {
	// Fingerprint is the errors' fingerprint, escaped.
	Fingerprint string
	// Example is the latest error line, escaped ("" when the failures have no error).
	Example string
	// Aborted is true for runs whose deadline passed before they started.
	Aborted bool
	// Count is the number of failures; First and Last when the first and the last one ended.
	Count       int
	First, Last time.Time
	// LostTime is the failures' compute time.
	LostTime time.Duration
	// Runs are the latest failures, for links; MoreRuns counts the others.
	Runs     []DigestRun
	MoreRuns int
}

// DigestRun is one run, listed with a link.
type DigestRun struct {
	// Kind, ID, Model, Status and Error (the error line) are escaped.
	Kind, ID, Model, Status, Error string
	// ShortID is the first six characters of the id and an ellipsis, for link labels.
	ShortID string
	// WebURL is the run's page on replicate.com.
	WebURL string
	// Succeeded and Failed are true for that status (Failed also for aborted runs).
	Succeeded, Failed bool
	// When is when the run ended (or was received).
	When time.Time
	// PredictTime is its compute time.
	PredictTime time.Duration
}

// newDigestData builds the view of d for target t.
func newDigestData(d *digest.Summary, t *target) *DigestData {
	esc := t.text
	loc := d.To.Location()
	in := func(tm time.Time) time.Time {
		if tm.IsZero() {
			return tm
		}
		return tm.In(loc)
	}
	counts := func(cs []digest.StatusCount) []DigestCount {
		var out []DigestCount
		for _, c := range cs {
			out = append(out, DigestCount{Status: esc(string(c.Status)), Count: c.Count})
		}
		return out
	}
	run := func(it digest.Item) DigestRun {
		return DigestRun{
			Kind: esc(string(it.Kind)), ID: esc(it.ID), ShortID: esc(truncate(it.ID, 7)),
			Model: esc(it.Subject()), Status: esc(string(it.Status)), Error: esc(it.Error),
			WebURL:    itemURL(it, t),
			Succeeded: it.Status == replicate.Succeeded, Failed: it.Failed(),
			When: in(it.When()), PredictTime: it.PredictDuration(),
		}
	}
	v := &DigestData{
		Target: t.name, Raw: d,
		Name:    esc(d.Name),
		Cadence: cadence(d.From, d.To),
		Date:    periodDate(d.From, d.To),
		Period:  periodText(d.From, d.To),
		From:    in(d.From), To: d.To,
		Total: d.Total, ByStatus: counts(d.ByStatus),
		Failures: d.Failures(), FailedPredictions: d.FailedPredictions, FailedTrainings: d.FailedTrainings,
		FailedModels: d.FailedModels, LostTime: d.LostTime,
		MoreModels: d.MoreModels, MoreModelFailures: d.MoreModelFailures,
		MoreTrainings: d.MoreTrainings, Limit: d.Limit,
	}
	for _, k := range d.ByKind {
		v.ByKind = append(v.ByKind, DigestKind{Kind: esc(string(k.Kind)), Count: k.Count, ByStatus: counts(k.ByStatus)})
	}
	for _, m := range d.Models {
		dm := DigestModel{Model: esc(m.Model), Failures: m.Failures, LostTime: m.LostTime,
			MoreGroups: m.MoreGroups, MoreFailures: m.MoreFailures}
		for _, g := range m.Groups {
			dg := DigestGroup{Fingerprint: esc(g.Fingerprint), Example: esc(g.Example), Aborted: g.Aborted,
				Count: g.Count, First: in(g.First), Last: in(g.Last), LostTime: g.LostTime, MoreRuns: g.MoreRuns}
			for _, it := range g.Runs {
				dg.Runs = append(dg.Runs, run(it))
			}
			dm.Groups = append(dm.Groups, dg)
		}
		v.Models = append(v.Models, dm)
	}
	for _, it := range d.Trainings {
		v.Trainings = append(v.Trainings, run(it))
	}
	return v
}

// Time writes a time of the period briefly, in the digest's zone: "14:05" on the day the
// period ends, "21 Nov 14:05" on another day, with the zone when the clocks have changed since
// ("02:30 CEST"); "" for the zero time.
func (d *DigestData) Time(t time.Time) string {
	if t.IsZero() {
		return ""
	}
	t = t.In(d.To.Location())
	layout := "15:04"
	if y, m, dd := t.Date(); d.To.IsZero() || y != d.To.Year() || m != d.To.Month() || dd != d.To.Day() {
		layout = "2 Jan 15:04"
	}
	if !d.To.IsZero() && t.Format("MST") != d.To.Format("MST") {
		layout += " MST"
	}
	return t.Format(layout)
}

// itemURL is the run's page when it is a safe URL, else the page Replicate derives from the id.
func itemURL(it digest.Item, t *target) string {
	if u, ok := safeURL(it.WebURL()); ok {
		return t.url(u)
	}
	return t.url(digest.Item{ID: it.ID}.WebURL())
}

// cadence names a period by its length: "Hourly", "Daily", "Weekly", or "". A day may be 23 or
// 25 hours long when clocks change.
func cadence(from, to time.Time) string {
	if from.IsZero() || to.IsZero() {
		return ""
	}
	switch d := to.Sub(from); {
	case d >= 55*time.Minute && d <= 65*time.Minute:
		return "Hourly"
	case d >= 22*time.Hour && d <= 26*time.Hour:
		return "Daily"
	case d >= 166*time.Hour && d <= 170*time.Hour:
		return "Weekly"
	}
	return ""
}

// periodDate names the period briefly; see DigestData.Date.
func periodDate(from, to time.Time) string {
	if to.IsZero() {
		return ""
	}
	switch d := to.Sub(from); {
	case from.IsZero():
		return to.Format("2 Jan")
	case d < 22*time.Hour:
		return to.Format("2 Jan 15:04")
	case d <= 26*time.Hour:
		return to.Format("2 Jan")
	}
	layout := "2 Jan"
	if from.In(to.Location()).Year() != to.Year() {
		layout = "2 Jan 2006"
	}
	return from.In(to.Location()).Format(layout) + " – " + to.Format(layout)
}

// periodText is the period in full; see DigestData.Period.
func periodText(from, to time.Time) string {
	switch {
	case to.IsZero():
		return ""
	case from.IsZero():
		return "until " + to.Format("2 Jan 15:04 MST")
	}
	from = from.In(to.Location())
	layout := "2 Jan 15:04"
	if from.Year() != to.Year() {
		layout = "2 Jan 2006 15:04"
	}
	start := layout
	if from.Format("MST") != to.Format("MST") { // the clocks changed in between
		start += " MST"
	}
	return from.Format(start) + " – " + to.Format(layout+" MST")
}

// CheckDigests renders every digest set for every target it has with sample summaries
// (SampleSummaries), as Check does for event sets.
func (s *Set) CheckDigests() error {
	var errs []error
	for _, set := range s.DigestNames() {
		for _, target := range Targets() {
			if !s.HasDigest(set, target) {
				continue
			}
			for i, d := range SampleSummaries() {
				if _, err := s.RenderDigest(set, target, d); err != nil {
					errs = append(errs, fmt.Errorf("with sample digest %d: %w", i+1, err))
					break
				}
			}
		}
	}
	return errors.Join(errs...)
}

// SampleSummaries returns digests of every shape a template must handle: an ordinary day of
// failures and trainings, a day without failures, and a summary with lists cut by their limit.
func SampleSummaries() []*digest.Summary {
	to := time.Date(2025, 11, 22, 9, 0, 0, 0, time.UTC)
	from := to.Add(-24 * time.Hour)
	at := func(minutes int) time.Time { return from.Add(time.Duration(minutes) * time.Minute) }
	item := func(kind relay.Kind, id string, st replicate.Status, model, errLine string, minutes int, predict float64) digest.Item {
		return digest.Item{Kind: kind, ID: id, Model: model, Status: st, Error: errLine,
			CompletedAt: at(minutes), ReceivedAt: at(minutes), PredictTime: predict}
	}
	p, tr := relay.KindPrediction, relay.KindTraining
	day := []digest.Item{
		item(p, "h2pq8d1rbnrj00cjx3ksw6tk5g", replicate.Failed, "stability-ai/sdxl", "CUDA out of memory. Tried to allocate 2.50 GiB", 60, 9.3),
		item(p, "q7vz2mcb3drj00cjx4krhbn9zm", replicate.Failed, "stability-ai/sdxl", "CUDA out of memory. Tried to allocate 1.00 GiB", 600, 8.1),
		item(p, "x1", replicate.Aborted, "acme/flux", "", 300, 0),
		item(p, "x2", replicate.Succeeded, "acme/flux", "", 301, 2),
		item(p, "x3", replicate.Canceled, "acme/flux", "", 302, 20),
		item(tr, "t1", replicate.Succeeded, "acme/sdxl-brand-style", "", 700, 1200),
		item(tr, "t2", replicate.Failed, "acme/sdxl-brand-style", "out of disk space", 800, 300),
	}
	quiet := []digest.Item{item(p, "ok1", replicate.Succeeded, "acme/flux", "", 10, 1)}
	kinds := []string{"CUDA out of memory. Tried to allocate %d MiB", "Prediction timed out after %ds", "NSFW content detected (%d)", "KeyError: 'input_%d'"}
	var many []digest.Item
	hour := 23 * 60 // minutes from the start of the day to the last hour
	for i := range 60 {
		many = append(many, item(p, fmt.Sprintf("m%02d", i), replicate.Failed, fmt.Sprintf("acme/model-%d", i%7),
			fmt.Sprintf(kinds[i%len(kinds)], i), hour+i, 1))
	}
	for i := range 5 {
		many = append(many, item(tr, fmt.Sprintf("t%d", i), replicate.Succeeded, "acme/trainer", "", hour+i, 10))
	}
	return []*digest.Summary{
		digest.Build("daily", from, to, day, 0),
		digest.Build("daily", from, to, quiet, 0),
		digest.Build("hourly", to.Add(-time.Hour), to, many, 3),
		digest.Build("", time.Time{}, to, nil, 0),
	}
}

// digestDot makes the dot of each view of a summary.
func digestDot(d *digest.Summary) func(*target) any {
	return func(v *target) any { return newDigestData(d, v) }
}
