// Package templates renders events into messages with Go templates: the default templates
// embedded in the binary, overridable from a directory, a function set built on sprig, and a
// data view per target in which every value from the payload is already escaped, so that a
// template cannot forget to escape a prompt.
//
// Templates are organised in sets. A set S for target T ("slack", "discord", "email", "text")
// is made of the defines S.T.title, S.T.body, S.T.context and S.T.text; title or body must
// exist, the others are optional. A missing S.T.text falls back to S.text.text, then to
// S.text.title and S.text.body on two lines (both made safe for T), then to T's own title and
// body.
//
// Parts are rendered as their destination shows them. Discord's embed footer shows no markdown,
// so the discord context sees plain text (with mentions neutralised), while its title, which
// Discord renders as markdown, is escaped as the body is; the
// email body and context are HTML, rendered with html/template from a second parse of the same
// files, while its title (the subject, one line) and text (the plain alternative) are plain.
package templates

import (
	"bytes"
	"embed"
	"errors"
	"fmt"
	htmltemplate "html/template"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"text/template"
	"text/template/parse"

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
	// base holds the parsed templates, for looking names up.
	base *template.Template
	// byView holds one copy of the templates per target and per view of a target, each with
	// the functions bound to it (link writes <url|label> for Slack and "label (url)" for text).
	byView map[*target]*template.Template
	// html holds, for each HTML target, the templates parsed again by html/template with its
	// functions.
	html  map[*target]*htmltemplate.Template
	names []string
	// paths maps file names to what errors call them (the path in the user's directory), and
	// files maps each define to the file it is in.
	paths, files map[string]string
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
	if err := checkEmptyDefines(root, user); err != nil {
		return nil, err
	}

	s := &Set{base: root, byView: map[*target]*template.Template{}, html: map[*target]*htmltemplate.Template{},
		paths: map[string]string{}, files: map[string]string{}}
	for _, src := range srcs {
		s.paths[src.name] = src.path
	}
	for _, t := range root.Templates() {
		if t.Tree != nil {
			s.files[t.Name()] = t.Tree.ParseName
		}
	}
	for _, t := range targets {
		for _, v := range append([]*target{t}, viewsOf(t)...) {
			if v.html || s.byView[v] != nil {
				continue
			}
			c, err := root.Clone()
			if err != nil {
				return nil, err
			}
			s.byView[v] = c.Funcs(funcMap(v))
		}
		if t.html {
			h, err := s.parseHTML(t, srcs)
			if err != nil {
				return nil, err
			}
			s.html[t] = h
		}
	}
	seen := map[string]bool{}
	for _, t := range root.Templates() {
		set, target, part, ok := splitName(t.Name())
		if ok && targets[target] != nil && (part == "title" || part == "body") && !seen[set] && !isDigestSet(set) {
			seen[set] = true
			s.names = append(s.names, set)
		}
	}
	sort.Strings(s.names)
	return s, nil
}

// viewsOf lists the views of t other than t itself.
func viewsOf(t *target) []*target {
	var out []*target
	for _, p := range parts {
		if v := t.views[p]; v != nil {
			out = append(out, v)
		}
	}
	return out
}

// parseHTML parses the sources again with html/template for the HTML target t, and escapes at
// once every part of t it renders, so that an error html/template finds only when escaping (an
// action inside an unquoted attribute, a tag left open by a branch) fails at load too.
func (s *Set) parseHTML(t *target, srcs []source) (*htmltemplate.Template, error) {
	h := htmltemplate.New("").Option("missingkey=zero").Funcs(htmltemplate.FuncMap(funcMap(t)))
	for _, src := range srcs {
		if _, err := h.New(src.name).Parse(string(src.body)); err != nil {
			return nil, parseError(src, err)
		}
	}
	var names []string
	for _, d := range h.Templates() {
		if _, target, part, ok := splitName(d.Name()); ok && target == t.name && t.view(part) == t {
			names = append(names, d.Name())
		}
	}
	sort.Strings(names)
	for _, name := range names {
		// Executing escapes the template and those it calls before running it; without data
		// it then stops at the first field, an error Check reports better.
		var esc *htmltemplate.Error
		if err := h.ExecuteTemplate(io.Discard, name, nil); errors.As(err, &esc) {
			return nil, s.nameError(err)
		}
	}
	return h, nil
}

// parseError rewrites text/template's "template: NAME:LINE: reason" as "PATH:LINE: reason".
// checkEmptyDefines refuses a {{define}} of the user's with nothing in it (or only a comment)
// that would replace one of another file: Go's templates keep the one defined first rather
// than replace it with an empty one, so the override would be silently ignored.
func checkEmptyDefines(root *template.Template, user []source) error {
	for _, src := range user {
		probe, err := template.New(src.name).Funcs(funcMap(targets["text"])).Parse(string(src.body))
		if err != nil {
			return parseError(src, err)
		}
		for _, t := range probe.Templates() {
			if t.Name() == src.name || t.Tree == nil || !parse.IsEmptyTree(t.Tree.Root) {
				continue
			}
			if kept := root.Lookup(t.Name()); kept != nil && kept.Tree != nil && !parse.IsEmptyTree(kept.Tree.Root) {
				return fmt.Errorf(`%s: {{define %q}} is empty, and Go templates ignore an empty define of a name already defined: write {{define %q}}{{""}}{{end}} to make it render nothing`,
					src.path, t.Name(), t.Name())
			}
		}
	}
	return nil
}

func parseError(src source, err error) error {
	msg := err.Error()
	if rest, ok := strings.CutPrefix(msg, "template: "+src.name+":"); ok {
		return fmt.Errorf("%s:%s", src.path, rest)
	}
	return fmt.Errorf("%s: %s", src.path, msg)
}

// nameError rewrites the errors text/template and html/template give when executing or
// escaping ("template: NAME:LINE:COL: ...", "html/template:NAME:LINE:COL: ...", where NAME is
// a file's or a define's) so that they start with the file's path and a line.
func (s *Set) nameError(err error) error {
	msg := err.Error()
	for _, prefix := range []string{"template: ", "html/template:"} {
		rest, ok := strings.CutPrefix(msg, prefix)
		if !ok {
			continue
		}
		name, tail, _ := strings.Cut(rest, ":")
		if p := s.paths[name]; p != "" {
			return fmt.Errorf("%s:%s", p, tail)
		}
		// html/template may name the define rather than its file, with or without a line:
		// the file's path, then the line where the define starts if none is given.
		p := s.paths[s.files[name]]
		if p == "" {
			break
		}
		if tail != "" && tail[0] >= '0' && tail[0] <= '9' {
			line, desc, _ := strings.Cut(tail, ":")
			return fmt.Errorf("%s:%s: %s:%s", p, line, name, desc)
		}
		if t := s.base.Lookup(name); t != nil && t.Tree != nil && t.Tree.Root != nil {
			loc, _ := t.Tree.ErrorContext(t.Tree.Root)
			if _, lineCol, ok := strings.Cut(loc, ":"); ok {
				return fmt.Errorf("%s:%s: %s:%s", p, lineCol, name, tail)
			}
		}
		return fmt.Errorf("%s: %s", p, msg)
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

// Names lists the event sets that have a title or body for at least one known target, sorted.
// Digest sets are listed by DigestNames.
func (s *Set) Names() []string {
	return append([]string(nil), s.names...)
}

// Has reports whether set can be rendered for target: the target is known, the set is not a
// digest set, and it has its title or body.
func (s *Set) Has(set, target string) bool {
	return targets[target] != nil && !isDigestSet(set) && (s.defined(set+"."+target+".title") || s.defined(set+"."+target+".body"))
}

func (s *Set) defined(name string) bool {
	return s.base.Lookup(name) != nil
}

// Render renders the named set for target. Each part is trimmed of surrounding white space,
// then held to the target's limits (a Discord embed description has at most 4096 characters,
// an email subject 200 and one line). Message.Rule is left for the caller to fill in.
func (s *Set) Render(set, target string, ev *relay.Event) (relay.Message, error) {
	t := targets[target]
	if t == nil {
		return relay.Message{}, fmt.Errorf("unknown template target %q (known: %s)", target, strings.Join(Targets(), ", "))
	}
	if ev == nil {
		return relay.Message{}, errors.New("render: no event")
	}
	if isDigestSet(set) {
		return relay.Message{}, fmt.Errorf("template set %q is a digest set: it renders digests, not events", set)
	}
	if !s.Has(set, target) {
		return relay.Message{}, fmt.Errorf("template set %q has no %s.title or %s.body", set, target, target)
	}
	r := &rendering{s: s, has: s.Has, dot: eventDot(ev)}
	m, err := r.message(set, t)
	if err != nil {
		return relay.Message{}, err
	}
	m.Event = ev
	return m, nil
}

// eventDot makes the dot of each view of an event. What the views share is derived once.
func eventDot(ev *relay.Event) func(*target) any {
	e := newEventValues(ev)
	return func(v *target) any { return e.data(v) }
}

// message renders the parts of set for t: title, body and context, each held to the target's
// limits, and the fallback text.
func (r *rendering) message(set string, t *target) (relay.Message, error) {
	var m relay.Message
	var err error
	for _, p := range []struct {
		dst  *string
		part string
	}{{&m.Title, "title"}, {&m.Body, "body"}, {&m.Context, "context"}} {
		if *p.dst, err = r.exec(t.view(p.part), set+"."+t.name+"."+p.part); err != nil {
			return relay.Message{}, fmt.Errorf("template set %q for %s: %w", set, t.name, err)
		}
		*p.dst = t.finish(p.part, *p.dst)
	}
	if m.Text, err = r.fallbackText(set, t, m); err != nil {
		return relay.Message{}, fmt.Errorf("template set %q for %s: %w", set, t.name, err)
	}
	m.Text = t.finish("text", m.Text)
	return m, nil
}

// finish holds a rendered part to the target's limits.
func (t *target) finish(part, s string) string {
	if part == "title" && t.singleLineTitle {
		s = oneLine(s)
	}
	if n := t.limits[part]; n > 0 {
		s = fit(s, n, !t.html && t.view(part) == t)
	}
	return s
}

// rendering is one Render or RenderDigest: what the templates see (dot, built for each view as
// it is needed), and which sets can render for a target (has), which the fallback text asks.
type rendering struct {
	s    *Set
	has  func(set, target string) bool
	dot  func(v *target) any
	data map[*target]any
}

func (r *rendering) view(v *target) any {
	if r.data == nil {
		r.data = map[*target]any{}
	}
	d, ok := r.data[v]
	if !ok {
		d = r.dot(v)
		r.data[v] = d
	}
	return d
}

// fallbackText renders the Text part: S.T.text, else S.text.text, else S.text.title and
// S.text.body, else the target's own title and body. Plain text rendered for another target is
// passed through that target's plain escaper: Slack reads its fallback text as mrkdwn, where a
// plain "<!channel>" would notify a whole channel. A title rendered as plain text is escaped
// likewise, and an HTML body (email's) read as text.
func (r *rendering) fallbackText(set string, t *target, m relay.Message) (string, error) {
	if name := set + "." + t.name + ".text"; r.s.defined(name) {
		return r.exec(t.view("text"), name)
	}
	if t.name != "text" {
		text := targets["text"]
		if r.s.defined(set + ".text.text") {
			txt, err := r.exec(text, set+".text.text")
			return t.plain(txt), err
		}
		if r.has(set, "text") {
			title, err := r.exec(text, set+".text.title")
			if err != nil {
				return "", err
			}
			body, err := r.exec(text, set+".text.body")
			return t.plain(joinLines(title, body)), err
		}
	}
	title, body := m.Title, m.Body
	if t.view("title") != t {
		title = t.plain(title)
	}
	if t.html {
		body = htmlText(body)
	}
	return joinLines(title, body), nil
}

// exec runs one define with the templates and view of v and trims its output; a define that
// does not exist renders as "".
func (r *rendering) exec(v *target, name string) (string, error) {
	if !r.s.defined(name) {
		return "", nil
	}
	buf := buffers.Get().(*bytes.Buffer)
	defer putBuffer(buf)
	var err error
	if v.html {
		err = r.s.html[v].ExecuteTemplate(buf, name, r.view(v))
	} else {
		err = r.s.byView[v].ExecuteTemplate(buf, name, r.view(v))
	}
	if err != nil {
		return "", r.s.nameError(err)
	}
	return string(bytes.TrimSpace(buf.Bytes())), nil
}

// buffers hold the output of parts as they are rendered, grown to the size of an email body
// once rather than for each part.
var buffers = sync.Pool{New: func() any { return new(bytes.Buffer) }}

// putBuffer returns buf to buffers, unless an unusually long part grew it.
func putBuffer(buf *bytes.Buffer) {
	if buf.Cap() > 64<<10 {
		return
	}
	buf.Reset()
	buffers.Put(buf)
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
