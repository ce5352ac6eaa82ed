package templates

import (
	"bytes"
	"encoding/json"
	"math"
	"strings"
	"testing"

	"github.com/mlrelay/relay/relay"
	"github.com/mlrelay/relay/relay/replicate"
)

// logTailOf is LogTail by its definition: the whole log cleaned and split.
func logTailOf(logs string, k int) string {
	s := strings.TrimRight(clean(logs), "\n \t")
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
	return clean(strings.Join(lines, "\n"))
}

// FuzzLogTail checks that LogTail, which cleans only the lines it shows when it can, shows what
// cleaning the whole log and splitting it would.
func FuzzLogTail(f *testing.F) {
	for _, s := range []string{
		"", "\n\n", "one\ntwo\n", "a \t\n \n\t\n", "a\r\nb\rc\n", "x\x1b[31m\nred\x1b[0m\n",
		"t\x1b]0;title\nstill title\x07shown\nlast", "\x1b\n]x", "\u009b1\nm", "\xe2\x80\n\xae", "\x00\n\x00",
		benchLogs,
	} {
		f.Add(s, 5)
	}
	f.Fuzz(func(t *testing.T, logs string, k int) {
		k %= 20
		ev := &relay.Event{Prediction: replicate.Prediction{Logs: replicate.Text(logs)}}
		if got, want := newData(ev, targets["text"]).LogTail(k), logTailOf(logs, k); got != want {
			t.Fatalf("LogTail(%d) of %q = %q, want %q", k, logs, got, want)
		}
	})
}

// TestValueText checks that values other than strings read as encoding/json writes them.
func TestValueText(t *testing.T) {
	values := []any{true, false, 0.0, math.Copysign(0, -1), 1.0, -1.5, 9.685309, 1234.0, 1e20, 1e21, 123456789e13,
		1e-6, 9.99e-7, -2.5e-9, 5e-324, math.MaxFloat64, 0.1 + 0.2, 1 << 53, []any{1.0, "<a>"},
		map[string]any{"x": 1e-7, "y": nil}}
	for _, v := range values {
		var buf bytes.Buffer
		enc := json.NewEncoder(&buf)
		enc.SetEscapeHTML(false)
		if err := enc.Encode(v); err != nil {
			t.Fatal(err)
		}
		if got, want := valueText(v), strings.TrimSuffix(buf.String(), "\n"); got != want {
			t.Errorf("valueText(%#v) = %q, want %q", v, got, want)
		}
	}
}

// newData builds the view of ev for target t, as one render does.
func newData(ev *relay.Event, t *target) *Data {
	return newEventValues(ev).data(t)
}

// TestOutputTextAgreesWithFiles checks that an output string is either text or one of the
// event's files, never both nor neither: a streamed token holding a URL (" https://…") is text.
func TestOutputTextAgreesWithFiles(t *testing.T) {
	for _, tc := range []struct {
		output any
		text   string
		files  int
	}{
		{[]any{"Here", " is", " https://x.example/a", " done"}, "Here is https://x.example/a done", 0},
		{" https://x.example/a.png", " https://x.example/a.png", 0},
		{"https://x.example/a.png", "", 1},
		{[]any{"https://x.example/a.png", "https://x.example/b.png"}, "", 2},
	} {
		raw, err := json.Marshal(tc.output)
		if err != nil {
			t.Fatal(err)
		}
		ev := &relay.Event{Prediction: replicate.Prediction{ID: "p1", Status: replicate.Succeeded, Output: raw}}
		if got := outputText(tc.output); got != tc.text {
			t.Errorf("outputText(%q) = %q, want %q", tc.output, got, tc.text)
		}
		if got := len(ev.Files()); got != tc.files {
			t.Errorf("Files of %q: %d, want %d", tc.output, got, tc.files)
		}
	}
}
