package relay

import (
	"context"
	"log/slog"
)

// lazyAttrs is a slog.Handler that keeps the attributes added to it (Logger.With) until a record
// is handled. The standard handlers format attributes as soon as they are added, which a logger
// made for each delivery pays on every delivery, although at the usual levels most deliveries
// log nothing.
type lazyAttrs struct {
	inner slog.Handler
	attrs []slog.Attr
}

func (h *lazyAttrs) Enabled(ctx context.Context, l slog.Level) bool { return h.inner.Enabled(ctx, l) }

func (h *lazyAttrs) Handle(ctx context.Context, r slog.Record) error {
	return h.resolved().Handle(ctx, r)
}

func (h *lazyAttrs) WithAttrs(as []slog.Attr) slog.Handler {
	if len(as) == 0 {
		return h
	}
	// A full slice expression, so that loggers derived from one logger never share additions.
	return &lazyAttrs{inner: h.inner, attrs: append(h.attrs[:len(h.attrs):len(h.attrs)], as...)}
}

func (h *lazyAttrs) WithGroup(name string) slog.Handler {
	if name == "" {
		return h
	}
	return &lazyAttrs{inner: h.resolved().WithGroup(name)}
}

// resolved is the inner handler with the attributes kept so far.
func (h *lazyAttrs) resolved() slog.Handler {
	if len(h.attrs) == 0 {
		return h.inner
	}
	return h.inner.WithAttrs(h.attrs)
}
