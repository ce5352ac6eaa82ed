package config

import (
	"strings"
	"testing"
)

// env returns a getenv that knows only the given name, value pairs.
func env(kv ...string) func(string) (string, bool) {
	m := map[string]string{}
	for i := 0; i+1 < len(kv); i += 2 {
		m[kv[i]] = kv[i+1]
	}
	return func(name string) (string, bool) {
		v, ok := m[name]
		return v, ok
	}
}

func TestExpand(t *testing.T) {
	getenv := env("A", "alpha", "EMPTY", "", "Q", `say "hi" ${A} $$`, "_X1", "x1")
	tests := []struct {
		name string
		in   string
		want string
	}{
		{"no dollar", "plain text", "plain text"},
		{"set", "${A}", "alpha"},
		{"embedded", "pre-${A}-post", "pre-alpha-post"},
		{"twice", "${A}${A}", "alphaalpha"},
		{"unset is empty", "[${NOPE}]", "[]"},
		{"underscore and digits", "${_X1}", "x1"},
		{"default when unset", "${NOPE:-fallback}", "fallback"},
		{"default when empty", "${EMPTY:-fallback}", "fallback"},
		{"value over default", "${A:-fallback}", "alpha"},
		{"empty default", "${NOPE:-}", ""},
		{"default with spaces and colons", "${NOPE:-127.0.0.1:8080}", "127.0.0.1:8080"},
		{"nested default", "${NOPE:-${A}}", "alpha"},
		{"nested default unset", "${NOPE:-${NADA:-deep}}", "deep"},
		{"dollar dollar", "$$", "$"},
		{"dollar dollar brace", "$${A}", "${A}"},
		{"dollar dollar in default", "${NOPE:-$$5}", "$5"},
		{"lone dollar at end", "cost$", "cost$"},
		{"dollar before digit", "$5", "$5"},
		{"dollar before quote", `matches "^a$"`, `matches "^a$"`},
		{"closing brace alone", "a}b", "a}b"},
		{"env value not expanded again", "${Q}", `say "hi" ${A} $$`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := expand(tt.in, getenv, false)
			if err != nil {
				t.Fatalf("expand(%q): %v", tt.in, err)
			}
			if got != tt.want {
				t.Errorf("expand(%q) = %q, want %q", tt.in, got, tt.want)
			}
		})
	}
}

func TestExpandErrors(t *testing.T) {
	tests := []struct {
		name string
		in   string
		want string // in the error when the value is not secret
	}{
		{"unterminated", "${A", `unterminated "${" at byte 0`},
		{"unterminated later", "abc ${A", `unterminated "${" at byte 4`},
		{"unterminated default", "${A:-x", `unterminated "${" at byte 0`},
		{"unterminated nested", "${A:-${B}", `unterminated "${" at byte 0`},
		{"unterminated bad name", "${A B", `unterminated "${"`},
		{"empty name", "${}", `bad variable name ""`},
		{"leading digit", "${1X}", `bad variable name "1X"`},
		{"space in name", "${A B}", `bad variable name "A B"`},
		{"dash in name", "${-x}", `bad variable name "-x"`},
		{"no name before default", "${:-x}", `bad variable name ""`},
		{"dash form", "${A-x}", `unsupported "${A-..."`},
		{"colon form", "${A:x}", `unsupported "${A:..."`},
		{"question form", "${A?}", `unsupported "${A?..."`},
		{"bare name", "$HOME/x", `"$HOME" is not expanded (write ${HOME}, or $$ for a literal "$")`},
		{"bad in default", "${A:-${1}}", `bad variable name "1"`},
		{"too deep", strings.Repeat("${A:-", 10) + strings.Repeat("}", 10), "nest more than 8 deep"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := expand(tt.in, env(), false)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("expand(%q) error = %v, want it to contain %q", tt.in, err, tt.want)
			}
			// As a secret the error still says what is wrong but quotes nothing of the value.
			secret := strings.ReplaceAll(tt.in, "A", "SECRETVALUE")
			secret = strings.ReplaceAll(secret, "HOME", "SECRETVALUE")
			_, err = expand(secret, env(), true)
			if err == nil {
				t.Fatalf("expand(%q) as a secret: no error", secret)
			}
			if strings.Contains(err.Error(), "SECRETVALUE") {
				t.Errorf("expand(%q) as a secret: error shows the value: %v", secret, err)
			}
		})
	}
}
