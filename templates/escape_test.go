package templates

import (
	"net/url"
	"strings"
	"testing"
	"unicode"
	"unicode/utf8"
)

const z = zwsp

func TestSlackEscape(t *testing.T) {
	tests := []struct{ name, in, want string }{
		{"plain", "a photo of a corgi", "a photo of a corgi"},
		{"ampersand", "salt & pepper", "salt &amp; pepper"},
		{"entities are kept", "&amp; &lt; &gt; &quot;", "&amp; &lt; &gt; &amp;quot;"},
		{"markup", "<script>alert(1)</script>", "&lt;script&gt;alert(1)&lt;/script&gt;"},
		{"channel mention", "<!channel> <!here|here>", "&lt;!channel&gt; &lt;!here|here&gt;"},
		{"user mention", "<@U123>", "&lt;@U123&gt;"},
		{"link", "<http://x|y>", "&lt;http://x|y&gt;"},
		{"bold", "*bold*", z + "*" + z + "bold" + z + "*" + z},
		{"italic", "_it_", z + "_" + z + "it" + z + "_" + z},
		{"strike", "~s~", z + "~" + z + "s" + z + "~" + z},
		{"code", "`code`", z + "`" + z + "code" + z + "`" + z},
		{"code inside a word", "a`b", "a" + z + "`" + z + "b"},
		{"underscores inside words", "sdxl_brand_style v1_0", "sdxl_brand_style v1_0"},
		{"asterisks inside numbers", "2*3*4", "2*3*4"},
		{"tilde in a path", "~/x", z + "~" + z + "/x"},
		{"broadcasts", "@channel @here @everyone @Everyone!", "@" + z + "channel @" + z + "here @" + z + "everyone @" + z + "Everyone!"},
		{"not broadcasts", "me@here.com @heretic @bob", "me@here.com @heretic @bob"},
		{"escape sequences", "\x1b[31mred\x1b[0m", "red"},
		{"control characters", "a\x00b\x07c\td\ne", "abc\td\ne"},
		{"unicode", "日本語 *太字*", "日本語 " + z + "*" + z + "太字" + z + "*" + z},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := slackEscape(tt.in); got != tt.want {
				t.Errorf("slackEscape(%q) = %q, want %q", tt.in, got, tt.want)
			}
		})
	}
}

func TestClean(t *testing.T) {
	tests := []struct{ name, in, want string }{
		{"plain", "hello\tworld\n", "hello\tworld\n"},
		{"CSI colour", "\x1b[1;31mred\x1b[0m!", "red!"},
		{"CSI cursor", "a\x1b[2Kb\x1b[?25lc", "abc"},
		{"C1 CSI", "a\u009b31mb", "ab"},
		{"OSC with BEL", "\x1b]0;window title\x07text", "text"},
		{"OSC with ST", "\x1b]8;;http://x\x1b\\link\x1b]8;;\x1b\\", "link"},
		{"charset", "\x1b(Babc", "abc"},
		{"two-character", "\x1bcreset\x1b7", "reset"},
		{"lone ESC at the end", "abc\x1b", "abc"},
		{"unterminated OSC", "abc\x1b]0;title", "abc"},
		{"CRLF", "a\r\nb\r\n", "a\nb\n"},
		{"progress bar", "start\n 10%\r 50%\r100%\ndone", "start\n100%\ndone"},
		{"trailing CR", "a\r", "a"},
		{"bidi override", "abc\u202edcb\u2066x\u2069", "abcdcbx"},
		{"invalid UTF-8", "a\xffb", "a\uFFFDb"},
		{"DEL and NUL", "a\x7f\x00b", "ab"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := clean(tt.in); got != tt.want {
				t.Errorf("clean(%q) = %q, want %q", tt.in, got, tt.want)
			}
		})
	}
}

func TestSafeURL(t *testing.T) {
	tests := []struct {
		in   string
		want string
		ok   bool
	}{
		{"https://replicate.delivery/a/out-0.png", "https://replicate.delivery/a/out-0.png", true},
		{"http://localhost:8080/x", "http://localhost:8080/x", true},
		{"HTTPS://EXAMPLE.COM/", "HTTPS://EXAMPLE.COM/", true},
		{" https://x.example/a ", "https://x.example/a", true},
		{"https://x.example/?a=1&amp;b=2", "https://x.example/?a=1&b=2", true},
		{"javascript:alert(1)", "", false},
		{"data:image/png;base64,AAAA", "", false},
		{"ftp://x.example/a", "", false},
		{"//x.example/a", "", false},
		{"/relative", "", false},
		{"https://replicate.com@evil.example/", "", false},
		{"https://", "", false},
		{"https://x.example/a\nb", "", false},
		{"", "", false},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			got, ok := safeURL(tt.in)
			if got != tt.want || ok != tt.ok {
				t.Errorf("safeURL(%q) = %q, %v; want %q, %v", tt.in, got, ok, tt.want, tt.ok)
			}
		})
	}
}

func TestLinksAndCode(t *testing.T) {
	slack, text := targets["slack"], targets["text"]
	tests := []struct {
		name string
		got  string
		want string
	}{
		{"slack link", slack.link("https://x.example/a", "the page"), "<https://x.example/a|the page>"},
		{"slack link without label", slack.link("https://x.example/a", ""), "<https://x.example/a>"},
		{"slack link encodes the URL", slack.link("https://x.example/a|b<c> d?x=1&y=2", "l"), "<https://x.example/a%7Cb%3Cc%3E%20d?x=1&amp;y=2|l>"},
		{"slack link of an escaped URL", slack.link("https://x.example/?x=1&amp;y=2", "l"), "<https://x.example/?x=1&amp;y=2|l>"},
		{"slack link escapes the label", slack.link("https://x.example/", "<!channel> *x*\nnext"), "<https://x.example/|&lt;!channel&gt; " + z + "*" + z + "x" + z + "*" + z + " next>"},
		{"slack link refuses other schemes", slack.link("javascript:alert(1)", "click"), "click"},
		{"slack link without URL or label", slack.link("javascript:<b>", ""), "javascript:&lt;b&gt;"},
		{"text link", text.link("https://x.example/a", "the page"), "the page (https://x.example/a)"},
		{"text link without label", text.link("https://x.example/a", ""), "https://x.example/a"},
		{"text link with the URL as label", text.link("https://x.example/a", "https://x.example/a"), "https://x.example/a"},
		{"text link refuses other schemes", text.link("javascript:alert(1)", "click"), "click"},
		{"slack code", slack.code("acme/x_y:abc"), "`acme/x_y:abc`"},
		{"slack code of escaped text", slack.code(slackEscape("a_ *b* <c>")), "`a_ *b* &lt;c&gt;`"},
		{"slack code with backticks", slack.code("a`b\nc"), "`aˋb c`"},
		{"slack code empty", slack.code(" "), ""},
		{"slack code block", slack.codeBlock("\nline 1\n```\n<!here>\n"), "```\nline 1\nˋˋˋ\n&lt;!here&gt;\n```"},
		{"text code", text.code("a\nb"), "a b"},
		{"text code block", text.codeBlock("a\n  b\n"), "    a\n      b"},
		{"text code block empty", text.codeBlock("\n"), ""},
		{"slack URL", slackURL("https://x.example/a b\"c`d"), "https://x.example/a%20b%22c%60d"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if tt.got != tt.want {
				t.Errorf("got %q, want %q", tt.got, tt.want)
			}
		})
	}
}

// FuzzSlackEscape checks that nothing a user types survives as Slack markup.
func FuzzSlackEscape(f *testing.F) {
	for _, s := range []string{hostile, "&amp;&lt;", "a_b*c~d`e", "\x1b[31m<\x1b[0m", "@here@channel", "&&&;<<>>", "\xff<"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		out := slackEscape(s)
		if strings.ContainsAny(out, "<>\x1b") {
			t.Fatalf("slackEscape(%q) = %q keeps < or > or ESC", s, out)
		}
		for i := strings.IndexByte(out, '&'); i >= 0; i = nextIndex(out, '&', i) {
			if !isEntity([]rune(out[i:min(len(out), i+5)])) {
				t.Fatalf("slackEscape(%q) = %q has a bare &", s, out)
			}
		}
		if !utf8.ValidString(out) {
			t.Fatalf("slackEscape(%q) is not valid UTF-8", s)
		}
		// Escaping twice shows the same text.
		if visibleText(slackEscape(out)) != visibleText(out) {
			t.Fatalf("escaping %q twice shows %q, once %q", s, slackEscape(out), out)
		}
		// No formatting character is left where it could open or close a span.
		rs := []rune(out)
		for i, r := range rs {
			if strings.ContainsRune("*_~`", r) && (boundary(rs, i-1) || boundary(rs, i+1)) {
				if i == 0 || i == len(rs)-1 || string(rs[i-1]) != zwsp || string(rs[i+1]) != zwsp {
					t.Fatalf("slackEscape(%q) = %q leaves %q unguarded at %d", s, out, r, i)
				}
			}
		}
	})
}

func nextIndex(s string, c byte, after int) int {
	j := strings.IndexByte(s[after+1:], c)
	if j < 0 {
		return -1
	}
	return after + 1 + j
}

func visibleText(s string) string { return strings.ReplaceAll(s, zwsp, "") }

// FuzzClean checks that clean leaves no control character but newline and tab, and that
// cleaning twice changes nothing.
func FuzzClean(f *testing.F) {
	for _, s := range []string{"\x1b[31mred\x1b[0m", "a\rb\r\nc", "\x1b]0;t\x07x", "\u009b1m", "\u202e", "\xff\xfe"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		out := clean(s)
		for _, r := range out {
			if (unicode.IsControl(r) && r != '\n' && r != '\t') || isBidiControl(r) {
				t.Fatalf("clean(%q) = %q keeps %U", s, out, r)
			}
		}
		if !utf8.ValidString(out) {
			t.Fatalf("clean(%q) is not valid UTF-8", s)
		}
		if again := clean(out); again != out {
			t.Fatalf("clean is not idempotent on %q: %q then %q", s, out, again)
		}
	})
}

// FuzzOneLine checks oneLine, which returns text already on one line as it is, against its
// definition.
func FuzzOneLine(f *testing.F) {
	for _, s := range []string{"", " ", "a b", " a", "a ", "a  b", "a\tb", "a\u00a0b", "a\u2028b", "\xff b"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		if got, want := oneLine(s), strings.Join(strings.Fields(s), " "); got != want {
			t.Fatalf("oneLine(%q) = %q, want %q", s, got, want)
		}
	})
}

// FuzzSimpleURL checks that url.Parse reads every URL simpleURL accepts as safeURL and fileName
// then take it: an http or https URL with a host, no user information, and the path simpleURL
// returns.
func FuzzSimpleURL(f *testing.F) {
	for _, s := range []string{
		"https://replicate.delivery/pbxt/Xk3fQe9rT2bWmYp7nLs0aHcJd4uVgE1oZiR5tKwNqBy6MCvA/out-0.png",
		"HTTP://a.b", "https://a-b.c/", "https://a/b?c#d", "https://a?b/c", "https://a#b?c/d", "http://a/b?",
		"https://a/b/../c;x=1,y+z~!$&'()*@:", "https://-a/", "https://a..b/", "https://a:80/", "https://u@a/",
		"https://a/%41", "https://a/b c", "https://[::1]/", "https://a\\b/", "https://ä/",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		path, ok := simpleURL(s)
		if !ok {
			return
		}
		u, err := url.Parse(s)
		if err != nil {
			t.Fatalf("simpleURL accepts %q, url.Parse: %v", s, err)
		}
		if u.Host == "" || u.User != nil || (u.Scheme != "http" && u.Scheme != "https") {
			t.Fatalf("simpleURL accepts %q: scheme %q, host %q, user %v", s, u.Scheme, u.Host, u.User)
		}
		if unescaped, err := url.PathUnescape(u.Path); u.Path != path || err != nil || unescaped != path {
			t.Fatalf("simpleURL(%q) = path %q, url.Parse reads %q", s, path, u.Path)
		}
	})
}
