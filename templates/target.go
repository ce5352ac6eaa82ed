package templates

import (
	"sort"
	"strings"
)

// A target is one output format: how outside text, URLs, links and code are written in it.
// Adding a target means adding an entry to targets with its escapers; the data view, the
// functions and the fallbacks follow from it.
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
	// truncate cuts text escaped by text to n characters without splitting an escape.
	truncate func(s string, n int) string
	// html targets are rendered with html/template: the view's strings are cleaned but not
	// escaped (html/template escapes them in context), and link, code and codeBlock return HTML.
	html bool
	// views are the targets whose escaping and functions render some parts instead of this one,
	// for parts the destination shows as plain text: Discord's embed title and footer, an
	// email's subject and plain-text alternative. Their name is this target's.
	views map[string]*target
	// limits are the most characters a part may have; longer parts are cut by fit.
	limits map[string]int
	// singleLineTitle makes the title one line (an email subject, a Discord embed title).
	singleLineTitle bool
}

// view is the target that renders part.
func (t *target) view(part string) *target {
	if v := t.views[part]; v != nil {
		return v
	}
	return t
}

// plainTarget is the text target under another name, with guard applied to everything it
// writes: the view of a target's parts that its destination shows as plain text.
func plainTarget(name string, guard func(string) string) *target {
	return &target{
		name:      name,
		text:      func(s string) string { return guard(clean(s)) },
		url:       func(u string) string { return u },
		link:      func(u, label string) string { return guard(textLink(u, label)) },
		code:      func(s string) string { return guard(oneLine(clean(s))) },
		codeBlock: func(s string) string { return guard(textBlock(s)) },
		plain:     func(s string) string { return guard(clean(s)) },
		truncate:  truncate,
	}
}

func noGuard(s string) string { return s }

var (
	// discordPlainView renders the parts of a Discord message that show no markdown.
	discordPlainView = plainTarget("discord", discordMentions)
	// emailPlainView renders an email's subject and plain-text alternative.
	emailPlainView = plainTarget("email", noGuard)
)

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
		truncate:  truncate,
	},
	"text": {
		name:      "text",
		text:      clean,
		url:       func(u string) string { return u },
		link:      textLink,
		code:      func(s string) string { return oneLine(clean(s)) },
		codeBlock: textBlock,
		plain:     clean,
		truncate:  truncate,
	},
	// Discord: markdown in an embed's title and description and the message content; its
	// footer shows text as it is.
	"discord": {
		name:      "discord",
		text:      discordEscape,
		url:       discordURL,
		link:      discordLink,
		code:      func(s string) string { return wrapCode("`", oneLine(discordCode(s)), "`") },
		codeBlock: func(s string) string { return wrapCode("```\n", discordCode(strings.Trim(s, "\n")), "\n```") },
		plain:     discordEscape,
		truncate:  discordTruncate,
		views:     map[string]*target{"context": discordPlainView},
		limits: map[string]int{"title": discordTitleMax, "body": discordBodyMax,
			"context": discordContextMax, "text": discordTextMax},
		singleLineTitle: true,
	},
	// Email: an HTML body (and context) rendered with html/template, a plain subject and a
	// plain-text alternative.
	"email": {
		name:            "email",
		text:            clean,
		url:             func(u string) string { return u },
		link:            emailLink,
		code:            emailCode,
		codeBlock:       emailBlock,
		plain:           clean,
		truncate:        truncate,
		html:            true,
		views:           map[string]*target{"title": emailPlainView, "text": emailPlainView},
		limits:          map[string]int{"title": emailSubjectMax},
		singleLineTitle: true,
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
