package notifiers

import (
	"errors"
	"net/url"
	"sort"
	"strconv"
	"strings"
)

// redacted replaces a secret in error text.
const redacted = "[redacted]"

// redactor scrubs known secrets (webhook URLs, tokens) out of errors. net/http puts the full
// request URL in every *url.Error, and a webhook URL is a credential, so every error a notifier
// returns goes through one.
type redactor struct {
	secrets []string // longest first, so that a secret containing another is replaced whole
}

// newRedactor returns a redactor for the given secrets; empty ones are ignored.
func newRedactor(secrets ...string) redactor {
	seen := map[string]bool{}
	var r redactor
	for _, s := range secrets {
		if s == "" || seen[s] {
			continue
		}
		seen[s] = true
		r.secrets = append(r.secrets, s)
	}
	sort.Slice(r.secrets, func(i, j int) bool { return len(r.secrets[i]) > len(r.secrets[j]) })
	return r
}

// urlSecrets lists the forms in which a secret URL may show up in error text: as given, as
// re-encoded by net/url, its path (the credential of a Slack or Discord webhook), its query and
// user info, and its last path segment when that is long enough to be a key.
func urlSecrets(raw string) []string {
	out := []string{raw}
	u, err := url.Parse(raw)
	if err != nil {
		return out
	}
	out = append(out, u.String(), u.Path, u.EscapedPath(), u.RawQuery)
	if u.User != nil {
		out = append(out, u.User.String())
	}
	if i := strings.LastIndexByte(u.Path, '/'); i >= 0 && len(u.Path)-i-1 >= 8 {
		out = append(out, u.Path[i+1:])
	}
	var keep []string
	for _, s := range out {
		// A path of "/" or a one-letter query would redact every slash or letter.
		if len(s) > 1 {
			keep = append(keep, s)
		}
	}
	return keep
}

// text returns s with every secret replaced.
func (r redactor) text(s string) string {
	for _, sec := range r.secrets {
		s = strings.ReplaceAll(s, sec, redacted)
	}
	return s
}

// error returns err with every secret scrubbed from its text and from the chain it unwraps to.
// A *url.Error is rebuilt with its URL redacted (and whatever wrapped it dropped); the rest of the chain is kept only where it is
// free of secrets, so that errors.Is(err, context.DeadlineExceeded) still works.
func (r redactor) error(err error) error {
	if err == nil {
		return nil
	}
	var ue *url.Error
	if errors.As(err, &ue) {
		err = &url.Error{Op: ue.Op, URL: r.text(ue.URL), Err: ue.Err}
	}
	return &redactedError{msg: r.text(err.Error()), cause: r.clean(err)}
}

// clean returns the outermost error of err's chain whose text holds no secret, or nil.
func (r redactor) clean(err error) error {
	for e := err; e != nil; e = errors.Unwrap(e) {
		if r.text(e.Error()) == e.Error() {
			return e
		}
	}
	return nil
}

// redactedError is an error whose text was scrubbed.
type redactedError struct {
	msg   string
	cause error
}

func (e *redactedError) Error() string { return e.msg }
func (e *redactedError) Unwrap() error { return e.cause }

// shownURL is how an error quotes a configured URL: quoted, with its passwords hidden (in the
// user info, or a query parameter named like one). A value that might hold one and does not
// parse is not shown at all.
func shownURL(raw string) string {
	u, err := url.Parse(raw)
	if err != nil || u.Opaque != "" || !strings.Contains(raw, "://") {
		if strings.Contains(raw, "@") || strings.Contains(strings.ToLower(raw), "password") {
			return "(not shown: it may hold a password)"
		}
		return strconv.Quote(raw)
	}
	if _, ok := u.User.Password(); ok {
		u.User = url.UserPassword(u.User.Username(), "xxxxx")
	}
	if q := u.Query(); len(q) > 0 {
		hidden := false
		for k := range q {
			if strings.Contains(strings.ToLower(k), "password") {
				q[k], hidden = []string{"xxxxx"}, true
			}
		}
		if hidden {
			u.RawQuery = q.Encode()
		}
	}
	return strconv.Quote(u.String())
}
