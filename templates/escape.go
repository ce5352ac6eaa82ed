package templates

import (
	"fmt"
	"net/url"
	"strings"
	"unicode"
	"unicode/utf8"
)

// zwsp is the zero-width space inserted beside Slack formatting characters in user text: Slack
// has no escape character for *, _, ~ and `, and a formatting character with an invisible
// space on each side neither opens nor closes a span.
const zwsp = "\u200b"

// clean makes outside text safe to show anywhere: invalid UTF-8 becomes U+FFFD; ANSI escape
// sequences, control characters other than newline and tab, and bidirectional overrides (which
// can make text read differently from what it is) are removed. A carriage return ends a line as
// a terminal would show it: "\r\n" is a newline, and text overwritten after a lone "\r" (progress
// bars in logs) keeps only its last state.
func clean(s string) string {
	if isPlain(s) {
		return s
	}
	s = strings.ToValidUTF8(s, "\uFFFD")
	var b strings.Builder
	b.Grow(len(s))
	for i := 0; i < len(s); {
		r, size := utf8.DecodeRuneInString(s[i:])
		switch {
		case r == 0x1b: // ESC: skip the whole sequence
			i += ansiLen(s[i:])
			continue
		case r == 0x9b: // C1 CSI: the same as ESC [
			i += size + csiLen(s[i+size:])
			continue
		case r == '\n' || r == '\t' || r == '\r':
			b.WriteRune(r)
		case unicode.IsControl(r) || isBidiControl(r):
			// dropped
		default:
			b.WriteRune(r)
		}
		i += size
	}
	return carriageReturns(b.String())
}

// isPlain reports whether s is valid UTF-8 without any character clean would change, the
// common case, so that clean can return it as it is.
func isPlain(s string) bool {
	for i := 0; i < len(s); {
		// ASCII, most of any text, is checked without decoding: its control characters are
		// those below a space, and DEL.
		if c := s[i]; c < utf8.RuneSelf {
			if c < ' ' && c != '\n' && c != '\t' || c == 0x7f {
				return false
			}
			i++
			continue
		}
		r, size := utf8.DecodeRuneInString(s[i:])
		if r == utf8.RuneError || unicode.IsControl(r) || isBidiControl(r) {
			return false
		}
		i += size
	}
	return true
}

// isBidiControl reports whether r is a bidirectional embedding, override or isolate.
func isBidiControl(r rune) bool {
	return (r >= 0x202a && r <= 0x202e) || (r >= 0x2066 && r <= 0x2069)
}

// ansiLen is the length of the escape sequence that starts s (with ESC), at least 1.
func ansiLen(s string) int {
	if len(s) < 2 {
		return len(s)
	}
	switch c := s[1]; {
	case c == '[': // CSI
		return 2 + csiLen(s[2:])
	case c == ']' || c == 'P' || c == 'X' || c == '^' || c == '_': // OSC, DCS, SOS, PM, APC
		for i := 2; i < len(s); i++ {
			if s[i] == 0x07 {
				return i + 1
			}
			if s[i] == 0x1b && i+1 < len(s) && s[i+1] == '\\' {
				return i + 2
			}
		}
		return len(s)
	case c >= 0x20 && c <= 0x2f: // intermediates, then a final byte: ESC ( B
		i := 2
		for i < len(s) && s[i] >= 0x20 && s[i] <= 0x2f {
			i++
		}
		if i < len(s) && s[i] >= 0x30 && s[i] <= 0x7e {
			i++
		}
		return i
	case c >= 0x30 && c <= 0x7e: // two-character sequences: ESC c, ESC 7
		return 2
	}
	return 1
}

// csiLen is the length of a CSI sequence's parameters, intermediates and final byte.
func csiLen(s string) int {
	i := 0
	for i < len(s) && s[i] >= 0x30 && s[i] <= 0x3f {
		i++
	}
	for i < len(s) && s[i] >= 0x20 && s[i] <= 0x2f {
		i++
	}
	if i < len(s) && s[i] >= 0x40 && s[i] <= 0x7e {
		i++
	}
	return i
}

// carriageReturns resolves "\r" as a terminal shows it.
func carriageReturns(s string) string {
	if !strings.Contains(s, "\r") {
		return s
	}
	s = strings.ReplaceAll(s, "\r\n", "\n")
	lines := strings.Split(s, "\n")
	for i, l := range lines {
		if j := strings.LastIndexByte(strings.TrimRight(l, "\r"), '\r'); j >= 0 {
			l = l[j+1:]
		}
		lines[i] = strings.ReplaceAll(l, "\r", "")
	}
	return strings.Join(lines, "\n")
}

// slackEscape escapes text for Slack mrkdwn: &, < and > become entities (so that <!channel>,
// <@U123> and <http://x|y> typed by a user stay text), formatting characters that could open or
// close a span get an invisible space on each side, and @channel, @here and @everyone get one
// after the @. It is idempotent in effect: the entities &amp;, &lt; and &gt; are kept as they are,
// so escaping escaped text shows the same.
func slackEscape(s string) string {
	s = clean(s)
	if !strings.ContainsAny(s, "&<>*_~`@") {
		return s
	}
	if !strings.ContainsAny(s, "&<>`@") && inWords(s, "*_~") {
		// Formatting characters only inside words, as in the snake_case names of most
		// inputs and metrics.
		return s
	}
	rs := []rune(s)
	var b strings.Builder
	b.Grow(len(s) + 16)
	for i, r := range rs {
		switch r {
		case '&':
			if isEntity(rs[i:]) {
				b.WriteByte('&')
			} else {
				b.WriteString("&amp;")
			}
		case '<':
			b.WriteString("&lt;")
		case '>':
			b.WriteString("&gt;")
		case '*', '_', '~':
			// Inside a word (asterisks in 2*3*4, underscores in snake_case) the character
			// cannot format, and leaving it alone keeps names and identifiers intact.
			if boundary(rs, i-1) || boundary(rs, i+1) {
				b.WriteString(zwsp + string(r) + zwsp)
			} else {
				b.WriteRune(r)
			}
		case '`':
			b.WriteString(zwsp + "`" + zwsp)
		case '@':
			b.WriteRune(r)
			if boundary(rs, i-1) && isBroadcast(rs[i+1:]) {
				b.WriteString(zwsp)
			}
		default:
			b.WriteRune(r)
		}
	}
	return b.String()
}

// inWords reports whether every character of chars (ASCII) that s has is inside a word.
func inWords(s, chars string) bool {
	for i := strings.IndexAny(s, chars); i >= 0; {
		if !inWord(s, i) {
			return false
		}
		j := strings.IndexAny(s[i+1:], chars)
		if j < 0 {
			break
		}
		i += 1 + j
	}
	return true
}

// inWord reports whether the byte at i in s is between two letters or digits.
func inWord(s string, i int) bool {
	// At either end of s these are utf8.RuneError, no letter.
	before, _ := utf8.DecodeLastRuneInString(s[:i])
	after, _ := utf8.DecodeRuneInString(s[i+1:])
	return isWordRune(before) && isWordRune(after)
}

func isWordRune(r rune) bool {
	return unicode.IsLetter(r) || unicode.IsDigit(r)
}

// slackEntities escapes only &, < and >, keeping existing entities: enough inside code spans,
// where Slack applies no formatting but still reads <...> sequences.
func slackEntities(s string) string {
	if !strings.ContainsAny(s, "&<>") {
		return s
	}
	rs := []rune(s)
	var b strings.Builder
	for i, r := range rs {
		switch {
		case r == '&' && !isEntity(rs[i:]):
			b.WriteString("&amp;")
		case r == '<':
			b.WriteString("&lt;")
		case r == '>':
			b.WriteString("&gt;")
		default:
			b.WriteRune(r)
		}
	}
	return b.String()
}

// isEntity reports whether rs starts with one of the three entities Slack decodes.
func isEntity(rs []rune) bool {
	for _, e := range []string{"&amp;", "&lt;", "&gt;"} {
		if len(rs) >= len(e) && string(rs[:len(e)]) == e {
			return true
		}
	}
	return false
}

// boundary reports whether position i of rs is outside the text or not a letter or digit.
func boundary(rs []rune, i int) bool {
	if i < 0 || i >= len(rs) {
		return true
	}
	return !unicode.IsLetter(rs[i]) && !unicode.IsDigit(rs[i])
}

// isBroadcast reports whether rs starts with a word that Slack or Discord turn into a mention of
// everyone when it follows an @.
func isBroadcast(rs []rune) bool {
	for _, w := range []string{"channel", "here", "everyone"} {
		if len(rs) >= len(w) && strings.EqualFold(string(rs[:len(w)]), w) && boundary(rs, len(w)) {
			return true
		}
	}
	return false
}

// unescapeSlack undoes slackEscape closely enough to find a URL's parts again.
func unescapeSlack(s string) string {
	// Not ContainsAny: with a character outside ASCII in its set, it decodes s rune by rune.
	if strings.IndexByte(s, '&') < 0 && !strings.Contains(s, zwsp) {
		return s
	}
	return strings.NewReplacer("&amp;", "&", "&lt;", "<", "&gt;", ">", zwsp, "").Replace(s)
}

// safeURL returns s cleaned when it is an absolute http or https URL with a host and no user
// information (https://replicate.com@evil.example reads like a trusted link). Entities and
// invisible spaces left by escaping are undone first, so an escaped URL is accepted too.
func safeURL(s string) (string, bool) {
	s = strings.TrimSpace(unescapeSlack(clean(s)))
	if _, ok := simpleURL(s); ok {
		return s, true
	}
	// url.Parse finds a host only after "//", and reads the scheme up to the first colon: only
	// text starting with http:// or https:// can pass, and the rest (a token of a language
	// model's output) need not be parsed.
	if !hasHTTPScheme(s) || strings.ContainsAny(s, "\n\t") {
		return "", false
	}
	u, err := url.Parse(s)
	if err != nil || u.Host == "" || u.User != nil {
		return "", false
	}
	switch strings.ToLower(u.Scheme) {
	case "http", "https":
		return s, true
	}
	return "", false
}

// simpleURL returns the path of s when s is an http or https URL of the plainest form, as most
// are: the scheme, a host name of ASCII letters, digits and hyphens in dot-separated labels,
// and nothing more or a path, query and fragment of printable ASCII without %, spaces or the
// characters unsafe in URLs. url.Parse accepts every such URL with that host, no user
// information and that path, so safeURL and fileName need not parse it (FuzzSimpleURL holds
// the two to agreeing).
func simpleURL(s string) (path string, ok bool) {
	var rest string
	switch {
	case len(s) >= 8 && strings.EqualFold(s[:8], "https://"):
		rest = s[8:]
	case len(s) >= 7 && strings.EqualFold(s[:7], "http://"):
		rest = s[7:]
	default:
		return "", false
	}
	host := rest
	if i := strings.IndexAny(rest, "/?#"); i >= 0 {
		host, rest = rest[:i], rest[i:]
	} else {
		rest = ""
	}
	if !isHostName(host) {
		return "", false
	}
	for i := 0; i < len(rest); i++ {
		switch c := rest[i]; {
		case c <= ' ' || c >= 0x7f:
			return "", false
		case c == '%', c == '"', c == '<', c == '>', c == '\\', c == '^', c == '`', c == '{', c == '|', c == '}':
			return "", false
		}
	}
	if strings.HasPrefix(rest, "/") {
		path = rest[:strings.IndexAny(rest+"?", "?#")]
	}
	return path, true
}

// isHostName reports whether s is a host name of dot-separated labels of ASCII letters, digits
// and hyphens, each starting and ending with a letter or digit.
func isHostName(s string) bool {
	if s == "" {
		return false
	}
	for label := range strings.SplitSeq(s, ".") {
		if label == "" || label[0] == '-' || label[len(label)-1] == '-' {
			return false
		}
		for i := 0; i < len(label); i++ {
			if c := label[i]; !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-') {
				return false
			}
		}
	}
	return true
}

// hasHTTPScheme reports whether s starts with http:// or https://, in any case.
func hasHTTPScheme(s string) bool {
	return len(s) >= 7 && strings.EqualFold(s[:7], "http://") || len(s) >= 8 && strings.EqualFold(s[:8], "https://")
}

// slackURL makes a checked URL printable inside Slack's <url|label>: characters that end the URL
// or the link (|, <, >, spaces, quotes) are percent-encoded and & becomes &amp;.
func slackURL(u string) string {
	if plainASCII(u, "&|<>\"`") {
		return u
	}
	var b strings.Builder
	for _, r := range u {
		switch {
		case r == '&':
			b.WriteString("&amp;")
		case r == '|' || r == '<' || r == '>' || r == '"' || r == '`' || r <= ' ' || r == 0x7f || unicode.IsSpace(r):
			for _, c := range []byte(string(r)) {
				fmt.Fprintf(&b, "%%%02X", c)
			}
		default:
			b.WriteRune(r)
		}
	}
	return b.String()
}

// plainASCII reports whether s is printable ASCII without any of the bytes in special: a URL
// that the URL writers of the targets leave as it is, as most are.
func plainASCII(s, special string) bool {
	for i := 0; i < len(s); i++ {
		if c := s[i]; c <= ' ' || c >= 0x7f || strings.IndexByte(special, c) >= 0 {
			return false
		}
	}
	return true
}

// codeSafe prepares text for a Slack code span or block: backticks, which would end it, become
// a look-alike (U+02CB), and invisible spaces left by escaping go, so that a copied version string
// or command works.
func codeSafe(s string) string {
	s = strings.ReplaceAll(clean(s), zwsp, "")
	return slackEntities(strings.ReplaceAll(s, "`", "\u02cb"))
}

// oneLine collapses every run of white space, newlines included, into one space.
func oneLine(s string) string {
	if isOneLine(s) {
		return s
	}
	return strings.Join(strings.Fields(s), " ")
}

// isOneLine reports whether oneLine would return s as it is: its only white space is single
// spaces between other characters.
func isOneLine(s string) bool {
	space := true // at the start, a space would be leading
	for _, r := range s {
		if r == ' ' {
			if space {
				return false
			}
			space = true
			continue
		}
		if unicode.IsSpace(r) {
			return false
		}
		space = false
	}
	return !space || s == ""
}
