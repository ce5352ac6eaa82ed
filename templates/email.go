package templates

import (
	"fmt"
	"html"
	"net/url"
	"regexp"
	"strings"
)

// emailSubjectMax is the most characters an email subject may have. RFC 5322 allows longer
// headers, but clients cut subjects long before that, and a short one survives encoding.
const emailSubjectMax = 200

// The email target's styles, shared by its functions and kept in step with default.tmpl.
const (
	emailMono      = `ui-monospace,SFMono-Regular,Menlo,Consolas,'Liberation Mono',monospace`
	emailLinkStyle = `color:#2563eb;text-decoration:underline;`
	emailCodeStyle = `font-family:` + emailMono + `;font-size:13px;background:#f4f4f5;border-radius:4px;padding:1px 4px;word-break:break-all;`
	emailPreStyle  = `font-family:` + emailMono + `;font-size:13px;line-height:1.45;background:#f4f4f5;border-radius:6px;padding:12px;margin:0;white-space:pre-wrap;word-break:break-word;`
)

// emailLink writes an HTML anchor to a checked URL, its label escaped; an unsafe URL leaves the
// label (or the URL) as escaped text.
func emailLink(u, label string) string {
	lbl := oneLine(clean(label))
	su, ok := safeURL(u)
	if !ok {
		if lbl == "" {
			lbl = oneLine(clean(u))
		}
		return html.EscapeString(lbl)
	}
	if lbl == "" {
		lbl = su
	}
	return `<a href="` + html.EscapeString(emailURL(su)) + `" style="` + emailLinkStyle + `">` + html.EscapeString(lbl) + `</a>`
}

// emailURL percent-encodes what may not appear in a URL as written in HTML (spaces, quotes, <,
// >, |, backslashes, non-ASCII), as html/template does with a URL it prints in an attribute.
func emailURL(u string) string {
	if plainASCII(u, "<>\"`|\\{}^") {
		return u
	}
	var b strings.Builder
	for _, c := range []byte(u) {
		switch {
		case c <= ' ' || c >= 0x7f || strings.IndexByte("<>\"`|\\{}^", c) >= 0:
			fmt.Fprintf(&b, "%%%02X", c)
		default:
			b.WriteByte(c)
		}
	}
	return b.String()
}

// emailCode writes a one-line <code> span.
func emailCode(s string) string {
	s = oneLine(clean(s))
	if s == "" {
		return ""
	}
	return `<code style="` + emailCodeStyle + `">` + html.EscapeString(s) + `</code>`
}

// emailBlock writes preformatted lines in a <pre> block.
func emailBlock(s string) string {
	s = strings.Trim(clean(s), "\n")
	if strings.TrimSpace(s) == "" {
		return ""
	}
	return `<pre style="` + emailPreStyle + `">` + html.EscapeString(s) + `</pre>`
}

// cidName is the Content-ID reference of an attachment made from the file at u: "cid:" and the
// file name, percent-encoded as RFC 2392 asks.
func cidName(u string) string {
	name := fileName(u)
	if name == "" {
		return ""
	}
	return "cid:" + url.PathEscape(name)
}

var (
	htmlHidden = regexp.MustCompile(`(?is)<(head|style|script|title)\b.*?</(head|style|script|title)\s*>|<!--.*?-->`)
	htmlBreak  = regexp.MustCompile(`(?i)<br\s*/?>|</(p|div|tr|h[1-6]|pre|li|table)\s*>`)
	htmlTag    = regexp.MustCompile(`<[^>]*>`)
	blankLines = regexp.MustCompile(`\n{3,}`)
)

// htmlText reads an HTML rendering as plain text, roughly as a mail client without HTML would:
// tags go, blocks end lines, entities are decoded. It makes an email's plain alternative when a
// set has no text part of its own.
func htmlText(s string) string {
	s = htmlHidden.ReplaceAllString(s, "")
	s = htmlBreak.ReplaceAllString(s, "\n")
	s = html.UnescapeString(htmlTag.ReplaceAllString(s, ""))
	lines := strings.Split(s, "\n")
	for i, l := range lines {
		lines[i] = strings.Join(strings.Fields(l), " ")
	}
	return strings.TrimSpace(blankLines.ReplaceAllString(strings.Join(lines, "\n"), "\n\n"))
}
