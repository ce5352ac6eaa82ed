package config

import (
	"errors"
	"fmt"
	"math"
	"net"
	"net/url"
	"strconv"
	"strings"
	"time"
	"unicode"

	"github.com/mlrelay/relay/relay"
	"github.com/mlrelay/relay/relay/replicate"
)

// minDedupWindow is the shortest dedup window: Replicate retries a delivery for a while, and a
// retry arriving after its message id is forgotten would notify twice.
const minDedupWindow = 10 * time.Minute

// validate checks the decoded configuration and compiles the rules into c.Rules.
func (l *loader) validate(c *Config, rules []ruleFile) {
	l.checkServer(path{"server"}, c.Server)
	l.checkLog(path{"log"}, c.Log)
	l.checkStore(path{"store"}, c.Store)
	l.checkReplicate(path{"replicate"}, c.Replicate)
	l.checkDispatch(path{"dispatch"}, c.Dispatch)
	l.checkAttachments(path{"attachments"}, c.Attachments)
	l.checkBot(path{"bot"}, c)
	for _, name := range sortedKeys(c.Notifiers) {
		if !l.broken[name] {
			l.checkNotifier(path{"notifiers", name}, c, c.Notifiers[name])
		}
	}
	for _, name := range sortedKeys(c.Digests) {
		l.checkDigest(path{"digests", name}, c, c.Digests[name])
	}
	c.Rules = l.compileRules(path{"rules"}, c, rules)
}

func (l *loader) checkServer(p path, s Server) {
	if err := checkAddr(s.Addr); err != nil {
		l.fail(p.add("addr"), "%v", err)
	}
	if problem := routeProblem(s.HookPath); problem != "" {
		l.fail(p.add("hook_path"), "%s", problem)
	}
	if s.MaxBody <= 0 {
		l.fail(p.add("max_body"), `must be more than 0, got %s (the default is "10MiB")`, s.MaxBody)
	}
	if s.PublicURL != "" && !isHTTPURL(s.PublicURL) {
		l.fail(p.add("public_url"), `not an absolute http(s) URL: %s (want one such as "https://relay.example.com")`, shownURL(s.PublicURL))
	}
	l.positive(p.add("read_timeout"), s.ReadTimeout)
	l.positive(p.add("shutdown_timeout"), s.ShutdownTimeout)
}

// checkAddr checks a listen address: host:port with a numeric port.
func checkAddr(addr string) error {
	const want = `(want host:port, such as "127.0.0.1:8080" or ":8080")`
	_, port, err := net.SplitHostPort(addr)
	if err != nil {
		return fmt.Errorf("bad address %q %s", addr, want)
	}
	if n, err := strconv.Atoi(port); err != nil || n < 0 || n > 65535 {
		return fmt.Errorf("bad port %q in %q %s", port, addr, want)
	}
	return nil
}

func (l *loader) checkLog(p path, g Log) {
	switch g.Level {
	case "debug", "info", "warn", "error":
	default:
		l.fail(p.add("level"), "unknown level %q (want debug, info, warn or error)", g.Level)
	}
	switch g.Format {
	case "text", "json":
	default:
		l.fail(p.add("format"), "unknown format %q (want text or json)", g.Format)
	}
}

func (l *loader) checkStore(p path, s Store) {
	const want = `a SQLite file path such as "relay.db", sqlite:PATH, file:PATH, or a postgres:// URL`
	u := s.URL
	// The URL may hold a password, so nothing here quotes it.
	switch {
	case strings.TrimSpace(u) == "":
		l.fail(p.add("url"), "is empty (want %s)", want)
	case s.Driver() == "postgres":
		if pu, err := url.Parse(u); err != nil || pu.Host == "" {
			l.fail(p.add("url"), "not a valid postgres URL (want postgres://user:password@host/dbname; the value is not shown as it may hold a password)")
		}
	case strings.Contains(u, "://") && !hasScheme(u, "sqlite://", "file://"):
		scheme, _, _ := strings.Cut(u, "://")
		l.fail(p.add("url"), "unknown scheme %q (want %s)", scheme, want)
	case s.Path() == "":
		l.fail(p.add("url"), "names no file (want %s)", want)
	case s.Path() != u && strings.ContainsAny(s.Path(), "?#"):
		l.fail(p.add("url"), "query parameters are not supported: the relay sets the SQLite options itself")
	}
	if s.DedupWindow.D() < minDedupWindow {
		l.fail(p.add("dedup_window"), "must be at least %s, so that retried deliveries are recognised; got %s", Duration(minDedupWindow), s.DedupWindow)
	}
	if s.Retention < s.DedupWindow {
		l.fail(p.add("retention"), "must be at least dedup_window (%s), got %s", s.DedupWindow, s.Retention)
	}
}

func (l *loader) checkReplicate(p path, r Replicate) {
	secrets := r.Secrets()
	for i, s := range secrets {
		// ParseSecret's errors never quote the secret.
		if _, err := replicate.ParseSecret(s); err != nil {
			l.fail(p.add("webhook_secrets"), "secret %d of %d: %v", i+1, len(secrets), err)
		}
	}
	l.positive(p.add("tolerance"), r.Tolerance)
}

func (l *loader) checkDispatch(p path, d Dispatch) {
	if d.Workers < 1 || d.Workers > 256 {
		l.fail(p.add("workers"), "must be between 1 and 256, got %d", d.Workers)
	}
	l.positive(p.add("lease"), d.Lease)
	if l.positive(p.add("send_timeout"), d.SendTimeout) && d.SendTimeout >= d.Lease {
		l.fail(p.add("send_timeout"), "must be shorter than lease (%s), got %s; a send outliving its lease could be taken over and sent twice", d.Lease, d.SendTimeout)
	}
	if d.MaxAttempts < 1 {
		l.fail(p.add("max_attempts"), "must be at least 1, got %d", d.MaxAttempts)
	}
	l.positive(p.add("max_age"), d.MaxAge)
	l.positive(p.add("backoff_min"), d.BackoffMin)
	if d.BackoffMax < d.BackoffMin {
		l.fail(p.add("backoff_max"), "must be at least backoff_min (%s), got %s", d.BackoffMin, d.BackoffMax)
	}
}

func (l *loader) checkAttachments(p path, a Attachments) {
	hosts := a.HostList()
	if len(hosts) == 0 {
		l.fail(p.add("hosts"), `names no host; the default is ["replicate.delivery"]`)
	}
	for _, h := range hosts {
		if err := checkHost(h); err != nil {
			l.fail(p.add("hosts"), "%v", err)
		}
	}
	l.positive(p.add("timeout"), a.Timeout)
	if a.CAFile != "" {
		if _, err := a.CertPool(); err != nil {
			l.fail(p.add("ca_file"), "%v", err)
		}
	}
}

// checkHost checks an [attachments] hosts entry: a host name, or "." and a domain.
func checkHost(h string) error {
	name := strings.TrimPrefix(h, ".")
	if name == "" || strings.ContainsAny(name, "/:@?#* \t") || strings.HasPrefix(name, ".") || strings.HasSuffix(name, ".") {
		return fmt.Errorf(`bad host %q (want a host name such as "replicate.delivery", or ".example.com" for its subdomains; no scheme, port or path)`, h)
	}
	// Downloads match plain ASCII names only (see attach): a name in another script is written
	// as its punycode.
	if strings.IndexFunc(name, func(r rune) bool { return r > 0x7f }) >= 0 {
		return fmt.Errorf(`bad host %q: write a name outside ASCII as its punycode ("xn--...")`, h)
	}
	return nil
}

// positive reports d at p unless it is more than zero.
func (l *loader) positive(p path, d Duration) bool {
	if d <= 0 {
		l.fail(p, "must be more than 0, got %s", d)
		return false
	}
	return true
}

func (l *loader) checkNotifier(p path, c *Config, n *Notifier) {
	if math.IsNaN(n.Rate) || math.IsInf(n.Rate, 0) || n.Rate < 0 {
		l.fail(p.add("rate"), "must be 0 (no limit) or a number of messages per second, got %v", n.Rate)
	}
	if n.Burst < 0 {
		l.fail(p.add("burst"), "must not be negative, got %d", n.Burst)
	} else if n.Rate > 0 && n.Burst < 1 {
		l.fail(p.add("burst"), "must be at least 1 when rate is set, got %d", n.Burst)
	}
	if n.Attach && n.Type == "console" {
		l.fail(p.add("attach"), "console notifiers print links and cannot attach files; remove it")
	}
	if n.AttachMaxSize <= 0 {
		l.fail(p.add("attach_max_size"), `must be more than 0, got %s (the default is "8MiB")`, n.AttachMaxSize)
	}
	if n.AttachMaxFiles < 1 || n.AttachMaxFiles > 10 {
		l.fail(p.add("attach_max_files"), "must be between 1 and 10, got %d", n.AttachMaxFiles)
	}
	fallbackOK := l.checkFallback(p.add("fallback"), c, n)
	n.settings().check(l, p)
	if fallbackOK && !n.Configured() {
		if _, err := c.Resolve(n.Name); err != nil {
			hint := `configure it, set fallback (such as "console"), or remove it`
			if n.Fallback != "" {
				hint = "configure one of them, or remove it"
			}
			l.fail(p, "%v; %s", err, hint)
		}
	}
}

// checkFallback checks that n's fallback names another notifier without a fallback of its own.
func (l *loader) checkFallback(p path, c *Config, n *Notifier) bool {
	if n.Fallback == "" {
		return true
	}
	f := c.Notifiers[n.Fallback]
	switch {
	case n.Fallback == n.Name:
		l.fail(p, "names the notifier itself; name another one, such as a console notifier")
	case f == nil:
		l.fail(p, "unknown notifier %q (defined: %s)", n.Fallback, c.notifierNames())
	case l.broken[f.Name]:
	case f.Fallback != "":
		l.fail(p, "notifier %q has a fallback of its own (%q); fallbacks do not chain, so name the last one directly", f.Name, f.Fallback)
	default:
		return true
	}
	return false
}

// compileRules builds and compiles each rule, reporting every problem.
func (l *loader) compileRules(p path, c *Config, rules []ruleFile) []*relay.CompiledRule {
	var out []*relay.CompiledRule
	names := map[string]int{}
	for i, rf := range rules {
		if rf.bad {
			continue
		}
		rp := p.add(i)
		r := relay.Rule{Name: rf.Name, Models: rf.Models, Meta: rf.Meta, When: rf.When, Notify: rf.Notify, Digests: rf.Digest, Template: rf.Template}
		for _, k := range rf.Kinds {
			r.Kinds = append(r.Kinds, relay.Kind(k))
		}
		for _, s := range rf.Statuses {
			r.Statuses = append(r.Statuses, replicate.Status(s))
		}
		cr, err := relay.CompileRule(r)
		var re *relay.RuleError
		switch {
		case errors.As(err, &re):
			l.fail(rp.add(re.Field), "%s", re.Reason)
		case err != nil:
			l.fail(rp, "%v", err)
		default:
			out = append(out, cr)
		}
		if j, dup := names[rf.Name]; dup && rf.Name != "" {
			l.fail(rp.add("name"), "duplicate name %q (rules[%d] has it too); rule names must be unique", rf.Name, j)
		} else {
			names[rf.Name] = i
		}
		seen := map[string]bool{}
		for _, name := range rf.Notify {
			switch {
			case seen[name]:
				l.fail(rp.add("notify"), "%q is listed twice", name)
			case c.Notifiers[name] == nil:
				l.fail(rp.add("notify"), "unknown notifier %q (defined: %s)", name, c.notifierNames())
			}
			seen[name] = true
		}
		for _, name := range rf.Digest {
			switch {
			case seen["digest:"+name]:
				l.fail(rp.add("digest"), "%q is listed twice", name)
			case c.Digests[name] == nil:
				l.fail(rp.add("digest"), "unknown digest %q (defined: %s)", name, c.digestNames())
			}
			seen["digest:"+name] = true
		}
	}
	return out
}

// isHTTPURL reports whether s is an absolute http or https URL with a host.
func isHTTPURL(s string) bool {
	if strings.ContainsFunc(s, isSpace) {
		return false
	}
	u, err := url.Parse(s)
	return err == nil && (u.Scheme == "http" || u.Scheme == "https") && u.Host != ""
}

func isSpace(r rune) bool { return unicode.IsSpace(r) }

// routeProblem says what keeps path from being one of the relay's routes, or "": it must be a
// plain path (what net/http's ServeMux reads as a pattern, "{name}" wildcards included, would
// make the relay fail at start), and not a path the relay answers itself.
func routeProblem(path string) string {
	switch {
	case !strings.HasPrefix(path, "/"):
		return fmt.Sprintf(`must start with "/", got %q`, path)
	case strings.ContainsAny(path, "?# \t\r\n{}"):
		return fmt.Sprintf(`must be a plain path, without "?", "#", "{", "}" or spaces, got %q`, path)
	case path == "/healthz" || path == "/readyz":
		return fmt.Sprintf("%s is the relay's own health check; use another path", path)
	}
	return ""
}

// routeCovers reports whether requests for path b would reach route a: the same path, or,
// when a ends with "/" (a subtree for net/http), a path under a or a itself without the slash
// (which net/http redirects to a).
func routeCovers(a, b string) bool {
	return a == b || strings.HasSuffix(a, "/") && (strings.HasPrefix(b, a) || b+"/" == a)
}
