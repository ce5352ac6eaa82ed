package templates

import (
	"fmt"
	"strings"
	"unicode"
	"unicode/utf8"
)

// Discord's limits, in characters, on the parts of a message: an embed's title, description and
// footer, and a message's content.
const (
	discordTitleMax   = 256
	discordBodyMax    = 4096
	discordContextMax = 2048
	discordTextMax    = 2000
)

// discordMentions neutralises what Discord turns into a ping: @everyone and @here, wherever they
// are and in any case (me@here.com too: Discord does not look for word boundaries), get an
// invisible space after the @, and the mention syntaxes <@id>, <@!id>, <@&id> and <#id> one
// after the <. The text reads the same; nobody is notified.
func discordMentions(s string) string {
	if !strings.ContainsAny(s, "@<") {
		return s
	}
	rs := []rune(s)
	var b strings.Builder
	b.Grow(len(s) + 8)
	for i, r := range rs {
		b.WriteRune(r)
		switch r {
		case '@':
			if hasPrefixFold(rs[i+1:], "everyone") || hasPrefixFold(rs[i+1:], "here") {
				b.WriteString(zwsp)
			}
		case '<':
			if i+1 < len(rs) && (rs[i+1] == '@' || rs[i+1] == '#') {
				b.WriteString(zwsp)
			}
		}
	}
	return b.String()
}

func hasPrefixFold(rs []rune, p string) bool {
	return len(rs) >= len(p) && strings.EqualFold(string(rs[:len(p)]), p)
}

// discordPlain makes outside text safe for the parts of a Discord message that show no markdown
// (an embed's title and footer): clean, with mentions neutralised.
func discordPlain(s string) string {
	return discordMentions(clean(s))
}

// isDiscordEscapable reports whether a backslash before r is a Discord escape: Discord drops a
// backslash before any character but an ASCII letter or digit and white space, and shows the
// character as it is.
func isDiscordEscapable(r rune) bool {
	return !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || unicode.IsSpace(r))
}

// discordEscape escapes outside text for Discord markdown: clean, mentions neutralised, and a
// backslash before every character that could format or make a link: * ~ ` | [ ] always, _
// where it touches something other than a letter or digit (inside snake_case it cannot format),
// and # > - and the dot of "1." at the start of a line, where they make headings, quotes and
// lists. With [ and ] escaped, parentheses can no longer form a link and are left alone. URLs
// (from http:// or https:// to the next space) are copied as they are, since Discord makes them
// links before it reads any markdown in them and a backslash would break them.
//
// It is idempotent in effect, as slackEscape is: a backslash already before a character Discord
// would escape is kept as the escape it is, so escaping escaped text shows the same (and a user's
// own \* shows as *). Other backslashes are left alone, but for one at the very end, which would
// escape what the template writes next.
func discordEscape(s string) string {
	return discordEscapeAt(s, true)
}

// discordEscapeAt is discordEscape for text that starts a line (lineStart) or continues one,
// such as a link's label.
func discordEscapeAt(s string, lineStart bool) string {
	s = discordMentions(clean(s))
	if !strings.ContainsAny(s, "\\*_~`|[]#>-.") || discordPlainText(s, lineStart) {
		return s
	}
	rs := []rune(s)
	var b strings.Builder
	b.Grow(len(s) + 16)
	// lineStart is true while there has been nothing but spaces since the start of the line.
	for i := 0; i < len(rs); i++ {
		r := rs[i]
		start := lineStart
		lineStart = r == '\n' || (lineStart && (r == ' ' || r == '\t'))
		switch {
		case r == '\\' && i+1 < len(rs) && isDiscordEscapable(rs[i+1]):
			b.WriteRune(r)
			b.WriteRune(rs[i+1])
			i++
		case r == '\\' && i+1 == len(rs):
			// A backslash at the end would escape whatever the template writes next.
			b.WriteString(`\\`)
		case r == '*' || r == '~' || r == '`' || r == '|' || r == '[' || r == ']':
			b.WriteByte('\\')
			b.WriteRune(r)
		case r == '_':
			if boundary(rs, i-1) || boundary(rs, i+1) {
				b.WriteByte('\\')
			}
			b.WriteRune(r)
		case start && (r == '#' || r == '>' || r == '-'):
			b.WriteByte('\\')
			b.WriteRune(r)
		case start && r >= '0' && r <= '9':
			j := i
			for j < len(rs) && rs[j] >= '0' && rs[j] <= '9' {
				j++
			}
			b.WriteString(string(rs[i:j]))
			if j < len(rs) && rs[j] == '.' {
				b.WriteString(`\.`)
				j++
			}
			i = j - 1
		case (r == 'h' || r == 'H') && boundary(rs, i-1) && isURLStart(rs[i:]):
			j := i
			for j < len(rs) && !unicode.IsSpace(rs[j]) && rs[j] != '<' {
				j++
			}
			b.WriteString(string(rs[i:j]))
			i = j - 1
		default:
			b.WriteRune(r)
		}
	}
	return b.String()
}

// discordPlainText reports whether discordEscapeAt has nothing to escape in s, as is common:
// no character that is always escaped, underscores only inside words (snake_case), and no
// heading, quote, list item or numbered item at the start of a line. It may report false for
// text that would stay the same (an underscore in a URL); never true for text that would not.
func discordPlainText(s string, lineStart bool) bool {
	// digits is true in a run of digits that started a line, which a dot would make an item.
	digits := false
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch c {
		case '\\', '*', '~', '`', '|', '[', ']':
			return false
		case '_':
			if !inWord(s, i) {
				return false
			}
		case '#', '>', '-':
			if lineStart {
				return false
			}
		case '.':
			if digits {
				return false
			}
		}
		digits = c >= '0' && c <= '9' && (lineStart || digits)
		lineStart = c == '\n' || (lineStart && (c == ' ' || c == '\t'))
	}
	return true
}

// isURLStart reports whether rs starts with http:// or https://, in any case.
func isURLStart(rs []rune) bool {
	return hasPrefixFold(rs, "http://") || hasPrefixFold(rs, "https://")
}

// unescapeDiscord undoes discordEscape: the backslash of each escape and the invisible spaces
// go. Mentions are live again; callers neutralise them anew.
func unescapeDiscord(s string) string {
	// Not ContainsAny: with a character outside ASCII in its set, it decodes s rune by rune.
	if strings.IndexByte(s, '\\') < 0 && !strings.Contains(s, zwsp) {
		return s
	}
	s = strings.ReplaceAll(s, zwsp, "")
	rs := []rune(s)
	var b strings.Builder
	for i := 0; i < len(rs); i++ {
		if rs[i] == '\\' && i+1 < len(rs) && isDiscordEscapable(rs[i+1]) {
			i++
		}
		b.WriteRune(rs[i])
	}
	return b.String()
}

// discordURL makes a checked URL printable in Discord markdown, bare or inside [label](url):
// characters that end the URL or the link (spaces, <, >, parentheses, quotes, backslashes) are
// percent-encoded, and so is @, so that no path can spell a mention.
func discordURL(u string) string {
	if plainASCII(u, "<>()\"`\\@") {
		return u
	}
	var b strings.Builder
	for _, r := range u {
		switch {
		case r == '<' || r == '>' || r == '(' || r == ')' || r == '"' || r == '`' || r == '\\' || r == '@' ||
			r <= ' ' || r == 0x7f || unicode.IsSpace(r):
			for _, c := range []byte(string(r)) {
				fmt.Fprintf(&b, "%%%02X", c)
			}
		default:
			b.WriteRune(r)
		}
	}
	return b.String()
}

// discordLink writes [label](url), or the URL alone when there is no label or the label is the
// URL (Discord refuses masked links that show a URL). Brackets in the label become parentheses
// so that it cannot end early; the rest of it is escaped. An unsafe URL leaves the label, or the
// escaped URL, as text.
func discordLink(u, label string) string {
	raw := oneLine(unescapeDiscord(clean(label)))
	lbl := discordEscapeAt(strings.NewReplacer("[", "(", "]", ")").Replace(raw), false)
	su, ok := safeURL(unescapeDiscord(u))
	if !ok {
		if lbl != "" {
			return lbl
		}
		return oneLine(discordEscape(u))
	}
	if lbl == "" || raw == su || isURLStart([]rune(raw)) {
		return discordURL(su)
	}
	return "[" + lbl + "](" + discordURL(su) + ")"
}

// discordCode prepares text for a Discord code span or block, where markdown is not read: escapes
// are undone so that a copied version string or command works, backticks (which would end it)
// become a look-alike (U+02CB), and mentions stay neutralised.
func discordCode(s string) string {
	return discordMentions(strings.ReplaceAll(unescapeDiscord(clean(s)), "`", "\u02cb"))
}

// discordUnits splits s into the units truncation must keep whole: a backslash escape with the
// character it escapes, or one character. Each unit's end offset is returned.
func discordUnits(s string) []int {
	var ends []int
	for i := 0; i < len(s); {
		_, size := utf8.DecodeRuneInString(s[i:])
		if s[i] == '\\' && i+1 < len(s) {
			if r, n := utf8.DecodeRuneInString(s[i+1:]); isDiscordEscapable(r) {
				size += n
			}
		}
		i += size
		ends = append(ends, i)
	}
	return ends
}

// discordTruncate is truncate for Discord markdown: an escape and the character it escapes count
// as one character and are never split, and zero-width spaces count as none.
func discordTruncate(s string, n int) string {
	if n <= 0 {
		return ""
	}
	width, cut, start := 0, 0, 0
	for _, end := range discordUnits(s) {
		if s[start:end] != zwsp {
			width++
		}
		if width <= n-1 {
			cut = end
		}
		start = end
	}
	if width <= n {
		return s
	}
	return trimCut(s[:cut]) + "…"
}

// trimCut drops the white space a cut leaves at the end, and a lone backslash, which would
// escape what follows.
func trimCut(s string) string {
	s = strings.TrimRight(s, " \t\n"+zwsp)
	if units := discordUnits(s); len(units) > 0 {
		last := 0
		if len(units) > 1 {
			last = units[len(units)-2]
		}
		if s[last:] == `\` {
			s = strings.TrimRight(s[:last], " \t\n"+zwsp)
		}
	}
	return s
}

// fit cuts a rendered part to at most n characters as Discord and mail servers count them, every
// character counted (escapes and invisible spaces too), ending with "…" when cut. Escapes are
// never split, and with fences a code block left open by the cut is closed again.
func fit(s string, n int, fences bool) string {
	if n <= 0 || utf8.RuneCountInString(s) <= n {
		return s
	}
	out := cut(s, n-1) + "…"
	if fences && strings.Count(out, "```")%2 == 1 {
		// Cut 4 characters more to make room for closing the block.
		out = cut(s, n-5) + "…"
		if strings.Count(out, "```")%2 == 1 {
			out += "\n```"
		}
	}
	return out
}

// cut is the longest start of s of at most n characters that splits no escape, without
// trailing white space.
func cut(s string, n int) string {
	count, end, start := 0, 0, 0
	for _, e := range discordUnits(s) {
		count += utf8.RuneCountInString(s[start:e])
		if count > n {
			break
		}
		end, start = e, e
	}
	return trimCut(s[:end])
}
