package notifiers

import (
	"strings"
	"unicode"
)

// mrkdwnEscaper escapes the three characters Slack's mrkdwn gives a meaning to. Without it a
// model name or prompt containing "<!channel>" would ping a whole channel.
var mrkdwnEscaper = strings.NewReplacer("&", "&amp;", "<", "&lt;", ">", "&gt;")

// escapeMrkdwn escapes user-supplied text for a mrkdwn object or a message's text.
func escapeMrkdwn(s string) string { return mrkdwnEscaper.Replace(s) }

// mrkdwnUnescaper undoes escapeMrkdwn, for text that goes into plain_text objects.
var mrkdwnUnescaper = strings.NewReplacer("&lt;", "<", "&gt;", ">", "&amp;", "&")

func unescapeMrkdwn(s string) string { return mrkdwnUnescaper.Replace(s) }

// truncateRunes cuts s to at most n runes, ending with an ellipsis when cut.
func truncateRunes(s string, n int) string {
	if n <= 0 {
		return ""
	}
	i := 0
	for pos := range s {
		if i == n {
			return string([]rune(s[:pos])[:n-1]) + "…"
		}
		i++
	}
	return s
}

// truncateMrkdwn cuts already escaped mrkdwn text to at most n runes, ending with an ellipsis
// when cut, without splitting an entity (&amp;) or a link (<url|text>).
func truncateMrkdwn(s string, n int) string {
	if n <= 0 {
		return ""
	}
	r := []rune(s)
	if len(r) <= n {
		return s
	}
	return string(r[:avoidEntities(r, n-1, (n-1)/2)]) + "…"
}

// oneLine collapses every run of whitespace, newlines included, to a single space.
func oneLine(s string) string { return strings.Join(strings.Fields(s), " ") }

// stripControl removes control characters other than newline and tab, so that text from a
// prompt cannot carry terminal escape sequences or invisible formatting into a message.
func stripControl(s string) string {
	if strings.IndexFunc(s, isStrippedControl) < 0 {
		return s
	}
	return strings.Map(func(r rune) rune {
		if isStrippedControl(r) {
			return -1
		}
		return r
	}, s)
}

func isStrippedControl(r rune) bool { return r != '\n' && r != '\t' && unicode.IsControl(r) }

// fence opens and closes a mrkdwn code block.
const fence = "```"

// minSplitLimit is the smallest part size splitMrkdwn cuts into; below it, the text is only
// truncated.
const minSplitLimit = 32

// splitMrkdwn cuts already escaped mrkdwn text into at most maxParts parts of at most limit runes
// each, so that a long body fits in several section blocks. It cuts at a line break, else at a
// space, never inside an entity (&amp;) or a link (<url|text>), and closes and reopens a code
// block that a cut falls inside. Text that does not fit in maxParts parts is truncated with an
// ellipsis. Parts are never empty.
func splitMrkdwn(s string, limit, maxParts int) []string {
	if strings.TrimSpace(s) == "" || maxParts <= 0 || limit <= 0 {
		return nil
	}
	if limit < minSplitLimit {
		return []string{truncateRunes(s, limit)}
	}
	// Room kept in each part for a closing fence and an ellipsis.
	const reserve = len("\n"+fence) + len("…")
	var parts []string
	r := []rune(s)
	for len(r) > 0 {
		if len(r) <= limit {
			if part := strings.TrimRight(string(r), " \n"); part != "" {
				parts = append(parts, part)
			}
			break
		}
		last := len(parts) == maxParts-1
		cut, skip := cutPoint(r, limit-reserve)
		part := strings.TrimRight(string(r[:cut]), " \n")
		open := strings.Count(part, fence)%2 == 1
		if last {
			part += "…"
		}
		if open {
			part += "\n" + fence
		}
		if part != "" {
			parts = append(parts, part)
		}
		if last {
			break
		}
		r = r[cut+skip:]
		if open {
			r = append([]rune(fence+"\n"), r...)
		}
	}
	return parts
}

// cutPoint picks where to cut r so that r[:cut] has at most n runes; skip is the number of
// separator runes (a newline or space) to drop after the cut. cut is at least n/2.
func cutPoint(r []rune, n int) (cut, skip int) {
	if len(r) <= n {
		return len(r), 0
	}
	// A line break in the second half is the best place; then a space.
	for _, sep := range []rune{'\n', ' '} {
		for i := n; i >= n/2; i-- {
			if r[i] == sep {
				if c := avoidEntities(r, i, n/2); c != i {
					return c, 0
				}
				return i, 1
			}
		}
	}
	return avoidEntities(r, n, n/2), 0
}

// avoidEntities moves cut back to the start of an entity (&amp;) or a link (<...>) that it
// would otherwise split, but never below floor.
func avoidEntities(r []rune, cut, floor int) int {
	lt, gt, amp, semi := -1, -1, -1, -1
	for i := cut - 1; i >= floor && (lt < 0 || amp < 0); i-- {
		switch r[i] {
		case '<':
			if lt < 0 {
				lt = i
			}
		case '>':
			if gt < 0 {
				gt = i
			}
		case '&':
			if amp < 0 {
				amp = i
			}
		case ';':
			if semi < 0 {
				semi = i
			}
		}
	}
	c := cut
	if lt > gt && lt > floor {
		c = lt
	}
	// Entities are short: only an & within the last few runes can be an unfinished one.
	if amp > semi && cut-amp < len("&amp;") && amp > floor && amp < c {
		c = amp
	}
	return c
}
