package digest

import (
	"regexp"
	"strings"
	"unicode"
	"unicode/utf8"
)

// MaxFingerprint is the most characters a fingerprint has.
const MaxFingerprint = 200

// maxInput is the most bytes of an error line that Fingerprint reads: far more than the
// fingerprint keeps, and a bound on the work.
const maxInput = 4096

// maxToken is the most characters one word of a fingerprint keeps; a longer one (a base64
// blob, a serialised tensor) becomes <blob>.
const maxToken = 80

// Fingerprint reduces an error line to what stays the same when the same error happens again,
// so that failures can be grouped by it: URLs become <url>, file paths <path>, quoted values
// <str>, UUIDs <uuid>, hex numbers and hashes <hex>, long ids mixing letters and digits <id>,
// amounts of memory <size> and other numbers <n>. "CUDA out of memory. Tried to allocate 2.50
// GiB (GPU 0; 39.59 GiB total)" becomes "CUDA out of memory. Tried to allocate <size> (GPU
// <n>; <size> total)".
//
// Numbers inside words are kept ("float16", "sha256", "resnet50"), as are apostrophes inside
// words ("can't"), so that different errors stay apart; numbers joined by a single letter to
// a number before them are not ("1024x768", "1h30m", the "09" of "2025-11-22T09:14:03Z"). Control characters count as spaces,
// white space is collapsed, a word longer than 80 characters becomes <blob>, and the result is
// cut at a word to at most MaxFingerprint characters (ending with " …" when cut). Fingerprint
// is idempotent: a fingerprint is its own fingerprint.
func Fingerprint(errorLine string) string {
	if len(errorLine) > maxInput {
		errorLine = errorLine[:maxInput]
	}
	words := strings.Fields(cleanLine(errorLine))
	for i, w := range words {
		words[i] = normWord(w)
	}
	s := replaceQuoted(sizeRE.ReplaceAllString(strings.Join(words, " "), "<size>"))
	words = strings.Fields(s)
	n := 0
	for i, w := range words {
		if utf8.RuneCountInString(w) > maxToken {
			w = "<blob>"
			words[i] = w
		}
		if i > 0 {
			n++ // the space before
		}
		n += utf8.RuneCountInString(w)
	}
	if n <= MaxFingerprint {
		return strings.Join(words, " ")
	}
	for n > MaxFingerprint-2 { // room for " …"
		last := words[len(words)-1]
		words = words[:len(words)-1]
		n -= utf8.RuneCountInString(last) + 1
	}
	return strings.Join(append(words, "…"), " ")
}

// cleanLine replaces invalid UTF-8 with U+FFFD, and control and format characters (zero-width
// spaces, bidirectional overrides) with spaces.
func cleanLine(s string) string {
	return strings.Map(func(r rune) rune {
		if unicode.IsControl(r) || unicode.Is(unicode.Cf, r) {
			return ' '
		}
		return r
	}, strings.ToValidUTF8(s, "\uFFFD"))
}

var (
	// pathStart finds where an absolute or explicitly relative path starts in a word: at its
	// start or after one of = : ( [ { < ' " ` ,, a /, ~/, ./, ../ or a drive letter and \.
	pathStart = regexp.MustCompile(`(?:^|[=:(\[{<'"` + "`" + `,])((?:~|\.\.?)?/[^/]|[A-Za-z]:\\)`)
	// relPath is a word that is a relative file path: two slashes or more, or one and a file
	// extension ("out/x.png", "a/b/c"; not "acme/sdxl").
	relPath = regexp.MustCompile(`^[\w.-]+(?:/[\w.-]+){2,}$|^[\w.-]+/[\w-]+\.[A-Za-z0-9]{1,5}$`)
	// The patterns within a word, in the order they are replaced.
	uuidRE  = regexp.MustCompile(`\b[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}\b`)
	hex0xRE = regexp.MustCompile(`\b0[xX][0-9a-fA-F]+\b`)
	hexRE   = regexp.MustCompile(`\b[0-9a-fA-F]{8,}\b`)
	// idRE is a run of letters and digits, bounded by anything else: "_" and "-" too, so that
	// "req_8f3k2l9d0s1a2b3c" keeps its prefix and loses its id.
	idRE = regexp.MustCompile(`[A-Za-z0-9]{12,}`)
	// joinedRE is numbers joined by single letters, starting a word or after punctuation:
	// "22T09" in a timestamp, "1024x768", "1h30m15s". (A word's own digits, "float16",
	// "A0000000A0", follow letters.)
	joinedRE = regexp.MustCompile(`(?:^|[^A-Za-z0-9_])[0-9]+(?:\.[0-9]+)?(?:[A-Za-z][0-9]+(?:\.[0-9]+)?)+`)
	digitsRE = regexp.MustCompile(`[0-9]+(?:\.[0-9]+)?`)
	numberRE = regexp.MustCompile(`\b[0-9]+(?:\.[0-9]+)*`)
	// sizeRE is a number and a unit of bytes, after numbers are replaced.
	sizeRE = regexp.MustCompile(`<n> ?(?:[KMGTP]i?B|[kKMGTP]B|B|bytes)\b`)
)

// leading is the punctuation that opens a bracket or quote before a path.
const leading = `([{<'"` + "`"

// trailing is the punctuation that ends a sentence or closes a bracket after a URL or path.
const trailing = `.,;:!?)]}>'"` + "`"

// normWord normalises one word (no white space in it).
func normWord(w string) string {
	if i := strings.Index(w, "://"); i >= 0 {
		start := i
		for start > 0 && isSchemeChar(w[start-1]) {
			start--
		}
		return normWord(w[:start]) + "<url>" + trailingPunct(w[i+3:])
	}
	if loc := pathStart.FindStringSubmatchIndex(w); loc != nil {
		return normWord(w[:loc[2]]) + "<path>" + trailingPunct(w[loc[2]:])
	}
	core := strings.TrimRight(w, trailing)
	if bare := strings.TrimLeft(core, leading); relPath.MatchString(bare) {
		return core[:len(core)-len(bare)] + "<path>" + w[len(core):]
	}
	w = uuidRE.ReplaceAllString(w, "<uuid>")
	w = hex0xRE.ReplaceAllString(w, "<hex>")
	w = hexRE.ReplaceAllStringFunc(w, func(m string) string {
		if strings.ContainsAny(m, "0123456789") {
			return "<hex>"
		}
		return m
	})
	w = idRE.ReplaceAllStringFunc(w, func(m string) string {
		if strings.ContainsAny(m, "0123456789") && strings.IndexFunc(m, unicode.IsLetter) >= 0 {
			return "<id>"
		}
		return m
	})
	w = joinedRE.ReplaceAllStringFunc(w, func(m string) string { return digitsRE.ReplaceAllString(m, "<n>") })
	return numberRE.ReplaceAllString(w, "<n>")
}

func isSchemeChar(c byte) bool {
	return c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '+' || c == '-' || c == '.'
}

// trailingPunct is the punctuation that ends s, which a URL or path that is all of s leaves out.
func trailingPunct(s string) string {
	return s[len(strings.TrimRight(s, trailing)):]
}

// replaceQuoted replaces each quoted value ('x', "x y", `x`) with <str>. A quote opens a value
// only where a word does not continue before it and closes it only where no word continues
// after it, so that apostrophes ("can't", "users' files") are left alone. A quote with no
// closing one after it is left as it is.
func replaceQuoted(s string) string {
	if !strings.ContainsAny(s, `'"`+"`") {
		return s
	}
	// closing[i] is the first index at or after i of a quote of each kind that can close a
	// value, or -1: one pass from the end, so that the whole is linear.
	const quotes = `'"` + "`"
	closing := make([][3]int, len(s)+1)
	closing[len(s)] = [3]int{-1, -1, -1}
	for i := len(s) - 1; i >= 0; i-- {
		closing[i] = closing[i+1]
		if k := strings.IndexByte(quotes, s[i]); k >= 0 && !wordAfter(s, i) {
			closing[i][k] = i
		}
	}
	var b strings.Builder
	for i := 0; i < len(s); {
		if k := strings.IndexByte(quotes, s[i]); k >= 0 && !wordBefore(s, i) {
			if j := closing[i+1][k]; j >= 0 {
				b.WriteString("<str>")
				i = j + 1
				continue
			}
		}
		b.WriteByte(s[i])
		i++
	}
	return b.String()
}

func wordBefore(s string, i int) bool {
	r, _ := utf8.DecodeLastRuneInString(s[:i])
	return i > 0 && isWordRune(r)
}

func wordAfter(s string, i int) bool {
	r, _ := utf8.DecodeRuneInString(s[i+1:])
	return i+1 < len(s) && isWordRune(r)
}

func isWordRune(r rune) bool {
	return r == '_' || unicode.IsLetter(r) || unicode.IsDigit(r)
}
