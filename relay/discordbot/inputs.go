package discordbot

import (
	"fmt"
	"math"
	"sort"
	"strconv"
	"strings"
	"unicode"
	"unicode/utf8"
)

// ParseInputs reads the inputs option of /predict: key=value pairs separated by spaces or
// commas, such as
//
//	guidance_scale=7.5 scheduler=K_EULER apply_watermark=false, lora="my style, v2"
//
// A key is a model input's name (letters, digits and _, not starting with a digit), written
// straight before "=" and its value, without spaces. A value in quotes ("…", '…', or the curly
// quotes phones type) is text as written; inside it a backslash escapes the closing quote or
// a backslash. An unquoted value runs to the next space or comma and is typed: true and false
// are booleans, whole numbers int64, other decimal numbers float64, anything else text.
//
// Errors say what is wrong and how to write it instead; they begin "inputs: " and may quote
// (a bounded part of) what the user typed.
func ParseInputs(s string) (map[string]any, error) {
	out := map[string]any{}
	i := 0
	for {
		i = skipSeparators(s, i)
		if i == len(s) {
			return out, nil
		}
		start := i
		for i < len(s) && isKeyByte(s[i]) {
			i++
		}
		key := s[start:i]
		if key != "" && spacedEquals(s, i) {
			return nil, fmt.Errorf(`inputs: write %s=value, with no spaces around "="`, shortKey(key))
		}
		if key == "" || i == len(s) || s[i] != '=' {
			return nil, fmt.Errorf("inputs: expected key=value, got %s (put values with spaces or commas in quotes)",
				quoteBounded(s[start:tokenEnd(s, start)]))
		}
		if !validKey(key) {
			return nil, fmt.Errorf("inputs: %s is not an input name (letters, digits and _, not starting with a digit)", quoteBounded(key))
		}
		i++ // past '='
		if i == len(s) || isSeparatorAt(s, i) {
			return nil, fmt.Errorf(`inputs: %s has no value; write %s="" for empty text`, quoteBounded(key), shortKey(key))
		}
		var v any
		if closers, width := openingQuote(s, i); width > 0 {
			text, next, ok := readQuoted(s, i+width, closers)
			if !ok {
				return nil, fmt.Errorf("inputs: the quoted value of %s is not closed", quoteBounded(key))
			}
			if next < len(s) && !isSeparatorAt(s, next) {
				return nil, fmt.Errorf("inputs: after the quoted value of %s, expected a space or a comma", quoteBounded(key))
			}
			v, i = text, next
		} else {
			end := tokenEnd(s, i)
			typed, err := typedValue(s[i:end])
			if err != nil {
				return nil, fmt.Errorf("inputs: the value of %s %s", quoteBounded(key), err)
			}
			v, i = typed, end
		}
		if _, dup := out[key]; dup {
			return nil, fmt.Errorf("inputs: %s is given twice; keep one", quoteBounded(key))
		}
		out[key] = v
	}
}

// spacedEquals reports whether spaces and then "=" follow s[:i], as in "seed = 42".
func spacedEquals(s string, i int) bool {
	j := i
	for j < len(s) && (s[j] == ' ' || s[j] == '\t') {
		j++
	}
	return j > i && j < len(s) && s[j] == '='
}

// shortKey bounds a key (ASCII, as isKeyByte allows) for an error message.
func shortKey(k string) string {
	const maxKey = 40
	if len(k) > maxKey {
		return k[:maxKey] + "…"
	}
	return k
}

func isKeyByte(b byte) bool {
	return b == '_' || ('0' <= b && b <= '9') || ('a' <= b && b <= 'z') || ('A' <= b && b <= 'Z')
}

func validKey(k string) bool {
	return k != "" && !('0' <= k[0] && k[0] <= '9')
}

func isSeparator(r rune) bool { return r == ',' || unicode.IsSpace(r) }

func isSeparatorAt(s string, i int) bool {
	r, _ := utf8.DecodeRuneInString(s[i:])
	return isSeparator(r)
}

func skipSeparators(s string, i int) int {
	for i < len(s) {
		r, w := utf8.DecodeRuneInString(s[i:])
		if !isSeparator(r) {
			break
		}
		i += w
	}
	return i
}

// tokenEnd is the index of the first separator at or after i, or len(s).
func tokenEnd(s string, i int) int {
	for i < len(s) {
		r, w := utf8.DecodeRuneInString(s[i:])
		if isSeparator(r) {
			break
		}
		i += w
	}
	return i
}

// openingQuote reports whether a quote opens at s[i]: the characters that may close it, and
// the width of the opening one (0 when none opens).
func openingQuote(s string, i int) (closers string, width int) {
	r, w := utf8.DecodeRuneInString(s[i:])
	switch r {
	case '"':
		return `"`, w
	case '\'':
		return `'`, w
	case '“', '”':
		// Phones turn " into curly quotes, and not always into the right one of the pair.
		return "“”", w
	case '‘', '’':
		return "‘’", w
	}
	return "", 0
}

// readQuoted reads text from s[i] up to a closing quote, undoing escapes. It returns the text
// and the index after the closing quote; ok is false when no quote closes it. Bytes are copied
// as they are, so text that is not valid UTF-8 survives unchanged.
func readQuoted(s string, i int, closers string) (text string, next int, ok bool) {
	var b strings.Builder
	for i < len(s) {
		r, w := utf8.DecodeRuneInString(s[i:])
		switch {
		case r == '\\' && i+1 < len(s):
			nr, nw := utf8.DecodeRuneInString(s[i+1:])
			if nr == '\\' || strings.ContainsRune(closers, nr) {
				b.WriteString(s[i+1 : i+1+nw])
				i += 1 + nw
				continue
			}
		case strings.ContainsRune(closers, r):
			return b.String(), i + w, true
		}
		b.WriteString(s[i : i+w])
		i += w
	}
	return "", 0, false
}

// typedValue types an unquoted value; err completes "the value of <key> ...".
func typedValue(s string) (any, error) {
	switch strings.ToLower(s) {
	case "true":
		return true, nil
	case "false":
		return false, nil
	}
	switch numberKind(s) {
	case kindInteger:
		n, err := strconv.ParseInt(s, 10, 64)
		if err != nil {
			return nil, fmt.Errorf("is too large for a whole number; put it in quotes to send it as text")
		}
		return n, nil
	case kindDecimal:
		f, err := strconv.ParseFloat(s, 64)
		if err != nil || math.IsInf(f, 0) {
			return nil, fmt.Errorf("is out of range for a number; put it in quotes to send it as text")
		}
		return f, nil
	}
	return s, nil
}

type kind int

const (
	kindText kind = iota
	kindInteger
	kindDecimal
)

// numberKind says whether s is written as a decimal integer ([+-]digits) or a decimal number
// ([+-]digits.digits with an optional exponent, either side of the point may be empty), and
// nothing else: no hexadecimal, no underscores, no Inf or NaN.
func numberKind(s string) kind {
	i := 0
	if i < len(s) && (s[i] == '+' || s[i] == '-') {
		i++
	}
	digits := 0
	for i < len(s) && '0' <= s[i] && s[i] <= '9' {
		i, digits = i+1, digits+1
	}
	if i == len(s) {
		if digits == 0 {
			return kindText
		}
		return kindInteger
	}
	if s[i] == '.' {
		i++
		for i < len(s) && '0' <= s[i] && s[i] <= '9' {
			i, digits = i+1, digits+1
		}
	}
	if digits == 0 {
		return kindText
	}
	if i < len(s) && (s[i] == 'e' || s[i] == 'E') {
		i++
		if i < len(s) && (s[i] == '+' || s[i] == '-') {
			i++
		}
		exp := 0
		for i < len(s) && '0' <= s[i] && s[i] <= '9' {
			i, exp = i+1, exp+1
		}
		if exp == 0 {
			return kindText
		}
	}
	if i != len(s) {
		return kindText
	}
	return kindDecimal
}

// FormatInputs writes inputs in the form ParseInputs reads, keys sorted, text quoted where it
// must be, so that ParseInputs(FormatInputs(m)) gives m back for any m ParseInputs returned.
// Replies use it to echo the inputs a prediction was started with.
func FormatInputs(inputs map[string]any) string {
	keys := make([]string, 0, len(inputs))
	for k := range inputs {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	var b strings.Builder
	for i, k := range keys {
		if i > 0 {
			b.WriteByte(' ')
		}
		b.WriteString(k)
		b.WriteByte('=')
		b.WriteString(formatValue(inputs[k]))
	}
	return b.String()
}

func formatValue(v any) string {
	switch x := v.(type) {
	case string:
		return formatText(x)
	case bool:
		return strconv.FormatBool(x)
	case int64:
		return strconv.FormatInt(x, 10)
	case int:
		return strconv.Itoa(x)
	case float64:
		if math.IsInf(x, 0) || math.IsNaN(x) {
			return formatText(strconv.FormatFloat(x, 'g', -1, 64))
		}
		f := strconv.FormatFloat(x, 'g', -1, 64)
		if !strings.ContainsAny(f, ".eE") {
			f += ".0" // keep it a number with a fraction, not an integer, when read back
		}
		return f
	}
	return formatText(fmt.Sprint(v))
}

// formatText writes text bare when it reads back as the same text, and quoted otherwise.
func formatText(s string) string {
	bare := s != "" && tokenEnd(s, 0) == len(s)
	if bare {
		if _, w := openingQuote(s, 0); w > 0 {
			bare = false
		}
	}
	if bare {
		if v, err := typedValue(s); err != nil || v != any(s) {
			bare = false
		}
	}
	if bare {
		return s
	}
	var b strings.Builder
	b.WriteByte('"')
	for i := 0; i < len(s); i++ {
		if s[i] == '"' || s[i] == '\\' {
			b.WriteByte('\\')
		}
		b.WriteByte(s[i])
	}
	b.WriteByte('"')
	return b.String()
}
