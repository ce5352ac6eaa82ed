package main

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestRun(t *testing.T) {
	dir := t.TempDir()
	write := func(name, text string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(text), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	typo := write("typo.toml", "[notifiers.console]\ntype = \"console\"\n[[rules]]\nname = \"r\"\nstatuses = [\"sucess\"]\nnotify = [\"console\"]\n")
	unknown := write("unknown.toml", "[server]\nadress = \"x\"\n")
	// Valid to the config, refused by the Slack notifier serve builds: check must refuse it too.
	bothSlack := write("bothslack.toml", "[notifiers.s]\ntype = \"slack\"\nwebhook_url = \"https://hooks.slack.com/services/T/B/x\"\n"+
		"channel = \"#ml\"\n[[rules]]\nname = \"r\"\nnotify = [\"s\"]\n")
	// An expression that fails on some events: serve skips the rule for them, and so does check.
	whenFails := write("whenfails.toml", "[notifiers.console]\ntype = \"console\"\n[[rules]]\nname = \"r\"\nnotify = [\"console\"]\n"+
		"when = 'input.num_outputs >= 2'\n")
	badTemplate := write("badtmpl.toml", "[notifiers.console]\ntype = \"console\"\n[[rules]]\nname = \"r\"\nnotify = [\"console\"]\ntemplate = \"nosuchset\"\n")
	// A bot template that only fails when rendered: check must render it, not only find it.
	if err := os.MkdirAll(filepath.Join(dir, "tpl"), 0o755); err != nil {
		t.Fatal(err)
	}
	write(filepath.Join("tpl", "bot.tmpl"), `{{define "botset.discord.title"}}{{.Modle}}{{end}}`)
	badBotTemplate := write("badbot.toml", "[server]\npublic_url = \"https://relay.example.com\"\n[templates]\ndir = \""+
		filepath.ToSlash(filepath.Join(dir, "tpl"))+"\"\n[bot]\napp_id = \"123456789012345678\"\npublic_key = \""+strings.Repeat("ab", 32)+
		"\"\nbot_token = \"t\"\nreplicate_token = \"r\"\nmodels = [\"a/b\"]\ntemplate = \"botset\"\n")
	noTemplates := write("notemplates.toml", "[templates]\ndir = \""+filepath.ToSlash(filepath.Join(dir, "none"))+"\"\n")
	noStoreDir := write("nostoredir.toml", "[store]\nurl = \""+filepath.ToSlash(filepath.Join(dir, "none", "relay.db"))+"\"\n")
	cases := []struct {
		name     string
		args     []string
		code     int
		stdout   []string
		stderr   []string
		noStdout bool
	}{
		{name: "no arguments", args: nil, code: 2, stderr: []string{"Usage:"}},
		{name: "unknown command", args: []string{"frobnicate"}, code: 2, stderr: []string{`unknown command "frobnicate"`}},
		{name: "version", args: []string{"version"}, code: 0, stdout: []string{"relay "}},
		{name: "help", args: []string{"help"}, code: 0, stdout: []string{"relay serve"}},
		{name: "bad flag", args: []string{"check", "--nope"}, code: 2, stderr: []string{"usage: check: flag provided but not defined: -nope"}},
		{name: "extra argument", args: []string{"serve", "extra"}, code: 2, stderr: []string{"serve takes no arguments"}},
		{name: "check the example", args: []string{"check", "--config", "../../config.example.toml"}, code: 0,
			stdout: []string{"config.example.toml: ok", "training-finished", "falls back to console"}},
		{name: "check the embedded defaults", args: []string{"check"}, code: 0, stdout: []string{"(embedded defaults): ok"}},
		{name: "check a missing file", args: []string{"check", "--config", filepath.Join(dir, "missing.toml")}, code: 1,
			stderr: []string{"missing.toml"}, noStdout: true},
		{name: "check a typo names file, key and reason", args: []string{"check", "--config", typo}, code: 1,
			stderr: []string{"typo.toml", "rules[0].statuses", `unknown status "sucess"`}, noStdout: true},
		{name: "check an unknown key", args: []string{"check", "--config", unknown}, code: 1,
			stderr: []string{"unknown.toml", `unknown key "server.adress"`}, noStdout: true},
		{name: "check builds the notifiers as serve does", args: []string{"check", "--config", bothSlack}, code: 1,
			stderr: []string{"bothslack.toml", "notifiers.s", "not both"}, noStdout: true},
		{name: "check a rule whose expression fails on some events", args: []string{"check", "--config", whenFails}, code: 0,
			stdout: []string{"whenfails.toml: ok", "(skipped for training succeeded: rule r: when: invalid operation"}},
		{name: "deliveries with a stray argument", args: []string{"deliveries", "dead", "--state", "dead"}, code: 2,
			stderr: []string{"deliveries takes no arguments"}},
		{name: "check a missing template set", args: []string{"check", "--config", badTemplate}, code: 1,
			stderr: []string{"rules[0].template", `"nosuchset"`}, noStdout: true},
		{name: "check renders the bot's template", args: []string{"check", "--config", badBotTemplate}, code: 1,
			stderr: []string{"badbot.toml: bot.template: sample prediction", "Modle"}, noStdout: true},
		{name: "check a missing template directory names file and key", args: []string{"check", "--config", noTemplates}, code: 1,
			stderr: []string{"notemplates.toml: templates.dir: "}, noStdout: true},
		{name: "a store that cannot be opened names file and key", args: []string{"deliveries", "--config", noStoreDir}, code: 1,
			stderr: []string{"nostoredir.toml: store.url: "}, noStdout: true},
		{name: "send-test bad status", args: []string{"send-test", "--status", "done"}, code: 2, stderr: []string{`--status "done"`}},
		{name: "deliveries bad state", args: []string{"deliveries", "--state", "lost"}, code: 2, stderr: []string{"--state must be"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			var stdout, stderr bytes.Buffer
			code := run(context.Background(), tc.args, &stdout, &stderr)
			if code != tc.code {
				t.Fatalf("exit %d, want %d\nstdout: %s\nstderr: %s", code, tc.code, stdout.String(), stderr.String())
			}
			for _, want := range tc.stdout {
				if !strings.Contains(stdout.String(), want) {
					t.Errorf("stdout lacks %q:\n%s", want, stdout.String())
				}
			}
			for _, want := range tc.stderr {
				if !strings.Contains(stderr.String(), want) {
					t.Errorf("stderr lacks %q:\n%s", want, stderr.String())
				}
			}
			if tc.noStdout && stdout.Len() > 0 {
				t.Errorf("a failed check printed to stdout:\n%s", stdout.String())
			}
		})
	}
}
