package config

import (
	"fmt"
	"strings"
)

// maxNesting bounds ${A:-${B:-...}} so that hostile input cannot recurse without end.
const maxNesting = 8

// expand replaces, in one decoded string value, ${NAME} with the variable's value ("" when
// unset) and ${NAME:-default} with the value, or with default when the variable is unset or
// empty; $$ stands for a literal $. A default may itself contain ${...} and $$, but not "}".
// Values taken from the environment are inserted as they are, never expanded again.
//
// A bare $NAME is an error rather than literal text, because it almost always means ${NAME}.
// A "$" followed by anything else (a quote, a digit, the end) is literal.
//
// When secret is true the error says where the problem is but quotes nothing from s.
func expand(s string, getenv func(string) (string, bool), secret bool) (string, error) {
	if !strings.Contains(s, "$") {
		return s, nil
	}
	e := &expander{s: s, getenv: getenv, secret: secret}
	return e.text(0) // at depth 0 a "}" is literal text, so this reads to the end
}

type expander struct {
	s      string
	i      int
	getenv func(string) (string, bool)
	secret bool
}

// text expands up to the end of the input or, inside a default (depth > 0), up to the "}"
// that ends it, which it leaves unconsumed.
func (e *expander) text(depth int) (string, error) {
	var b strings.Builder
	for e.i < len(e.s) {
		c := e.s[e.i]
		switch {
		case c == '}' && depth > 0:
			return b.String(), nil
		case c != '$':
			b.WriteByte(c)
			e.i++
		case e.i+1 < len(e.s) && e.s[e.i+1] == '$':
			b.WriteByte('$')
			e.i += 2
		case e.i+1 < len(e.s) && e.s[e.i+1] == '{':
			v, err := e.braced(depth)
			if err != nil {
				return "", err
			}
			b.WriteString(v)
		case e.i+1 < len(e.s) && isNameStart(e.s[e.i+1]):
			start := e.i
			e.i++
			name := e.name()
			if e.secret {
				return "", fmt.Errorf(`"$" followed by a name at byte %d is not expanded (write ${NAME}, or $$ for a literal "$")`, start)
			}
			return "", fmt.Errorf(`"$%s" is not expanded (write ${%s}, or $$ for a literal "$")`, name, name)
		default:
			b.WriteByte('$')
			e.i++
		}
	}
	return b.String(), nil
}

// braced expands one ${...} starting at e.i.
func (e *expander) braced(depth int) (string, error) {
	start := e.i
	e.i += 2 // "${"
	name := e.name()
	unterminated := func() error {
		return fmt.Errorf(`unterminated "${" at byte %d (add the closing "}")`, start)
	}
	if e.i >= len(e.s) {
		return "", unterminated()
	}
	c := e.s[e.i]
	switch {
	case name != "" && !isNameStart(name[0]), name == "" && c == '}':
		return "", e.badName(start)
	case c == '}':
		e.i++
		v, _ := e.getenv(name)
		return v, nil
	case c == ':' && e.i+1 < len(e.s) && e.s[e.i+1] == '-' && name != "":
		if depth+1 > maxNesting {
			return "", fmt.Errorf(`"${" at byte %d: defaults nest more than %d deep`, start, maxNesting)
		}
		e.i += 2
		def, err := e.text(depth + 1)
		if err != nil {
			return "", err
		}
		if e.i >= len(e.s) {
			return "", unterminated()
		}
		e.i++ // "}"
		if v, ok := e.getenv(name); ok && v != "" {
			return v, nil
		}
		return def, nil
	case name != "" && strings.IndexByte(":-=?+", c) >= 0:
		if e.secret {
			return "", fmt.Errorf(`unsupported form of "${" at byte %d (write ${NAME} or ${NAME:-default})`, start)
		}
		return "", fmt.Errorf(`unsupported "${%s%c..." (write ${%s} or ${%s:-default})`, name, c, name, name)
	}
	return "", e.badName(start)
}

// badName reports the name of the ${...} at start, which is not a valid variable name.
func (e *expander) badName(start int) error {
	const want = `(want letters, digits and "_", not starting with a digit)`
	if e.secret {
		return fmt.Errorf(`bad variable name in "${" at byte %d %s`, start, want)
	}
	raw := e.s[start+2:]
	if end := strings.IndexAny(raw, "}:"); end >= 0 {
		raw = raw[:end]
	} else {
		return fmt.Errorf(`unterminated "${" at byte %d (add the closing "}")`, start)
	}
	return fmt.Errorf("bad variable name %q %s", raw, want)
}

// name reads a run of name characters.
func (e *expander) name() string {
	start := e.i
	for e.i < len(e.s) && isNameChar(e.s[e.i]) {
		e.i++
	}
	return e.s[start:e.i]
}

func isNameStart(c byte) bool {
	return c == '_' || 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z'
}

func isNameChar(c byte) bool { return isNameStart(c) || '0' <= c && c <= '9' }
