package templates

import (
	"path/filepath"
	"strings"
	"testing"
	"unicode"
	"unicode/utf8"
)

func TestDiscordEscape(t *testing.T) {
	tests := []struct{ name, in, want string }{
		{"plain", "a photo of a corgi", "a photo of a corgi"},
		{"formatting", "*b* **s** ~~x~~ `c` ||spoiler||", `\*b\* \*\*s\*\* \~\~x\~\~ \` + "`c\\`" + ` \|\|spoiler\|\|`},
		{"underscores at boundaries", "_it_ __u__ snake_case_name", `\_it\_ \_\_u\_\_ snake_case_name`},
		{"masked link", "[click](https://evil.example)", `\[click\](https://evil.example)`},
		{"line starts", "# h\n> q\n- l\n  -# sub\n12. n\nmid # > - 1. x", "\\# h\n\\> q\n\\- l\n  \\-# sub\n12\\. n\nmid # > - 1. x"},
		{"broadcasts", "@everyone @here @Everyone! me@here.com @heretic", "@" + z + "everyone @" + z + "here @" + z + "Everyone! me@" + z + "here.com @" + z + "heretic"},
		{"mentions", "<@123> <@!123> <@&456> <#789>", "<" + z + "@123> <" + z + "@!123> <" + z + "@&456> <" + z + "#789>"},
		{"existing escapes are kept", `\*not bold\* and \\`, `\*not bold\* and \\`},
		{"other backslashes", `C:\Users\x \ y`, `C:\Users\x \ y`},
		{"backslash at the end", `trailing \`, `trailing \\`},
		{"URLs are left whole", "see https://x.example/a_b_/*~|[1] now *", `see https://x.example/a_b_/*~|[1] now \*`},
		{"mention in a URL", "https://x.example/@everyone", "https://x.example/@" + z + "everyone"},
		{"escape sequences", "\x1b[31mred\x1b[0m\x00", "red"},
		{"markup is not Discord's", "<script>&amp;", "<script>&amp;"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := discordEscape(tt.in); got != tt.want {
				t.Errorf("discordEscape(%q) = %q, want %q", tt.in, got, tt.want)
			}
		})
	}
}

func TestDiscordLinksAndCode(t *testing.T) {
	d := targets["discord"]
	tests := []struct{ name, got, want string }{
		{"link", d.link("https://x.example/a", "the page"), "[the page](https://x.example/a)"},
		{"link without label", d.link("https://x.example/a", ""), "https://x.example/a"},
		{"link with the URL as label", d.link("https://x.example/a", "https://x.example/b"), "https://x.example/a"},
		{"link encodes the URL", d.link("https://x.example/a b)(<c>@d", "l"), "[l](https://x.example/a%20b%29%28%3Cc%3E%40d)"},
		{"link escapes the label", d.link("https://x.example/", "*x* [y](z) @everyone\nnext"), `[\*x\* (y)(z) @` + z + "everyone next](https://x.example/)"},
		{"link of an escaped label", d.link("https://x.example/", discordEscape("a_b *c*")), `[a_b \*c\*](https://x.example/)`},
		{"link refuses other schemes", d.link("javascript:alert(1)", "click"), "click"},
		{"link without URL or label", d.link("javascript:*x*", ""), `javascript:\*x\*`},
		{"code undoes escapes", d.code(discordEscape("acme/x_y:*1* `z`")), "`acme/x_y:*1* ˋzˋ`"},
		{"code keeps mentions neutral", d.code("<@1> @here"), "`<" + z + "@1> @" + z + "here`"},
		{"code empty", d.code(" "), ""},
		{"code block", d.codeBlock("\nline 1\n```\n# x\n"), "```\nline 1\nˋˋˋ\n# x\n```"},
		{"URL", discordURL("https://x.example/a b\"c`d(e)"), "https://x.example/a%20b%22c%60d%28e%29"},
		{"plain view", discordPlainView.text("*b* <@1> @everyone\x1b[1m"), "*b* <" + z + "@1> @" + z + "everyone"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if tt.got != tt.want {
				t.Errorf("got %q, want %q", tt.got, tt.want)
			}
		})
	}
}

// scanDiscord reports the first character of out that could format or ping in Discord markdown,
// outside escapes and URLs, or "".
func scanDiscord(out string) string {
	rs := []rune(out)
	for i := 0; i < len(rs); i++ {
		switch r := rs[i]; {
		case r == '\\' && i+1 < len(rs) && isDiscordEscapable(rs[i+1]):
			i++
		case r == '\\' && i+1 == len(rs):
			return "a trailing backslash"
		case (r == 'h' || r == 'H') && boundary(rs, i-1) && isURLStart(rs[i:]):
			for i < len(rs) && !unicode.IsSpace(rs[i]) && rs[i] != '<' {
				i++
			}
			i--
		case strings.ContainsRune("*~`|[]", r):
			return string(r)
		}
	}
	for _, m := range []string{"<@", "<#", "@everyone", "@here"} {
		if strings.Contains(strings.ToLower(out), strings.ToLower(m)) {
			return m
		}
	}
	return ""
}

// FuzzDiscordEscape checks that nothing a user types survives as Discord markup or a mention,
// and that escaping twice shows the same.
func FuzzDiscordEscape(f *testing.F) {
	for _, s := range []string{hostile, `\*\\\`, "# a\n- b\n1. c", "https://x/*a*", "<@&1><#2>@here", "a\\", "\xff<@"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		out := discordEscape(s)
		if bad := scanDiscord(out); bad != "" {
			t.Fatalf("discordEscape(%q) = %q leaves %s", s, out, bad)
		}
		if !utf8.ValidString(out) {
			t.Fatalf("discordEscape(%q) is not valid UTF-8", s)
		}
		if twice := discordEscape(out); unescapeDiscord(twice) != unescapeDiscord(out) {
			t.Fatalf("escaping %q twice shows %q, once %q", s, twice, out)
		}
		for _, n := range []int{1, 5, 40} {
			cut := discordTruncate(out, n)
			if bad := scanDiscord(strings.TrimSuffix(cut, "…")); bad != "" {
				t.Fatalf("discordTruncate(%q, %d) = %q leaves %s", out, n, cut, bad)
			}
			fitted := fit(out, n, true)
			if c := utf8.RuneCountInString(fitted); c > max(n, 5) && c > utf8.RuneCountInString(out) {
				t.Fatalf("fit(%q, %d) = %q is %d characters", out, n, fitted, c)
			}
		}
	})
}

func TestFit(t *testing.T) {
	tests := []struct {
		name   string
		s      string
		n      int
		fences bool
		want   string
	}{
		{"short", "abc", 3, false, "abc"},
		{"cut", "abcdef", 4, false, "abc…"},
		{"every character counts", z + z + "abc", 4, false, z + z + "a…"},
		{"escapes are never split", `ab\*\*`, 4, false, `ab…`},
		{"an escape fits whole", `ab\*cd`, 5, false, `ab\*…`},
		{"an open block is closed", "```\n" + strings.Repeat("x", 20), 16, true, "```\nxxxxxxx…\n```"},
		{"a closed block stays closed", "```\nx\n```\n" + strings.Repeat("y", 20), 16, true, "```\nx\n```\nyyyyy…"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := fit(tt.s, tt.n, tt.fences)
			if got != tt.want {
				t.Errorf("fit(%q, %d) = %q, want %q", tt.s, tt.n, got, tt.want)
			}
			if c := utf8.RuneCountInString(got); c > tt.n {
				t.Errorf("fit(%q, %d) is %d characters", tt.s, tt.n, c)
			}
		})
	}
}

// TestNewTargetsSafe checks every golden case for what the new targets promise above all: no
// Discord part can ping, no email body carries live markup, and the subject is one short line.
func TestNewTargetsSafe(t *testing.T) {
	s := mustLoad(t, "")
	for _, c := range goldenCases() {
		t.Run(c.name, func(t *testing.T) {
			ev := c.ev(t)
			m, err := s.Render("default", "discord", ev)
			if err != nil {
				t.Fatal(err)
			}
			for name, part := range map[string]string{"title": m.Title, "body": m.Body, "context": m.Context, "text": m.Text} {
				if strings.Contains(part, "@everyone") || strings.Contains(part, "<@") {
					t.Errorf("discord %s can ping: %q", name, part)
				}
			}
			for name, p := range map[string]struct {
				s string
				n int
			}{"title": {m.Title, discordTitleMax}, "body": {m.Body, discordBodyMax}, "context": {m.Context, discordContextMax}, "text": {m.Text, discordTextMax}} {
				if c := utf8.RuneCountInString(p.s); c > p.n {
					t.Errorf("discord %s is %d characters, more than %d", name, c, p.n)
				}
			}

			m, err = s.Render("default", "email", ev)
			if err != nil {
				t.Fatal(err)
			}
			if strings.Contains(strings.ToLower(m.Body), "<script") {
				t.Errorf("email body holds a script tag: %q", m.Body)
			}
			if strings.ContainsAny(m.Title, "\r\n\t") || strings.ContainsFunc(m.Title, unicode.IsControl) {
				t.Errorf("subject is not one plain line: %q", m.Title)
			}
			if c := utf8.RuneCountInString(m.Title); c > emailSubjectMax || c == 0 {
				t.Errorf("subject is %d characters", c)
			}
			if !strings.HasPrefix(m.Body, "<!DOCTYPE html>") || !strings.HasSuffix(m.Body, "</html>") {
				t.Errorf("email body is not a whole document: %q", m.Body)
			}
		})
	}
}

// TestLimits renders user templates that overflow each limit.
func TestLimits(t *testing.T) {
	s := mustLoad(t, writeDir(t, map[string]string{"big.tmpl": `
{{define "big.discord.title"}}{{.Error}}{{end}}
{{define "big.discord.body"}}**Log:**
{{codeblock .Raw.Error}}{{end}}
{{define "big.discord.context"}}{{.Error}}{{end}}
{{define "big.discord.text"}}{{.Error}}{{end}}
{{define "big.email.title"}}Failed:
{{.Error}}{{end}}
{{define "big.email.body"}}<p>{{.Error}}</p>{{end}}
`}))
	long := strings.Repeat("line with *stars* and @everyone\n", 400)
	ev := event(t, "prediction-failed.json", map[string]any{"error": long})

	m, err := s.Render("big", "discord", ev)
	if err != nil {
		t.Fatal(err)
	}
	for name, p := range map[string]struct {
		s string
		n int
	}{"title": {m.Title, discordTitleMax}, "body": {m.Body, discordBodyMax}, "context": {m.Context, discordContextMax}, "text": {m.Text, discordTextMax}} {
		if c := utf8.RuneCountInString(p.s); c > p.n || c < p.n-40 {
			t.Errorf("discord %s is %d characters, want a little under %d", name, c, p.n)
		}
		if strings.Contains(p.s, "@everyone") {
			t.Errorf("discord %s can ping", name)
		}
	}
	if strings.Contains(m.Title, "\n") {
		t.Errorf("title has several lines: %q", m.Title)
	}
	if !strings.HasSuffix(m.Body, "…\n```") || strings.Count(m.Body, "```")%2 != 0 {
		t.Errorf("body's code block is not closed after the cut: …%q", m.Body[len(m.Body)-40:])
	}
	if strings.HasSuffix(strings.TrimSuffix(m.Text, "…"), `\`) {
		t.Errorf("text ends in half an escape: …%q", m.Text[len(m.Text)-20:])
	}

	m, err = s.Render("big", "email", ev)
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(m.Title, "\n") || utf8.RuneCountInString(m.Title) > emailSubjectMax || !strings.HasPrefix(m.Title, "Failed: line with *stars*") {
		t.Errorf("subject = %q", m.Title)
	}
	// Without an email.text, the plain alternative is the subject and the body read as text.
	if !strings.HasPrefix(m.Text, m.Title+"\nline with *stars*") || strings.Contains(m.Text, "<p>") {
		t.Errorf("text = %.200q", m.Text)
	}
}

func TestEmailTemplates(t *testing.T) {
	ev := event(t, "prediction-succeeded.json", map[string]any{"input": map[string]any{"prompt": hostile}})

	t.Run("a define overrides the embedded one", func(t *testing.T) {
		s := mustLoad(t, writeDir(t, map[string]string{"mine.tmpl": `
{{define "default.email.title"}}[ml] {{.Subject}} {{.Status}}{{end}}
{{define "default.email.body"}}<p title="{{.Prompt}}">{{.Prompt}}</p>{{range .Images}}<img src="{{cid .}}" alt="{{filename .}}">{{end}}<a href="{{"javascript:alert(1)"}}">x</a>{{end}}
`}))
		m, err := s.Render("default", "email", ev)
		if err != nil {
			t.Fatal(err)
		}
		if m.Title != "[ml] stability-ai/sdxl succeeded" {
			t.Errorf("Title = %q", m.Title)
		}
		want := `<p title="&lt;script&gt;alert(1)&lt;/script&gt; &amp; &lt;!channel&gt; &lt;!here&gt; &lt;@U123&gt; &lt;http://x|y&gt; *bold* _it_ ~s~ `
		if !strings.HasPrefix(m.Body, want) || strings.Contains(m.Body, "<script") {
			t.Errorf("Body = %q, want the prompt escaped in the attribute and the text", m.Body)
		}
		if !strings.Contains(m.Body, `<img src="cid:out-0.png" alt="out-0.png"><img src="cid:out-1.png" alt="out-1.png">`) {
			t.Errorf("Body = %q, want the images referenced by cid", m.Body)
		}
		if !strings.Contains(m.Body, `<a href="#ZgotmplZ">`) {
			t.Errorf("Body = %q, want html/template to refuse a URL that is no URL", m.Body)
		}
		if !strings.Contains(m.Text, "Prompt: <script>") {
			t.Errorf("Text = %q, want the embedded plain alternative, unchanged", m.Text)
		}
	})

	t.Run("a file replaces the embedded file", func(t *testing.T) {
		s := mustLoad(t, writeDir(t, map[string]string{
			"default.tmpl": `{{define "default.email.body"}}<b>{{.Status}}</b>{{end}}`,
		}))
		m, err := s.Render("default", "email", ev)
		if err != nil {
			t.Fatal(err)
		}
		if m.Title != "" || m.Body != "<b>succeeded</b>" || m.Context != "" || m.Text != "succeeded" {
			t.Errorf("got %+v, want only the body (and it as text)", m)
		}
		if s.Has("default", "discord") || s.Has("default", "text") {
			t.Error("the replaced file's other defines are still there")
		}
		if err := s.Check(); err != nil {
			t.Errorf("Check: %v", err)
		}
	})

	t.Run("a discord define overrides the embedded one", func(t *testing.T) {
		s := mustLoad(t, writeDir(t, map[string]string{
			"mine.tmpl": `{{define "default.discord.body"}}>> {{.Prompt}}{{end}}`,
		}))
		m, err := s.Render("default", "discord", ev)
		if err != nil {
			t.Fatal(err)
		}
		if !strings.HasPrefix(m.Body, `>> <script>alert(1)<`+z+`/script>`) && !strings.HasPrefix(m.Body, `>> <script>alert(1)</script>`) {
			t.Errorf("Body = %q", m.Body)
		}
		if strings.Contains(m.Body, "@everyone") || strings.Contains(m.Body, "<@") {
			t.Errorf("Body = %q can ping", m.Body)
		}
	})
}

func TestEmailLoadErrors(t *testing.T) {
	tests := []struct {
		name  string
		files map[string]string
		want  []string
	}{
		{"syntax error", map[string]string{"mail.tmpl": "{{define \"x.email.body\"}}\n<p>\n{{if}}{{end}}</p>\n{{end}}"},
			[]string{"mail.tmpl:3:", "missing value for if"}},
		{"unquoted attribute left open", map[string]string{"mail.tmpl": "\n{{define \"x.email.body\"}}<a href=\"{{.WebURL}}>open</a>{{end}}"},
			[]string{"mail.tmpl:2:", "x.email.body", "ends in a non-text context"}},
		{"branches in different contexts", map[string]string{"mail.tmpl": "{{define \"x.email.title\"}}t{{end}}\n\n{{define \"x.email.body\"}}{{if .Failed}}<a href=\"{{end}}x{{end}}"},
			[]string{"mail.tmpl:3:", "{{if}} branches end in different contexts"}},
		{"a helper the body calls", map[string]string{"a.tmpl": "{{define \"x.email.body\"}}{{template \"helper\" .}}{{end}}",
			"b.tmpl": "\n{{define \"helper\"}}<script>var x = {{.Prompt}}{{end}}"},
			[]string{"a.tmpl:1:", "x.email.body", "ends in a non-text context"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := writeDir(t, tt.files)
			_, err := Load(dir)
			if err == nil {
				t.Fatal("no error")
			}
			for _, w := range tt.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not contain %q", err, w)
				}
			}
			if !strings.HasPrefix(err.Error(), dir+string(filepath.Separator)) {
				t.Errorf("error %q does not start with the directory", err)
			}
		})
	}

	t.Run("execution error", func(t *testing.T) {
		dir := writeDir(t, map[string]string{"mail.tmpl": "{{define \"x.email.body\"}}\n<p>{{.NoSuchField}}</p>{{end}}"})
		s := mustLoad(t, dir)
		_, err := s.Render("x", "email", event(t, "prediction-failed.json", nil))
		want := `template set "x" for email: ` + filepath.Join(dir, "mail.tmpl") + `:2:5: executing "x.email.body" at <.NoSuchField>`
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("error = %v, want it to contain %q", err, want)
		}
	})
}

// TestViews checks the data each new target's parts see: Discord's escaped, with no mention that
// can ping; email's HTML view cleaned but not escaped, for html/template to escape.
func TestViews(t *testing.T) {
	ev := event(t, "prediction-failed.json", map[string]any{
		"input": map[string]any{"prompt": hostile + "\x1b[31m\x00"}, "error": hostile, "source": "<@U1>",
	})
	for _, v := range []*target{targets["discord"], discordPlainView} {
		d := newData(ev, v)
		for name, s := range map[string]string{"Prompt": d.Prompt, "Error": d.Error, "Source": d.Source, "LogTail": d.LogTail()} {
			if strings.Contains(s, "@everyone") || strings.Contains(s, "<@") || strings.ContainsAny(s, "\x1b\x00") {
				t.Errorf("%s view: %s = %q", v.name, name, s)
			}
		}
		if d.Target != "discord" {
			t.Errorf("Target = %q", d.Target)
		}
	}
	d := newData(ev, targets["email"])
	if d.Prompt != hostile || d.Error != hostile || d.Source != "<@U1>" || d.Target != "email" {
		t.Errorf("email view is escaped or unclean: Prompt %q, Error %q, Source %q", d.Prompt, d.Error, d.Source)
	}
}

func TestHTMLText(t *testing.T) {
	in := "<!DOCTYPE html><html><head><title>T</title><style>p{}</style></head><body><!-- c --><h1>Head &amp; line</h1>\n<p>one<br>two</p><table><tr><td>a</td><td>b</td></tr></table></body></html>"
	if got, want := htmlText(in), "Head & line\n\none\ntwo\nab"; got != want {
		t.Errorf("htmlText = %q, want %q", got, want)
	}
}
