package relay

import (
	"bytes"
	"encoding/binary"
	"math/bits"
	"strings"
	"unicode/utf8"

	json2 "github.com/go-json-experiment/json"
	"github.com/go-json-experiment/json/jsontext"
)

// A fast path for ParseHead. Most webhooks are processing events whose logs grow to several
// kilobytes, and decoding them only to read eight short fields costs more than verifying their
// signature. headMembers checks that the body is well-formed JSON in one tight pass and notes
// the top-level members that ParseHead may want; plainHead, or else the decoder, then reads just
// those. Whenever the scan is unsure (malformed input, deep nesting, a top level that is not an
// object), the caller decodes the whole body as before, so the fast path can only agree with
// the slow one.

// fastHead decodes the head from body the fast way, reporting false when the whole body must
// be decoded instead: it is not something the scan vouches for, or the decoder refuses the kept
// members (the whole body then yields the decoder's own error).
func fastHead(body []byte, h *head) bool {
	var buf [8]member // room for the members of a usual payload, on the stack
	ms, ok := headMembers(body, buf[:0])
	if !ok {
		return false
	}
	if plainHead(body, ms, h) {
		return true
	}
	// The decoder gets a head of its own: as it reaches h through an interface, passing h
	// would move every caller's head to the heap.
	d := new(head)
	if json2.Unmarshal(membersObject(body, ms), d, parseOptions) != nil {
		return false
	}
	*h = *d
	return true
}

// wholeHead decodes the head from the whole body: the slow path, whose errors ParseHead reports.
func wholeHead(body []byte) (head, error) {
	var h head
	err := json2.Unmarshal(body, &h, parseOptions)
	return h, err
}

// lsbs and msbs have the lowest and the highest bit of each byte of a word set.
const (
	lsbs = 0x0101010101010101
	msbs = 0x8080808080808080
)

// stopMask flags the bytes of v that are a quote, a backslash or a control character, with the
// classic "has a zero byte" and "has a byte less than n" tests sharing one mask: the lowest
// flagged byte is exactly the first stop. (Only bytes after a true stop can be flagged wrongly,
// by a borrow from it; bytes from 0x80 up, masked off by &^v, never cause a borrow.)
func stopMask(v uint64) uint64 {
	q, bs := v^(lsbs*'"'), v^(lsbs*'\\')
	return ((q - lsbs) | (bs - lsbs) | (v - lsbs*0x20)) &^ v & msbs
}

// controls flags, in the high bit of some byte, that a block of 64 bytes holds a control
// character, which JSON forbids in strings: "has a byte less than 0x20" is exact for a word as
// a whole, and words are merged without branching.
func controls(b []byte) uint64 {
	_ = b[63]
	v0 := binary.LittleEndian.Uint64(b)
	v1 := binary.LittleEndian.Uint64(b[8:])
	v2 := binary.LittleEndian.Uint64(b[16:])
	v3 := binary.LittleEndian.Uint64(b[24:])
	v4 := binary.LittleEndian.Uint64(b[32:])
	v5 := binary.LittleEndian.Uint64(b[40:])
	v6 := binary.LittleEndian.Uint64(b[48:])
	v7 := binary.LittleEndian.Uint64(b[56:])
	return ((v0-lsbs*0x20)&^v0 | (v1-lsbs*0x20)&^v1 | (v2-lsbs*0x20)&^v2 | (v3-lsbs*0x20)&^v3 |
		(v4-lsbs*0x20)&^v4 | (v5-lsbs*0x20)&^v5 | (v6-lsbs*0x20)&^v6 | (v7-lsbs*0x20)&^v7) & msbs
}

// hasControl reports whether b holds a control character.
func hasControl(b []byte) bool {
	var acc uint64
	for ; len(b) >= 64; b = b[64:] {
		acc |= controls(b)
	}
	for ; len(b) >= 8; b = b[8:] {
		v := binary.LittleEndian.Uint64(b)
		acc |= (v - lsbs*0x20) &^ v & msbs
	}
	for _, c := range b {
		if c < 0x20 {
			return true
		}
	}
	return acc != 0
}

// scanString returns the index just past the closing quote of the string whose content starts
// at b[i], or -1 if the string is malformed or unterminated.
func scanString(b []byte, i int) int {
	// Most strings (names, ids, statuses, URLs) end within a few words without escapes: word
	// by word is quickest for them. At the first escape, or past that, scanLongString goes on.
	stop := -1
	for end := min(i+128, len(b)-8); i <= end; i += 8 {
		if m := stopMask(binary.LittleEndian.Uint64(b[i : i+8])); m != 0 {
			stop = i + bits.TrailingZeros64(m)>>3
			break
		}
	}
	if stop < 0 {
		if i <= len(b)-8 {
			return scanLongString(b, i)
		}
		// Less than a word is left (the end of an object, say): byte by byte.
		for stop = i; stop < len(b) && b[stop] >= 0x20 && b[stop] != '"' && b[stop] != '\\'; stop++ {
		}
		if stop == len(b) {
			return -1
		}
	}
	switch b[stop] {
	case '"':
		return stop + 1
	case '\\':
		return scanLongString(b, stop)
	}
	return -1 // a control character
}

func isHex(c byte) bool {
	return '0' <= c && c <= '9' || 'a' <= c && c <= 'f' || 'A' <= c && c <= 'F'
}

// scanLongString is scanString for strings that go on, typically logs: kilobytes with an
// escape every line. Going word by word in Go costs a dozen instructions per eight bytes and a
// mispredicted branch at every escape; instead it lets the assembly of bytes.IndexByte find the
// quote that may close the string, and hop from backslash to backslash to check each escape.
// The quote found is the end unless a backslash escapes it. The content before it must also
// be free of control characters: that sweep goes a block at a time between the hops, as a hop
// mostly waits on the branch that ends IndexByte's search, which is hard to predict, and the
// sweep's work, which does not depend on it, fills the wait.
func scanLongString(b []byte, i int) int {
quotes:
	for {
		q := bytes.IndexByte(b[i:], '"')
		if q < 0 {
			return -1
		}
		q += i
		swept, ctrl := i, uint64(0) // b[i:swept] is swept; ctrl says whether it had controls
		for {
			if swept+64 <= q {
				ctrl |= controls(b[swept : swept+64])
				swept += 64
			}
			r := bytes.IndexByte(b[i:q], '\\')
			if r < 0 {
				if ctrl != 0 || hasControl(b[swept:q]) {
					return -1
				}
				return q + 1
			}
			r += i
			c := b[r+1] // r < q, so this exists; it is a quote only if it is the one at q
			if shortEscape[c] {
				i = r + 2
				continue
			}
			switch {
			case c == '"':
				if ctrl != 0 || hasControl(b[swept:q]) {
					return -1
				}
				i = q + 1
				continue quotes
			case c == 'u' && r+6 <= q && isHex(b[r+2]) && isHex(b[r+3]) && isHex(b[r+4]) && isHex(b[r+5]):
				// r+6 <= q costs nothing in strictness: the quote at q is not a hex digit.
				i = r + 6
			default:
				return -1
			}
		}
	}
}

// shortEscape marks the letters that make a two-byte escape after a backslash. A table, as
// the switch it replaces compiled to a chain of comparisons run at every escape.
var shortEscape = [256]bool{'\\': true, '/': true, 'b': true, 'f': true, 'n': true, 'r': true, 't': true}

// headScanMaxDepth bounds nesting on the fast path; deeper documents take the slow path.
const headScanMaxDepth = 512

// headScanner walks a JSON document held in b.
type headScanner struct {
	b []byte
	i int
}

// span locates a part of the body: b[lo:hi].
type span struct{ lo, hi int }

// member is a top-level member that headMembers kept: its name, as written between the quotes,
// its value, and the head's field that the name is written exactly as (see exactField), or -1.
type member struct {
	name, value span
	field       int
}

// headMembers appends to ms the top-level members of body whose names may be among the head's
// fields (see maybeHeadName), in their order, and returns them and true; or false when body is
// not a well-formed JSON object the fast path can vouch for.
func headMembers(body []byte, ms []member) ([]member, bool) {
	s := headScanner{b: body}
	s.space()
	if !s.next('{') {
		return nil, false
	}
	s.space()
	if !s.next('}') {
		for {
			if !s.next('"') {
				return nil, false
			}
			name := span{lo: s.i}
			if !s.str() {
				return nil, false
			}
			name.hi = s.i - 1
			s.space()
			if !s.next(':') {
				return nil, false
			}
			s.space()
			value := span{lo: s.i}
			if !s.value(1) {
				return nil, false
			}
			value.hi = s.i
			if f := exactField(body[name.lo:name.hi]); f >= 0 || maybeHeadName(body[name.lo:name.hi]) {
				ms = append(ms, member{name, value, f})
			}
			s.space()
			if s.next(',') {
				s.space()
				continue
			}
			if s.next('}') {
				break
			}
			return nil, false
		}
	}
	s.space()
	if s.i != len(s.b) {
		return nil, false
	}
	return ms, true
}

// membersObject returns a JSON object made of the kept members, as they are written in body,
// for the decoder to read.
func membersObject(body []byte, ms []member) []byte {
	obj := []byte{'{'}
	for k, m := range ms {
		if k > 0 {
			obj = append(obj, ',')
		}
		obj = append(obj, body[m.name.lo-1:m.value.hi]...) // from the name's opening quote
	}
	return append(obj, '}')
}

// maybeHeadName reports whether a member name, as written between its quotes, could be one of
// the head's fields. It may say yes too often (the decoder has the last word on names), never
// too rarely: names with escapes or non-ASCII letters, which could fold to a field's name, are
// kept, and so are names that only differ by case, '_' or '-'.
func maybeHeadName(raw []byte) bool {
	// Most names are settled by their first byte.
	if len(raw) == 0 || !headInitials[raw[0]] {
		return false
	}
	var buf [16]byte
	n := 0
	for _, c := range raw {
		switch {
		case c == '\\' || c >= 0x80:
			return true
		case c == '_' || c == '-':
			continue
		case n == len(buf):
			return false // longer than any head field
		case 'A' <= c && c <= 'Z':
			c += 'a' - 'A'
		}
		buf[n] = c
		n++
	}
	switch string(buf[:n]) {
	case "id", "model", "version", "status", "source", "deployment", "urls", "output":
		return true
	}
	return false
}

// headInitials marks the bytes that a name maybeHeadName keeps can start with: the initials of
// the head's fields in either case, and what the folding skips or cannot judge here ('_', '-',
// escapes and non-ASCII bytes).
var headInitials = func() (t [256]bool) {
	for _, c := range []byte("imvsduoIMVSDUO_-\\") {
		t[c] = true
	}
	for c := 0x80; c < len(t); c++ {
		t[c] = true
	}
	return t
}()

func (s *headScanner) space() {
	for s.i < len(s.b) {
		// Most bytes are not space: one comparison tells.
		if c := s.b[s.i]; c > ' ' || c != ' ' && c != '\t' && c != '\n' && c != '\r' {
			return
		}
		s.i++
	}
}

// next consumes c if it is the next byte.
func (s *headScanner) next(c byte) bool {
	if s.i < len(s.b) && s.b[s.i] == c {
		s.i++
		return true
	}
	return false
}

// str consumes the rest of a string whose opening quote was consumed.
func (s *headScanner) str() bool {
	end := scanString(s.b, s.i)
	if end < 0 {
		return false
	}
	s.i = end
	return true
}

// value consumes one value at nesting depth.
func (s *headScanner) value(depth int) bool {
	if s.i >= len(s.b) {
		return false
	}
	switch c := s.b[s.i]; c {
	case '"':
		s.i++
		return s.str()
	case '{', '[':
		if depth > headScanMaxDepth {
			return false
		}
		s.i++
		return s.container(c, depth)
	case 't':
		return s.literal("true")
	case 'f':
		return s.literal("false")
	case 'n':
		return s.literal("null")
	default:
		return s.number()
	}
}

// container consumes the rest of an object or array whose opening byte was consumed.
func (s *headScanner) container(open byte, depth int) bool {
	closing := byte(']')
	if open == '{' {
		closing = '}'
	}
	s.space()
	if s.next(closing) {
		return true
	}
	for {
		if open == '{' {
			if !s.next('"') || !s.str() {
				return false
			}
			s.space()
			if !s.next(':') {
				return false
			}
			s.space()
		}
		if !s.value(depth + 1) {
			return false
		}
		s.space()
		if s.next(',') {
			s.space()
			continue
		}
		return s.next(closing)
	}
}

func (s *headScanner) literal(word string) bool {
	if len(s.b)-s.i >= len(word) && string(s.b[s.i:s.i+len(word)]) == word {
		s.i += len(word)
		return true
	}
	return false
}

// number consumes a number: -?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)?
func (s *headScanner) number() bool {
	b := s.b
	s.next('-')
	switch {
	case s.next('0'):
	case s.i < len(b) && '1' <= b[s.i] && b[s.i] <= '9':
		s.digits()
	default:
		return false
	}
	if s.next('.') && !s.digits() {
		return false
	}
	if s.next('e') || s.next('E') {
		if !s.next('+') {
			s.next('-')
		}
		if !s.digits() {
			return false
		}
	}
	return true
}

// digits consumes one or more digits.
func (s *headScanner) digits() bool {
	start := s.i
	for s.i < len(s.b) && '0' <= s.b[s.i] && s.b[s.i] <= '9' {
		s.i++
	}
	return s.i > start
}

// The head's fields as plainHead knows them: first those that are strings, in their order.
const (
	fieldID = iota
	fieldModel
	fieldVersion
	fieldStatus
	fieldSource
	fieldDeployment
	fieldGet // urls.get, then the other URLs in their order
	fieldCancel
	fieldWeb
	fieldStream
	stringFields

	// And those that are not.
	fieldURLs   = stringFields
	fieldOutput = stringFields + 1
)

// plainHead decodes the kept members when they are written the plain way Replicate writes
// them: every name exactly as a field is tagged (urls' members too), none twice, and strings
// without escapes or invalid UTF-8. The decoder reads such members exactly as written (a string
// as its bytes, null as "" or the zero URLs, output as a copy of its bytes), so this skips its
// reflection and option handling, the larger part of a fast ParseHead. Anything else reports
// false without touching h and is left to the decoder: other spellings of names (matched
// without regard to case), duplicates, escapes, and values of the wrong kind, which the
// decoder refuses with its own error.
func plainHead(body []byte, ms []member, h *head) bool {
	var spans [stringFields]span // of the strings' contents; empty for absent or null ones
	var output span
	var seen uint
	for _, m := range ms {
		f := m.field
		if f < 0 || seen&(1<<f) != 0 {
			return false
		}
		seen |= 1 << f
		switch f {
		case fieldOutput:
			output = m.value
		case fieldURLs:
			if !plainURLs(body, m.value, &spans) {
				return false
			}
		default:
			if !plainString(body, m.value, &spans[f]) {
				return false
			}
		}
	}

	// One allocation for all the strings, as they are small and live and die together.
	n := 0
	for _, sp := range spans {
		n += sp.hi - sp.lo
	}
	var sb strings.Builder
	sb.Grow(n)
	for _, sp := range spans {
		sb.Write(body[sp.lo:sp.hi])
	}
	text := sb.String()
	fields := [stringFields]*string{&h.ID, &h.Model, &h.Version, (*string)(&h.Status), &h.Source,
		&h.Deployment, &h.URLs.Get, &h.URLs.Cancel, &h.URLs.Web, &h.URLs.Stream}
	n = 0
	for f, sp := range spans {
		*fields[f] = text[n : n+sp.hi-sp.lo]
		n += sp.hi - sp.lo
	}
	if output.hi > 0 {
		h.Output = append(jsontext.Value(nil), body[output.lo:output.hi]...)
	}
	return true
}

// exactField maps a top-level name, as written, to the head's field tagged so (-1 for none).
func exactField(name []byte) int {
	switch string(name) {
	case "id":
		return fieldID
	case "model":
		return fieldModel
	case "version":
		return fieldVersion
	case "status":
		return fieldStatus
	case "source":
		return fieldSource
	case "deployment":
		return fieldDeployment
	case "urls":
		return fieldURLs
	case "output":
		return fieldOutput
	}
	return -1
}

// plainString locates in sp the content of value, a well-formed value meant for a string
// field, or reports false when the decoder must read it.
func plainString(body []byte, value span, sp *span) bool {
	if body[value.lo] != '"' {
		// null is read as "", which the field is until now; anything else is an error.
		return string(body[value.lo:value.hi]) == "null"
	}
	content := span{value.lo + 1, value.hi - 1}
	if !plainText(body[content.lo:content.hi]) {
		return false
	}
	*sp = content
	return true
}

// plainText reports whether raw, the content of a well-formed string, has no escapes and is
// valid UTF-8, so that the decoder reads it as it is. ASCII without backslashes, the usual,
// is settled word by word without calls.
func plainText(raw []byte) bool {
	var acc uint64 // the high bit of a byte is set by non-ASCII bytes or a backslash
	b := raw
	for ; len(b) >= 8; b = b[8:] {
		v := binary.LittleEndian.Uint64(b)
		bs := v ^ lsbs*'\\'
		acc |= v | (bs-lsbs)&^bs
	}
	for _, c := range b {
		if c == '\\' {
			return false
		}
		acc |= uint64(c)
	}
	if acc&msbs == 0 {
		return true
	}
	return bytes.IndexByte(raw, '\\') < 0 && utf8.Valid(raw)
}

// plainURLs locates the members of value, the well-formed value of urls, in spans, or reports
// false when the decoder must read it.
func plainURLs(body []byte, value span, spans *[stringFields]span) bool {
	if body[value.lo] != '{' {
		// null is read as the zero URLs, which they are until now; anything else is an error.
		return string(body[value.lo:value.hi]) == "null"
	}
	s := headScanner{b: body[:value.hi], i: value.lo + 1}
	s.space()
	if s.next('}') {
		return true
	}
	var seen uint
	for {
		name := span{lo: s.i + 1}
		s.i = scanString(s.b, name.lo)
		name.hi = s.i - 1
		s.space()
		s.i++ // ':'
		s.space()
		v := span{lo: s.i}
		s.value(1)
		v.hi = s.i
		f := -1
		switch string(body[name.lo:name.hi]) {
		case "get":
			f = fieldGet
		case "cancel":
			f = fieldCancel
		case "web":
			f = fieldWeb
		case "stream":
			f = fieldStream
		}
		if f < 0 || seen&(1<<f) != 0 || !plainString(body, v, &spans[f]) {
			return false
		}
		seen |= 1 << f
		s.space()
		if !s.next(',') {
			return true // the closing brace
		}
		s.space()
	}
}
