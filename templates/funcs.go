package templates

import (
	"fmt"
	htmltemplate "html/template"
	"math"
	"net/url"
	"path"
	"reflect"
	"strconv"
	"strings"
	"text/template"
	"time"
	"unicode/utf8"

	"github.com/Masterminds/sprig/v3"
)

// Functions available to templates: every function of sprig's TxtFuncMap
// (https://masterminds.github.io/sprig/) except env, expandenv and getHostByName (templates
// must not read the relay's environment, where its secrets live, nor reach the network), with
// duration and plural replaced, plus these. Arguments shown as TEXT accept strings and anything
// else (numbers, the raw event's values), rendered as text.
//
// Parts a target's destination shows as plain text (Discord's embed footer, an email's subject
// and plain-text alternative) are rendered with the text target's functions, Discord's also
// neutralising mentions; "email" below means its HTML body and context.
//
//   - escape TEXT: TEXT escaped for the current target (Slack: mrkdwn; Discord: markdown; text:
//     escape sequences and control characters removed; email: control characters removed, the
//     HTML escaping being html/template's). For values taken from .Raw; fields of the dot are
//     already escaped, and escaping twice shows the same.
//   - mrkdwn TEXT: TEXT escaped for Slack mrkdwn, whatever the target: &, < and > become
//     entities (so <!channel>, <@U123> and <http://x|y> stay text), *, _, ~ and ` that could
//     format get a zero-width space on each side, and @channel, @here and @everyone one after
//     the @.
//   - link URL [LABEL]: a link for the current target. Slack: <URL|LABEL> with |, < and >
//     in the URL percent-encoded and LABEL escaped; Discord: [LABEL](URL) with spaces,
//     parentheses, <, > and @ in the URL percent-encoded and LABEL escaped (the URL alone without
//     a label); text: "LABEL (URL)"; email: an <a href> anchor. Only absolute http and https URLs
//     without user information become links; any other URL leaves LABEL (or the escaped URL) as
//     plain text.
//   - code TEXT: TEXT as an inline code span (Slack and Discord: `TEXT` on one line, backticks
//     in TEXT replaced by ˋ and escapes undone; text: TEXT on one line; email: a <code>
//     element). "" for empty TEXT.
//   - codeblock TEXT: TEXT as preformatted lines (Slack and Discord: a ``` block; text: each
//     line indented by four spaces; email: a <pre> element). "" for empty TEXT.
//   - filename URL: the last element of the URL's path ("out-0.png"), escaped for the target.
//   - cid URL: "cid:" and the URL's file name, percent-encoded ("cid:out-0.png"): the address
//     of that file attached to an email, for <img src="{{cid $f}}">. The reference is broken
//     unless the email notifier attaches the file; the default templates use the URL.
//   - truncate N TEXT: TEXT cut to at most N characters, ending with "…" when cut. Escapes
//     (Slack's &amp;, &lt;, &gt;; Discord's backslash and the character after it) count as one
//     character and are never split, and zero-width spaces count as none, so escaped text can be
//     truncated.
//   - oneline TEXT: TEXT with every run of white space, newlines included, turned into one space.
//   - duration D: D (a time.Duration, or a number of seconds) for humans: "850ms", "9.7s",
//     "8m22s", "1h2m"; "0s" for zero.
//   - datetime T: the time.Time T in UTC as "2006-01-02 15:04 UTC"; "" for the zero time.
//   - count N WORD [PLURAL]: N and WORD, pluralised: "1 image", "2 images"; PLURAL replaces
//     the default WORD+"s".
//   - plural ONE MANY N: ONE when N is 1, else MANY (sprig's plural, accepting any number).
func funcMap(t *target) template.FuncMap {
	fm := sprig.TxtFuncMap()
	for _, name := range []string{"env", "expandenv", "getHostByName"} {
		delete(fm, name)
	}
	fm["escape"] = func(v any) string { return t.text(toText(v)) }
	fm["mrkdwn"] = func(v any) string { return slackEscape(toText(v)) }
	fm["link"] = func(u any, label ...any) string {
		l := ""
		if len(label) > 0 {
			l = toText(label[0])
		}
		return t.link(toText(u), l)
	}
	fm["code"] = func(v any) string { return t.code(toText(v)) }
	fm["codeblock"] = func(v any) string { return t.codeBlock(toText(v)) }
	fm["filename"] = func(v any) string { return t.text(fileName(toText(v))) }
	fm["cid"] = func(v any) string { return t.text(cidName(toText(v))) }
	fm["truncate"] = func(n int, v any) string { return t.truncate(toText(v), n) }
	fm["oneline"] = func(v any) string { return oneLine(toText(v)) }
	fm["duration"] = func(v any) (string, error) {
		d, err := toDuration(v)
		if err != nil {
			return "", err
		}
		return humanDuration(d), nil
	}
	fm["datetime"] = func(tm time.Time) string {
		if tm.IsZero() {
			return ""
		}
		return tm.UTC().Format("2006-01-02 15:04 UTC")
	}
	fm["count"] = func(n any, word string, plural ...string) (string, error) {
		f, err := toNumber(n)
		if err != nil {
			return "", err
		}
		w := word + "s"
		if len(plural) > 0 {
			w = plural[0]
		}
		if f == 1 {
			w = word
		}
		return strconv.FormatFloat(f, 'f', -1, 64) + " " + w, nil
	}
	fm["plural"] = func(one, many string, n any) (string, error) {
		f, err := toNumber(n)
		if err != nil {
			return "", err
		}
		if f == 1 {
			return one, nil
		}
		return many, nil
	}
	if t.html {
		// Returned as trusted HTML (and URL) so that html/template does not escape them again;
		// the functions escape what they are given.
		fm["link"] = func(u any, label ...any) htmltemplate.HTML {
			l := ""
			if len(label) > 0 {
				l = toText(label[0])
			}
			return htmltemplate.HTML(t.link(toText(u), l))
		}
		fm["code"] = func(v any) htmltemplate.HTML { return htmltemplate.HTML(t.code(toText(v))) }
		fm["codeblock"] = func(v any) htmltemplate.HTML { return htmltemplate.HTML(t.codeBlock(toText(v))) }
		fm["cid"] = func(v any) htmltemplate.URL { return htmltemplate.URL(cidName(toText(v))) }
	}
	return fm
}

// toText renders a template value as text: strings (and named string types such as the raw
// event's logs) as they are, nil as "", numbers and booleans as Go prints them, Stringers by
// their String method, anything else as JSON.
func toText(v any) string {
	switch v := v.(type) {
	case nil:
		return ""
	case string:
		return v
	case fmt.Stringer:
		return v.String()
	case error:
		return v.Error()
	}
	rv := reflect.ValueOf(v)
	switch rv.Kind() {
	case reflect.String:
		return rv.String()
	case reflect.Bool, reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64,
		reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64,
		reflect.Float32, reflect.Float64:
		return fmt.Sprint(v)
	case reflect.Pointer, reflect.Interface:
		if rv.IsNil() {
			return ""
		}
	}
	return valueText(v)
}

// toNumber reads any integer or float as a float64.
func toNumber(v any) (float64, error) {
	rv := reflect.ValueOf(v)
	switch rv.Kind() {
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64:
		return float64(rv.Int()), nil
	case reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64, reflect.Uintptr:
		return float64(rv.Uint()), nil
	case reflect.Float32, reflect.Float64:
		return rv.Float(), nil
	}
	return 0, fmt.Errorf("want a number, got %T", v)
}

// toDuration reads a time.Duration, a number of seconds, or a duration string ("1m30s").
func toDuration(v any) (time.Duration, error) {
	switch v := v.(type) {
	case time.Duration:
		return v, nil
	case string:
		d, err := time.ParseDuration(v)
		if err != nil {
			return 0, fmt.Errorf("duration: %w", err)
		}
		return d, nil
	}
	f, err := toNumber(v)
	if err != nil {
		return 0, fmt.Errorf("duration: want a time.Duration or seconds, got %T", v)
	}
	if math.IsNaN(f) || math.Abs(f) > math.MaxInt64/float64(time.Second) {
		return 0, fmt.Errorf("duration: %v seconds is out of range", f)
	}
	return time.Duration(f * float64(time.Second)), nil
}

// humanDuration writes d the way a person would say it: "850ms", "9.7s", "8m22s", "1h2m".
// Minutes and hours drop the smaller unit rather than round, so "8m22s" means at least that.
func humanDuration(d time.Duration) string {
	switch {
	case d == math.MinInt64: // which has no positive counterpart
		return "-" + humanDuration(math.MaxInt64)
	case d < 0:
		return "-" + humanDuration(-d)
	case d == 0:
		return "0s"
	case d < time.Millisecond:
		return "<1ms"
	case d < time.Second:
		return strconv.FormatInt(d.Round(time.Millisecond).Milliseconds(), 10) + "ms"
	case d < time.Minute-50*time.Millisecond:
		return strconv.FormatFloat(d.Round(100*time.Millisecond).Seconds(), 'f', -1, 64) + "s"
	case d < time.Hour:
		d = max(d, time.Minute) // 59.96s rounds up to 60s, not down to 0m59s
		m, s := int(d/time.Minute), int(d%time.Minute/time.Second)
		if s == 0 {
			return fmt.Sprintf("%dm", m)
		}
		return fmt.Sprintf("%dm%ds", m, s)
	}
	h, m := int64(d/time.Hour), int(d%time.Hour/time.Minute)
	if m == 0 {
		return fmt.Sprintf("%dh", h)
	}
	return fmt.Sprintf("%dh%dm", h, m)
}

// truncate cuts s to at most n characters, ending with "…" when cut. The entities &amp;, &lt;
// and &gt; count as one character and are never split; zero-width spaces count as none.
func truncate(s string, n int) string {
	if n <= 0 {
		return ""
	}
	// width counts the characters up to i; cut is where the text ends when it is cut, after
	// the last unit that leaves room for the "…".
	width, cut := 0, 0
	for i := 0; i < len(s); {
		size, w := 1, 1
		switch {
		case s[i] == '&' && (strings.HasPrefix(s[i:], "&amp;") || strings.HasPrefix(s[i:], "&lt;") || strings.HasPrefix(s[i:], "&gt;")):
			size = strings.IndexByte(s[i:], ';') + 1
		case strings.HasPrefix(s[i:], zwsp):
			size, w = len(zwsp), 0
		default:
			_, size = utf8.DecodeRuneInString(s[i:])
		}
		i += size
		width += w
		if width <= n-1 {
			cut = i
		}
		if width > n {
			return strings.TrimRight(s[:cut], " \t\n"+zwsp) + "…"
		}
	}
	return s
}

// fileName is the last element of a URL's path, unescaped, or of s itself when it is no URL.
func fileName(s string) string {
	p := s
	if path, ok := simpleURL(unescapeSlack(s)); ok {
		if path != "" {
			p = path
		}
	} else if u, err := url.Parse(unescapeSlack(s)); err == nil && u.Path != "" {
		p = u.Path
		if q, err := url.PathUnescape(p); err == nil {
			p = q
		}
	}
	b := path.Base(p)
	if b == "." || b == "/" {
		return ""
	}
	return b
}
