package relay

import (
	"bytes"
	"log/slog"
	"testing"
)

// A logger over lazyAttrs writes what the handler it wraps writes, whatever the order of
// attributes, groups and records, and loggers derived from one another do not mix attributes.
func TestLazyAttrsLogsAsItsHandler(t *testing.T) {
	script := func(base *slog.Logger) {
		a := base.With("delivery", 7, "rule", "done")
		b := a.With("kind", "prediction")
		c := a.With("kind", "training") // derived from a as b is: must not see b's attribute
		b.Info("sent", "attempts", 1)
		c.Warn("retry", "err", "boom")
		a.Debug("hidden")
		g := b.WithGroup("g").With("x", 1).WithGroup("").With("y", 2)
		g.Error("grouped", "z", 3)
		a.With().Info("none added")
	}
	for _, json := range []bool{false, true} {
		var want, got bytes.Buffer
		mk := func(buf *bytes.Buffer) slog.Handler {
			opts := &slog.HandlerOptions{Level: slog.LevelInfo, ReplaceAttr: func(_ []string, a slog.Attr) slog.Attr {
				if a.Key == slog.TimeKey {
					return slog.Attr{}
				}
				return a
			}}
			if json {
				return slog.NewJSONHandler(buf, opts)
			}
			return slog.NewTextHandler(buf, opts)
		}
		script(slog.New(mk(&want)))
		script(slog.New(&lazyAttrs{inner: mk(&got)}))
		if got.String() != want.String() {
			t.Errorf("json=%v: got\n%s\nwant\n%s", json, got.String(), want.String())
		}
		if bytes.Count(want.Bytes(), []byte("\n")) != 4 {
			t.Errorf("json=%v: the script should log 4 records:\n%s", json, want.String())
		}
	}
}
