package templates

import (
	"sort"
	"strings"
)

// A target is one output format: how outside text, URLs, links and code are written in it.
// Adding a target (Discord markdown, say) means adding an entry to targets with its escapers;
// the data view, the functions and the fallbacks follow from it.
type target struct {
	name string
	// text escapes outside text (prompts, errors, logs, payload values) for the target.
	text func(string) string
	// url makes a URL already checked by safeURL printable bare.
	url func(string) string
	// link writes a link to a URL with a label; an unsafe URL leaves the label alone.
	link func(u, label string) string
	// code writes a one-line code span.
	code func(string) string
	// codeBlock writes a block of preformatted lines.
	codeBlock func(string) string
	// plain turns a plain-text rendering (the "text" target's) into the target's Text part.
	plain func(string) string
}

// targets are the known targets by name.
var targets = map[string]*target{
	"slack": {
		name:      "slack",
		text:      slackEscape,
		url:       slackURL,
		link:      slackLink,
		code:      func(s string) string { return wrapCode("`", oneLine(codeSafe(s)), "`") },
		codeBlock: func(s string) string { return wrapCode("```\n", codeSafe(strings.Trim(s, "\n")), "\n```") },
		plain:     slackEscape,
	},
	"text": {
		name:      "text",
		text:      clean,
		url:       func(u string) string { return u },
		link:      textLink,
		code:      func(s string) string { return oneLine(clean(s)) },
		codeBlock: textBlock,
		plain:     clean,
	},
}

// Targets lists the names of the targets templates can be rendered for.
func Targets() []string {
	names := make([]string, 0, len(targets))
	for n := range targets {
		names = append(names, n)
	}
	sort.Strings(names)
	return names
}

func wrapCode(open, s, close string) string {
	if strings.TrimSpace(s) == "" {
		return ""
	}
	return open + s + close
}

// slackLink writes <url|label>. The label is escaped (it may come from the payload) and kept on
// one line; without a label Slack shows the URL itself.
func slackLink(u, label string) string {
	lbl := oneLine(slackEscape(label))
	su, ok := safeURL(u)
	if !ok {
		if lbl != "" {
			return lbl
		}
		return oneLine(slackEscape(u))
	}
	if lbl == "" {
		return "<" + slackURL(su) + ">"
	}
	return "<" + slackURL(su) + "|" + lbl + ">"
}

// textLink writes "label (url)", or the URL alone when there is no label or it is the URL.
func textLink(u, label string) string {
	lbl := oneLine(clean(label))
	su, ok := safeURL(u)
	if !ok {
		if lbl != "" {
			return lbl
		}
		return oneLine(clean(u))
	}
	if lbl == "" || lbl == su {
		return su
	}
	return lbl + " (" + su + ")"
}

// textBlock indents every line by four spaces.
func textBlock(s string) string {
	s = strings.Trim(clean(s), "\n")
	if strings.TrimSpace(s) == "" {
		return ""
	}
	lines := strings.Split(s, "\n")
	for i, l := range lines {
		lines[i] = strings.TrimRight("    "+l, " \t")
	}
	return strings.Join(lines, "\n")
}
