// Package templates renders events into messages with Go templates: the default templates
// embedded in the binary, overridable from a directory, a function set built on sprig, and a
// data view per target in which every value from the payload is already escaped, so that a
// template cannot forget to escape a prompt.
//
// Templates are organised in sets. A set S for target T ("slack", "text") is made of the
// defines S.T.title, S.T.body, S.T.context and S.T.text; title or body must exist, the others
// are optional. A missing S.T.text falls back to S.text.text, then to S.text.title and
// S.text.body on two lines (both made safe for T), then to T's own title and body.
package templates

import (
	"bytes"
	"embed"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"text/template"

	"github.com/mlrelay/relay/relay"
)

// defaults are the default templates; a user file with the same name replaces one entirely.
//
//go:embed *.tmpl
var defaults embed.FS

// parts are the defines a set can have for a target, in the order of relay.Message.
var parts = []string{"title", "body", "context", "text"}

// Set is a parsed collection of templates, ready to render any of its sets for any target.
// It is safe for concurrent use.
type Set struct {
	// byTarget holds one copy of the templates per target, each with the functions bound to
	// that target (link writes <url|label> for Slack and "label (url)" for text).
	byTarget map[string]*template.Template
	names    []string
	// paths maps file names to what errors call them (the path in the user's directory).
	paths map[string]string
}

var _ relay.Renderer = (*Set)(nil)

type source struct {
	name string // file name, which is also the name of its top-level template
	path string // what errors call it
	body []byte
}

// Load parses the embedded default templates, then, if dir is not "", every *.tmpl file in dir
// in name order. A file in dir with the name of an embedded one replaces it entirely; other files
// are added, and a define in them replaces an embedded define of the same name. A parse error
// names the file and line.
func Load(dir string) (*Set, error) {
	var user []source
	replaced := map[string]bool{}
	if dir != "" {
		entries, err := os.ReadDir(dir)
		if err != nil {
			return nil, fmt.Errorf("template directory: %w", err)
		}
		for _, e := range entries {
			if e.IsDir() || !strings.HasSuffix(e.Name(), ".tmpl") {
				continue
			}
			p := filepath.Join(dir, e.Name())
			b, err := os.ReadFile(p)
			if err != nil {
				return nil, fmt.Errorf("template file: %w", err)
			}
			user = append(user, source{name: e.Name(), path: p, body: b})
			replaced[e.Name()] = true
		}
	}
	embedded, err := fs.Glob(defaults, "*.tmpl")
	if err != nil {
		return nil, err
	}
	var srcs []source
	for _, name := range embedded {
		if replaced[name] {
			continue
		}
		b, err := defaults.ReadFile(name)
		if err != nil {
			return nil, err
		}
		srcs = append(srcs, source{name: name, path: "embedded " + name, body: b})
	}
	srcs = append(srcs, user...)

	// Functions must be known when parsing; the ones bound to a target are swapped in per
	// target below.
	root := template.New("").Option("missingkey=zero").Funcs(funcMap(targets["text"]))
	for _, src := range srcs {
		if _, err := root.New(src.name).Parse(string(src.body)); err != nil {
			return nil, parseError(src, err)
		}
	}

	s := &Set{byTarget: map[string]*template.Template{}, paths: map[string]string{}}
	for _, src := range srcs {
		s.paths[src.name] = src.path
	}
	for name, t := range targets {
		c, err := root.Clone()
		if err != nil {
			return nil, err
		}
		s.byTarget[name] = c.Funcs(funcMap(t))
	}
	seen := map[string]bool{}
	for _, t := range root.Templates() {
		set, target, part, ok := splitName(t.Name())
		if ok && targets[target] != nil && (part == "title" || part == "body") && !seen[set] {
			seen[set] = true
			s.names = append(s.names, set)
		}
	}
	sort.Strings(s.names)
	return s, nil
}

// parseError rewrites text/template's "template: NAME:LINE: reason" as "PATH:LINE: reason".
func parseError(src source, err error) error {
	msg := err.Error()
	if rest, ok := strings.CutPrefix(msg, "template: "+src.name+":"); ok {
		return fmt.Errorf("%s:%s", src.path, rest)
	}
	return fmt.Errorf("%s: %s", src.path, msg)
}

// execError rewrites text/template's "template: NAME:LINE:COL: executing ..." so that it names
// the file's path.
func (s *Set) execError(err error) error {
	msg := err.Error()
	if rest, ok := strings.CutPrefix(msg, "template: "); ok {
		if name, _, ok := strings.Cut(rest, ":"); ok && s.paths[name] != "" {
			return fmt.Errorf("%s%s", s.paths[name], rest[len(name):])
		}
	}
	return err
}

// splitName splits "S.T.part"; the set name may itself contain dots.
func splitName(name string) (set, target, part string, ok bool) {
	i := strings.LastIndexByte(name, '.')
	if i < 0 {
		return "", "", "", false
	}
	j := strings.LastIndexByte(name[:i], '.')
	if j <= 0 {
		return "", "", "", false
	}
	set, target, part = name[:j], name[j+1:i], name[i+1:]
	for _, p := range parts {
		if p == part {
			return set, target, part, true
		}
	}
	return "", "", "", false
}

// Names lists the sets that have a title or body for at least one known target, sorted.
func (s *Set) Names() []string {
	return append([]string(nil), s.names...)
}

// Has reports whether set can be rendered for target: the target is known and the set has
// its title or body.
func (s *Set) Has(set, target string) bool {
	return s.defined(target, set+"."+target+".title") || s.defined(target, set+"."+target+".body")
}

func (s *Set) defined(target, name string) bool {
	t := s.byTarget[target]
	return t != nil && t.Lookup(name) != nil
}

// Render renders the named set for target. Each part is trimmed of surrounding white space.
// Message.Rule is left for the caller to fill in.
func (s *Set) Render(set, target string, ev *relay.Event) (relay.Message, error) {
	t := targets[target]
	if t == nil {
		return relay.Message{}, fmt.Errorf("unknown template target %q (known: %s)", target, strings.Join(Targets(), ", "))
	}
	if ev == nil {
		return relay.Message{}, errors.New("render: no event")
	}
	if !s.Has(set, target) {
		return relay.Message{}, fmt.Errorf("template set %q has no %s.title or %s.body", set, target, target)
	}
	d := newData(ev, t)
	m := relay.Message{Event: ev}
	var err error
	for _, p := range []struct {
		dst  *string
		part string
	}{{&m.Title, "title"}, {&m.Body, "body"}, {&m.Context, "context"}} {
		if *p.dst, err = s.exec(target, set+"."+target+"."+p.part, d); err != nil {
			return relay.Message{}, fmt.Errorf("template set %q for %s: %w", set, target, err)
		}
	}
	if m.Text, err = s.fallbackText(set, t, ev, d, m); err != nil {
		return relay.Message{}, fmt.Errorf("template set %q for %s: %w", set, target, err)
	}
	return m, nil
}

// fallbackText renders the Text part: S.T.text, else S.text.text, else S.text.title and
// S.text.body, else the target's own title and body. Plain text rendered for another target is
// passed through that target's plain escaper: Slack reads its fallback text as mrkdwn, where a
// plain "<!channel>" would notify a whole channel.
func (s *Set) fallbackText(set string, t *target, ev *relay.Event, d *Data, m relay.Message) (string, error) {
	if name := set + "." + t.name + ".text"; s.defined(t.name, name) {
		return s.exec(t.name, name, d)
	}
	if t.name != "text" {
		td := newData(ev, targets["text"])
		if s.defined("text", set+".text.text") {
			txt, err := s.exec("text", set+".text.text", td)
			return t.plain(txt), err
		}
		if s.Has(set, "text") {
			title, err := s.exec("text", set+".text.title", td)
			if err != nil {
				return "", err
			}
			body, err := s.exec("text", set+".text.body", td)
			return t.plain(joinLines(title, body)), err
		}
	}
	return joinLines(m.Title, m.Body), nil
}

// exec runs one define and trims its output; a define that does not exist renders as "".
func (s *Set) exec(target, name string, d *Data) (string, error) {
	if !s.defined(target, name) {
		return "", nil
	}
	var buf bytes.Buffer
	if err := s.byTarget[target].ExecuteTemplate(&buf, name, d); err != nil {
		return "", s.execError(err)
	}
	return strings.TrimSpace(buf.String()), nil
}

func joinLines(parts ...string) string {
	var out []string
	for _, p := range parts {
		if p != "" {
			out = append(out, p)
		}
	}
	return strings.Join(out, "\n")
}
