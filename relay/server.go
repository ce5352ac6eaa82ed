package relay

import (
	"context"
	"log/slog"
	"net/http"
	"time"
)

// Routes assembles the relay's HTTP surface: the webhook receiver at hookPath, /healthz (the
// process answers) and /readyz (the store answers and the relay is not shutting down).
func Routes(hookPath string, hooks http.Handler, ready func(context.Context) error) http.Handler {
	mux := http.NewServeMux()
	mux.Handle(hookPath, hooks)
	mux.HandleFunc("/healthz", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write([]byte("{\"status\":\"ok\"}\n"))
	})
	mux.HandleFunc("/readyz", func(w http.ResponseWriter, r *http.Request) {
		ctx, cancel := context.WithTimeout(r.Context(), 2*time.Second)
		defer cancel()
		if err := ready(ctx); err != nil {
			writeJSONError(w, http.StatusServiceUnavailable, "not ready: "+err.Error())
			return
		}
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write([]byte("{\"status\":\"ready\"}\n"))
	})
	return mux
}

// RunPruner forgets remembered message ids older than window and finished deliveries older than
// retention, now and then every interval, until ctx is cancelled. Memory and disk therefore stay
// flat however many ids pass through.
func RunPruner(ctx context.Context, store Store, interval, window, retention time.Duration, log *slog.Logger) {
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		now := time.Now()
		if err := store.Prune(ctx, now.Add(-window), now.Add(-retention)); err != nil && ctx.Err() == nil {
			log.Error("pruning the store failed", "err", err)
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}
