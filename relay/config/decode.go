package config

import (
	"errors"
	"fmt"
	"math"
	"reflect"
	"regexp"
	"sort"
	"strconv"
	"strings"

	"github.com/BurntSushi/toml"
)

// Error is one problem with a configuration. Parse joins all it finds with errors.Join, so
// use errors.As on the joined error's Unwrap() []error to get them one by one.
type Error struct {
	// File is the name given to Load or Parse.
	File string
	// Line is the line of a TOML syntax error; 0 for every other problem.
	Line int
	// Key is where the problem is, such as "rules[1].statuses" or "notifiers.slack"; "" for a
	// syntax error, and for an unknown key, which Reason names.
	Key string
	// Reason says what is wrong and, where it can, what to do. It never contains a secret.
	Reason string

	at path // for ordering the problems
}

func (e *Error) Error() string {
	switch {
	case e.Line > 0:
		return fmt.Sprintf("%s:%d: %s", e.File, e.Line, e.Reason)
	case e.Key == "":
		return e.File + ": " + e.Reason
	}
	return e.File + ": " + e.Key + ": " + e.Reason
}

// path is a key: table keys (string) and array indexes (int).
type path []any

// add returns p with e appended, never sharing p's backing array.
func (p path) add(e any) path { return append(p[:len(p):len(p)], e) }

// String writes p as in TOML, with indexes in brackets: rules[1].notify, notifiers."a b".type.
func (p path) String() string {
	var b strings.Builder
	for i, e := range p {
		switch e := e.(type) {
		case int:
			fmt.Fprintf(&b, "[%d]", e)
		case string:
			if i > 0 {
				b.WriteByte('.')
			}
			b.WriteString(toml.Key{e}.String())
		}
	}
	return b.String()
}

// sectionOrder is the order of the top-level keys, which problems are reported in.
var sectionOrder = []string{"server", "log", "store", "replicate", "dispatch", "templates", "attachments", "bot", "notifiers", "digests", "rules"}

// loader collects the problems of one Parse.
type loader struct {
	file   string
	getenv func(string) (string, bool)
	errs   []*Error
	// broken holds the notifiers whose type is missing or unknown, so that nothing else is
	// reported about them or about the rules that name them.
	broken map[string]bool
}

// fail records a problem at p.
func (l *loader) fail(p path, format string, args ...any) {
	l.errs = append(l.errs, &Error{File: l.file, Key: p.String(), Reason: fmt.Sprintf(format, args...), at: p})
}

// err returns every problem, in key order: unknown top-level keys, then the sections as in
// sectionOrder; within a section its keys in declaration order and unknown keys last,
// notifiers by name and rules by index; and otherwise in the order found.
func (l *loader) err() error {
	if len(l.errs) == 0 {
		return nil
	}
	sort.SliceStable(l.errs, func(i, j int) bool {
		sa, ia, na := position(l.errs[i].at)
		sb, ib, nb := position(l.errs[j].at)
		if sa != sb {
			return sa < sb
		}
		if na != nb {
			return na < nb
		}
		return ia < ib
	})
	errs := make([]error, len(l.errs))
	for i, e := range l.errs {
		errs[i] = e
	}
	return errors.Join(errs...)
}

// position orders the problems at p: by section, then by notifier name or by rule index or
// key position.
func position(p path) (section, index int, name string) {
	section = -1
	for i, s := range sectionOrder {
		if len(p) > 0 && p[0] == s {
			section = i
		}
	}
	if len(p) < 2 {
		return section, -1, ""
	}
	top, _ := p[0].(string)
	switch k := p[1].(type) {
	case int:
		return section, k, ""
	case string:
		if top == "notifiers" {
			return section, 0, k
		}
		if i, ok := keyOrder[top][k]; ok {
			return section, i, ""
		}
	}
	return section, math.MaxInt, ""
}

// sections maps the names of the plain top-level tables to their place in c.
func sections(c *Config) map[string]any {
	return map[string]any{
		"server": &c.Server, "log": &c.Log, "store": &c.Store, "replicate": &c.Replicate,
		"dispatch": &c.Dispatch, "templates": &c.Templates, "attachments": &c.Attachments, "bot": &c.Bot,
	}
}

// keyOrder gives the position of each key within its section.
var keyOrder = func() map[string]map[string]int {
	out := map[string]map[string]int{}
	for name, target := range sections(&Config{}) {
		out[name] = map[string]int{}
		t := reflect.TypeOf(target).Elem()
		for i := range t.NumField() {
			key, _, _ := strings.Cut(t.Field(i).Tag.Get("toml"), ",")
			out[name][key] = i
		}
	}
	return out
}()

// syntaxError turns a TOML parse error into an Error with the line. When the last key read
// holds a secret, the parser's message, which may quote the text it choked on, is left out.
func syntaxError(file string, err error) error {
	var pe toml.ParseError
	if !errors.As(err, &pe) {
		return &Error{File: file, Reason: err.Error()}
	}
	reason := "syntax error: " + pe.Message
	for key := range secretKeys {
		if strings.HasSuffix(strings.Trim(pe.LastKey, `"`), key) {
			reason = fmt.Sprintf("syntax error after key %s (details not shown: they may quote the secret there)", pe.LastKey)
			break
		}
	}
	return &Error{File: file, Line: pe.Position.Line, Reason: reason}
}

// secretKeys are the keys of every Secret field, whose values errors must not quote.
var secretKeys = func() map[string]bool {
	keys := map[string]bool{}
	var targets []any
	for _, t := range sections(&Config{}) {
		targets = append(targets, t)
	}
	for _, mk := range notifierTypes {
		targets = append(targets, mk(&Notifier{}))
	}
	for _, t := range targets {
		for key, v := range fields(t) {
			if v.Type() == reflect.TypeFor[Secret]() {
				keys[key] = true
			}
		}
	}
	return keys
}()

// ruleFile is one [[rules]] table as written.
type ruleFile struct {
	Name     string            `toml:"name"`
	Kinds    []string          `toml:"kinds"`
	Statuses []string          `toml:"statuses"`
	Models   []string          `toml:"models"`
	Meta     map[string]string `toml:"meta"`
	When     string            `toml:"when"`
	Notify   []string          `toml:"notify"`
	Digest   []string          `toml:"digest"`
	Template string            `toml:"template"`

	bad bool // not a table: nothing more to say about it
}

// decode fills c from the parsed TOML and returns the rules as written, for validate.
func (l *loader) decode(raw map[string]any, c *Config) []ruleFile {
	tables := sections(c)
	var rules []ruleFile
	for _, key := range sortedKeys(raw) {
		p := path{key}
		switch key {
		case "notifiers":
			c.Notifiers = l.notifiers(p, raw[key])
		case "digests":
			c.Digests = l.digests(p, raw[key])
		case "rules":
			rules = l.rules(p, raw[key])
		default:
			dst, ok := tables[key]
			if !ok {
				l.unknown(p, didYouMean(key, sectionOrder))
				continue
			}
			if m, ok := l.tableValue(p, raw[key]); ok {
				l.table(p, m, nil, dst)
			}
		}
	}
	return rules
}

// notifiers decodes the [notifiers] table: each entry by its type's keys.
func (l *loader) notifiers(p path, v any) map[string]*Notifier {
	out := map[string]*Notifier{}
	m, ok := l.tableValue(p, v)
	if !ok {
		return out
	}
	l.broken = map[string]bool{}
	for _, name := range sortedKeys(m) {
		np := p.add(name)
		n := &Notifier{Name: name, AttachMaxSize: 8 << 20, AttachMaxFiles: 4}
		out[name] = n
		if !notifierName.MatchString(name) {
			l.fail(np, `bad notifier name %q (use lowercase letters, digits, "_" and "-")`, name)
		}
		t, ok := l.tableValue(np, m[name])
		if !ok {
			l.broken[name] = true
			continue
		}
		raw, ok := t["type"]
		if !ok {
			l.fail(np.add("type"), "is required (want one of %s)", typeNames())
			l.broken[name] = true
			continue
		}
		typ, ok := l.str(np.add("type"), raw, false)
		mk := notifierTypes[typ]
		if !ok || mk == nil {
			if ok {
				l.fail(np.add("type"), "unknown type %q (want one of %s)", typ, typeNames())
			}
			l.broken[name] = true
			continue
		}
		l.table(np, t, otherTypesHint(typ), n, mk(n))
	}
	return out
}

var notifierName = regexp.MustCompile(`^[a-z0-9_-]+$`)

// digests decodes the [digests] table.
func (l *loader) digests(p path, v any) map[string]*Digest {
	out := map[string]*Digest{}
	m, ok := l.tableValue(p, v)
	if !ok {
		return out
	}
	for _, name := range sortedKeys(m) {
		dp := p.add(name)
		if !notifierName.MatchString(name) {
			l.fail(dp, `bad digest name %q (use lowercase letters, digits, "_" and "-")`, name)
		}
		d := newDigest(name)
		out[name] = d
		if t, ok := l.tableValue(dp, m[name]); ok {
			l.table(dp, t, nil, d)
		}
	}
	return out
}

// otherTypesHint explains an unknown key that belongs to another notifier type.
func otherTypesHint(typ string) func(key string) string {
	return func(key string) string {
		var others []string
		for other, mk := range notifierTypes {
			if _, ok := fields(mk(&Notifier{}))[key]; ok && other != typ {
				others = append(others, other)
			}
		}
		if len(others) == 0 {
			return ""
		}
		sort.Strings(others) // map order is random; the message must not be
		return fmt.Sprintf("%s is a key of %s notifiers; this one has type %q", key, strings.Join(others, " and "), typ)
	}
}

// rules decodes the [[rules]] array.
func (l *loader) rules(p path, v any) []ruleFile {
	var tables []any
	switch v := v.(type) {
	case []map[string]any:
		for _, t := range v {
			tables = append(tables, t)
		}
	case []any:
		tables = v
	default:
		l.fail(p, "want an array of tables ([[rules]]), got %s", typeName(v))
		return nil
	}
	out := make([]ruleFile, len(tables))
	for i, t := range tables {
		m, ok := l.tableValue(p.add(i), t)
		if !ok {
			out[i].bad = true
			continue
		}
		l.table(p.add(i), m, nil, &out[i])
	}
	return out
}

// tableValue returns v as a table, or reports that it is not one.
func (l *loader) tableValue(p path, v any) (map[string]any, bool) {
	m, ok := v.(map[string]any)
	if !ok {
		l.fail(p, "want a table, got %s", typeName(v))
	}
	return m, ok
}

// table decodes m into the fields of targets, pointers to structs whose toml tags name the
// keys. A key none of them has is reported, with hint's explanation when it has one.
func (l *loader) table(p path, m map[string]any, hint func(key string) string, targets ...any) {
	known := fields(targets...)
	for _, key := range sortedKeys(m) {
		f, ok := known[key]
		if !ok {
			h := ""
			if hint != nil {
				h = hint(key)
			}
			if h == "" {
				h = didYouMean(key, sortedKeys(known))
			}
			l.unknown(p.add(key), h)
			continue
		}
		l.value(p.add(key), m[key], f.Addr().Interface())
	}
}

// unknown reports the unknown key p, with a hint when there is one.
func (l *loader) unknown(p path, hint string) {
	reason := fmt.Sprintf("unknown key %q", p.String())
	if hint != "" {
		reason += " (" + hint + ")"
	}
	l.errs = append(l.errs, &Error{File: l.file, Reason: reason, at: p})
}

// value decodes the TOML value v into dst, expanding ${VAR} in every string.
func (l *loader) value(p path, v any, dst any) {
	switch dst := dst.(type) {
	case *string:
		// A URL may carry a password (store.url, an API URL through a proxy): an expansion
		// error must not quote it.
		raw, _ := v.(string)
		if s, ok := l.str(p, v, strings.Contains(raw, "://")); ok {
			*dst = s
		}
	case *Secret:
		if s, ok := l.str(p, v, true); ok {
			*dst = Secret(s)
		}
	case *Duration:
		if _, isString := v.(string); !isString {
			l.fail(p, `want a string with a unit, such as "90s", "5m" or "72h", got %s`, typeName(v))
			return
		}
		if s, ok := l.str(p, v, false); ok {
			d, err := parseDuration(s)
			if err != nil {
				l.fail(p, "%v", err)
				return
			}
			*dst = d
		}
	case *Size:
		if n, ok := v.(int64); ok {
			if n < 0 {
				l.fail(p, "must not be negative, got %d", n)
				return
			}
			*dst = Size(n)
			return
		}
		if s, ok := l.str(p, v, false); ok {
			n, err := parseSize(s)
			if err != nil {
				l.fail(p, "%v", err)
				return
			}
			*dst = n
		}
	case *int:
		if n, ok := v.(int64); ok {
			if int64(int(n)) != n {
				l.fail(p, "%d is out of range", n)
				return
			}
			*dst = int(n)
			return
		}
		// A string is accepted too, so that a number can come from the environment.
		if s, ok := l.number(p, v, "an integer"); ok {
			n, err := strconv.Atoi(strings.TrimSpace(s))
			if err != nil {
				l.fail(p, "want an integer, got %q", s)
				return
			}
			*dst = n
		}
	case *bool:
		if b, ok := v.(bool); ok {
			*dst = b
			return
		}
		// A string is accepted too, so that a switch can come from the environment.
		if s, ok := l.number(p, v, "true or false"); ok {
			b, err := strconv.ParseBool(strings.TrimSpace(s))
			if err != nil {
				l.fail(p, "want true or false, got %q", s)
				return
			}
			*dst = b
		}
	case *float64:
		switch n := v.(type) {
		case float64:
			*dst = n
			return
		case int64:
			*dst = float64(n)
			return
		}
		if s, ok := l.number(p, v, "a number"); ok {
			n, err := strconv.ParseFloat(strings.TrimSpace(s), 64)
			if err != nil {
				l.fail(p, "want a number, got %q", s)
				return
			}
			*dst = n
		}
	case *[]string:
		a, ok := v.([]any)
		if !ok {
			l.fail(p, "want an array of strings, got %s", typeName(v))
			return
		}
		out := make([]string, 0, len(a))
		for i, e := range a {
			if s, ok := l.str(p.add(i), e, false); ok {
				out = append(out, s)
			}
		}
		*dst = out
	case *map[string]string:
		m, ok := v.(map[string]any)
		if !ok {
			l.fail(p, "want a table of strings, got %s", typeName(v))
			return
		}
		out := make(map[string]string, len(m))
		for _, k := range sortedKeys(m) {
			if s, ok := l.str(p.add(k), m[k], false); ok {
				out[k] = s
			}
		}
		*dst = out
	default:
		panic(fmt.Sprintf("config: no decoder for %T at %s", dst, p))
	}
}

// str returns v, which must be a string, expanded. secret keeps the value out of errors.
func (l *loader) str(p path, v any, secret bool) (string, bool) {
	s, ok := v.(string)
	if !ok {
		l.fail(p, "want a string, got %s", typeName(v))
		return "", false
	}
	out, err := expand(s, l.getenv, secret)
	if err != nil {
		l.fail(p, "%v", err)
		return "", false
	}
	return out, true
}

// number returns v, which must be a string since it is not a number, expanded.
func (l *loader) number(p path, v any, want string) (string, bool) {
	if _, ok := v.(string); !ok {
		l.fail(p, "want %s, got %s", want, typeName(v))
		return "", false
	}
	return l.str(p, v, false)
}

// fields maps the toml tag names of the structs that targets point to onto their fields.
// Nil targets are skipped.
func fields(targets ...any) map[string]reflect.Value {
	out := map[string]reflect.Value{}
	for _, t := range targets {
		v := reflect.ValueOf(t)
		if !v.IsValid() || v.Kind() != reflect.Pointer || v.IsNil() {
			continue
		}
		v = v.Elem()
		for i := range v.NumField() {
			name, _, _ := strings.Cut(v.Type().Field(i).Tag.Get("toml"), ",")
			if name != "" && name != "-" {
				out[name] = v.Field(i)
			}
		}
	}
	return out
}

// typeName names the TOML type of a decoded value for messages.
func typeName(v any) string {
	switch v.(type) {
	case string:
		return "a string"
	case int64:
		return "an integer"
	case float64:
		return "a float"
	case bool:
		return "a boolean"
	case map[string]any:
		return "a table"
	case []map[string]any:
		return "an array of tables"
	case []any:
		return "an array"
	}
	return "a date or time"
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}

// didYouMean suggests the known key closest to key, if one is close enough to be a typo.
func didYouMean(key string, known []string) string {
	best, bestDist := "", 3
	for _, k := range known {
		if d := editDistance(key, k); d < bestDist && d < len(k) {
			best, bestDist = k, d
		}
	}
	if best == "" {
		return ""
	}
	return fmt.Sprintf("did you mean %q?", best)
}

// editDistance is the Levenshtein distance between a and b, in bytes.
func editDistance(a, b string) int {
	if len(a) > 64 || len(b) > 64 {
		return 64 // not a typo of any key; and keeps hostile input cheap
	}
	prev := make([]int, len(b)+1)
	cur := make([]int, len(b)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(a); i++ {
		cur[0] = i
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
		}
		prev, cur = cur, prev
	}
	return prev[len(b)]
}
