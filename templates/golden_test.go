package templates

import (
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"unicode"

	"github.com/mlrelay/relay/relay"
	"github.com/mlrelay/relay/relay/replicate"
)

var update = flag.Bool("update", false, "rewrite the golden files under testdata/")

// hostile is what a user might type into a prompt or provoke in an error message: markup,
// mentions, links and formatting for Slack, and a Discord mention.
const hostile = "<script>alert(1)</script> & <!channel> <!here> <@U123> <http://x|y> *bold* _it_ ~s~ `code` @everyone @here"

// longPrompt is a 10 kB prompt.
var longPrompt = strings.Repeat("a very long prompt ", 540)[:10240]

// sample returns the sample of that file name.
func sample(t testing.TB, name string) replicate.Sample {
	t.Helper()
	for _, s := range replicate.Samples() {
		if s.Name == name {
			return s
		}
	}
	t.Fatalf("no sample %s", name)
	return replicate.Sample{}
}

// event parses the sample of that name with the given top-level fields replaced.
func event(t testing.TB, name string, change map[string]any) *relay.Event {
	t.Helper()
	ev, err := variant(sample(t, name), change)
	if err != nil {
		t.Fatal(err)
	}
	return ev
}

type eventCase struct {
	name string
	ev   func(t testing.TB) *relay.Event
}

// goldenCases are every sample as it is, every status variant, and synthetic events built from
// the samples: hostile text in each place it can appear, a 10 kB prompt, escape sequences in the
// logs, and each shape an output can take.
func goldenCases() []eventCase {
	var cases []eventCase
	for _, s := range replicate.Samples() {
		name := s.Name
		cases = append(cases, eventCase{strings.TrimSuffix(name, ".json"), func(t testing.TB) *relay.Event {
			return event(t, name, nil)
		}})
	}
	add := func(name, from string, change map[string]any) {
		cases = append(cases, eventCase{name, func(t testing.TB) *relay.Event { return event(t, from, change) }})
	}
	withPrompt := func(p string) map[string]any {
		return map[string]any{"prompt": p, "num_outputs": 1}
	}
	add("prediction-processing", "prediction-starting.json", map[string]any{
		"status": "processing", "started_at": "2025-05-01T18:29:28.332111Z"})
	add("prediction-canceled", "prediction-succeeded.json", map[string]any{
		"status": "canceled", "output": nil})
	add("prediction-aborted", "prediction-starting.json", map[string]any{
		"status": "aborted", "completed_at": "2025-05-01T18:34:28.326000Z"})
	add("training-failed", "training-succeeded.json", map[string]any{
		"status": "failed", "output": nil,
		"error": "Traceback (most recent call last):\n  File \"train.py\", line 88\nRuntimeError: CUDA out of memory. Tried to allocate 2.00 GiB"})
	add("training-canceled", "training-succeeded.json", map[string]any{
		"status": "canceled", "output": nil})
	add("training-succeeded-underscores", "training-succeeded.json", map[string]any{
		"output": map[string]any{"version": "acme/sdxl_brand_style:7c8a2bd1f0e94f5e", "weights": nil}})
	add("training-succeeded-odd-version", "training-succeeded.json", map[string]any{
		"output": map[string]any{"version": "<!channel> *x*", "weights": "javascript:alert(1)"}})

	add("hostile-prompt-succeeded", "prediction-succeeded.json", map[string]any{"input": withPrompt(hostile)})
	add("hostile-prompt-starting", "prediction-starting.json", map[string]any{"input": withPrompt(hostile)})
	add("hostile-error-failed", "prediction-failed.json", map[string]any{
		"input": withPrompt(hostile), "error": "Traceback (most recent call last):\n  File \"x.py\"\nValueError: " + hostile})
	add("hostile-error-training-failed", "training-succeeded.json", map[string]any{
		"status": "failed", "output": nil, "error": hostile})
	add("hostile-model", "prediction-failed.json", map[string]any{
		"model": "<!channel>/_x_", "error": nil, "source": "<@U123>"})
	add("hostile-output-text", "prediction-succeeded.json", map[string]any{"output": hostile})
	add("long-prompt-failed", "prediction-failed.json", map[string]any{"input": withPrompt(longPrompt)})
	add("long-prompt-succeeded", "prediction-succeeded.json", map[string]any{"input": withPrompt(longPrompt)})
	add("long-error-failed", "prediction-failed.json", map[string]any{"error": strings.Repeat("x", 10000)})
	add("ansi-logs-failed", "prediction-failed.json", map[string]any{
		"logs":  "step 1\n\x1b[31mERROR\x1b[0m: bad \x1b]0;title\x07input\n 10%|#  \r 50%|#####  \r100%|##########\r\nlast line\x00\x07\n",
		"error": "\x1b[1mValueError\x1b[0m: bad input\u202e evil"})
	add("output-null", "prediction-succeeded.json", map[string]any{"output": nil})
	add("output-string-url", "prediction-succeeded.json", map[string]any{
		"output": "https://replicate.delivery/pbxt/abc/output.webp"})
	add("output-list-urls", "prediction-succeeded.json", nil)
	add("output-object", "prediction-succeeded.json", map[string]any{
		"output": map[string]any{"caption": "a corgi", "mask": "https://replicate.delivery/pbxt/abc/mask.png", "json": "https://replicate.delivery/pbxt/abc/data.json"}})
	add("output-string-text", "prediction-succeeded.json", map[string]any{
		"output": "The answer is 42. See <https://evil.example|replicate.com> *now*"})
	add("output-tokens", "prediction-succeeded.json", map[string]any{
		"output": []any{"Hello", ",", " world", "!"}})
	add("output-many-files", "prediction-succeeded.json", map[string]any{
		"output": []any{
			"https://replicate.delivery/a/0.png", "https://replicate.delivery/a/1.png", "https://replicate.delivery/a/2.wav",
			"https://replicate.delivery/a/3.png", "https://replicate.delivery/a/4.png", "https://replicate.delivery/a/5.png",
		}})
	add("output-unsafe-urls", "prediction-succeeded.json", map[string]any{
		"output": []any{"javascript:alert(1)", "https://replicate.com@evil.example/x.png", "https://replicate.delivery/a/b|c<d>e.png?x=1&y=2"}})
	return cases
}

// TestGolden renders every case for every target with the default set and compares the parts
// with testdata/<case>.<target>.golden; -update rewrites them.
func TestGolden(t *testing.T) {
	set, err := Load("")
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range goldenCases() {
		for _, target := range Targets() {
			t.Run(c.name+"/"+target, func(t *testing.T) {
				m, err := set.Render("default", target, c.ev(t))
				if err != nil {
					t.Fatal(err)
				}
				got := formatMessage(m)
				file := filepath.Join("testdata", c.name+"."+target+".golden")
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

// formatMessage writes the parts of m one after another, with invisible characters made visible
// so that the golden files show the escaping: a zero-width space is {zwsp}, other control and
// format characters {U+XXXX}.
func formatMessage(m relay.Message) string {
	var b strings.Builder
	for _, p := range []struct{ name, text string }{
		{"title", m.Title}, {"body", m.Body}, {"context", m.Context}, {"text", m.Text},
	} {
		fmt.Fprintf(&b, "-- %s --\n%s\n", p.name, visible(p.text))
	}
	return b.String()
}

func visible(s string) string {
	var b strings.Builder
	for _, r := range s {
		switch {
		case r == '\u200b':
			b.WriteString("{zwsp}")
		case r == '\n' || r == '\t':
			b.WriteRune(r)
		case unicode.IsControl(r) || unicode.Is(unicode.Cf, r):
			fmt.Fprintf(&b, "{U+%04X}", r)
		default:
			b.WriteRune(r)
		}
	}
	return b.String()
}
