package config

import (
	"errors"
	"os"
	"strings"
	"testing"
)

// FuzzParse feeds Parse arbitrary files. It must never panic; a configuration it accepts must
// have every notifier its rules name, each resolving to a configured one, and must print;
// every problem it reports must name the file. More seeds are in testdata/fuzz/FuzzParse.
func FuzzParse(f *testing.F) {
	example, err := os.ReadFile(examplePath)
	if err != nil {
		f.Fatal(err)
	}
	f.Add(example)
	f.Add(defaultTOML)
	f.Add([]byte(minimal))
	f.Add([]byte(""))
	f.Add([]byte("[server]\naddr = \"${RELAY_ADDR:-${X:-$$}}\"\nmax_body = 1024\n"))
	f.Add([]byte("[notifiers.s]\ntype = \"slack\"\nwebhook_url = \"${SLACK_WEBHOOK_URL}\"\nfallback = \"s\"\n"))
	f.Add([]byte("[notifiers.a]\ntype = \"console\"\nfallback = \"b\"\n[notifiers.b]\ntype = \"console\"\nfallback = \"a\"\n"))
	f.Add([]byte("rules = [{name = \"x\", notify = [\"y\"], when = \"1 +\"}, 3]\n"))
	f.Add([]byte("[[rules]]\nname = \"${A\"\nstatuses = [\"sucess\", 1]\nmeta = {a = {b = 1}}\n"))
	f.Add([]byte("[dispatch]\nworkers = \"${WORKERS:-4}\"\nlease = \"1h\"\nsend_timeout = \"2h\"\n"))
	f.Add([]byte("[store]\nurl = \"postgres://u:p@h/db\"\ndedup_window = \"1s\"\n"))
	f.Add([]byte("a = [\n"))

	getenv := env("SLACK_WEBHOOK_URL", "https://hooks.slack.com/services/T/B/X", "SLACK_CHANNEL", "#ml",
		"RELAY_ADDR", "127.0.0.1:0", "WORKERS", "8", "QUOTE", `"'}${A}$$`)
	f.Fuzz(func(t *testing.T, data []byte) {
		c, err := Parse("fuzz.toml", data, getenv)
		if err != nil {
			if c != nil {
				t.Fatal("both a configuration and an error")
			}
			problems := []error{err}
			var joined interface{ Unwrap() []error }
			if errors.As(err, &joined) {
				problems = joined.Unwrap()
			}
			for _, p := range problems {
				var e *Error
				if !errors.As(p, &e) || e.File != "fuzz.toml" || !strings.HasPrefix(p.Error(), "fuzz.toml") {
					t.Fatalf("problem not naming the file: %#v", p)
				}
			}
			return
		}
		if c.Notifiers == nil {
			t.Fatal("nil Notifiers")
		}
		for i, r := range c.Rules {
			if r == nil {
				t.Fatalf("rules[%d] is nil", i)
			}
			for _, name := range r.Notify {
				if c.Notifiers[name] == nil {
					t.Fatalf("rules[%d] notifies %q, which is not defined", i, name)
				}
				n, err := c.Resolve(name)
				if err != nil || n == nil || !n.Configured() {
					t.Fatalf("rules[%d]: %q does not resolve: %v", i, name, err)
				}
			}
		}
		for name, n := range c.Notifiers {
			if n == nil || n.Name != name || n.settings() == nil {
				t.Fatalf("notifier %q = %+v", name, n)
			}
		}
		if !strings.HasPrefix(c.Redacted(), "# Effective configuration from fuzz.toml") {
			t.Fatal("Redacted lacks its header")
		}
	})
}
