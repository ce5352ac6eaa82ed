package replicate

import (
	"encoding/json"
	"strings"
	"testing"
	"unicode/utf8"

	json2 "github.com/go-json-experiment/json"
	"github.com/go-json-experiment/json/jsontext"
)

// textOf decodes raw as a Text with the single-pass decoder, as payloads are parsed.
func textOf(t *testing.T, raw []byte) (Text, error) {
	t.Helper()
	var v struct {
		Logs Text `json:"logs"`
	}
	buf := []byte(`{"logs":` + string(raw) + `}`)
	err := json2.Unmarshal(buf, &v, jsontext.AllowInvalidUTF8(true))
	if string(buf) != `{"logs":`+string(raw)+`}` {
		t.Fatalf("decoding %q changed the payload to %q", raw, buf)
	}
	for i := range buf {
		buf[i] = 'x' // a Text that shared memory with the payload would change with it
	}
	return v.Logs, err
}

// A JSON string decodes to the same Text with either decoder, whatever its escapes, and the
// Text shares nothing with the bytes it came from.
func TestTextFromString(t *testing.T) {
	for _, s := range []string{
		"",
		"plain",
		"tqdm 100%|██████████| 50/50\r\nnext line\n",
		`quotes " and backslashes \ and </script>`,
		"\x00\x1f control characters",
		"emoji 🚀 and a surrogate pair",
		strings.Repeat("a long log line with ünïcödé\n", 500),
	} {
		raw, err := json.Marshal(s)
		if err != nil {
			t.Fatal(err)
		}
		got, err := textOf(t, raw)
		if err != nil || string(got) != s {
			t.Errorf("%.40q: got %.40q, %v", s, got, err)
		}
		var v1 Text
		if err := json.Unmarshal(raw, &v1); err != nil || v1 != got {
			t.Errorf("%.40q: encoding/json reads %.40q, %v; the single-pass decoder %.40q", s, v1, err, got)
		}
	}
	// Escapes that shorten the text, and \u escapes the encoder would not write.
	got, err := textOf(t, []byte(`"a\u00e9\ud83d\ude80\r\n\t\/"`))
	if want := "aé🚀\r\n\t/"; err != nil || string(got) != want {
		t.Errorf("escapes: got %q, %v; want %q", got, err, want)
	}
	if got, err := textOf(t, []byte(`null`)); err != nil || got != "" {
		t.Errorf("null: got %q, %v", got, err)
	}
	if got, err := textOf(t, []byte(`{"code": 7,  "detail": "oom"}`)); err != nil || got != `{"code":7,"detail":"oom"}` {
		t.Errorf("object: got %q, %v", got, err)
	}
	if got, err := textOf(t, []byte("[1, \"a\xffb\"]")); err != nil || got != "[1,\"a\xffb\"]" {
		t.Errorf("array with invalid UTF-8: got %q, %v", got, err)
	}
	// Invalid UTF-8 in a string is read as encoding/json reads it, each bad byte U+FFFD.
	if got, err := textOf(t, []byte("\"bad \xff\xc3 bytes\"")); err != nil || got != "bad \uFFFD\uFFFD bytes" {
		t.Errorf("invalid UTF-8: got %q, %v", got, err)
	}
	// Half a surrogate pair, escaped, is valid JSON (Python writes it for text decoded with
	// surrogateescape): read as U+FFFD, as encoding/json reads it, not refused.
	for _, raw := range []string{`"caf\udce9"`, `"tok \ud83d"`, `"\ude80 then \ud83d\ude80"`} {
		var v1 Text
		if err := json.Unmarshal([]byte(raw), &v1); err != nil {
			t.Fatalf("%s: encoding/json: %v", raw, err)
		}
		got, err := textOf(t, []byte(raw))
		if err != nil || got != v1 || !strings.Contains(string(got), "\uFFFD") {
			t.Errorf("%s: got %q, %v; want %q", raw, got, err, v1)
		}
	}
}

func FuzzText(f *testing.F) {
	for _, s := range []string{"", "plain", "tqdm ██\r\n", "\xff invalid \xc3", `\u0000`, "🚀"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		raw, err := json.Marshal(s) // replaces invalid UTF-8, as a sender would have to
		if err != nil {
			t.Skip()
		}
		got, err := textOf(t, raw)
		if err != nil {
			t.Fatalf("%q: %v", raw, err)
		}
		var want string
		if err := json.Unmarshal(raw, &want); err != nil {
			t.Fatal(err)
		}
		if string(got) != want || !utf8.ValidString(string(got)) {
			t.Fatalf("%q: got %q, want %q", raw, got, want)
		}
		// Raw invalid UTF-8 in the payload is accepted and read as encoding/json reads it.
		rawInvalid := append(append([]byte{'"'}, []byte(strings.ReplaceAll(strings.ReplaceAll(s, `\`, ``), `"`, ``))...), '"')
		var v1 string
		if json.Unmarshal(rawInvalid, &v1) == nil {
			if got, err := textOf(t, rawInvalid); err != nil || string(got) != v1 {
				t.Fatalf("%q: the single-pass decoder reads %q (%v), encoding/json %q", rawInvalid, got, err, v1)
			}
		}
	})
}
