package discordbot

import (
	"fmt"
	"math"
	"reflect"
	"strings"
	"testing"
	"unicode/utf8"
)

func TestParseInputs(t *testing.T) {
	for _, tc := range []struct {
		name, in string
		want     map[string]any
	}{
		{"empty", "", map[string]any{}},
		{"only separators", " ,\t, ", map[string]any{}},
		{"typed values", "steps=50 guidance_scale=7.5 apply_watermark=false go_fast=TRUE scheduler=K_EULER",
			map[string]any{"steps": int64(50), "guidance_scale": 7.5, "apply_watermark": false, "go_fast": true, "scheduler": "K_EULER"}},
		{"numbers", "a=-3 b=+4 c=007 d=.5 e=1. f=1e3 g=-2.5E-3 h=9223372036854775807",
			map[string]any{"a": int64(-3), "b": int64(4), "c": int64(7), "d": 0.5, "e": 1.0, "f": 1000.0, "g": -0.0025, "h": int64(math.MaxInt64)}},
		{"things that are not numbers stay text", "a=0x10 b=1_000 c=Inf d=NaN e=1e f=- g=. h=1.2.3 i=16:9 j=null",
			map[string]any{"a": "0x10", "b": "1_000", "c": "Inf", "d": "NaN", "e": "1e", "f": "-", "g": ".", "h": "1.2.3", "i": "16:9", "j": "null"}},
		{"commas separate", "a=1,b=2, c=3 ,d=4",
			map[string]any{"a": int64(1), "b": int64(2), "c": int64(3), "d": int64(4)}},
		{"quoted text", `prompt="a cat, on a mat" neg='no "dogs"' n="42" t="true" e=""`,
			map[string]any{"prompt": "a cat, on a mat", "neg": `no "dogs"`, "n": "42", "t": "true", "e": ""}},
		{"escapes", `a="say \"hi\"" b='it\'s' c="back\\slash" d="C:\temp"`,
			map[string]any{"a": `say "hi"`, "b": "it's", "c": `back\slash`, "d": `C:\temp`}},
		{"curly quotes from a phone", `style=“oil, on canvas” mood=”dark” x=‘a b’`,
			map[string]any{"style": "oil, on canvas", "mood": "dark", "x": "a b"}},
		{"equals inside a value", "url=https://example.com/a.png?x=1&y=2",
			map[string]any{"url": "https://example.com/a.png?x=1&y=2"}},
		{"unicode spaces separate", "a=1\u00a0b=2\u3000c=ü",
			map[string]any{"a": int64(1), "b": int64(2), "c": "ü"}},
		{"key case is kept", "Seed=1 seed=2", map[string]any{"Seed": int64(1), "seed": int64(2)}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := ParseInputs(tc.in)
			if err != nil || !reflect.DeepEqual(got, tc.want) {
				t.Fatalf("ParseInputs(%q) = %#v, %v\nwant %#v", tc.in, got, err, tc.want)
			}
		})
	}
}

func TestParseInputsErrors(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		{"a cat", `inputs: expected key=value, got "a" (put values with spaces or commas in quotes)`},
		{"prompt=a cat", `inputs: expected key=value, got "cat" (put values with spaces or commas in quotes)`},
		{"seed = 42", `inputs: write seed=value, with no spaces around "="`},
		{"seed =42", `inputs: write seed=value, with no spaces around "="`},
		{"seed", `inputs: expected key=value, got "seed"`},
		{"=42", `inputs: expected key=value, got "=42"`},
		{"größe=2", `inputs: expected key=value, got "größe=2"`},
		{"lora-scale=1", `inputs: expected key=value, got "lora-scale=1"`},
		{"1st=2", `inputs: "1st" is not an input name (letters, digits and _, not starting with a digit)`},
		{"seed=", `inputs: "seed" has no value; write seed="" for empty text`},
		{"seed= steps=2", `inputs: "seed" has no value`},
		{"seed=,steps=2", `inputs: "seed" has no value`},
		{`p="a cat`, `inputs: the quoted value of "p" is not closed`},
		{`p="a cat\"`, `inputs: the quoted value of "p" is not closed`},
		{`p=“a cat"`, `inputs: the quoted value of "p" is not closed`},
		{`p="a"b=1`, `inputs: after the quoted value of "p", expected a space or a comma`},
		{"seed=1 seed=2", `inputs: "seed" is given twice; keep one`},
		{"seed=99999999999999999999", `inputs: the value of "seed" is too large for a whole number; put it in quotes to send it as text`},
		{"scale=1e999", `inputs: the value of "scale" is out of range for a number`},
		{"x=1 " + strings.Repeat("y", 100), `inputs: expected key=value, got "` + strings.Repeat("y", 40) + `…"`},
	} {
		t.Run(tc.in, func(t *testing.T) {
			got, err := ParseInputs(tc.in)
			if err == nil || !strings.HasPrefix(err.Error(), tc.want) {
				t.Fatalf("ParseInputs(%q) = %v, %v\nwant an error starting %s", tc.in, got, err, tc.want)
			}
		})
	}
}

func TestFormatInputs(t *testing.T) {
	in := map[string]any{
		"prompt": "a cat, on a mat", "seed": int64(42), "scale": 7.5, "whole": 2.0, "big": 1e21, "tiny": 1e-7,
		"flag": false, "text_number": "42", "text_bool": "true", "empty": "", "quote": `say "hi" \o/`,
		"plain": "K_EULER", "curly": "“x", "ratio": "16:9", "n": 3,
	}
	got := FormatInputs(in)
	want := `big=1e+21 curly="“x" empty="" flag=false n=3 plain=K_EULER prompt="a cat, on a mat" quote="say \"hi\" \\o/" ` +
		`ratio=16:9 scale=7.5 seed=42 text_bool="true" text_number="42" tiny=1e-07 whole=2.0`
	if got != want {
		t.Errorf("FormatInputs =\n%s\nwant\n%s", got, want)
	}
	back, err := ParseInputs(got)
	if err != nil {
		t.Fatal(err)
	}
	in["n"] = int64(3) // ParseInputs gives int64 for every whole number
	if !reflect.DeepEqual(back, in) {
		t.Errorf("read back\n%#v\nwant\n%#v", back, in)
	}
	if FormatInputs(nil) != "" {
		t.Error("no inputs should format as nothing")
	}
}

// maxErrorLen bounds an error of ParseInputs: its text plus at most 40 quoted characters, each
// at worst a 10-byte escape.
const maxErrorLen = 600

func TestParseInputsErrorsAreBounded(t *testing.T) {
	unprintable := strings.Repeat("\U000F0000", 500) // private use: quoted as \U000f0000
	for _, in := range []string{unprintable, "k=" + unprintable + "=1 " + unprintable, strings.Repeat("k", 5000) + " = 1",
		strings.Repeat("k", 5000) + "=", "seed=1 " + strings.Repeat("k", 5000) + `="x`} {
		_, err := ParseInputs(in)
		if err == nil || len(err.Error()) > maxErrorLen || !utf8.ValidString(err.Error()) {
			t.Errorf("ParseInputs(%.20q...) = %d bytes of error: %.80v", in, len(fmt.Sprint(err)), err)
		}
	}
}

// FuzzParseInputs checks that ParseInputs never panics, returns only well-formed inputs, says
// what went wrong in a bounded, printable message, and that what it returns survives a trip
// through FormatInputs.
func FuzzParseInputs(f *testing.F) {
	for _, seed := range []string{
		"", "steps=50", "a=1,b=2, c=3", `prompt="a cat, on a mat" neg='no "dogs"'`,
		`a="say \"hi\"" b='it\'s' c="back\\slash" d="C:\temp"`, "style=“oil, on canvas” x=‘a b’",
		"a=-3 b=+4 c=007 d=.5 e=1. f=1e3 g=-2.5E-3", "a=0x10 b=1_000 c=Inf d=NaN e=1e", "seed=99999999999999999999",
		"scale=1e999", "seed= steps=2", `p="a"b=1`, "x=\xff\xfe", "k=\"\xff\"", "a=1\u00a0b=2", "seed=1 seed=2",
		"url=https://example.com/a.png?x=1&y=2", "=", "\\", `a="\`, "a=“", "a=true B=FALSE",
	} {
		f.Add(seed)
	}
	f.Fuzz(func(t *testing.T, s string) {
		got, err := ParseInputs(s)
		if err != nil {
			msg := err.Error()
			if got != nil || !strings.HasPrefix(msg, "inputs: ") || !utf8.ValidString(msg) || len(msg) > maxErrorLen {
				t.Fatalf("ParseInputs(%q): %v with error %q", s, got, msg)
			}
			return
		}
		for k, v := range got {
			if !validKey(k) || strings.Trim(k, "_abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789") != "" {
				t.Fatalf("ParseInputs(%q) gave the key %q", s, k)
			}
			switch x := v.(type) {
			case string, int64, bool:
			case float64:
				if math.IsInf(x, 0) || math.IsNaN(x) {
					t.Fatalf("ParseInputs(%q) gave %v for %q", s, x, k)
				}
			default:
				t.Fatalf("ParseInputs(%q) gave a %T for %q", s, v, k)
			}
		}
		text := FormatInputs(got)
		back, err := ParseInputs(text)
		if err != nil || !reflect.DeepEqual(back, got) {
			t.Fatalf("ParseInputs(%q) = %#v\nFormatInputs = %q\nread back %#v, %v", s, got, text, back, err)
		}
	})
}
