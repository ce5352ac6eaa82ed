package templates

import (
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/mlrelay/relay/relay"
	"github.com/mlrelay/relay/relay/digest"
	"github.com/mlrelay/relay/relay/replicate"
)

// longError is a 10 kB error line.
var longError = strings.Repeat("RuntimeError: tensor mismatch ", 342)[:10240]

type digestCase struct {
	name string
	d    func(t testing.TB) *digest.Summary
}

// digestCases are the sample digests and digests built to attack each target: hostile text in
// every string that comes from a payload, a 10 kB error, unsafe URLs, and a day in a time zone
// with daylight saving time.
func digestCases() []digestCase {
	samples := SampleSummaries()
	cases := []digestCase{
		{"day", func(testing.TB) *digest.Summary { return samples[0] }},
		{"no-failures", func(testing.TB) *digest.Summary { return samples[1] }},
		{"limited", func(testing.TB) *digest.Summary { return samples[2] }},
		{"empty-unnamed", func(testing.TB) *digest.Summary { return samples[3] }},
	}
	to := time.Date(2025, 11, 22, 9, 0, 0, 0, time.UTC)
	from := to.Add(-24 * time.Hour)
	item := func(kind relay.Kind, id string, st replicate.Status, model, errLine string, minutes int) digest.Item {
		at := from.Add(time.Duration(minutes) * time.Minute)
		return digest.Item{Kind: kind, ID: id, Model: model, Status: st, Error: errLine, CompletedAt: at, ReceivedAt: at, PredictTime: 4.2}
	}
	p := relay.KindPrediction
	cases = append(cases,
		digestCase{"hostile", func(testing.TB) *digest.Summary {
			unsafe := item(p, "<@U123>*x*", replicate.Failed, "<!channel>/_x_", "ValueError: "+hostile, 30)
			unsafe.Web = "javascript:alert(1)"
			return digest.Build("<b>team</b> @here", from, to, []digest.Item{
				item(p, "h1", replicate.Failed, hostile, "ValueError: "+hostile, 10),
				item(p, "h2", replicate.Failed, hostile, "# heading\n> quote\n- list "+hostile, 20),
				unsafe,
				item(relay.KindTraining, "t`1`", replicate.Failed, "*bold*/[evil](https://evil.example)", hostile, 40),
			}, 0)
		}},
		digestCase{"long-error", func(testing.TB) *digest.Summary {
			return digest.Build("daily", from, to, []digest.Item{
				item(p, "l1", replicate.Failed, "acme/long", longError, 10),
				item(relay.KindTraining, "l2", replicate.Failed, "acme/long", longError, 20),
			}, 0)
		}},
		digestCase{"berlin", func(t testing.TB) *digest.Summary {
			loc, err := time.LoadLocation("Europe/Berlin")
			if err != nil {
				t.Skipf("no time zone database: %v", err)
			}
			// A 25-hour day: the clocks went back at 03:00 on the 26th, and 02:30 came twice.
			start, end := time.Date(2025, 10, 25, 9, 0, 0, 0, loc), time.Date(2025, 10, 26, 9, 0, 0, 0, loc)
			first := item(p, "b1", replicate.Failed, "acme/a", "boom", 0)
			first.CompletedAt = time.Date(2025, 10, 26, 0, 30, 0, 0, time.UTC) // 02:30 CEST
			second := item(p, "b2", replicate.Failed, "acme/a", "boom", 0)
			second.CompletedAt = time.Date(2025, 10, 26, 1, 30, 0, 0, time.UTC) // 02:30 CET
			return digest.Build("daily", start, end, []digest.Item{first, second}, 0)
		}},
	)
	return cases
}

// TestDigestGolden renders every digest case for every target with the default digest set and
// compares the parts with testdata/digest-<case>.<target>.golden; -update rewrites them.
func TestDigestGolden(t *testing.T) {
	set := mustLoad(t, "")
	for _, c := range digestCases() {
		for _, target := range Targets() {
			t.Run(c.name+"/"+target, func(t *testing.T) {
				m, err := set.RenderDigest("digest", target, c.d(t))
				if err != nil {
					t.Fatal(err)
				}
				got := formatMessage(m)
				file := filepath.Join("testdata", "digest-"+c.name+"."+target+".golden")
				if *update {
					if err := os.WriteFile(file, []byte(got), 0o644); err != nil {
						t.Fatal(err)
					}
					return
				}
				want, err := os.ReadFile(file)
				if err != nil {
					t.Fatalf("%v (run go test -update to create it)", err)
				}
				if got != string(want) {
					t.Errorf("%s differs (run go test -update to accept):\n--- got\n%s\n--- want\n%s", file, got, want)
				}
			})
		}
	}
}

// TestDigestEveryTarget checks what every digest message needs, whatever the target: a title on
// one line that says what happened, no event, trimmed parts.
func TestDigestEveryTarget(t *testing.T) {
	s := mustLoad(t, "")
	for _, c := range digestCases() {
		for _, target := range Targets() {
			t.Run(c.name+"/"+target, func(t *testing.T) {
				m, err := s.RenderDigest("digest", target, c.d(t))
				if err != nil {
					t.Fatal(err)
				}
				if m.Event != nil || m.Rule != "" {
					t.Errorf("Event, Rule = %v, %q", m.Event, m.Rule)
				}
				if m.Title == "" || m.Body == "" || m.Context == "" || m.Text == "" {
					t.Errorf("empty part in %+v", m)
				}
				if strings.Contains(m.Title, "\n") || !strings.Contains(strings.ToLower(m.Title), "failure digest") {
					t.Errorf("title %q", m.Title)
				}
				for _, p := range []string{m.Title, m.Body, m.Context, m.Text} {
					if p != strings.TrimSpace(p) {
						t.Errorf("part not trimmed: %q", p)
					}
				}
			})
		}
	}
}

func TestDigestTitle(t *testing.T) {
	s := mustLoad(t, "")
	to := time.Date(2025, 11, 22, 9, 0, 0, 0, time.UTC)
	n := 0
	fail := func(model string) digest.Item {
		n++
		return digest.Item{Kind: relay.KindPrediction, ID: fmt.Sprint("f", n), Model: model, Status: replicate.Failed}
	}
	var items []digest.Item
	for i := range 37 {
		items = append(items, fail([]string{"a/1", "a/2", "a/3", "a/4"}[i%4]))
	}
	training := digest.Item{Kind: relay.KindTraining, ID: "t", Status: replicate.Failed}
	ok := digest.Item{Kind: relay.KindPrediction, ID: "ok", Status: replicate.Succeeded}
	tests := []struct {
		name  string
		from  time.Time
		items []digest.Item
		want  string
	}{
		{"daily", to.Add(-24 * time.Hour), items, "Daily failure digest: 37 failed predictions on 4 models, 22 Nov"},
		{"one of each", to.Add(-24 * time.Hour), []digest.Item{fail("a/1"), training}, "Daily failure digest: 1 failed prediction on 1 model, 1 failed training, 22 Nov"},
		{"trainings only", to.Add(-time.Hour), []digest.Item{training}, "Hourly failure digest: 1 failed training, 22 Nov 09:00"},
		{"weekly", to.Add(-7 * 24 * time.Hour), []digest.Item{ok, ok}, "Weekly failure digest: no failures in 1 run, 15 Nov – 22 Nov"},
		{"other", to.Add(-6 * time.Hour), []digest.Item{ok}, "Failure digest: no failures in 1 run, 22 Nov 09:00"},
		{"across years", time.Date(2024, 12, 29, 9, 0, 0, 0, time.UTC), []digest.Item{ok}, "Failure digest: no failures in 1 run, 29 Dec 2024 – 22 Nov 2025"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m, err := s.RenderDigest("digest", "email", digest.Build("d", tt.from, to, tt.items, 0))
			if err != nil {
				t.Fatal(err)
			}
			if m.Title != tt.want {
				t.Errorf("Title = %q\nwant    %q", m.Title, tt.want)
			}
		})
	}
}

// TestDigestSetsApart checks that digest sets and event sets do not mix: each is listed, checked
// and rendered by its own methods, and using one for the other is a clear error.
func TestDigestSetsApart(t *testing.T) {
	s := mustLoad(t, "")
	if got := s.Names(); !slices.Equal(got, []string{"default"}) {
		t.Errorf("Names() = %q", got)
	}
	if got := s.DigestNames(); !slices.Equal(got, []string{"digest"}) {
		t.Errorf("DigestNames() = %q", got)
	}
	for _, target := range Targets() {
		if s.Has("digest", target) || !s.HasDigest("digest", target) || s.HasDigest("default", target) {
			t.Errorf("%s: Has(digest) %v, HasDigest(digest) %v, HasDigest(default) %v", target,
				s.Has("digest", target), s.HasDigest("digest", target), s.HasDigest("default", target))
		}
	}
	if err := s.CheckDigests(); err != nil {
		t.Errorf("CheckDigests: %v", err)
	}
	ev := event(t, "prediction-failed.json", nil)
	d := SampleSummaries()[0]
	errs := []struct {
		name string
		err  func() error
		want string
	}{
		{"an event with a digest set", func() error { _, err := s.Render("digest", "slack", ev); return err },
			`template set "digest" is a digest set: it renders digests, not events`},
		{"a digest with an event set", func() error { _, err := s.RenderDigest("default", "slack", d); return err },
			`template set "default" is not a digest set`},
		{"an unknown digest set", func() error { _, err := s.RenderDigest("digest.nope", "slack", d); return err },
			`template set "digest.nope" has no slack.title or slack.body`},
		{"an unknown target", func() error { _, err := s.RenderDigest("digest", "pager", d); return err },
			`unknown template target "pager"`},
		{"no summary", func() error { _, err := s.RenderDigest("digest", "slack", nil); return err },
			"render digest: no summary"},
	}
	for _, tt := range errs {
		t.Run(tt.name, func(t *testing.T) {
			if err := tt.err(); err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("error = %v, want %q", err, tt.want)
			}
		})
	}
}

// TestDigestUserSets checks a digest set of the user's own, and that a broken one fails Check
// at load rather than when the digest is due.
func TestDigestUserSets(t *testing.T) {
	s := mustLoad(t, writeDir(t, map[string]string{
		"team.tmpl": `{{define "digest.team.slack.title"}}{{.FailedPredictions}} failed for {{.Name}}{{end}}
{{define "digest.team.text.body"}}{{range .Models}}{{.Model}} {{.Failures}}{{"\n"}}{{end}}{{end}}`,
	}))
	if got := s.DigestNames(); !slices.Equal(got, []string{"digest", "digest.team"}) {
		t.Errorf("DigestNames() = %q", got)
	}
	if err := s.Check(); err != nil {
		t.Errorf("Check: %v", err)
	}
	d := SampleSummaries()[0]
	m, err := s.RenderDigest("digest.team", "slack", d)
	if err != nil {
		t.Fatal(err)
	}
	// Slack has no text of its own: the text target's body, escaped for Slack.
	if m.Title != "3 failed for daily" || m.Text != "stability-ai/sdxl 2\nacme/flux 1" {
		t.Errorf("got %+v", m)
	}

	broken := mustLoad(t, writeDir(t, map[string]string{
		"broken.tmpl": `{{define "digest.broken.slack.title"}}{{.NoSuchField}}{{end}}`,
	}))
	if err := broken.Check(); err == nil || !strings.Contains(err.Error(), "NoSuchField") || !strings.Contains(err.Error(), "sample digest") {
		t.Errorf("Check = %v, want the broken digest template named", err)
	}
}

// TestDigestHostileNeverRaw checks every digest case as TestHostileNeverRaw checks events: no
// Slack part holds live markup or a mention, no Discord part a mention that could ping or
// formatting from a payload, no email HTML part live markup, no plain part an escape sequence.
func TestDigestHostileNeverRaw(t *testing.T) {
	s := mustLoad(t, "")
	controls := []string{"\x1b", "\u202e", "\x00", "\x07", "\r"}
	mentions := []string{"@everyone", "@here", "<@", "<#", "javascript:"}
	markdown := append([]string{"*bold*", "_it_", "~s~", "`code`", "[evil", "\n#", "\n>", "\n- list"}, mentions...)
	html := []string{"<script", "</script>", "<!channel>", "<@U123>", "<http", "<b>", "javascript:"}
	forbidden := map[string]map[string][]string{
		"slack": {"": {"<script", "</script>", "<!channel>", "<!here>", "<@U123>", "<http://x|y>", "<b>",
			"*bold*", "_it_", "~s~", "`code`", "@everyone", "@here", "javascript:"}},
		"text":    {"": controls},
		"discord": {"title": mentions, "context": mentions, "body": markdown, "text": markdown},
		"email":   {"title": append([]string{"\n", "\t"}, controls...), "body": html, "context": html, "text": controls},
	}
	for _, c := range digestCases() {
		for _, target := range Targets() {
			t.Run(c.name+"/"+target, func(t *testing.T) {
				m, err := s.RenderDigest("digest", target, c.d(t))
				if err != nil {
					t.Fatal(err)
				}
				for name, part := range map[string]string{"title": m.Title, "body": m.Body, "context": m.Context, "text": m.Text} {
					f, ok := forbidden[target][name]
					if !ok {
						f = forbidden[target][""]
					}
					shown := markupShown(target, part)
					for _, f := range f {
						if strings.Contains(shown, f) {
							t.Errorf("%s contains %q: %q", name, f, part)
						}
					}
				}
				// The 10 kB error is cut wherever it is shown.
				if c.name == "long-error" {
					for name, part := range map[string]string{"body": m.Body, "text": m.Text} {
						if targets[target].html && name == "body" {
							part = htmlText(part)
						}
						if n := len([]rune(part)); n > 3000 {
							t.Errorf("%s is %d characters", name, n)
						}
					}
				}
			})
		}
	}
}

var (
	codeSpan       = regexp.MustCompile("(?s)```.*?```|`[^`\n]*`")
	discordEscaped = regexp.MustCompile(`\\.`)
)

// markupShown is the part of a Slack or Discord text that its markup applies to: code spans and
// blocks, shown as they are, are left out, and so are the characters Discord shows escaped.
func markupShown(target, s string) string {
	switch target {
	case "slack":
		return codeSpan.ReplaceAllString(s, "")
	case "discord":
		return codeSpan.ReplaceAllString(discordEscaped.ReplaceAllString(s, ""), "")
	}
	return s
}

func TestDigestConcurrentRender(t *testing.T) {
	s := mustLoad(t, "")
	d := SampleSummaries()[0]
	want, err := s.RenderDigest("digest", "email", d)
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan relay.Message)
	for range 8 {
		go func() {
			m, _ := s.RenderDigest("digest", "email", d)
			done <- m
		}()
	}
	for range 8 {
		if m := <-done; m.Body != want.Body || m.Text != want.Text {
			t.Error("concurrent renders differ")
		}
	}
}

// TestDigestNoPeriod renders a summary without a period, as a preview of a digest never sent
// might build: no empty markup where the period would be.
func TestDigestNoPeriod(t *testing.T) {
	s := mustLoad(t, "")
	d := digest.Build("", time.Time{}, time.Time{}, nil, 0)
	for _, target := range Targets() {
		m, err := s.RenderDigest("digest", target, d)
		if err != nil {
			t.Fatal(err)
		}
		if m.Title != "Failure digest: no runs" || strings.Contains(m.Body, "**") || strings.Contains(m.Body, "* ·") {
			t.Errorf("%s: %+v", target, m)
		}
	}
}
