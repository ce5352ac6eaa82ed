package templates

import (
	"math"
	"strings"
	"testing"
	"text/template"
	"time"
	"unicode/utf8"

	"github.com/mlrelay/relay/relay/replicate"
)

// TestFuncs runs each function from a template, as users call them, for each target.
func TestFuncs(t *testing.T) {
	data := map[string]any{
		"Hostile": "<!channel> *b*",
		"Logs":    replicate.Text("line 1\n<@U1>"),
		"Time":    time.Date(2025, 5, 1, 20, 29, 3, 0, time.FixedZone("CEST", 2*3600)),
		"Zero":    time.Time{},
		"D":       8*time.Minute + 22700*time.Millisecond,
		"Images":  []string{"a", "b"},
		"Seed":    42069,
		"Nested":  map[string]any{"a": []any{1, "<x>"}},
	}
	tests := []struct {
		name, target, tmpl, want string
	}{
		{"escape slack", "slack", `{{escape .Hostile}}`, "&lt;!channel&gt; " + z + "*" + z + "b" + z + "*" + z},
		{"escape text", "text", `{{escape "a\x1b[1mb"}}`, "ab"},
		{"escape named string", "slack", `{{escape .Logs}}`, "line 1\n&lt;@U1&gt;"},
		{"escape number", "slack", `{{escape .Seed}}`, "42069"},
		{"escape JSON", "slack", `{{escape .Nested}}`, `{"a":[1,"&lt;x&gt;"]}`},
		{"escape nil", "slack", `{{escape .Missing}}`, ""},
		{"mrkdwn in text", "text", `{{mrkdwn .Hostile}}`, "&lt;!channel&gt; " + z + "*" + z + "b" + z + "*" + z},
		{"link slack", "slack", `{{link "https://x.example/a" "A"}}`, "<https://x.example/a|A>"},
		{"link text", "text", `{{link "https://x.example/a" "A"}}`, "A (https://x.example/a)"},
		{"link without label", "slack", `{{link "https://x.example/a"}}`, "<https://x.example/a>"},
		{"code slack", "slack", `{{code "a` + "`" + `b"}}`, "`aˋb`"},
		{"code text", "text", `{{code "a b"}}`, "a b"},
		{"codeblock slack", "slack", `{{codeblock .Logs}}`, "```\nline 1\n&lt;@U1&gt;\n```"},
		{"codeblock text", "text", `{{codeblock .Logs}}`, "    line 1\n    <@U1>"},
		{"filename", "slack", `{{filename "https://x.example/a/out%20*1*.png?x=1"}}`, "out " + z + "*" + z + "1" + z + "*" + z + ".png"},
		{"filename of no URL", "text", `{{filename "dir/file.txt"}}`, "file.txt"},
		{"filename of a directory", "text", `{{filename "https://x.example/"}}`, ""},
		{"truncate", "text", `{{truncate 5 "abcdefgh"}}`, "abcd…"},
		{"truncate pipe", "text", `{{"abc" | truncate 5}}`, "abc"},
		{"oneline", "text", `{{oneline "a\n\n b\tc "}}`, "a b c"},
		{"duration", "text", `{{duration .D}}`, "8m22s"},
		{"duration seconds", "text", `{{duration 9.685}}`, "9.7s"},
		{"duration int seconds", "text", `{{duration 3720}}`, "1h2m"},
		{"duration string", "text", `{{duration "90s"}}`, "1m30s"},
		{"datetime", "text", `{{datetime .Time}}`, "2025-05-01 18:29 UTC"},
		{"datetime zero", "text", `{{datetime .Zero}}`, ""},
		{"count", "text", `{{count (len .Images) "image"}}`, "2 images"},
		{"count one", "text", `{{count 1 "image"}}`, "1 image"},
		{"count irregular", "text", `{{count 3 "child" "children"}}`, "3 children"},
		{"plural", "text", `{{len .Images | plural "image" "images"}}`, "images"},
		{"plural one", "text", `{{plural "image" "images" 1}}`, "image"},
		{"escape discord", "discord", `{{escape .Hostile}}`, "<!channel> \\*b\\*"},
		{"escape email", "email", `{{escape .Hostile}}`, "<!channel> *b*"},
		{"link discord", "discord", `{{link "https://x.example/a (1)" "the [page]"}}`, "[the (page)](https://x.example/a%20%281%29)"},
		{"link email", "email", `{{link "https://x.example/a?b=1&c=2" "<A>"}}`, `<a href="https://x.example/a?b=1&amp;c=2" style="` + emailLinkStyle + `">&lt;A&gt;</a>`},
		{"code discord", "discord", `{{code "a_b` + "`" + `c"}}`, "`a_bˋc`"},
		{"codeblock discord", "discord", `{{codeblock .Logs}}`, "```\nline 1\n<" + z + "@U1>\n```"},
		{"codeblock email", "email", `{{codeblock .Logs}}`, `<pre style="` + emailPreStyle + `">line 1` + "\n" + `&lt;@U1&gt;</pre>`},
		{"cid", "email", `{{cid "https://x.example/a/out%20*1*.png?x=1"}}`, "cid:out%20%2A1%2A.png"},
		{"cid text", "text", `{{cid "https://x.example/a/out-0.png"}}`, "cid:out-0.png"},
		{"truncate discord keeps escapes", "discord", `{{escape "**bold**" | truncate 3}}`, "\\*\\*…"},
		{"sprig", "text", `{{upper "a"}}{{title "prediction"}}{{default "x" ""}}`, "APredictionx"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tmpl, err := template.New("").Option("missingkey=zero").Funcs(funcMap(targets[tt.target])).Parse(tt.tmpl)
			if err != nil {
				t.Fatal(err)
			}
			var b strings.Builder
			if err := tmpl.Execute(&b, data); err != nil {
				t.Fatal(err)
			}
			if b.String() != tt.want {
				t.Errorf("%s = %q, want %q", tt.tmpl, b.String(), tt.want)
			}
		})
	}
}

func TestFuncErrors(t *testing.T) {
	for _, tmpl := range []string{`{{duration "soon"}}`, `{{duration true}}`, `{{count "two" "x"}}`, `{{plural "a" "b" "c"}}`, `{{duration 1e300}}`} {
		t.Run(tmpl, func(t *testing.T) {
			tm := template.Must(template.New("").Funcs(funcMap(targets["text"])).Parse(tmpl))
			if err := tm.Execute(&strings.Builder{}, nil); err == nil {
				t.Error("no error")
			}
		})
	}
}

func TestRemovedFuncs(t *testing.T) {
	fm := funcMap(targets["text"])
	for _, name := range []string{"env", "expandenv", "getHostByName"} {
		if _, ok := fm[name]; ok {
			t.Errorf("%s is available to templates", name)
		}
	}
}

func TestHumanDuration(t *testing.T) {
	tests := []struct {
		d    time.Duration
		want string
	}{
		{0, "0s"},
		{300 * time.Microsecond, "<1ms"},
		{6111 * time.Microsecond, "6ms"},
		{850 * time.Millisecond, "850ms"},
		{time.Second, "1s"},
		{9685 * time.Millisecond, "9.7s"},
		{59940 * time.Millisecond, "59.9s"},
		{59960 * time.Millisecond, "1m"},
		{8*time.Minute + 22713*time.Millisecond, "8m22s"},
		{time.Hour + 2*time.Minute + 59*time.Second, "1h2m"},
		{3 * time.Hour, "3h"},
		{50 * time.Hour, "50h"},
		{-1500 * time.Millisecond, "-1.5s"},
		{math.MaxInt64, "2562047h47m"},
		{math.MinInt64, "-2562047h47m"}, // once a recursion that overflowed the stack
	}
	for _, tt := range tests {
		t.Run(tt.want, func(t *testing.T) {
			if got := humanDuration(tt.d); got != tt.want {
				t.Errorf("humanDuration(%v) = %q, want %q", tt.d, got, tt.want)
			}
		})
	}
}

func TestTruncate(t *testing.T) {
	tests := []struct {
		name string
		s    string
		n    int
		want string
	}{
		{"short", "abc", 3, "abc"},
		{"cut", "abcdef", 4, "abc…"},
		{"runes", "日本語のテキスト", 4, "日本語…"},
		{"zero", "abc", 0, ""},
		{"one", "abc", 1, "…"},
		{"entity is one character", "a &amp; b", 5, "a &amp; b"},
		{"entity is never split", "&lt;&lt;&lt;&lt;", 3, "&lt;&lt;…"},
		{"zero-width spaces are free", z + "*" + z + "bold" + z + "*" + z, 6, z + "*" + z + "bold" + z + "*" + z},
		{"trailing space is dropped", "abc def", 5, "abc…"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := truncate(tt.s, tt.n); got != tt.want {
				t.Errorf("truncate(%q, %d) = %q, want %q", tt.s, tt.n, got, tt.want)
			}
		})
	}
}

// FuzzTruncate checks that truncated escaped text keeps its length bound, stays valid UTF-8 and
// never ends in half an entity.
func FuzzTruncate(f *testing.F) {
	f.Add(hostile, 10)
	f.Add("&amp;&amp;", 1)
	f.Fuzz(func(t *testing.T, s string, n int) {
		if n < 0 || n > 1000 || !utf8.ValidString(s) {
			return
		}
		esc := slackEscape(s)
		out := truncate(esc, n)
		if w := utf8.RuneCountInString(unescapeSlack(out)); w > n {
			t.Fatalf("truncate(%q, %d) = %q is %d characters", esc, n, out, w)
		}
		if strings.ContainsAny(out, "<>") || (strings.Count(out, "&") != strings.Count(out, "&amp;")+strings.Count(out, "&lt;")+strings.Count(out, "&gt;")) {
			t.Fatalf("truncate(%q, %d) = %q breaks an entity", esc, n, out)
		}
	})
}

// Timestamps far apart, or out of order, render like any other event. Completion in year 1
// after a start in year 9999 once made a duration of math.MinInt64, whose formatting overflowed
// the stack: a crash no recover catches, repeated on every restart by the stored delivery.
func TestRenderExtremeTimestamps(t *testing.T) {
	set, err := Load("")
	if err != nil {
		t.Fatal(err)
	}
	for _, times := range []map[string]any{
		{"created_at": "0001-01-01T00:00:01Z", "started_at": "9999-12-31T00:00:00Z", "completed_at": "0001-01-02T00:00:00Z"},
		{"created_at": "0001-01-01T00:00:01Z", "started_at": "0001-01-01T00:00:02Z", "completed_at": "9999-12-31T00:00:00Z"},
		{"created_at": "2025-05-01T18:29:30Z", "started_at": "2025-05-01T18:29:29Z", "completed_at": "2025-05-01T18:29:28Z"},
	} {
		for _, name := range []string{"prediction-succeeded.json", "prediction-failed.json"} {
			ev := event(t, name, times)
			for _, target := range Targets() {
				m, err := set.Render("default", target, ev)
				if err != nil {
					t.Fatalf("%s %v for %s: %v", name, times, target, err)
				}
				all := m.Title + "\n" + m.Body + "\n" + m.Context + "\n" + m.Text
				for _, neg := range []string{"in -", "for -", "after -"} {
					if strings.Contains(all, neg) {
						t.Errorf("%s %v for %s shows a negative duration (%q):\n%s", name, times, target, neg, all)
					}
				}
			}
		}
	}
}
