package notifiers

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"

	"github.com/mlrelay/relay/relay"
)

func TestConsole(t *testing.T) {
	tests := []struct {
		name string
		msg  relay.Message
		want string
	}{
		{
			name: "text",
			msg:  relay.Message{Rule: "failures", Title: "sdxl failed", Body: "*sdxl* failed", Text: "sdxl failed\nNSFW content detected."},
			want: "── relay · rule failures ──\nsdxl failed\nNSFW content detected.\n\n",
		},
		{
			name: "body when no text",
			msg:  relay.Message{Rule: "r", Title: "T", Body: "the body\n"},
			want: "── relay · rule r ──\nT\nthe body\n\n",
		},
		{
			name: "no title",
			msg:  relay.Message{Rule: "r", Text: "hello"},
			want: "── relay · rule r ──\nhello\n\n",
		},
		{
			name: "empty",
			msg:  relay.Message{Rule: "r"},
			want: "── relay · rule r ──\n\n",
		},
		{
			name: "control characters",
			msg:  relay.Message{Rule: "r\x1b[2J", Title: "multi\nline\ttitle", Text: "evil \x1b]0;pwned\x07 prompt\r\n\tindented"},
			want: "── relay · rule r[2J ──\nevil ]0;pwned prompt\n\tindented\n\n",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var buf bytes.Buffer
			ref, err := NewConsole(&buf).Notify(context.Background(), tt.msg)
			if err != nil || ref != "" {
				t.Fatalf("ref %q, err %v", ref, err)
			}
			if got := buf.String(); got != tt.want {
				t.Errorf("got\n%q\nwant\n%q", got, tt.want)
			}
		})
	}
}

// countingWriter records each write separately.
type countingWriter struct {
	mu     sync.Mutex
	writes []string
}

func (w *countingWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.writes = append(w.writes, string(p))
	return len(p), nil
}

func TestConsoleConcurrent(t *testing.T) {
	w := &countingWriter{}
	c := NewConsole(w)
	const n = 50
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() {
			text := strings.Repeat(fmt.Sprintf("line %d\n", i), 20)
			if _, err := c.Notify(context.Background(), relay.Message{Rule: fmt.Sprint(i), Text: text}); err != nil {
				t.Error(err)
			}
		})
	}
	wg.Wait()
	if len(w.writes) != n {
		t.Fatalf("%d writes, want one per message (%d)", len(w.writes), n)
	}
	for _, out := range w.writes {
		var i int
		if _, err := fmt.Sscanf(out, "── relay · rule %d ──\n", &i); err != nil {
			t.Fatalf("write %q: %v", out, err)
		}
		if want := strings.Repeat(fmt.Sprintf("line %d\n", i), 20); !strings.Contains(out, want) {
			t.Errorf("message %d is not whole: %q", i, out)
		}
	}
}

type failingWriter struct{}

func (failingWriter) Write([]byte) (int, error) { return 0, errors.New("disk full") }

func TestConsoleErrors(t *testing.T) {
	t.Run("write error", func(t *testing.T) {
		_, err := NewConsole(failingWriter{}).Notify(context.Background(), relay.Message{Rule: "r"})
		checkOutcome(t, err, outcome{class: "retryable", contains: "console: disk full"})
	})
	t.Run("canceled", func(t *testing.T) {
		ctx, cancel := context.WithCancel(context.Background())
		cancel()
		var buf bytes.Buffer
		_, err := NewConsole(&buf).Notify(ctx, relay.Message{Rule: "r"})
		checkOutcome(t, err, outcome{class: "retryable", contains: "context canceled"})
		if buf.Len() != 0 {
			t.Errorf("wrote %q after cancellation", buf.String())
		}
	})
}
