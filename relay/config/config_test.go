package config

import (
	"errors"
	"flag"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/mlrelay/relay/relay"
	"github.com/mlrelay/relay/relay/replicate"
)

var update = flag.Bool("update", false, "rewrite the golden files in testdata")

const examplePath = "../../config.example.toml"

// console is a console notifier; keys appended to it go into its table.
const console = `
[notifiers.console]
type = "console"
`

// rule is a rule sending everything to the console; keys appended to it go into its table.
const rule = `
[[rules]]
name = "all"
notify = ["console"]
`

// minimal is the smallest useful configuration: one console notifier and one rule.
const minimal = console + rule

func TestDefaultsApplied(t *testing.T) {
	c, err := Parse("config.toml", []byte(minimal), env())
	if err != nil {
		t.Fatal(err)
	}
	want := defaults()
	checks := []struct {
		name      string
		got, want any
	}{
		{"server", c.Server, Server{
			Addr: "127.0.0.1:8080", HookPath: "/hooks/replicate", MaxBody: 10 << 20,
			ReadTimeout: Duration(10 * time.Second), ShutdownTimeout: Duration(30 * time.Second),
		}},
		{"log", c.Log, Log{Level: "info", Format: "text"}},
		{"store", c.Store, Store{URL: "relay.db", DedupWindow: Duration(72 * time.Hour), Retention: Duration(168 * time.Hour)}},
		{"replicate", c.Replicate, Replicate{Tolerance: Duration(5 * time.Minute)}},
		{"dispatch", c.Dispatch, Dispatch{
			Workers: 4, Lease: Duration(time.Minute), SendTimeout: Duration(15 * time.Second), MaxAttempts: 25,
			MaxAge: Duration(24 * time.Hour), BackoffMin: Duration(time.Second), BackoffMax: Duration(10 * time.Minute),
		}},
		{"templates", c.Templates, Templates{}},
		{"attachments", c.Attachments, Attachments{Hosts: []string{"replicate.delivery"}, Timeout: Duration(20 * time.Second)}},
		{"defaults() agrees", c.Server, want.Server},
		{"console", *c.Notifiers["console"], Notifier{Name: "console", Type: "console", AttachMaxSize: 8 << 20, AttachMaxFiles: 4, Console: &Console{Output: "stdout"}}},
		{"source", c.Source, "config.toml"},
		{"store driver", c.Store.Driver(), "sqlite"},
		{"store path", c.Store.Path(), "relay.db"},
		{"log level", c.Log.SlogLevel().String(), "INFO"},
		{"rule template", c.Rules[0].Template, "default"},
	}
	for _, ck := range checks {
		t.Run(ck.name, func(t *testing.T) {
			if !reflect.DeepEqual(ck.got, ck.want) {
				t.Errorf("got %+v, want %+v", ck.got, ck.want)
			}
		})
	}

	t.Run("slack defaults", func(t *testing.T) {
		c, err := Parse("config.toml", []byte(`
[notifiers.slack]
type = "slack"
webhook_url = "https://hooks.slack.com/services/T/B/X"
`), env())
		if err != nil {
			t.Fatal(err)
		}
		n := c.Notifiers["slack"]
		if n.Rate != 1 || n.Burst != 3 || n.Slack.Timeout.D() != 10*time.Second || n.Slack.APIURL != "" || n.Console != nil {
			t.Errorf("slack notifier = %+v %+v", n, n.Slack)
		}
	})
}

func TestEmbeddedDefault(t *testing.T) {
	tests := []struct {
		name     string
		getenv   func(string) (string, bool)
		slackTo  string
		addr, db string
	}{
		{"no variables", env(), "console", "127.0.0.1:8080", "relay.db"},
		{"webhook", env("SLACK_WEBHOOK_URL", "https://hooks.slack.com/services/T/B/X", "RELAY_ADDR", ":9000", "RELAY_DB", "/var/lib/relay/relay.db"),
			"slack", ":9000", "/var/lib/relay/relay.db"},
		{"bot token", env("SLACK_BOT_TOKEN", "xoxb-1", "SLACK_CHANNEL", "#ml"), "slack", "127.0.0.1:8080", "relay.db"},
		{"empty variables use defaults", env("RELAY_ADDR", "", "RELAY_DB", ""), "console", "127.0.0.1:8080", "relay.db"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, err := Default(tt.getenv)
			if err != nil {
				t.Fatal(err)
			}
			if c.Source != "(embedded defaults)" {
				t.Errorf("Source = %q", c.Source)
			}
			n, err := c.Resolve("slack")
			if err != nil {
				t.Fatal(err)
			}
			if n.Name != tt.slackTo {
				t.Errorf("slack resolves to %q, want %q", n.Name, tt.slackTo)
			}
			if c.Server.Addr != tt.addr || c.Store.URL != tt.db {
				t.Errorf("addr %q db %q, want %q %q", c.Server.Addr, c.Store.URL, tt.addr, tt.db)
			}
			if len(c.Rules) != 1 || !reflect.DeepEqual(c.Rules[0].Notify, []string{"slack"}) {
				t.Fatalf("rules = %+v", c.Rules)
			}
			for _, s := range replicate.Statuses {
				for _, k := range []relay.Kind{relay.KindPrediction, relay.KindTraining} {
					ev := &relay.Event{Kind: k}
					ev.Status = s
					ok, err := c.Rules[0].Match(ev)
					if err != nil || ok != s.Terminal() {
						t.Errorf("%s %s: match %v, %v; want %v", k, s, ok, err, s.Terminal())
					}
				}
			}
		})
	}
	t.Run("error names the source", func(t *testing.T) {
		_, err := Default(env("RELAY_ADDR", "nonsense"))
		if err == nil || !strings.HasPrefix(err.Error(), `(embedded defaults): server.addr: bad address "nonsense"`) {
			t.Errorf("err = %v", err)
		}
	})
}

func TestExampleConfig(t *testing.T) {
	secret2 := "whsec_" + strings.Repeat("QUJD", 8)
	all := []string{
		"RELAY_ADDR", "0.0.0.0:9090",
		"RELAY_PUBLIC_URL", "https://relay.example.com",
		"RELAY_DB", "sqlite:/var/lib/relay/relay.db",
		"REPLICATE_WEBHOOK_SECRET", replicate.SampleSecret + ", " + secret2,
		"SLACK_API_URL", "http://127.0.0.1:9999/api/",
		"DISCORD_WEBHOOK_URL", "https://discord.com/api/webhooks/1/abc",
		"DISCORD_API_URL", "http://127.0.0.1:9998/api/v10",
		"SMTP_HOST", "smtp.example.com", "SMTP_PORT", "2525", "SMTP_TLS", "tls",
		"SMTP_USERNAME", "relay", "SMTP_PASSWORD", "pw",
		"EMAIL_FROM", "relay@example.com", "EMAIL_TO", "a@example.com,b@example.com",
		"RELAY_ATTACHMENT_HOSTS", "replicate.delivery, .files.example",
	}
	tests := []struct {
		name    string
		getenv  func(string) (string, bool)
		slackTo string
		check   func(t *testing.T, c *Config)
	}{
		{"empty environment", env(), "console", func(t *testing.T, c *Config) {
			if c.Server.Addr != "127.0.0.1:8080" || c.Store.Path() != "relay.db" || len(c.Replicate.Secrets()) != 0 || c.Server.PublicURL != "" {
				t.Errorf("server %+v store %+v", c.Server, c.Store)
			}
		}},
		{"every variable, webhook", env(append(all, "SLACK_WEBHOOK_URL", "https://hooks.slack.com/services/T0/B0/XYZ")...), "slack", func(t *testing.T, c *Config) {
			if c.Server.Addr != "0.0.0.0:9090" || c.Server.PublicURL != "https://relay.example.com" {
				t.Errorf("server = %+v", c.Server)
			}
			if c.Store.Driver() != "sqlite" || c.Store.Path() != "/var/lib/relay/relay.db" {
				t.Errorf("store = %s %s", c.Store.Driver(), c.Store.Path())
			}
			if got := c.Replicate.Secrets(); !reflect.DeepEqual(got, []string{replicate.SampleSecret, secret2}) {
				t.Errorf("secrets = %q", got)
			}
			if got := c.Attachments.HostList(); !reflect.DeepEqual(got, []string{"replicate.delivery", ".files.example"}) {
				t.Errorf("attachment hosts = %q", got)
			}
			for _, name := range []string{"slack", "discord", "email"} {
				if !c.Notifiers[name].Attach {
					t.Errorf("notifiers.%s.attach is off; the example attaches output files", name)
				}
			}
			s := c.Notifiers["slack"].Slack
			if s.WebhookURL.Reveal() != "https://hooks.slack.com/services/T0/B0/XYZ" || s.APIURL != "http://127.0.0.1:9999/api/" {
				t.Errorf("slack = %+v", s)
			}
		}},
		{"every variable, bot token", env(append(all, "SLACK_BOT_TOKEN", "xoxb-123", "SLACK_CHANNEL", "#ml-alerts")...), "slack", func(t *testing.T, c *Config) {
			s := c.Notifiers["slack"].Slack
			if s.Token.Reveal() != "xoxb-123" || s.Channel != "#ml-alerts" || s.WebhookURL != "" {
				t.Errorf("slack = %+v", s)
			}
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, err := Load(examplePath, tt.getenv)
			if err != nil {
				t.Fatal(err)
			}
			n, err := c.Resolve("slack")
			if err != nil {
				t.Fatal(err)
			}
			if n.Name != tt.slackTo {
				t.Errorf("slack resolves to %q, want %q", n.Name, tt.slackTo)
			}
			if len(c.Rules) != 3 {
				t.Fatalf("%d rules, want 3", len(c.Rules))
			}
			r := c.Rules[0]
			if r.Name != "training-finished" || !reflect.DeepEqual(r.Kinds, []relay.Kind{"training"}) ||
				!reflect.DeepEqual(r.Statuses, []replicate.Status{"succeeded", "failed", "canceled"}) ||
				!reflect.DeepEqual(r.Notify, []string{"slack", "email"}) {
				t.Errorf("rule = %+v", r.Rule)
			}
			r = c.Rules[1]
			if r.Name != "prediction-failures" || !reflect.DeepEqual(r.Kinds, []relay.Kind{"prediction"}) ||
				!reflect.DeepEqual(r.Statuses, []replicate.Status{"failed", "canceled", "aborted"}) ||
				!reflect.DeepEqual(r.Notify, []string{"discord"}) {
				t.Errorf("rule = %+v", r.Rule)
			}
			r = c.Rules[2]
			if r.Name != "failures-digest" || !reflect.DeepEqual(r.Statuses, []replicate.Status{"failed", "aborted"}) ||
				len(r.Notify) != 0 || !reflect.DeepEqual(r.Digests, []string{"daily-failures"}) {
				t.Errorf("rule = %+v", r.Rule)
			}
			if dg := c.Digests["daily-failures"]; dg == nil || dg.Schedule != "0 9 * * *" || !reflect.DeepEqual(dg.Notify, []string{"email"}) {
				t.Errorf("digest = %+v", dg)
			}
			d, err := c.Resolve("discord")
			if err != nil {
				t.Fatal(err)
			}
			if want := map[string]string{"console": "console", "slack": "discord"}[tt.slackTo]; d.Name != want {
				t.Errorf("discord resolves to %q, want %q", d.Name, want)
			}
			e, err := c.Resolve("email")
			if err != nil {
				t.Fatal(err)
			}
			if want := map[string]string{"console": "console", "slack": "email"}[tt.slackTo]; e.Name != want {
				t.Errorf("email resolves to %q, want %q", e.Name, want)
			}
			if e.Name == "email" && (e.Email.Port != 2525 || e.Email.TLS != "tls" || len(Recipients(e.Email.To)) != 2) {
				t.Errorf("email from the environment: %+v", e.Email)
			}
			tt.check(t, c)
		})
	}

	t.Run("both slack variables", func(t *testing.T) {
		_, err := Load(examplePath, env("SLACK_WEBHOOK_URL", "https://hooks.slack.com/services/T/B/X", "SLACK_BOT_TOKEN", "xoxb-1", "SLACK_CHANNEL", "#a"))
		want := examplePath + ": notifiers.slack: webhook_url and token are both set; use one"
		if err == nil || err.Error() != want {
			t.Errorf("err = %v, want %s", err, want)
		}
	})

	// The commented-out rule must be valid too: uncomment it and load again.
	t.Run("commented rule", func(t *testing.T) {
		data, err := os.ReadFile(examplePath)
		if err != nil {
			t.Fatal(err)
		}
		_, rest, ok := strings.Cut(string(data), "\n# [[rules]]\n")
		if !ok {
			t.Fatal("the example has no commented-out rule")
		}
		var lines []string
		for _, line := range strings.Split("# [[rules]]\n"+rest, "\n") {
			lines = append(lines, strings.TrimPrefix(strings.TrimPrefix(line, "# "), "#"))
		}
		text := string(data) + "\n" + strings.Join(lines, "\n")
		c, err := Parse("uncommented.toml", []byte(text), env())
		if err != nil {
			t.Fatal(err)
		}
		r := c.Rules[3]
		if r.Name != "slow-vision-predictions" || r.When == "" || r.Meta["team"] != "vision" || len(r.Models) != 2 {
			t.Fatalf("rule = %+v", r.Rule)
		}
		ev := &relay.Event{Kind: relay.KindPrediction, Meta: map[string]string{"team": "vision"}}
		ev.Model, ev.Status, ev.Metrics = "acme/vision-large", replicate.Succeeded, map[string]any{"predict_time": 75.0}
		if ok, err := r.Match(ev); !ok || err != nil {
			t.Errorf("slow prediction: match %v, %v", ok, err)
		}
		ev.Metrics["predict_time"] = 3.0
		if ok, err := r.Match(ev); ok || err != nil {
			t.Errorf("fast prediction: match %v, %v", ok, err)
		}
	})
}

func TestExpansionEverywhere(t *testing.T) {
	doc := `
[server]
addr = "${HOST:-127.0.0.1}:${PORT}"
max_body = "${MAX_BODY:-1MiB}"
read_timeout = "${READ_TIMEOUT}"
hook_path = "/hooks/$$literal"
[dispatch]
workers = "${WORKERS}"
lease = "${LEASE:-2m}"
[notifiers.console]
type = "${CONSOLE_TYPE:-console}"
[notifiers.slack]
type = "slack"
rate = "${RATE}"
webhook_url = "${HOOK}"
[[rules]]
name = "${RULE:-r}"
kinds = ["${KIND}", "prediction"]
statuses = ["${S1:-failed}"]
models = ["${OWNER}/*"]
meta = { team = "${TEAM}", "x y" = "$${z}" }
when = 'model matches "^acme/.*$" && status == "${S1:-failed}"'
notify = ["${WHERE:-console}"]
`
	quote := `https://hooks.example/"quoted'${NOT_EXPANDED}\n`
	c, err := Parse("config.toml", []byte(doc), env("PORT", "9000", "READ_TIMEOUT", "3s", "WORKERS", "8",
		"RATE", "2.5", "HOOK", quote, "KIND", "training", "OWNER", "acme", "TEAM", "vision", "WHERE", "slack"))
	if err != nil {
		t.Fatal(err)
	}
	r := c.Rules[0]
	checks := []struct {
		name      string
		got, want any
	}{
		{"string", c.Server.Addr, "127.0.0.1:9000"},
		{"dollar dollar", c.Server.HookPath, "/hooks/$literal"},
		{"size", c.Server.MaxBody, Size(1 << 20)},
		{"duration", c.Server.ReadTimeout.D(), 3 * time.Second},
		{"duration default", c.Dispatch.Lease.D(), 2 * time.Minute},
		{"integer as string", c.Dispatch.Workers, 8},
		{"float as string", c.Notifiers["slack"].Rate, 2.5},
		{"notifier type", c.Notifiers["console"].Type, "console"},
		{"secret with quotes", c.Notifiers["slack"].Slack.WebhookURL.Reveal(), quote},
		{"rule name", r.Name, "r"},
		{"array", r.Kinds, []relay.Kind{"training", "prediction"}},
		{"array default", r.Statuses, []replicate.Status{"failed"}},
		{"glob", r.Models, []string{"acme/*"}},
		{"table", r.Meta, map[string]string{"team": "vision", "x y": "${z}"}},
		{"expression", r.When, `model matches "^acme/.*$" && status == "failed"`},
		{"notify", r.Notify, []string{"slack"}},
	}
	for _, ck := range checks {
		t.Run(ck.name, func(t *testing.T) {
			if !reflect.DeepEqual(ck.got, ck.want) {
				t.Errorf("got %#v, want %#v", ck.got, ck.want)
			}
		})
	}
}

// problem is an expected error: every part must appear in one line of the joined error.
type problem []string

func TestValidationErrors(t *testing.T) {
	const slackOK = `
[notifiers.slack]
type = "slack"
webhook_url = "https://hooks.slack.com/services/T/B/X"
`
	tests := []struct {
		name string
		doc  string
		env  []string
		want problem // file name, key and reason
	}{
		// Syntax and shape.
		{"syntax error has the line", "[server]\naddr = \"x\"\nhook_path = \n", nil,
			problem{"config.toml:3: syntax error: expected value"}},
		{"section not a table", "server = 5\n" + minimal, nil, problem{"config.toml: server: want a table, got an integer"}},
		{"notifiers not a table", "notifiers = 1\n", nil, problem{"config.toml: notifiers: want a table, got an integer"}},
		{"rules a number", "rules = 5\n", nil, problem{"config.toml: rules: want an array of tables ([[rules]]), got an integer"}},
		{"rule not a table", "rules = [1]\n", nil, problem{"config.toml: rules[0]: want a table, got an integer"}},
		{"type mismatch string", "[server]\naddr = 8080\n" + minimal, nil, problem{"config.toml: server.addr: want a string, got an integer"}},
		{"type mismatch integer", "[dispatch]\nworkers = 1.5\n" + minimal, nil, problem{"config.toml: dispatch.workers: want an integer, got a float"}},
		{"integer string not a number", "[dispatch]\nworkers = \"four\"\n" + minimal, nil, problem{`config.toml: dispatch.workers: want an integer, got "four"`}},
		{"float string not a number", "[notifiers.c2]\ntype = \"console\"\nrate = \"fast\"\n", nil,
			problem{`config.toml: notifiers.c2.rate: want a number, got "fast"`}},
		{"list not a list", "[[rules]]\nname = \"r\"\nnotify = \"console\"\n[notifiers.console]\ntype = \"console\"\n", nil,
			problem{"config.toml: rules[0].notify: want an array of strings, got a string"}},
		{"list element not a string", "[[rules]]\nname = \"r\"\nnotify = [\"console\", 2]\n[notifiers.console]\ntype = \"console\"\n", nil,
			problem{"config.toml: rules[0].notify[1]: want a string, got an integer"}},
		{"meta value not a string", minimal + "meta = { run = 1 }\n", nil, problem{"config.toml: rules[0].meta.run: want a string, got an integer"}},
		{"meta not a table", minimal + "meta = \"x\"\n", nil, problem{"config.toml: rules[0].meta: want a table of strings, got a string"}},
		{"duration not a string", "[server]\nread_timeout = 10\n" + minimal, nil,
			problem{`config.toml: server.read_timeout: want a string with a unit, such as "90s", "5m" or "72h", got an integer`}},
		{"bad duration", "[dispatch]\nlease = \"5 minutes\"\n" + minimal, nil, problem{`config.toml: dispatch.lease: bad duration "5 minutes"`}},
		{"duration in days", "[store]\nretention = \"7d\"\n" + minimal, nil, problem{`config.toml: store.retention: bad duration "7d"`, `write "168h" for a week`}},
		{"size not a size", "[server]\nmax_body = \"lots\"\n" + minimal, nil, problem{`config.toml: server.max_body: bad size "lots"`}},
		{"size negative", "[server]\nmax_body = -1\n" + minimal, nil, problem{"config.toml: server.max_body: must not be negative, got -1"}},

		// Expansion.
		{"unterminated", "[server]\naddr = \"${RELAY_ADDR\"\n" + minimal, nil, problem{`config.toml: server.addr: unterminated "${" at byte 0 (add the closing "}")`}},
		{"unterminated in array", minimal + "kinds = [\"training\", \"${KIND\"]\n", nil, problem{`config.toml: rules[0].kinds[1]: unterminated "${"`}},
		{"bad name in table", minimal + "meta = { team = \"${TE AM}\" }\n", nil, problem{`config.toml: rules[0].meta.team: bad variable name "TE AM"`}},
		{"bare name in duration", "[dispatch]\nlease = \"$LEASE\"\n" + minimal, nil, problem{`config.toml: dispatch.lease: "$LEASE" is not expanded (write ${LEASE}, or $$ for a literal "$")`}},

		// Server.
		{"addr", "[server]\naddr = \"localhost\"\n" + minimal, nil, problem{`config.toml: server.addr: bad address "localhost" (want host:port`}},
		{"addr port", "[server]\naddr = \"${RELAY_ADDR}\"\n" + minimal, []string{"RELAY_ADDR", "host:99999"},
			problem{`config.toml: server.addr: bad port "99999" in "host:99999"`}},
		{"hook_path slash", "[server]\nhook_path = \"hooks/replicate\"\n" + minimal, nil, problem{`config.toml: server.hook_path: must start with "/", got "hooks/replicate"`}},
		{"hook_path query", "[server]\nhook_path = \"/hooks?x=1\"\n" + minimal, nil, problem{`config.toml: server.hook_path: must be a plain path, without "?"`}},
		{"hook_path wildcard", "[server]\nhook_path = \"/hooks/{kind}\"\n" + minimal, nil, problem{`config.toml: server.hook_path: must be a plain path, without "?", "#", "{", "}" or spaces, got "/hooks/{kind}"`}},
		{"hook_path health", "[server]\nhook_path = \"/readyz\"\n" + minimal, nil, problem{`config.toml: server.hook_path: /readyz is the relay's own health check`}},
		{"max_body zero", "[server]\nmax_body = 0\n" + minimal, nil, problem{"config.toml: server.max_body: must be more than 0, got 0B"}},
		{"public_url", "[server]\npublic_url = \"relay.example.com\"\n" + minimal, nil,
			problem{`config.toml: server.public_url: not an absolute http(s) URL: "relay.example.com"`}},
		{"public_url scheme", "[server]\npublic_url = \"ftp://relay.example.com\"\n" + minimal, nil,
			problem{`config.toml: server.public_url: not an absolute http(s) URL`}},
		{"read_timeout", "[server]\nread_timeout = \"0s\"\n" + minimal, nil, problem{"config.toml: server.read_timeout: must be more than 0, got 0s"}},
		{"shutdown_timeout", "[server]\nshutdown_timeout = \"-1s\"\n" + minimal, nil, problem{"config.toml: server.shutdown_timeout: must be more than 0, got -1s"}},

		// Log.
		{"log level", "[log]\nlevel = \"verbose\"\n" + minimal, nil, problem{`config.toml: log.level: unknown level "verbose" (want debug, info, warn or error)`}},
		{"log format", "[log]\nformat = \"yaml\"\n" + minimal, nil, problem{`config.toml: log.format: unknown format "yaml" (want text or json)`}},

		// Store.
		{"store url empty", "[store]\nurl = \"${RELAY_DB}\"\n" + minimal, nil, problem{"config.toml: store.url: is empty (want a SQLite file path"}},
		{"store scheme", "[store]\nurl = \"mysql://u:pw@h/db\"\n" + minimal, nil, problem{`config.toml: store.url: unknown scheme "mysql"`}},
		{"store sqlite no file", "[store]\nurl = \"sqlite:\"\n" + minimal, nil, problem{"config.toml: store.url: names no file"}},
		{"store query", "[store]\nurl = \"file:relay.db?mode=ro\"\n" + minimal, nil, problem{"config.toml: store.url: query parameters are not supported"}},
		{"store postgres", "[store]\nurl = \"postgres://\"\n" + minimal, nil, problem{"config.toml: store.url: not a valid postgres URL"}},
		{"dedup_window", "[store]\ndedup_window = \"5m\"\n" + minimal, nil, problem{"config.toml: store.dedup_window: must be at least 10m", "got 5m"}},
		{"retention", "[store]\nretention = \"24h\"\n" + minimal, nil, problem{"config.toml: store.retention: must be at least dedup_window (72h), got 24h"}},

		// Replicate.
		{"webhook secret", "[replicate]\nwebhook_secrets = \"whsec_abc!,\"\n" + minimal, nil,
			problem{"config.toml: replicate.webhook_secrets: secret 1 of 1: webhook secret is not valid base64"}},
		{"second webhook secret", "[replicate]\nwebhook_secrets = \"" + replicate.SampleSecret + ",whsec_\"\n" + minimal, nil,
			problem{"config.toml: replicate.webhook_secrets: secret 2 of 2: webhook secret is empty"}},
		{"tolerance", "[replicate]\ntolerance = \"0s\"\n" + minimal, nil, problem{"config.toml: replicate.tolerance: must be more than 0, got 0s"}},

		// Dispatch.
		{"workers zero", "[dispatch]\nworkers = 0\n" + minimal, nil, problem{"config.toml: dispatch.workers: must be between 1 and 256, got 0"}},
		{"workers many", "[dispatch]\nworkers = 1000\n" + minimal, nil, problem{"config.toml: dispatch.workers: must be between 1 and 256, got 1000"}},
		{"lease", "[dispatch]\nlease = \"0s\"\n" + minimal, nil, problem{"config.toml: dispatch.lease: must be more than 0"}},
		{"send_timeout", "[dispatch]\nsend_timeout = \"1m\"\n" + minimal, nil, problem{"config.toml: dispatch.send_timeout: must be shorter than lease (1m), got 1m"}},
		{"send_timeout zero", "[dispatch]\nsend_timeout = \"0s\"\n" + minimal, nil, problem{"config.toml: dispatch.send_timeout: must be more than 0"}},
		{"max_attempts", "[dispatch]\nmax_attempts = 0\n" + minimal, nil, problem{"config.toml: dispatch.max_attempts: must be at least 1, got 0"}},
		{"max_age", "[dispatch]\nmax_age = \"0s\"\n" + minimal, nil, problem{"config.toml: dispatch.max_age: must be more than 0"}},
		{"backoff_min", "[dispatch]\nbackoff_min = \"0s\"\n" + minimal, nil, problem{"config.toml: dispatch.backoff_min: must be more than 0"}},
		{"backoff_max", "[dispatch]\nbackoff_max = \"500ms\"\n" + minimal, nil, problem{"config.toml: dispatch.backoff_max: must be at least backoff_min (1s), got 500ms"}},

		// Notifiers.
		{"type missing", "[notifiers.x]\nrate = 1\n", nil, problem{"config.toml: notifiers.x.type: is required (want one of console, discord, email, slack)"}},
		{"type unknown", "[notifiers.x]\ntype = \"slak\"\nwebhook_url = \"x\"\n", nil, problem{`config.toml: notifiers.x.type: unknown type "slak" (want one of console, discord, email, slack)`}},
		{"type not a string", "[notifiers.x]\ntype = 1\n", nil, problem{"config.toml: notifiers.x.type: want a string, got an integer"}},
		{"notifier not a table", "[notifiers]\nx = \"console\"\n", nil, problem{"config.toml: notifiers.x: want a table, got a string"}},
		{"notifier name", "[notifiers.Console]\ntype = \"console\"\n", nil, problem{`config.toml: notifiers.Console: bad notifier name "Console" (use lowercase letters, digits, "_" and "-")`}},
		{"notifier name quoted", "[notifiers.\"my console\"]\ntype = \"console\"\n", nil, problem{`config.toml: notifiers."my console": bad notifier name "my console"`}},
		{"fallback unknown", slackOK + "fallback = \"consol\"\n" + minimal, nil,
			problem{`config.toml: notifiers.slack.fallback: unknown notifier "consol" (defined: console, slack)`}},
		{"fallback itself", slackOK + "fallback = \"slack\"\n", nil, problem{"config.toml: notifiers.slack.fallback: names the notifier itself"}},
		{"fallback chain", slackOK + "fallback = \"s2\"\n[notifiers.s2]\ntype = \"slack\"\nfallback = \"console\"\n" + minimal, nil,
			problem{`config.toml: notifiers.slack.fallback: notifier "s2" has a fallback of its own ("console"); fallbacks do not chain`}},
		{"not configured", "[notifiers.slack]\ntype = \"slack\"\nwebhook_url = \"${SLACK_WEBHOOK_URL}\"\n", nil,
			problem{`config.toml: notifiers.slack: notifier "slack" is not configured (set webhook_url, or token and channel) and has no fallback; configure it, set fallback (such as "console"), or remove it`}},
		{"fallback not configured", "[notifiers.slack]\ntype = \"slack\"\nfallback = \"s2\"\n[notifiers.s2]\ntype = \"slack\"\n", nil,
			problem{`config.toml: notifiers.slack: notifier "slack" is not configured (set webhook_url, or token and channel) and its fallback "s2" is not configured either`}},
		{"rate negative", rule + console + "rate = -1\n", nil, problem{"config.toml: notifiers.console.rate: must be 0 (no limit) or a number of messages per second, got -1"}},
		{"rate nan", rule + console + "rate = nan\n", nil, problem{"config.toml: notifiers.console.rate: must be 0 (no limit) or a number of messages per second, got NaN"}},
		{"burst negative", rule + console + "burst = -1\n", nil, problem{"config.toml: notifiers.console.burst: must not be negative, got -1"}},
		{"burst with rate", slackOK + "burst = 0\n", nil, problem{"config.toml: notifiers.slack.burst: must be at least 1 when rate is set, got 0"}},
		{"console output", rule + console + "output = \"stdlog\"\n", nil, problem{`config.toml: notifiers.console.output: unknown output "stdlog" (want stdout or stderr)`}},
		{"slack both", "[notifiers.slack]\ntype = \"slack\"\nwebhook_url = \"${SLACK_WEBHOOK_URL}\"\ntoken = \"${SLACK_BOT_TOKEN}\"\nchannel = \"#a\"\n",
			[]string{"SLACK_WEBHOOK_URL", "https://hooks.slack.com/services/T/B/X", "SLACK_BOT_TOKEN", "xoxb-1"},
			problem{"config.toml: notifiers.slack: webhook_url and token are both set; use one"}},
		{"slack token without channel", "[notifiers.slack]\ntype = \"slack\"\ntoken = \"xoxb-1\"\n", nil,
			problem{"config.toml: notifiers.slack: token is set, channel must be set too"}},
		{"slack webhook_url", "[notifiers.slack]\ntype = \"slack\"\nwebhook_url = \"hooks.slack.com/x\"\n", nil,
			problem{"config.toml: notifiers.slack.webhook_url: not an absolute http(s) URL", "the value is a secret and is not shown"}},
		{"slack token space", "[notifiers.slack]\ntype = \"slack\"\ntoken = \"xoxb-1\\n\"\nchannel = \"#a\"\n", nil,
			problem{"config.toml: notifiers.slack.token: contains white space"}},
		{"slack api_url", slackOK + "api_url = \"localhost:9999\"\n", nil, problem{`config.toml: notifiers.slack.api_url: not an absolute http(s) URL: "localhost:9999"`}},
		{"slack timeout", slackOK + "timeout = \"0s\"\n", nil, problem{"config.toml: notifiers.slack.timeout: must be positive, got \"0s\""}},
		{"slack icon_emoji", slackOK + "icon_emoji = \"robot\"\n", nil, problem{`config.toml: notifiers.slack.icon_emoji: want an emoji code such as ":robot_face:", got "robot"`}},

		// Discord.
		{"discord token without channel", "[notifiers.d]\ntype = \"discord\"\nbot_token = \"t\"\n", nil,
			problem{`config.toml: notifiers.d: notifier "d" is not configured (set webhook_url, or bot_token and channel_id)`}},
		{"discord channel not numeric", "[notifiers.d]\ntype = \"discord\"\nbot_token = \"t\"\nchannel_id = \"#general\"\n", nil,
			problem{`config.toml: notifiers.d.channel_id: want a numeric channel id`}},
		{"discord webhook not a URL", "[notifiers.d]\ntype = \"discord\"\nwebhook_url = \"${D}\"\n", []string{"D", "not a url SECRETVALUE"},
			problem{"config.toml: notifiers.d.webhook_url: not an absolute http(s) URL such as https://discord.com/api/webhooks/..."}},
		{"discord not configured", "[notifiers.d]\ntype = \"discord\"\n", nil,
			problem{`config.toml: notifiers.d: notifier "d" is not configured (set webhook_url, or bot_token and channel_id)`}},

		// Email.
		{"email tls", "[notifiers.e]\ntype = \"email\"\nhost = \"smtp\"\nfrom = \"r@x.io\"\nto = [\"a@x.io\"]\ntls = \"ssl\"\n", nil,
			problem{`config.toml: notifiers.e.tls: unknown TLS policy "ssl" (want starttls, tls or none)`}},
		{"email port", "[notifiers.e]\ntype = \"email\"\nhost = \"smtp\"\nfrom = \"r@x.io\"\nto = [\"a@x.io\"]\nport = 70000\n", nil,
			problem{"config.toml: notifiers.e.port: must be between 1 and 65535 (or 0 for the usual port for tls), got 70000"}},
		{"email from missing", "[notifiers.e]\ntype = \"email\"\nhost = \"smtp\"\nto = [\"a@x.io\"]\n", nil,
			problem{"config.toml: notifiers.e.from: is required when host is set"}},
		{"email bad recipient in a list", "[notifiers.e]\ntype = \"email\"\nhost = \"smtp\"\nfrom = \"r@x.io\"\nto = [\"${TO}\"]\n", []string{"TO", "a@x.io, not an address"},
			problem{`config.toml: notifiers.e.to: not an email address: "not an address"`}},
		{"email user without password", "[notifiers.e]\ntype = \"email\"\nhost = \"smtp\"\nfrom = \"r@x.io\"\nto = [\"a@x.io\"]\nusername = \"u\"\n", nil,
			problem{"config.toml: notifiers.e: username and password go together"}},
		{"email no recipient", "[notifiers.e]\ntype = \"email\"\nhost = \"smtp\"\nfrom = \"r@x.io\"\nto = [\"${TO}\"]\n", nil,
			problem{"config.toml: notifiers.e.to: names no recipient"}},
		{"email not configured", "[notifiers.e]\ntype = \"email\"\nto = [\"a@x.io\"]\n", nil,
			problem{`config.toml: notifiers.e: notifier "e" is not configured (set host and to)`}},

		// Attachments.
		{"attach on console", "[notifiers.console]\ntype = \"console\"\nattach = true\n" + rule, nil,
			problem{"config.toml: notifiers.console.attach: console notifiers print links and cannot attach files"}},
		{"attach not a switch", slackOK + "attach = \"yes please\"\n" + minimal, nil,
			problem{`config.toml: notifiers.slack.attach: want true or false, got "yes please"`}},
		{"attach from the environment", slackOK + "attach = \"${ATTACH}\"\n" + minimal, []string{"ATTACH", "maybe"},
			problem{`config.toml: notifiers.slack.attach: want true or false, got "maybe"`}},
		{"attach size", slackOK + "attach_max_size = 0\n" + minimal, nil, problem{"config.toml: notifiers.slack.attach_max_size: must be more than 0"}},
		{"attach files", slackOK + "attach_max_files = 11\n" + minimal, nil, problem{"config.toml: notifiers.slack.attach_max_files: must be between 1 and 10, got 11"}},
		{"attachment host with scheme", "[attachments]\nhosts = [\"https://replicate.delivery\"]\n" + minimal, nil,
			problem{`config.toml: attachments.hosts: bad host "https://replicate.delivery"`}},
		{"attachment host with port", "[attachments]\nhosts = [\"${HOSTS}\"]\n" + minimal, []string{"HOSTS", "replicate.delivery, files.example:8443"},
			problem{`config.toml: attachments.hosts: bad host "files.example:8443"`}},
		{"attachment host outside ASCII", "[attachments]\nhosts = [\"bücher.example\"]\n" + minimal, nil,
			problem{`config.toml: attachments.hosts: bad host "bücher.example": write a name outside ASCII as its punycode`}},
		{"attachment hosts empty", "[attachments]\nhosts = [\"${HOSTS}\"]\n" + minimal, nil,
			problem{`config.toml: attachments.hosts: names no host`}},
		{"attachment timeout", "[attachments]\ntimeout = \"0s\"\n" + minimal, nil, problem{"config.toml: attachments.timeout: must be more than 0"}},
		{"attachment CA file missing", "[attachments]\nca_file = \"/nonexistent/ca.pem\"\n" + minimal, nil,
			problem{"config.toml: attachments.ca_file: reading the CA file:", "/nonexistent/ca.pem"}},

		// Digests.
		{"digest schedule missing", "[digests.daily]\nnotify = [\"console\"]\n" + minimal, nil,
			problem{"config.toml: digests.daily.schedule: is required"}},
		{"digest schedule bad", "[digests.daily]\nschedule = \"0 25 * * *\"\nnotify = [\"console\"]\n" + minimal, nil,
			problem{`config.toml: digests.daily.schedule: schedule "0 25 * * *"`}},
		{"digest time zone", "[digests.daily]\nschedule = \"@daily\"\ntimezone = \"Mars/Olympus\"\nnotify = [\"console\"]\n" + minimal, nil,
			problem{`config.toml: digests.daily.timezone: unknown time zone "Mars/Olympus"`}},
		{"digest notifier", "[digests.daily]\nschedule = \"@daily\"\nnotify = [\"mail\"]\n" + minimal, nil,
			problem{`config.toml: digests.daily.notify: unknown notifier "mail" (defined: console)`}},
		{"digest max items", "[digests.daily]\nschedule = \"@daily\"\nnotify = [\"console\"]\nmax_items = 0\n" + minimal, nil,
			problem{"config.toml: digests.daily.max_items: must be between 1 and 1000, got 0"}},
		{"digest unknown key", "[digests.daily]\nschedule = \"@daily\"\nnotify = [\"console\"]\nshedule = \"x\"\n" + minimal, nil,
			problem{`config.toml: unknown key "digests.daily.shedule"`}},
		{"rule digest unknown", minimal + "digest = [\"weekly\"]\n", nil,
			problem{`config.toml: rules[0].digest: unknown digest "weekly" (defined: none; add a [digests.NAME] table)`}},
		{"rule with neither", "[notifiers.console]\ntype = \"console\"\n[[rules]]\nname = \"r\"\nnotify = []\n", nil,
			problem{"config.toml: rules[0].notify: names no notifier (a rule needs notify, digest, or both)"}},

		// Rules.
		{"rule name missing", "[notifiers.console]\ntype = \"console\"\n[[rules]]\nnotify = [\"console\"]\n", nil, problem{"config.toml: rules[0].name: is required"}},
		{"rule name duplicate", minimal + "[[rules]]\nname = \"all\"\nnotify = [\"console\"]\n", nil,
			problem{`config.toml: rules[1].name: duplicate name "all" (rules[0] has it too)`}},
		{"rule kind", minimal + "kinds = [\"trainng\"]\n", nil, problem{`config.toml: rules[0].kinds: unknown kind "trainng" (want prediction or training)`}},
		{"rule status", minimal + "[[rules]]\nname = \"b\"\nnotify = [\"console\"]\nstatuses = [\"failed\", \"sucess\"]\n", nil,
			problem{`config.toml: rules[1].statuses: unknown status "sucess" (want one of [starting processing succeeded failed canceled aborted])`}},
		{"rule glob", minimal + "models = [\"acme/[\"]\n", nil, problem{`config.toml: rules[0].models: bad glob "acme/["`}},
		{"rule when syntax", minimal + "when = \"predict_time >\"\n", nil, problem{"config.toml: rules[0].when: unexpected token EOF"}},
		{"rule when unknown name", minimal + "when = \"metrics.predict_time > 60 && foo\"\n", nil, problem{"config.toml: rules[0].when: unknown name foo"}},
		{"rule when not boolean", minimal + "when = \"predict_time + 1\"\n", nil, problem{"config.toml: rules[0].when: expected bool, but got float64"}},
		{"rule notify missing", "[notifiers.console]\ntype = \"console\"\n[[rules]]\nname = \"r\"\n", nil, problem{"config.toml: rules[0].notify: names no notifier"}},
		{"rule notify unknown", slackOK + minimal + "[[rules]]\nname = \"b\"\nnotify = [\"slak\"]\n", nil,
			problem{`config.toml: rules[1].notify: unknown notifier "slak" (defined: console, slack)`}},
		{"rule notify none defined", "[[rules]]\nname = \"r\"\nnotify = [\"console\"]\n", nil,
			problem{`config.toml: rules[0].notify: unknown notifier "console" (defined: none; add a [notifiers.NAME] table)`}},
		{"rule notify twice", "[notifiers.console]\ntype = \"console\"\n[[rules]]\nname = \"r\"\nnotify = [\"console\", \"console\"]\n", nil,
			problem{`config.toml: rules[0].notify: "console" is listed twice`}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Parse("config.toml", []byte(tt.doc), env(tt.env...))
			assertProblems(t, err, tt.want)
		})
	}
}

// assertProblems checks that err has a line containing every part of each problem, and that
// every line of it starts with the file name.
func assertProblems(t *testing.T, err error, want ...problem) {
	t.Helper()
	if err == nil {
		t.Fatalf("no error, want %q", want)
	}
	lines := splitErrors(err)
	for _, line := range lines {
		if !strings.HasPrefix(line, "config.toml") {
			t.Errorf("error line without the file name: %q", line)
		}
	}
next:
	for _, p := range want {
		for _, line := range lines {
			if containsAll(line, p) {
				continue next
			}
		}
		t.Errorf("no error line contains all of %q; got:\n%s", []string(p), err)
	}
}

// splitErrors returns the lines of err, one per problem (a when expression's error has its
// own continuation lines, starting with " |").
func splitErrors(err error) []string {
	var out []string
	for _, line := range strings.Split(err.Error(), "\n") {
		if strings.HasPrefix(line, " |") && len(out) > 0 {
			out[len(out)-1] += "\n" + line
			continue
		}
		out = append(out, line)
	}
	return out
}

func containsAll(s string, parts []string) bool {
	for _, p := range parts {
		if !strings.Contains(s, p) {
			return false
		}
	}
	return true
}

func TestAttachments(t *testing.T) {
	dir := t.TempDir()
	notPEM := filepath.Join(dir, "not.pem")
	if err := os.WriteFile(notPEM, []byte("hello"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := Parse("config.toml", []byte("[attachments]\nca_file = \""+notPEM+"\"\n"+minimal), env()); err == nil ||
		!strings.Contains(err.Error(), "attachments.ca_file: "+notPEM+" holds no PEM certificate") {
		t.Errorf("a CA file without certificates: err = %v", err)
	}

	doc := `
[attachments]
hosts = ["${HOSTS:-replicate.delivery}", ".cdn.example"]
timeout = "5s"

[notifiers.discord]
type = "discord"
webhook_url = "https://discord.com/api/webhooks/1/x"
attach = "${DISCORD_ATTACH:-true}"
attach_max_size = "2MiB"
attach_max_files = 2

[[rules]]
name = "all"
notify = ["discord"]
`
	c, err := Parse("config.toml", []byte(doc), env("HOSTS", "files.example, img.example"))
	if err != nil {
		t.Fatal(err)
	}
	if got := c.Attachments.HostList(); !reflect.DeepEqual(got, []string{"files.example", "img.example", ".cdn.example"}) {
		t.Errorf("hosts = %q", got)
	}
	if pool, err := c.Attachments.CertPool(); pool != nil || err != nil {
		t.Errorf("CertPool without ca_file = %v, %v; want nil, nil", pool, err)
	}
	n := c.Notifiers["discord"]
	if !n.Attach || n.AttachMaxSize != 2<<20 || n.AttachMaxFiles != 2 || c.Attachments.Timeout.D() != 5*time.Second {
		t.Errorf("discord = %+v, attachments = %+v", n, c.Attachments)
	}
	c, err = Parse("config.toml", []byte(doc), env("DISCORD_ATTACH", "false"))
	if err != nil {
		t.Fatal(err)
	}
	if c.Notifiers["discord"].Attach {
		t.Error("attach = \"${DISCORD_ATTACH}\" with DISCORD_ATTACH=false is on")
	}
}

func TestDigests(t *testing.T) {
	doc := console + `
[digests.daily-failures]
schedule = "0 9 * * *"
timezone = "${TZ_NAME:-UTC}"
notify = ["console"]
max_items = 10

[[rules]]
name = "failures"
statuses = ["failed", "aborted"]
digest = ["daily-failures"]
`
	c, err := Parse("config.toml", []byte(doc), env("TZ_NAME", "Europe/Berlin"))
	if err != nil {
		t.Fatal(err)
	}
	d := c.Digests["daily-failures"]
	if d == nil || d.Template != "digest" || d.MaxItems != 10 || d.Spec.Name != "daily-failures" || d.Spec.Schedule.Location().String() != "Europe/Berlin" {
		t.Fatalf("digest = %+v", d)
	}
	next := d.Spec.Schedule.Next(time.Date(2026, 11, 22, 12, 0, 0, 0, time.UTC))
	if want := time.Date(2026, 11, 23, 8, 0, 0, 0, time.UTC); !next.Equal(want) {
		t.Errorf("next tick %v, want %v (09:00 in Berlin)", next, want)
	}
	if r := c.Rules[0]; len(r.Notify) != 0 || len(r.Digests) != 1 || r.Digests[0] != "daily-failures" {
		t.Errorf("rule = %+v", r.Rule)
	}
	if red := c.Redacted(); !strings.Contains(red, "[digests.daily-failures]") || !strings.Contains(red, `digest = ["daily-failures"]`) {
		t.Errorf("Redacted lacks the digest:\n%s", red)
	}
}

func TestUnknownKeys(t *testing.T) {
	tests := []struct {
		name string
		doc  string
		want string
	}{
		{"top level", "sever = 1\n" + minimal, `config.toml: unknown key "sever" (did you mean "server"?)`},
		{"top level table", "[dispatcher]\nworkers = 2\n" + minimal, `config.toml: unknown key "dispatcher" (did you mean "dispatch"?)`},
		{"section", "[server]\nlisten = \":80\"\n" + minimal, `config.toml: unknown key "server.listen"`},
		{"section typo", "[store]\ndedup_windw = \"1h\"\n" + minimal, `config.toml: unknown key "store.dedup_windw" (did you mean "dedup_window"?)`},
		{"slack", "[notifiers.slack]\ntype = \"slack\"\nwebhok_url = \"https://x\"\nfallback = \"console\"\n" + minimal,
			`config.toml: unknown key "notifiers.slack.webhok_url" (did you mean "webhook_url"?)`},
		{"slack key on console", rule + console + "webhook_url = \"${SLACK_WEBHOOK_URL}\"\n",
			`config.toml: unknown key "notifiers.console.webhook_url" (webhook_url is a key of discord and slack notifiers; this one has type "console")`},
		{"console key on slack", "[notifiers.slack]\ntype = \"slack\"\noutput = \"stdout\"\nfallback = \"console\"\n" + minimal,
			`config.toml: unknown key "notifiers.slack.output" (output is a key of console notifiers; this one has type "slack")`},
		{"rule", minimal + "statuss = [\"failed\"]\n", `config.toml: unknown key "rules[0].statuss" (did you mean "statuses"?)`},
		{"rule nested", minimal + "[rules.match]\nkind = \"x\"\n", `config.toml: unknown key "rules[0].match"`},
		{"no suggestion", "[log]\ncolour = true\n" + minimal, `config.toml: unknown key "log.colour"`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Parse("config.toml", []byte(tt.doc), env())
			if err == nil || err.Error() != tt.want {
				t.Errorf("err = %v\nwant %s", err, tt.want)
			}
			var e *Error
			if !errors.As(err, &e) || e.File != "config.toml" || e.Key != "" || e.Line != 0 {
				t.Errorf("err = %#v", e)
			}
		})
	}
}

func TestSeveralErrorsInKeyOrder(t *testing.T) {
	doc := `
[[rules]]
name = "a"
statuses = ["sucess"]
notify = ["slak"]

[[rules]]
name = "a"
notify = ["console"]

[notifiers.slack]
type = "slack"
webhok_url = "x"
token = "xoxb-1"

[notifiers.console]
type = "console"

[dispatch]
workers = 0

[server]
hook_path = "hooks"
bogus = 1

[typo]
`
	_, err := Parse("config.toml", []byte(doc), env())
	want := []string{
		`config.toml: unknown key "typo"`,
		`config.toml: server.hook_path: must start with "/", got "hooks"`,
		`config.toml: unknown key "server.bogus"`,
		`config.toml: dispatch.workers: must be between 1 and 256, got 0`,
		`config.toml: unknown key "notifiers.slack.webhok_url" (did you mean "webhook_url"?)`,
		`config.toml: notifiers.slack: token is set, channel must be set too`,
		`config.toml: rules[0].statuses: unknown status "sucess" (want one of [starting processing succeeded failed canceled aborted])`,
		`config.toml: rules[0].notify: unknown notifier "slak" (defined: console, slack)`,
		`config.toml: rules[1].name: duplicate name "a" (rules[0] has it too); rule names must be unique`,
	}
	if err == nil {
		t.Fatal("no error")
	}
	got := strings.Split(err.Error(), "\n")
	if !reflect.DeepEqual(got, want) {
		t.Errorf("got:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	var joined interface{ Unwrap() []error }
	if !errors.As(err, &joined) || len(joined.Unwrap()) != len(want) {
		t.Fatalf("error does not unwrap into %d problems: %#v", len(want), err)
	}
	for _, e := range joined.Unwrap() {
		var ce *Error
		if !errors.As(e, &ce) || ce.File != "config.toml" {
			t.Errorf("%v is not a *config.Error for the file", e)
		}
	}
}

func TestSecretsNeverInErrors(t *testing.T) {
	const secret = "SECRETVALUE"
	tests := []struct {
		name string
		doc  string
		env  []string
		want problem
	}{
		{"webhook_url from env not a url", "[notifiers.slack]\ntype = \"slack\"\nwebhook_url = \"${SLACK_WEBHOOK_URL}\"\n",
			[]string{"SLACK_WEBHOOK_URL", "not a url " + secret}, problem{"notifiers.slack.webhook_url: not an absolute http(s) URL"}},
		{"webhook_url literal not a url", "[notifiers.slack]\ntype = \"slack\"\nwebhook_url = \"not a url " + secret + "\"\n",
			nil, problem{"notifiers.slack.webhook_url: not an absolute http(s) URL"}},
		{"both set", "[notifiers.slack]\ntype = \"slack\"\nwebhook_url = \"${U}\"\ntoken = \"${T}\"\n",
			[]string{"U", "https://hooks.slack.com/" + secret, "T", "xoxb-" + secret}, problem{"notifiers.slack: webhook_url and token are both set"}},
		{"token with space", "[notifiers.slack]\ntype = \"slack\"\ntoken = \"${T}\"\nchannel = \"#a\"\n",
			[]string{"T", "xoxb-" + secret + " \n"}, problem{"notifiers.slack.token: contains white space"}},
		{"webhook secret not base64", "[replicate]\nwebhook_secrets = \"${REPLICATE_WEBHOOK_SECRET}\"\n" + minimal,
			[]string{"REPLICATE_WEBHOOK_SECRET", "whsec_" + secret + "!!"}, problem{"replicate.webhook_secrets: secret 1 of 1: webhook secret is not valid base64"}},
		{"bare dollar in secret", "[notifiers.slack]\ntype = \"slack\"\ntoken = \"abc$" + secret + "\"\nchannel = \"#a\"\n",
			nil, problem{`notifiers.slack.token: "$" followed by a name at byte 3 is not expanded`}},
		{"bad name in secret", "[notifiers.slack]\ntype = \"slack\"\ntoken = \"${" + secret + " x}\"\nchannel = \"#a\"\n",
			nil, problem{`notifiers.slack.token: bad variable name in "${" at byte 0`}},
		{"unsupported form in secret", "[replicate]\nwebhook_secrets = \"${" + secret + "-x}\"\n" + minimal,
			nil, problem{`replicate.webhook_secrets: unsupported form of "${" at byte 0`}},
		{"syntax error in secret", "[notifiers.slack]\ntype = \"slack\"\nwebhook_url = https://hooks.slack.com/" + secret + "\n",
			nil, problem{`config.toml:3: syntax error after key notifiers.slack.webhook_url (details not shown`}},
		{"syntax error in secret string", "[replicate]\nwebhook_secrets = \"whsec_" + secret + "\\q\"\n",
			nil, problem{`config.toml:2: syntax error after key replicate.webhook_secrets`}},
		{"postgres password", "[store]\nurl = \"postgres://relay:" + secret + "@/\"\n" + minimal,
			nil, problem{"store.url: not a valid postgres URL"}},
		{"other scheme password", "[store]\nurl = \"mysql://relay:" + secret + "@db/relay\"\n" + minimal,
			nil, problem{`store.url: unknown scheme "mysql"`}},
		{"public_url password", "[server]\npublic_url = \"https://u:" + secret + "@\"\n" + minimal,
			nil, problem{"server.public_url: not an absolute http(s) URL"}},
		{"dollar in a URL password", "[store]\nurl = \"postgres://relay:pw$" + secret + "@db/relay\"\n" + minimal,
			nil, problem{`store.url: "$" followed by a name at byte 19 is not expanded`}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Parse("config.toml", []byte(tt.doc), env(tt.env...))
			assertProblems(t, err, tt.want)
			if strings.Contains(err.Error(), secret) {
				t.Errorf("error shows the secret:\n%v", err)
			}
		})
	}
}

func TestRedacted(t *testing.T) {
	const secret = "SECRETVALUE"
	doc := `
[server]
public_url = "https://relay.example.com"
[store]
url = "postgres://relay:${PGPASSWORD}@db.internal/relay?sslmode=require&Password=${PGPASSWORD}2&sslpassword=${PGPASSWORD}3"
[replicate]
webhook_secrets = "${REPLICATE_WEBHOOK_SECRET}"
[notifiers.console]
type = "console"
[notifiers.hook]
type = "slack"
webhook_url = "${SLACK_WEBHOOK_URL}"
[notifiers.bot]
type = "slack"
token = "${SLACK_BOT_TOKEN}"
channel = "#ml"
api_url = "https://proxy:${PGPASSWORD}@slack.internal/api/"
[[rules]]
name = "all"
notify = ["hook", "bot"]
meta = { team = "vision" }
when = "predict_time > 60"
`
	c, err := Parse("config.toml", []byte(doc), env(
		"PGPASSWORD", secret+"pg",
		"REPLICATE_WEBHOOK_SECRET", "whsec_"+secret+"A",
		"SLACK_WEBHOOK_URL", "https://hooks.slack.com/services/"+secret,
		"SLACK_BOT_TOKEN", "xoxb-"+secret))
	if err != nil {
		t.Fatal(err)
	}
	out := c.Redacted()
	if strings.Contains(out, secret) {
		t.Fatalf("Redacted shows a secret:\n%s", out)
	}
	for _, want := range []string{
		`webhook_secrets = "[redacted]"`,
		`webhook_url = "[redacted]"`,
		`token = "[redacted]"`,
		`token = ""`,
		`url = "postgres://relay:xxxxx@db.internal/relay?Password=xxxxx&sslmode=require&sslpassword=xxxxx"`,
		`api_url = "https://proxy:xxxxx@slack.internal/api/"`,
		`channel = "#ml"`,
		`when = "predict_time > 60"`,
		`public_url = "https://relay.example.com"`,
	} {
		if !strings.Contains(out, want) {
			t.Errorf("Redacted lacks %s:\n%s", want, out)
		}
	}
	if c.Store.Driver() != "postgres" || c.Store.Path() != "" {
		t.Errorf("store driver %q path %q", c.Store.Driver(), c.Store.Path())
	}
}

// TestRedactedGolden pins the effective configuration of the example; run with -update after
// an intended change.
func TestRedactedGolden(t *testing.T) {
	c, err := Load(examplePath, env("SLACK_BOT_TOKEN", "xoxb-1", "SLACK_CHANNEL", "#ml"))
	if err != nil {
		t.Fatal(err)
	}
	got := c.Redacted()
	golden := filepath.Join("testdata", "example.redacted.toml")
	if *update {
		if err := os.WriteFile(golden, []byte(got), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(golden)
	if err != nil {
		t.Fatal(err)
	}
	if got != string(want) {
		t.Errorf("Redacted() differs from %s (go test -update to accept):\n%s", golden, got)
	}
	// The effective configuration is itself a valid configuration once secrets are restored.
	text := strings.ReplaceAll(got, `"[redacted]"`, `"${SECRET}"`)
	again, err := Parse("redacted.toml", []byte(text), env("SECRET", "xoxb-2"))
	if err != nil {
		t.Fatal(err)
	}
	if again.Redacted() != strings.Replace(got, examplePath, "redacted.toml", 1) {
		t.Errorf("parsing the effective configuration changed it:\n%s", again.Redacted())
	}
}

func TestResolve(t *testing.T) {
	c := &Config{Notifiers: map[string]*Notifier{
		"console": {Name: "console", Type: "console", Console: &Console{Output: "stdout"}},
		"live":    {Name: "live", Type: "slack", Slack: &Slack{Token: "xoxb-1", Channel: "#a"}, Fallback: "console"},
		"idle":    {Name: "idle", Type: "slack", Slack: &Slack{}, Fallback: "console"},
		"alone":   {Name: "alone", Type: "slack", Slack: &Slack{}},
		"chain":   {Name: "chain", Type: "slack", Slack: &Slack{}, Fallback: "alone"},
		"lost":    {Name: "lost", Type: "slack", Slack: &Slack{}, Fallback: "gone"},
	}}
	tests := []struct {
		name, want, err string
	}{
		{"console", "console", ""},
		{"live", "live", ""},
		{"idle", "console", ""},
		{"alone", "", `notifier "alone" is not configured (set webhook_url, or token and channel) and has no fallback`},
		{"chain", "", `notifier "chain" is not configured (set webhook_url, or token and channel) and its fallback "alone" is not configured either`},
		{"lost", "", `its fallback "gone" is not defined`},
		{"nope", "", `unknown notifier "nope" (defined: alone, chain, console, idle, live, lost)`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			n, err := c.Resolve(tt.name)
			if tt.err != "" {
				if err == nil || !strings.Contains(err.Error(), tt.err) {
					t.Errorf("err = %v, want %s", err, tt.err)
				}
				return
			}
			if err != nil || n.Name != tt.want {
				t.Errorf("Resolve = %v, %v; want %s", n, err, tt.want)
			}
		})
	}
}

func TestStoreURL(t *testing.T) {
	tests := []struct {
		url, driver, path string
	}{
		{"relay.db", "sqlite", "relay.db"},
		{"/var/lib/relay/relay.db", "sqlite", "/var/lib/relay/relay.db"},
		{"sqlite:data/relay.db", "sqlite", "data/relay.db"},
		{"sqlite:///var/relay.db", "sqlite", "/var/relay.db"},
		{"file:relay.db", "sqlite", "relay.db"},
		{"file:///var/relay.db", "sqlite", "/var/relay.db"},
		{`C:\relay\relay.db`, "sqlite", `C:\relay\relay.db`},
		{"postgres://u:p@db/relay?sslmode=disable", "postgres", ""},
		{"postgresql://db/relay", "postgres", ""},
	}
	for _, tt := range tests {
		t.Run(tt.url, func(t *testing.T) {
			c, err := Parse("config.toml", []byte("[store]\nurl = '"+tt.url+"'\n"), env())
			if err != nil {
				t.Fatal(err)
			}
			if c.Store.Driver() != tt.driver || c.Store.Path() != tt.path {
				t.Errorf("Driver() %q Path() %q, want %q %q", c.Store.Driver(), c.Store.Path(), tt.driver, tt.path)
			}
		})
	}
}

func TestReplicateSecrets(t *testing.T) {
	tests := []struct {
		name string
		in   string
		want []string
	}{
		{"none", "", nil},
		{"one", replicate.SampleSecret, []string{replicate.SampleSecret}},
		{"rotation", " whsec_QUJD , " + replicate.SampleSecret + " ,", []string{"whsec_QUJD", replicate.SampleSecret}},
		{"bare base64", "QUJDRA==", []string{"QUJDRA=="}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, err := Parse("config.toml", []byte("[replicate]\nwebhook_secrets = \"${S}\"\n"), env("S", tt.in))
			if err != nil {
				t.Fatal(err)
			}
			if got := c.Replicate.Secrets(); !reflect.DeepEqual(got, tt.want) {
				t.Errorf("Secrets() = %q, want %q", got, tt.want)
			}
		})
	}
}

func TestLoad(t *testing.T) {
	dir := t.TempDir()
	t.Run("file", func(t *testing.T) {
		path := filepath.Join(dir, "relay.toml")
		if err := os.WriteFile(path, []byte(minimal), 0o600); err != nil {
			t.Fatal(err)
		}
		c, err := Load(path, nil)
		if err != nil {
			t.Fatal(err)
		}
		if c.Source != path {
			t.Errorf("Source = %q, want %q", c.Source, path)
		}
	})
	t.Run("errors name the path", func(t *testing.T) {
		path := filepath.Join(dir, "bad.toml")
		if err := os.WriteFile(path, []byte("[log]\nlevel = \"loud\"\n"), 0o600); err != nil {
			t.Fatal(err)
		}
		_, err := Load(path, nil)
		if err == nil || !strings.HasPrefix(err.Error(), path+": log.level: ") {
			t.Errorf("err = %v", err)
		}
	})
	t.Run("missing", func(t *testing.T) {
		path := filepath.Join(dir, "missing.toml")
		_, err := Load(path, nil)
		if !errors.Is(err, os.ErrNotExist) || !strings.Contains(err.Error(), path) {
			t.Errorf("err = %v", err)
		}
	})
	t.Run("nil getenv reads the environment", func(t *testing.T) {
		t.Setenv("RELAY_CONFIG_TEST_ADDR", "127.0.0.1:7070")
		c, err := Parse("config.toml", []byte("[server]\naddr = \"${RELAY_CONFIG_TEST_ADDR}\"\n"), nil)
		if err != nil {
			t.Fatal(err)
		}
		if c.Server.Addr != "127.0.0.1:7070" {
			t.Errorf("addr = %q", c.Server.Addr)
		}
	})
}

func TestDiscordAndEmailConfigured(t *testing.T) {
	doc := `
[notifiers.d]
type = "discord"
bot_token = "${DISCORD_BOT_TOKEN}"
channel_id = "${DISCORD_CHANNEL_ID}"
[notifiers.e]
type = "email"
host = "${SMTP_HOST}"
password = "${SMTP_PASSWORD}"
username = "relay"
from = "relay@example.com"
to = ["${EMAIL_TO}"]
cc = ["lead@example.com"]
`
	c, err := Parse("config.toml", []byte(doc), env("DISCORD_BOT_TOKEN", "tok", "DISCORD_CHANNEL_ID", "1234",
		"SMTP_HOST", "smtp.example.com", "SMTP_PASSWORD", "pw SECRETVALUE", "EMAIL_TO", "a@example.com, b@example.com"))
	if err != nil {
		t.Fatal(err)
	}
	d, e := c.Notifiers["d"], c.Notifiers["e"]
	if !d.Configured() || d.Discord.ChannelID != "1234" || d.Discord.BotToken.Reveal() != "tok" || d.Rate != 1 || d.Burst != 5 {
		t.Errorf("discord: %+v %+v", d, d.Discord)
	}
	if !e.Configured() || e.Email.Port != 0 || e.Email.TLS != "starttls" || e.Email.Timeout.D() != 30*time.Second {
		t.Errorf("email defaults: %+v", e.Email)
	}
	if got := Recipients(e.Email.To); len(got) != 2 || got[0] != "a@example.com" || got[1] != "b@example.com" {
		t.Errorf("recipients %q", got)
	}
	if strings.Contains(c.Redacted(), "SECRETVALUE") || strings.Contains(c.Redacted(), "tok\"") {
		t.Errorf("Redacted shows a secret:\n%s", c.Redacted())
	}
}

// TestURLErrorsHidePasswords checks that an error about a URL that is not itself a secret
// (an API base behind a proxy, say) never shows a password in it, whether the URL parses or not.
func TestURLErrorsHidePasswords(t *testing.T) {
	const pw = "SECRETVALUE"
	key := strings.Repeat("ab", 32)
	doc := `
[server]
public_url = "https://admin:` + pw + `%zz@relay.example.com"
[notifiers.s]
type = "slack"
token = "t"
channel = "#a"
api_url = "ftp://proxy:` + pw + `@proxy.example.com/api/"
[notifiers.d]
type = "discord"
webhook_url = "https://discord.com/api/webhooks/1/x"
avatar_url = "ftp://u:` + pw + `@x"
[notifiers.db]
type = "discord"
bot_token = "t"
channel_id = "1234"
api_url = "https://proxy:` + pw + `@proxy.example.com/api?x=1 "
[bot]
app_id = "123"
public_key = "` + key + `"
bot_token = "t"
replicate_token = "r"
api_url = "ftp://u:` + pw + `@x/"
replicate_api_url = "https://u:` + pw + `@x/?q=1"
[[rules]]
name = "r"
notify = ["s"]
`
	_, err := Parse("config.toml", []byte(doc), env())
	if err == nil {
		t.Fatal("no error for six bad URLs")
	}
	msg := err.Error()
	if strings.Contains(msg, pw) {
		t.Fatalf("an error shows a password:\n%s", msg)
	}
	// A password as a query parameter, in a URL that parses and in one that does not.
	for _, u := range []string{"ftp://relay.example.com/hooks?password=" + pw, "ftp://relay.example.com/%zz?password=" + pw} {
		_, err := Parse("config.toml", []byte("[server]\npublic_url = \""+u+"\"\n"), env())
		if err == nil || strings.Contains(err.Error(), pw) || !strings.Contains(err.Error(), "server.public_url") {
			t.Errorf("public_url %q: %v", u, err)
		}
	}
	for _, want := range []string{"server.public_url", "notifiers.s.api_url", "notifiers.d.avatar_url",
		"notifiers.db.api_url", "bot.api_url", "bot.replicate_api_url", "proxy:xxxxx@proxy.example.com"} {
		if !strings.Contains(msg, want) {
			t.Errorf("the errors do not name %s:\n%s", want, msg)
		}
	}
}

func TestBot(t *testing.T) {
	key := strings.Repeat("ab", 32)
	vars := []string{"DISCORD_APP_ID", "123456789012345678", "DISCORD_PUBLIC_KEY", key, "DISCORD_BOT_TOKEN", "bot-token",
		"REPLICATE_API_TOKEN", "r8_token", "RELAY_PUBLIC_URL", "https://relay.example.com"}
	c, err := Load(examplePath, env(vars...))
	if err != nil {
		t.Fatal(err)
	}
	b := c.Bot
	if !b.Enabled() || b.AppID != "123456789012345678" || b.PublicKey != key || b.BotToken.Reveal() != "bot-token" ||
		b.ReplicateToken.Reveal() != "r8_token" || b.Path != "/discord/interactions" || b.DefaultModel == "" || !b.Attach {
		t.Fatalf("bot = %+v", b)
	}
	if red := c.Redacted(); strings.Contains(red, "bot-token") || strings.Contains(red, "r8_token") {
		t.Errorf("a bot secret is in the printed config")
	}
	if c, err := Load(examplePath, env()); err != nil || c.Bot.Enabled() {
		t.Errorf("without DISCORD_APP_ID the bot is on (%v)", err)
	}

	base := console + rule + `
[server]
public_url = "${PUBLIC}"
[bot]
app_id = "123"
public_key = "${KEY:-` + key + `}"
bot_token = "t"
replicate_token = "${RTOKEN:-r}"
models = ["${MODEL:-acme/a}"]
`
	for _, tt := range []struct {
		name, extra string
		env         []string
		want        string
	}{
		{"needs a public URL", "", nil, "config.toml: server.public_url: is required with the bot"},
		{"bad key", "", []string{"PUBLIC", "https://r.example", "KEY", "xyz"}, "config.toml: bot.public_key: want the application's public key"},
		{"default not allowed", "default_model = \"acme/b\"\n", []string{"PUBLIC", "https://r.example"}, `config.toml: bot.default_model: "acme/b" is not among the allowed models`},
		{"bad model", "", []string{"PUBLIC", "https://r.example", "MODEL", "not a model"}, "config.toml: bot.models:"},
		{"path is the hook", "path = \"/hooks/replicate\"\n", []string{"PUBLIC", "https://r.example"}, "config.toml: bot.path: would take the webhooks of server.hook_path (/hooks/replicate)"},
		{"path covers the hook", "path = \"/hooks/\"\n", []string{"PUBLIC", "https://r.example"}, "config.toml: bot.path: would take the webhooks of server.hook_path"},
		{"path is everything", "path = \"/\"\n", []string{"PUBLIC", "https://r.example"}, "config.toml: bot.path: would take the webhooks of server.hook_path"},
		{"path is a wildcard", "path = \"/{x...}\"\n", []string{"PUBLIC", "https://r.example"}, `config.toml: bot.path: must be a plain path`},
		{"path is the health check", "path = \"/healthz\"\n", []string{"PUBLIC", "https://r.example"}, "config.toml: bot.path: /healthz is the relay's own health check"},
		{"limit without window", "user_window = \"0s\"\n", []string{"PUBLIC", "https://r.example"}, "config.toml: bot.user_window: must be more than 0 with a limit"},
		{"token with a space", "", []string{"PUBLIC", "https://r.example", "RTOKEN", "r8_abc def"}, "config.toml: bot.replicate_token: contains white space"},
		{"API URL with a query", "replicate_api_url = \"https://api.replicate.com/v1?x=1\"\n", []string{"PUBLIC", "https://r.example"}, "config.toml: bot.replicate_api_url: must not have a query or fragment"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Parse("config.toml", []byte(base+tt.extra), env(tt.env...))
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("err = %v, want %q", err, tt.want)
			}
		})
	}
}

// SMTP_TLS=tls alone, with no SMTP_PORT, leaves the port to the policy (465 for tls), rather
// than the starttls port a server speaking TLS from the start never answers on.
func TestExampleEmailPortFollowsTLS(t *testing.T) {
	c, err := Load(examplePath, env("SMTP_HOST", "smtp.example.com", "SMTP_TLS", "tls", "EMAIL_FROM", "relay@example.com",
		"EMAIL_TO", "a@example.com"))
	if err != nil {
		t.Fatal(err)
	}
	for name, n := range c.Notifiers {
		if n.Email != nil && (n.Email.TLS != "tls" || n.Email.Port != 0) {
			t.Errorf("notifier %s: tls %q port %d, want tls and the policy's port (0)", name, n.Email.TLS, n.Email.Port)
		}
	}
}
