package templates

import (
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/mlrelay/relay/relay"
	"github.com/mlrelay/relay/relay/replicate"
)

// writeDir creates a template directory holding files (name → content).
func writeDir(t *testing.T, files map[string]string) string {
	t.Helper()
	dir := t.TempDir()
	for name, body := range files {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

func mustLoad(t *testing.T, dir string) *Set {
	t.Helper()
	s, err := Load(dir)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func TestDefaultSet(t *testing.T) {
	s := mustLoad(t, "")
	if got := s.Names(); !slices.Equal(got, []string{"default"}) {
		t.Errorf("Names() = %q, want [default]", got)
	}
	for _, target := range Targets() {
		if !s.Has("default", target) {
			t.Errorf("Has(default, %s) = false", target)
		}
	}
	if err := s.Check(); err != nil {
		t.Errorf("Check: %v", err)
	}
}

// TestEveryEventEveryTarget renders each sample event and checks the parts every message needs.
func TestEveryEventEveryTarget(t *testing.T) {
	s := mustLoad(t, "")
	events, err := SampleEvents()
	if err != nil {
		t.Fatal(err)
	}
	for _, ev := range events {
		for _, target := range Targets() {
			t.Run(string(ev.Kind)+"-"+string(ev.Status)+"/"+target, func(t *testing.T) {
				m, err := s.Render("default", target, ev)
				if err != nil {
					t.Fatal(err)
				}
				if m.Event != ev || m.Rule != "" {
					t.Errorf("Event = %p, Rule = %q; want the event and no rule", m.Event, m.Rule)
				}
				if m.Title == "" || m.Context == "" || m.Text == "" {
					t.Errorf("empty part in %+v", m)
				}
				if strings.Contains(m.Title, "\n") {
					t.Errorf("title has several lines: %q", m.Title)
				}
				if !strings.Contains(m.Title, ev.Model) && !strings.Contains(m.Title, "acme/sdxl-brand-style") {
					t.Errorf("title %q names no model", m.Title)
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

func TestRenderErrors(t *testing.T) {
	dir := writeDir(t, map[string]string{
		"broken.tmpl": `{{define "broken.slack.title"}}{{.NoSuchField}}{{end}}`,
	})
	s := mustLoad(t, dir)
	ev := event(t, "prediction-succeeded.json", nil)
	tests := []struct {
		name, set, target string
		ev                *relay.Event
		want              string
	}{
		{"unknown set", "nope", "slack", ev, `template set "nope" has no slack.title or slack.body`},
		{"unknown set for text", "nope", "text", ev, `template set "nope" has no text.title or text.body`},
		{"set without the target", "broken", "text", ev, `template set "broken" has no text.title or text.body`},
		{"unknown target", "default", "pager", ev, `unknown template target "pager" (known: discord, email, slack, text)`},
		{"no event", "default", "slack", nil, "render: no event"},
		{"execution error", "broken", "slack", ev, `template set "broken" for slack: ` + filepath.Join(dir, "broken.tmpl") + `:1:33: executing "broken.slack.title" at <.NoSuchField>: can't evaluate field NoSuchField`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := s.Render(tt.set, tt.target, tt.ev)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("error = %v, want it to contain %q", err, tt.want)
			}
		})
	}
	if err := s.Check(); err == nil || !strings.Contains(err.Error(), "NoSuchField") {
		t.Errorf("Check = %v, want the broken template named", err)
	}
}

func TestUserDirectory(t *testing.T) {
	ev := event(t, "prediction-failed.json", nil)
	defaults, err := mustLoad(t, "").Render("default", "slack", ev)
	if err != nil {
		t.Fatal(err)
	}

	t.Run("a define overrides the embedded one", func(t *testing.T) {
		s := mustLoad(t, writeDir(t, map[string]string{
			"mine.tmpl": `{{define "default.slack.title"}}Custom: {{.Subject}} {{.Status}}{{end}}`,
		}))
		m, err := s.Render("default", "slack", ev)
		if err != nil {
			t.Fatal(err)
		}
		if m.Title != "Custom: stability-ai/sdxl failed" {
			t.Errorf("Title = %q", m.Title)
		}
		if m.Body != defaults.Body || m.Context != defaults.Context {
			t.Errorf("other parts changed: %+v", m)
		}
	})

	t.Run("a file replaces the embedded file", func(t *testing.T) {
		s := mustLoad(t, writeDir(t, map[string]string{
			"default.tmpl": `{{define "default.slack.body"}}only {{.ErrorLine}}{{end}}`,
		}))
		m, err := s.Render("default", "slack", ev)
		if err != nil {
			t.Fatal(err)
		}
		want := "only NSFW content detected. Try running it again, or try a different prompt."
		if m.Title != "" || m.Body != want || m.Context != "" || m.Text != want {
			t.Errorf("got %+v, want only the body (and it as text)", m)
		}
		if s.Has("default", "text") {
			t.Error("the replaced file's text defines are still there")
		}
	})

	t.Run("a new set is added", func(t *testing.T) {
		s := mustLoad(t, writeDir(t, map[string]string{
			"team.tmpl":  `{{define "team.vision.slack.title"}}{{template "default.headline" .}} for vision{{end}}`,
			"notes.txt":  `{{define "ignored.slack.title"}}not a template file{{end}}`,
			"other.tmpl": `{{define "helper"}}x{{end}}{{define "half.slack.context"}}x{{end}}`,
		}))
		if got := s.Names(); !slices.Equal(got, []string{"default", "team.vision"}) {
			t.Errorf("Names() = %q", got)
		}
		m, err := s.Render("team.vision", "slack", ev)
		if err != nil {
			t.Fatal(err)
		}
		if m.Title != "❌ Prediction failed: stability-ai/sdxl for vision" {
			t.Errorf("Title = %q", m.Title)
		}
		if s.Has("half", "slack") {
			t.Error("a set with only a context counts as renderable")
		}
	})
}

func TestLoadErrors(t *testing.T) {
	tests := []struct {
		name  string
		files map[string]string
		want  []string
	}{
		{"syntax error", map[string]string{"bad.tmpl": "{{define \"x.slack.title\"}}\nok\n{{if}}{{end}}\n{{end}}"},
			[]string{"bad.tmpl:3:", "missing value for if"}},
		{"unclosed action", map[string]string{"a.tmpl": "{{define \"x.slack.body\"}}{{.Prompt{{end}}"},
			[]string{"a.tmpl:1:"}},
		{"unknown function", map[string]string{"fn.tmpl": "\n\n{{define \"x.slack.body\"}}{{shout .Prompt}}{{end}}"},
			[]string{"fn.tmpl:3:", `function "shout" not defined`}},
		{"removed function", map[string]string{"env.tmpl": `{{define "x.slack.body"}}{{env "HOME"}}{{end}}`},
			[]string{"env.tmpl:1:", `function "env" not defined`}},
		{"syntax error replacing the defaults", map[string]string{"default.tmpl": "{{end}}"},
			[]string{"default.tmpl:1:", "unexpected {{end}}"}},
		// Go's templates would keep the default rather than the empty override.
		{"empty override of a default", map[string]string{"mine.tmpl": `{{define "default.slack.context"}}{{/* none */}}{{end}}`},
			[]string{"mine.tmpl: ", `{{define "default.slack.context"}} is empty`, `{{""}}`}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := writeDir(t, tt.files)
			_, err := Load(dir)
			if err == nil {
				t.Fatal("no error")
			}
			for _, w := range tt.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not contain %q", err, w)
				}
			}
			if !strings.HasPrefix(err.Error(), dir+string(filepath.Separator)) {
				t.Errorf("error %q does not start with the directory", err)
			}
		})
	}
	t.Run("missing directory", func(t *testing.T) {
		_, err := Load(filepath.Join(t.TempDir(), "nope"))
		if err == nil || !strings.Contains(err.Error(), "nope") {
			t.Errorf("error = %v", err)
		}
	})
}

func TestFallbackText(t *testing.T) {
	s := mustLoad(t, writeDir(t, map[string]string{
		"sets.tmpl": `
{{define "own.slack.title"}}own title{{end}}
{{define "own.slack.body"}}own body{{end}}
{{define "own.slack.text"}}own text {{.Prompt}}{{end}}

{{define "viatext.slack.title"}}slack title{{end}}
{{define "viatext.text.title"}}text title{{end}}
{{define "viatext.text.text"}}raw {{.Raw.Prompt}}{{end}}

{{define "viaparts.slack.body"}}slack body{{end}}
{{define "viaparts.text.title"}}plain *title*{{end}}
{{define "viaparts.text.body"}}plain {{.Prompt}}{{end}}

{{define "slackonly.slack.title"}}*title*{{end}}
{{define "slackonly.slack.body"}}body {{.Prompt}}{{end}}
`,
	}))
	ev := event(t, "prediction-starting.json", map[string]any{"input": map[string]any{"prompt": hostile}})
	esc := slackEscape(hostile)
	tests := []struct {
		set, target, want string
	}{
		{"own", "slack", "own text " + esc},
		{"viatext", "slack", slackEscape("raw " + hostile)},
		{"viatext", "text", "raw " + hostile},
		{"viaparts", "slack", slackEscape("plain *title*\nplain " + hostile)},
		{"viaparts", "text", "plain *title*\nplain " + hostile},
		{"slackonly", "slack", "*title*\nbody " + esc},
	}
	for _, tt := range tests {
		t.Run(tt.set+"/"+tt.target, func(t *testing.T) {
			m, err := s.Render(tt.set, tt.target, ev)
			if err != nil {
				t.Fatal(err)
			}
			if m.Text != tt.want {
				t.Errorf("Text = %q\nwant   %q", m.Text, tt.want)
			}
			if tt.target == "slack" && strings.Contains(m.Text, "<!channel>") {
				t.Errorf("Slack fallback text keeps a mention: %q", m.Text)
			}
		})
	}
}

// TestHostileNeverRaw checks every golden case: whatever a user typed, no Slack part holds live
// markup, a mention, a link, or an escape sequence; no Discord part a mention that could ping,
// and no markdown part formatting; no email HTML part live markup; and no plain part an escape
// sequence.
func TestHostileNeverRaw(t *testing.T) {
	s := mustLoad(t, "")
	controls := []string{"\x1b", "\u202e", "\x00", "\x07", "\r"}
	mentions := []string{"@everyone", "@here", "<@", "<#", "\x1b", "\u202e", "\x00", "javascript:", "@evil"}
	markdown := append([]string{"*bold*", "_it_", "~s~", "`code`", "[evil"}, mentions...)
	html := []string{"<script", "</script>", "<!channel>", "<@U123>", "<http", "javascript:", "@evil", "\x1b", "\u202e", "\x00"}
	forbidden := map[string]map[string][]string{
		"slack": {"": {"<script", "</script>", "<!channel>", "<!here>", "<@U123>", "<http://x|y>", "<https://evil",
			"*bold*", "_it_", "~s~", "`code`", "@everyone", "@here", "\x1b", "\u202e", "\x00", "javascript:", "@evil"}},
		"text":    {"": controls},
		"discord": {"title": mentions, "context": mentions, "body": markdown, "text": markdown},
		"email":   {"title": append([]string{"\n", "\t"}, controls...), "body": html, "context": html, "text": controls},
	}
	for _, c := range goldenCases() {
		for _, target := range Targets() {
			t.Run(c.name+"/"+target, func(t *testing.T) {
				m, err := s.Render("default", target, c.ev(t))
				if err != nil {
					t.Fatal(err)
				}
				for name, part := range map[string]string{"title": m.Title, "body": m.Body, "context": m.Context, "text": m.Text} {
					f, ok := forbidden[target][name]
					if !ok {
						f = forbidden[target][""]
					}
					if len(f) == 0 {
						t.Fatalf("no forbidden strings for %s %s", target, name)
					}
					for _, f := range f {
						if strings.Contains(part, f) {
							t.Errorf("%s contains %q: %q", name, f, part)
						}
					}
				}
			})
		}
	}
}

// TestLongPrompt checks that a 10 kB prompt is cut wherever it appears.
func TestLongPrompt(t *testing.T) {
	s := mustLoad(t, "")
	for _, from := range []string{"prediction-failed.json", "prediction-succeeded.json", "prediction-starting.json"} {
		ev := event(t, from, map[string]any{"input": map[string]any{"prompt": longPrompt}})
		for _, target := range Targets() {
			t.Run(from+"/"+target, func(t *testing.T) {
				m, err := s.Render("default", target, ev)
				if err != nil {
					t.Fatal(err)
				}
				if !strings.Contains(m.Body, "a very long prompt") || !strings.Contains(m.Body, "…") {
					t.Errorf("body does not show the prompt cut: %q", m.Body)
				}
				for name, part := range map[string]string{"title": m.Title, "body": m.Body, "context": m.Context, "text": m.Text} {
					if targets[target].html && targets[target].view(name) == targets[target] {
						part = htmlText(part) // what the reader sees, not the markup
					}
					if n := len([]rune(part)); n > 1500 {
						t.Errorf("%s is %d characters long", name, n)
					}
					if strings.Contains(part, longPrompt[:1000]) {
						t.Errorf("%s holds the whole prompt", name)
					}
				}
			})
		}
	}
}

// TestDataEscaped walks every string a Slack template can reach (Raw aside) for hostile events
// and checks that none holds markup or an unchecked URL.
func TestDataEscaped(t *testing.T) {
	ev := event(t, "prediction-failed.json", map[string]any{
		"id":         "<!channel>",
		"model":      "<!here>/x",
		"version":    "<@U1>",
		"source":     "*web*",
		"deployment": "<http://x|y>",
		"input":      map[string]any{"prompt": hostile, "<k>": []any{hostile, 1}, "n": map[string]any{"x": "<y>"}},
		"error":      hostile,
		"logs":       hostile + "\n\x1b[31m" + hostile,
		"metrics":    map[string]any{"predict_time": 1.5, "<m>": "<v>"},
		"output":     map[string]any{"version": "a/b:" + hostile, "weights": "https://x.example/w|<>.tar", "list": []any{"https://x.example/a<b>.png", "javascript:x"}},
		"urls":       map[string]any{"web": "javascript:alert(1)"},
	})
	ev.Meta = map[string]string{"<!channel>": hostile, "team": "<@U2>"}
	d := newData(ev, targets["slack"])
	var walk func(path string, v reflect.Value)
	walk = func(path string, v reflect.Value) {
		switch v.Kind() {
		case reflect.String:
			s := v.String()
			if strings.ContainsAny(s, "<>\x1b") || strings.Contains(s, "@everyone") {
				t.Errorf("%s = %q", path, s)
			}
			isURL := strings.Contains(path, "URL") || strings.HasPrefix(path, "Data.Files") ||
				strings.HasPrefix(path, "Data.Images") || path == "Data.Weights"
			if _, ok := safeURL(s); isURL && s != "" && !ok {
				t.Errorf("%s = %q, not a checked URL", path, s)
			}
		case reflect.Slice:
			for i := range v.Len() {
				walk(path+"[]", v.Index(i))
			}
		case reflect.Map:
			for _, k := range v.MapKeys() {
				walk(path+" key", k)
				walk(path+"["+k.String()+"]", v.MapIndex(k))
			}
		case reflect.Struct:
			if v.Type().PkgPath() != "" && v.Type().Name() == "Time" {
				return
			}
			for i := range v.NumField() {
				f := v.Type().Field(i)
				if f.Name == "Raw" || !f.IsExported() {
					continue
				}
				walk(path+"."+f.Name, v.Field(i))
			}
		}
	}
	walk("Data", reflect.ValueOf(*d))
	for name, s := range map[string]string{"Logs()": d.Logs(), "LogTail()": d.LogTail(), "LogTail(1)": d.LogTail(1)} {
		if strings.ContainsAny(s, "<>\x1b") {
			t.Errorf("%s = %q", name, s)
		}
	}
	if d.WebURL != "https://replicate.com/p/%3C%21channel%3E" {
		t.Errorf("WebURL = %q, want the page derived from the id", d.WebURL)
	}
	if d.Weights != "https://x.example/w%7C%3C%3E.tar" {
		t.Errorf("Weights = %q", d.Weights)
	}
	if !slices.Equal(d.Files, []string{"https://x.example/a%3Cb%3E.png", "https://x.example/w%7C%3C%3E.tar"}) {
		t.Errorf("Files = %q", d.Files)
	}
}

func TestData(t *testing.T) {
	ev := event(t, "training-succeeded.json", nil)
	ev.Meta = map[string]string{"team": "vision"}
	d := newData(ev, targets["text"])
	checks := []struct {
		name string
		got  any
		want any
	}{
		{"Target", d.Target, "text"},
		{"ShortID", d.ShortID, "zz4ibb…"},
		{"Kind", d.Kind, "training"},
		{"Training", d.Training, true},
		{"Succeeded", d.Succeeded, true},
		{"Terminal", d.Terminal, true},
		{"Subject", d.Subject, "acme/sdxl-brand-style"},
		{"Model", d.Model, "stability-ai/sdxl"},
		{"NewVersion", d.NewVersion, "acme/sdxl-brand-style:7c8a2bd1f0e94f5e9a4bb1f7c2d3e4f5a6b7c8d9e0f1a2b3c4d5e6f708192a3b"},
		{"NewModel", d.NewModel, "acme/sdxl-brand-style"},
		{"NewModelURL", d.NewModelURL, "https://replicate.com/acme/sdxl-brand-style"},
		{"NewVersionURL", d.NewVersionURL, "https://replicate.com/acme/sdxl-brand-style/versions/7c8a2bd1f0e94f5e9a4bb1f7c2d3e4f5a6b7c8d9e0f1a2b3c4d5e6f708192a3b"},
		{"Weights", d.Weights, "https://replicate.delivery/pbxt/Fq8nR2sLw0XyZb4TgKc1mVh7JdPe9uAoYi3BxNs5WkQr6EtC/trained_model.tar"},
		{"Input", d.Input, map[string]string{"input_images": "https://example.com/my-input-images.zip", "token_string": "TOK", "max_train_steps": "1000"}},
		{"Meta", d.Meta, map[string]string{"team": "vision"}},
		{"Metrics", d.Metrics["predict_time"], "502.713876"},
		{"Duration", humanDuration(d.Duration), "8m22s"},
		{"PredictTime", humanDuration(d.PredictTime), "8m22s"},
		{"When", d.When, d.CompletedAt},
		{"LogTail 2", d.LogTail(2), "100%|██████████| 1000/1000 [08:10<00:00,  2.04it/s]\nSaving trained_model.tar"},
		{"LogTail 0", d.LogTail(0), ""},
	}
	for _, c := range checks {
		if !reflect.DeepEqual(c.got, c.want) {
			t.Errorf("%s = %#v, want %#v", c.name, c.got, c.want)
		}
	}
}

// TestConcurrentRender renders from many goroutines at once; run with -race.
func TestConcurrentRender(t *testing.T) {
	s := mustLoad(t, "")
	events, err := SampleEvents()
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	for i := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for _, ev := range events {
				if _, err := s.Render("default", Targets()[i%len(Targets())], ev); err != nil {
					t.Error(err)
					return
				}
			}
		}()
	}
	wg.Wait()
}

// The events check renders cover every status of both kinds, so that a template that fails on
// one of them fails check rather than a delivery.
func TestSampleEventsCoverEveryStatus(t *testing.T) {
	events, err := SampleEvents()
	if err != nil {
		t.Fatal(err)
	}
	seen := map[string]bool{}
	for _, ev := range events {
		seen[string(ev.Kind)+" "+string(ev.Status)] = true
	}
	for _, kind := range []relay.Kind{relay.KindPrediction, relay.KindTraining} {
		for _, st := range []replicate.Status{replicate.Starting, replicate.Processing, replicate.Succeeded,
			replicate.Failed, replicate.Canceled, replicate.Aborted} {
			if !seen[string(kind)+" "+string(st)] {
				t.Errorf("no sample event for a %s %s", kind, st)
			}
		}
	}
}
