package notifiers

import (
	"context"
	"fmt"
	"io"
	"strings"
	"sync"

	"github.com/mlrelay/relay/relay"
)

// Console writes messages as readable blocks of text, for trying rules out and for local
// development. It is safe for concurrent use: each message is one write, so messages never
// interleave.
type Console struct {
	mu sync.Mutex
	w  io.Writer
}

var _ relay.Notifier = (*Console)(nil)

// NewConsole returns a notifier writing to w (os.Stdout, typically).
func NewConsole(w io.Writer) *Console { return &Console{w: w} }

// Notify writes m as
//
//	── relay · rule <rule> ──
//	<text, or title and body>
//	<blank line>
//
// Control characters other than newlines and tabs are removed, so that text taken from a
// prediction cannot drive the terminal. It fails only when the write does, and then the failure
// is retryable. The reference is always "".
func (c *Console) Notify(ctx context.Context, m relay.Message) (string, error) {
	if err := ctx.Err(); err != nil {
		return "", relay.Retryable(fmt.Errorf("console: %w", err), 0)
	}
	var b strings.Builder
	b.WriteString("── relay · rule ")
	b.WriteString(oneLine(stripControl(m.Rule)))
	b.WriteString(" ──\n")
	// Text is the whole message (title included); without it, show the title and body.
	text := m.Text
	if strings.TrimSpace(text) == "" {
		text = strings.TrimSpace(m.Title + "\n" + m.Body)
	}
	if text = strings.TrimRight(stripControl(text), " \t\n"); text != "" {
		b.WriteString(text)
		b.WriteByte('\n')
	}
	b.WriteByte('\n')

	c.mu.Lock()
	defer c.mu.Unlock()
	if _, err := io.WriteString(c.w, b.String()); err != nil {
		return "", relay.Retryable(fmt.Errorf("console: %w", err), 0)
	}
	return "", nil
}
