package relay

import (
	"encoding/binary"
	"math/bits"
)

// A fast path for ParseHead. Most webhooks are processing events whose logs grow to several
// kilobytes, and decoding them only to read eight short fields costs more than verifying their
// signature. headMembers checks that the body is well-formed JSON in one tight pass and keeps
// the top-level members that ParseHead may want; the decoder then reads just those. Whenever
// the scan is unsure (malformed input, deep nesting, a top level that is not an object), the
// caller decodes the whole body as before, so the fast path can only agree with the slow one.

// lsbs and msbs have the lowest and the highest bit of each byte of a word set.
const (
	lsbs = 0x0101010101010101
	msbs = 0x8080808080808080
)

// stopMask flags the bytes of v that are a quote, a backslash or a control character.
func stopMask(v uint64) uint64 {
	q, bs := v^(lsbs*'"'), v^(lsbs*'\\')
	return ((q-lsbs)&^q | (bs-lsbs)&^bs | (v-lsbs*0x20)&^v) & msbs
}

// headScanMaxDepth bounds nesting on the fast path; deeper documents take the slow path.
const headScanMaxDepth = 512

// stringStop marks the bytes that end a run of plain string content: the closing quote, a
// backslash, and the control characters JSON forbids in strings.
var stringStop = func() (t [256]bool) {
	for c := range 0x20 {
		t[c] = true
	}
	t['"'], t['\\'] = true, true
	return t
}()

// headScanner walks a JSON document held in b.
type headScanner struct {
	b []byte
	i int
}

// headMembers returns a JSON object made of the top-level members of body whose names may be
// among the head's fields (see maybeHeadName), in their order, and true; or false when body is
// not a well-formed JSON object the fast path can vouch for.
func headMembers(body []byte) ([]byte, bool) {
	s := headScanner{b: body}
	s.space()
	if !s.next('{') {
		return nil, false
	}
	mini := make([]byte, 0, 256)
	mini = append(mini, '{')
	s.space()
	if !s.next('}') {
		for {
			start := s.i
			if !s.next('"') {
				return nil, false
			}
			nameStart := s.i
			if !s.str() {
				return nil, false
			}
			name := s.b[nameStart : s.i-1]
			s.space()
			if !s.next(':') {
				return nil, false
			}
			s.space()
			if !s.value(1) {
				return nil, false
			}
			if maybeHeadName(name) {
				if len(mini) > 1 {
					mini = append(mini, ',')
				}
				mini = append(mini, s.b[start:s.i]...)
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
	return append(mini, '}'), true
}

// maybeHeadName reports whether a member name, as written between its quotes, could be one of
// the head's fields. It may say yes too often (the decoder has the last word on names), never
// too rarely: names with escapes or non-ASCII letters, which could fold to a field's name, are
// kept, and so are names that only differ by case, '_' or '-'.
func maybeHeadName(raw []byte) bool {
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

func (s *headScanner) space() {
	for s.i < len(s.b) {
		switch s.b[s.i] {
		case ' ', '\t', '\n', '\r':
			s.i++
		default:
			return
		}
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
	b, i := s.b, s.i // locals, so that the loop runs in registers
	defer func() { s.i = i }()
	for {
		// Eight bytes at a time, looking for a quote, a backslash or a control character with
		// the classic "has a zero byte" and "has a byte less than n" tests; the lowest flagged
		// byte is exactly the first stop (only bytes after a true match can be flagged wrongly).
		for i+16 <= len(b) && stopMask(binary.LittleEndian.Uint64(b[i:]))|stopMask(binary.LittleEndian.Uint64(b[i+8:])) == 0 {
			i += 16
		}
		if i+8 <= len(b) {
			m := stopMask(binary.LittleEndian.Uint64(b[i:]))
			if m == 0 {
				i += 8
				continue
			}
			i += bits.TrailingZeros64(m) >> 3
		} else {
			for i < len(b) && !stringStop[b[i]] {
				i++
			}
			if i >= len(b) {
				return false
			}
		}
		switch b[i] {
		case '"':
			i++
			return true
		case '\\':
			i++
			if i >= len(b) {
				return false
			}
			switch b[i] {
			case '"', '\\', '/', 'b', 'f', 'n', 'r', 't':
				i++
			case 'u':
				if i+5 > len(b) || !isHex(b[i+1]) || !isHex(b[i+2]) || !isHex(b[i+3]) || !isHex(b[i+4]) {
					return false
				}
				i += 5
			default:
				return false
			}
		default: // a control character
			return false
		}
	}
}

func isHex(c byte) bool {
	return '0' <= c && c <= '9' || 'a' <= c && c <= 'f' || 'A' <= c && c <= 'F'
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
