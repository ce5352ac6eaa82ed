// Package config reads the relay's TOML configuration: it decodes strictly (an unknown key is
// an error), expands ${VAR} references from the environment in every string value, fills in
// defaults, validates everything it can, including compiling the rules, and reports every
// problem at once, each naming the file, the key and the reason. Secrets never appear in those
// reports, nor in the effective configuration that Redacted prints.
package config

import (
	"bytes"
	"crypto/x509"
	_ "embed"
	"fmt"
	"log/slog"
	"net/url"
	"os"
	"reflect"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/BurntSushi/toml"

	"github.com/mlrelay/relay/relay"
)

// defaultTOML is the configuration used when the relay starts without --config.
//
//go:embed default.toml
var defaultTOML []byte

// DefaultSource is the Source of the configuration Default returns.
const DefaultSource = "(embedded defaults)"

// Config is a loaded, valid configuration.
type Config struct {
	// Source is the file the configuration came from, or DefaultSource; errors start with it.
	Source    string
	Server    Server
	Log       Log
	Store     Store
	Replicate Replicate
	Dispatch  Dispatch
	Templates Templates
	// Attachments says where output files may be downloaded from, for notifiers with attach.
	Attachments Attachments
	// Bot is the Discord bot, off unless configured.
	Bot Bot
	// Notifiers holds every [notifiers.NAME] table by NAME.
	Notifiers map[string]*Notifier
	// Digests holds every [digests.NAME] table by NAME.
	Digests map[string]*Digest
	// Rules are the [[rules]] in file order, compiled.
	Rules []*relay.CompiledRule
}

// Server is the [server] table: the HTTP endpoint Replicate posts webhooks to.
type Server struct {
	// Addr is the address to listen on. Default "127.0.0.1:8080".
	Addr string `toml:"addr"`
	// HookPath is the path Replicate webhooks are posted to; it starts with "/".
	// Default "/hooks/replicate".
	HookPath string `toml:"hook_path"`
	// MaxBody is the largest webhook body accepted; larger ones get 413. Default "10MiB".
	MaxBody Size `toml:"max_body"`
	// PublicURL is the absolute http(s) URL at which Replicate reaches the relay, used to build
	// webhook URLs for predictions the relay starts. Default "" (not known).
	PublicURL string `toml:"public_url"`
	// ReadTimeout bounds reading one request. Default "10s".
	ReadTimeout Duration `toml:"read_timeout"`
	// ShutdownTimeout bounds a graceful shutdown. Default "30s".
	ShutdownTimeout Duration `toml:"shutdown_timeout"`
}

// Log is the [log] table.
type Log struct {
	// Level is the least severe level logged: debug, info, warn or error. Default "info".
	Level string `toml:"level"`
	// Format is text (logfmt-style) or json. Default "text".
	Format string `toml:"format"`
}

// SlogLevel returns Level as a slog.Level.
func (l Log) SlogLevel() slog.Level {
	var v slog.Level
	_ = v.UnmarshalText([]byte(l.Level)) // validated at load; info otherwise
	return v
}

// Store is the [store] table: where dedup records and deliveries are kept.
type Store struct {
	// URL names the database: a SQLite file path, or sqlite:PATH, or file:PATH; or a
	// postgres:// (postgresql://) URL. Default "relay.db".
	URL string `toml:"url"`
	// DedupWindow is how long webhook message ids are remembered so that a retried delivery
	// is recognised; at least "10m". Default "72h".
	DedupWindow Duration `toml:"dedup_window"`
	// Retention is how long finished deliveries are kept; at least DedupWindow. Default "168h".
	Retention Duration `toml:"retention"`
}

// Driver returns "sqlite" or "postgres".
func (s Store) Driver() string {
	if hasScheme(s.URL, "postgres://", "postgresql://") {
		return "postgres"
	}
	return "sqlite"
}

// Path returns the SQLite database file: URL without its sqlite: or file: prefix.
// It returns "" for other drivers.
func (s Store) Path() string {
	if s.Driver() != "sqlite" {
		return ""
	}
	p := s.URL
	for _, prefix := range []string{"sqlite://", "file://", "sqlite:", "file:"} {
		if hasScheme(p, prefix) {
			return p[len(prefix):]
		}
	}
	return p
}

// Replicate is the [replicate] table: how webhooks from Replicate are verified.
type Replicate struct {
	// WebhookSecrets is the webhook signing secret ("whsec_..."), or several separated by
	// commas while a secret is being rotated. Default "" (the caller decides what that means).
	WebhookSecrets Secret `toml:"webhook_secrets"`
	// Tolerance is how far a webhook's timestamp may be from the clock. Default "5m".
	Tolerance Duration `toml:"tolerance"`
}

// Secrets returns the webhook signing secrets, trimmed, without empty entries.
func (r Replicate) Secrets() []string {
	var out []string
	for _, s := range strings.Split(r.WebhookSecrets.Reveal(), ",") {
		if s = strings.TrimSpace(s); s != "" {
			out = append(out, s)
		}
	}
	return out
}

// Dispatch is the [dispatch] table: how stored deliveries are sent and retried.
type Dispatch struct {
	// Workers is how many deliveries are sent at once, 1 to 256. Default 4.
	Workers int `toml:"workers"`
	// Lease is how long a worker owns a claimed delivery before another may take it over.
	// Default "1m".
	Lease Duration `toml:"lease"`
	// SendTimeout bounds one attempt; it must be shorter than Lease. Default "15s".
	SendTimeout Duration `toml:"send_timeout"`
	// MaxAttempts is how many attempts a delivery gets before it is dead. Default 25.
	MaxAttempts int `toml:"max_attempts"`
	// MaxAge is how long a delivery is retried before it is dead. Default "24h".
	MaxAge Duration `toml:"max_age"`
	// BackoffMin is the wait before the first retry; it doubles on each one. Default "1s".
	BackoffMin Duration `toml:"backoff_min"`
	// BackoffMax caps the wait between retries; at least BackoffMin. Default "10m".
	BackoffMax Duration `toml:"backoff_max"`
}

// Attachments is the [attachments] table: the limits on downloading output files for notifiers
// that attach them (see Notifier.Attach), so that the relay cannot be made to fetch arbitrary
// URLs.
type Attachments struct {
	// Hosts are the hosts output files may be downloaded from, over https only: a name matches
	// itself, and ".example.com" any subdomain of example.com. Each entry may be a
	// comma-separated list, so that one variable can carry several. Default
	// ["replicate.delivery"].
	Hosts []string `toml:"hosts"`
	// Timeout bounds one download. Default "20s".
	Timeout Duration `toml:"timeout"`
	// CAFile is a PEM file of certificate authorities trusted for downloads besides the
	// system's, for a proxy or a test server. Default "" (the system's only).
	CAFile string `toml:"ca_file"`
}

// CertPool returns the system's certificate authorities plus those in CAFile, or nil when
// CAFile is not set (the system's are used as they are).
func (a Attachments) CertPool() (*x509.CertPool, error) {
	if a.CAFile == "" {
		return nil, nil
	}
	pem, err := os.ReadFile(a.CAFile)
	if err != nil {
		return nil, fmt.Errorf("reading the CA file: %w", err)
	}
	pool, err := x509.SystemCertPool()
	if err != nil {
		pool = x509.NewCertPool()
	}
	if !pool.AppendCertsFromPEM(pem) {
		return nil, fmt.Errorf("%s holds no PEM certificate", a.CAFile)
	}
	return pool, nil
}

// HostList splits Hosts entries on commas, dropping empty ones.
func (a Attachments) HostList() []string { return Recipients(a.Hosts) }

// Templates is the [templates] table.
type Templates struct {
	// Dir is a directory of *.tmpl files that override the built-in templates by name.
	// Default "" (built-in templates only).
	Dir string `toml:"dir"`
}

// defaults returns the configuration an empty file gives.
func defaults() *Config {
	return &Config{
		Server: Server{
			Addr:            "127.0.0.1:8080",
			HookPath:        "/hooks/replicate",
			MaxBody:         10 << 20,
			ReadTimeout:     Duration(10 * time.Second),
			ShutdownTimeout: Duration(30 * time.Second),
		},
		Log:       Log{Level: "info", Format: "text"},
		Store:     Store{URL: "relay.db", DedupWindow: Duration(72 * time.Hour), Retention: Duration(168 * time.Hour)},
		Replicate: Replicate{Tolerance: Duration(5 * time.Minute)},
		Dispatch: Dispatch{
			Workers:     4,
			Lease:       Duration(time.Minute),
			SendTimeout: Duration(15 * time.Second),
			MaxAttempts: 25,
			MaxAge:      Duration(24 * time.Hour),
			BackoffMin:  Duration(time.Second),
			BackoffMax:  Duration(10 * time.Minute),
		},
		Attachments: Attachments{Hosts: []string{"replicate.delivery"}, Timeout: Duration(20 * time.Second)},
		Bot:         defaultBot(),
		Notifiers:   map[string]*Notifier{},
		Digests:     map[string]*Digest{},
	}
}

// Load reads and parses the configuration file at path. getenv looks up the variables that
// ${VAR} references name; nil means os.LookupEnv.
func Load(path string, getenv func(string) (string, bool)) (*Config, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("reading config: %w", err)
	}
	return Parse(path, data, getenv)
}

// Default parses the embedded default configuration: a console notifier, a Slack notifier
// that falls back to the console until SLACK_WEBHOOK_URL or SLACK_BOT_TOKEN is set, and one
// rule sending every finished prediction and training to Slack. getenv nil means os.LookupEnv.
func Default(getenv func(string) (string, bool)) (*Config, error) {
	return Parse(DefaultSource, defaultTOML, getenv)
}

// Parse parses a configuration; name is the file name that errors start with. Keys that the
// data leaves out keep their defaults (see the field comments); notifiers and rules have none.
// getenv nil means os.LookupEnv. The error, if any, joins every problem found (see Error).
func Parse(name string, data []byte, getenv func(string) (string, bool)) (*Config, error) {
	if getenv == nil {
		getenv = os.LookupEnv
	}
	var raw map[string]any
	if _, err := toml.Decode(string(data), &raw); err != nil {
		return nil, syntaxError(name, err)
	}
	l := &loader{file: name, getenv: getenv}
	c := defaults()
	c.Source = name
	rules := l.decode(raw, c)
	l.validate(c, rules)
	if err := l.err(); err != nil {
		return nil, err
	}
	return c, nil
}

// Resolve returns the notifier that messages for the named one go to: the notifier itself when
// it is configured, else its fallback when that one is configured.
func (c *Config) Resolve(name string) (*Notifier, error) {
	n := c.Notifiers[name]
	if n == nil {
		return nil, fmt.Errorf("unknown notifier %q (defined: %s)", name, c.notifierNames())
	}
	if n.Configured() {
		return n, nil
	}
	why := fmt.Sprintf("notifier %q is not configured (%s)", name, n.Hint())
	if n.Fallback == "" {
		return nil, fmt.Errorf("%s and has no fallback", why)
	}
	f := c.Notifiers[n.Fallback]
	if f == nil {
		return nil, fmt.Errorf("%s and its fallback %q is not defined", why, n.Fallback)
	}
	if !f.Configured() {
		return nil, fmt.Errorf("%s and its fallback %q is not configured either (%s)", why, f.Name, f.Hint())
	}
	return f, nil
}

// digestNames lists the defined digests for messages.
func (c *Config) digestNames() string {
	if len(c.Digests) == 0 {
		return "none; add a [digests.NAME] table"
	}
	return strings.Join(sortedKeys(c.Digests), ", ")
}

// notifierNames lists the defined notifiers for messages.
func (c *Config) notifierNames() string {
	if len(c.Notifiers) == 0 {
		return "none; add a [notifiers.NAME] table"
	}
	names := make([]string, 0, len(c.Notifiers))
	for name := range c.Notifiers {
		names = append(names, name)
	}
	sort.Strings(names)
	return strings.Join(names, ", ")
}

// Redacted returns the effective configuration, defaults included, as TOML, with every secret
// shown as "[redacted]" (or "" when unset) and passwords removed from URLs.
func (c *Config) Redacted() string {
	type rule struct {
		Name     string            `toml:"name"`
		Kinds    []relay.Kind      `toml:"kinds,omitempty"`
		Statuses []string          `toml:"statuses,omitempty"`
		Models   []string          `toml:"models,omitempty"`
		Meta     map[string]string `toml:"meta,omitempty"`
		When     string            `toml:"when,omitempty"`
		Notify   []string          `toml:"notify,omitempty"`
		Digest   []string          `toml:"digest,omitempty"`
		Template string            `toml:"template"`
	}
	doc := struct {
		Server      Server         `toml:"server"`
		Log         Log            `toml:"log"`
		Store       Store          `toml:"store"`
		Replicate   Replicate      `toml:"replicate"`
		Dispatch    Dispatch       `toml:"dispatch"`
		Templates   Templates      `toml:"templates"`
		Attachments Attachments    `toml:"attachments"`
		Bot         any            `toml:"bot"`
		Notifiers   map[string]any `toml:"notifiers"`
		Digests     map[string]any `toml:"digests,omitempty"`
		Rules       []rule         `toml:"rules"`
	}{
		Server: c.Server, Log: c.Log, Store: c.Store, Replicate: c.Replicate,
		Dispatch: c.Dispatch, Templates: c.Templates, Attachments: c.Attachments, Bot: flatten(&c.Bot),
		Notifiers: map[string]any{},
	}
	doc.Server.PublicURL = redactURL(doc.Server.PublicURL)
	doc.Store.URL = redactURL(doc.Store.URL)
	for name, n := range c.Notifiers {
		doc.Notifiers[name] = flatten(n, n.settings())
	}
	if len(c.Digests) > 0 {
		doc.Digests = map[string]any{}
		for name, d := range c.Digests {
			doc.Digests[name] = flatten(d)
		}
	}
	for _, r := range c.Rules {
		v := rule{Name: r.Name, Kinds: r.Kinds, Models: r.Models, Meta: r.Meta, When: r.When, Notify: r.Notify, Digest: r.Digests, Template: r.Template}
		for _, s := range r.Statuses {
			v.Statuses = append(v.Statuses, string(s))
		}
		doc.Rules = append(doc.Rules, v)
	}
	var b bytes.Buffer
	fmt.Fprintf(&b, "# Effective configuration from %s; secrets are shown as %q.\n\n", c.Source, redacted)
	enc := toml.NewEncoder(&b)
	enc.Indent = ""
	if err := enc.Encode(doc); err != nil {
		// Every value here is a string, number, list or table of those: encoding cannot fail.
		panic(fmt.Sprintf("config: encoding the effective configuration: %v", err))
	}
	return b.String()
}

// flatten returns the tagged fields of the structs that targets point to as the fields of one
// new struct, in order, so that the TOML encoder writes a notifier's common and type-specific
// keys as one table. Plain strings pass through redactURL; nil targets are skipped.
func flatten(targets ...any) any {
	var (
		fs   []reflect.StructField
		vals []reflect.Value
	)
	for _, t := range targets {
		v := reflect.ValueOf(t)
		if !v.IsValid() || v.Kind() != reflect.Pointer || v.IsNil() {
			continue
		}
		v = v.Elem()
		for i := range v.NumField() {
			f := v.Type().Field(i)
			if name, _, _ := strings.Cut(f.Tag.Get("toml"), ","); name == "" || name == "-" {
				continue
			}
			// Field names of their own, as two targets may have fields of the same name.
			fs = append(fs, reflect.StructField{Name: fmt.Sprintf("F%d", len(fs)), Type: f.Type, Tag: f.Tag})
			val := v.Field(i)
			if val.Type() == reflect.TypeFor[string]() {
				val = reflect.ValueOf(redactURL(val.String()))
			}
			vals = append(vals, val)
		}
	}
	out := reflect.New(reflect.StructOf(fs)).Elem()
	for i, v := range vals {
		out.Field(i).Set(v)
	}
	return out.Interface()
}

// shownURL is how an error quotes a URL that is not itself a secret: quoted, with its
// passwords hidden (redactURL). A value with user info that does not parse as a URL is not
// shown at all, since the password in it could not be found to hide.
func shownURL(s string) string {
	if r := redactURL(s); r != s {
		return strconv.Quote(r)
	}
	// Nothing was found to hide: either there is none, or the value does not parse as a URL and
	// a password in it could not be found.
	u, err := url.Parse(s)
	unread := err != nil || u.Opaque != "" || !strings.Contains(s, "://")
	if unread && (strings.Contains(s, "@") || strings.Contains(strings.ToLower(s), "password")) {
		return "(not shown: it may hold a password)"
	}
	return strconv.Quote(s)
}

// redactURL hides the passwords of a URL that has them: "postgres://u:pw@host/db" becomes
// "postgres://u:xxxxx@host/db", and a password given as a query parameter (libpq's password
// and sslpassword) becomes xxxxx too. Other strings are returned as they are.
func redactURL(s string) string {
	if !strings.Contains(s, "://") {
		return s
	}
	u, err := url.Parse(s)
	if err != nil {
		return s
	}
	changed := false
	if _, ok := u.User.Password(); ok {
		u.User = url.UserPassword(u.User.Username(), "xxxxx")
		changed = true
	}
	if u.RawQuery != "" {
		q := u.Query()
		for k := range q {
			if isPasswordParam(k) {
				q[k] = []string{"xxxxx"}
				changed = true
			}
		}
		if changed {
			u.RawQuery = q.Encode()
		}
	}
	if !changed {
		return s
	}
	return u.String()
}

// isPasswordParam reports whether a URL query parameter holds a password for libpq and pgx.
func isPasswordParam(name string) bool {
	return strings.EqualFold(name, "password") || strings.EqualFold(name, "sslpassword")
}

// hasScheme reports whether s starts with one of the prefixes, ignoring case.
func hasScheme(s string, prefixes ...string) bool {
	for _, p := range prefixes {
		if len(s) >= len(p) && strings.EqualFold(s[:len(p)], p) {
			return true
		}
	}
	return false
}
