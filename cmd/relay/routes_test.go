package main

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/mlrelay/relay/relay"
	"github.com/mlrelay/relay/relay/config"
)

// Every hook and bot path the config accepts makes routes that start, and that send the hook's
// path to the receiver, the bot's to the bot and the health checks to themselves; the ones that
// would not are refused by the config, naming the key.
func TestRoutePathsAcceptedByTheConfigWork(t *testing.T) {
	paths := []string{"/", "/hooks/replicate", "/hooks/", "/hooks", "/discord", "/discord/", "/hooks/replicate/",
		"/healthz", "/readyz", "/healthz/", "/hooks/{kind}", "/{x...}", "/a b", "/hooks/discord", "/x/{$}"}
	accepted := 0
	for _, hook := range paths {
		for _, bot := range paths {
			t.Run(hook+" "+bot, func(t *testing.T) {
				doc := fmt.Sprintf(`
[server]
hook_path = %q
public_url = "https://relay.example.com"
[bot]
path = %q
app_id = "123"
public_key = "2c1bd3bd0b3c3b0a1f0d9e6a1c8e2b3d4f5a6b7c8d9e0f1a2b3c4d5e6f7a8b9c"
bot_token = "t"
replicate_token = "r"
models = ["acme/m"]
[notifiers.console]
type = "console"
`, hook, bot)
				if _, err := config.Parse("config.toml", []byte(doc), func(string) (string, bool) { return "", false }); err != nil {
					if !strings.Contains(err.Error(), "hook_path") && !strings.Contains(err.Error(), "bot.path") {
						t.Fatalf("refused, but not for a path: %v", err)
					}
					return
				}
				accepted++
				named := func(name string) http.Handler {
					return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { w.Header().Set("X-Route", name) })
				}
				var h http.Handler
				func() {
					defer func() {
						if p := recover(); p != nil {
							t.Fatalf("accepted by the config, but the routes panic: %v", p)
						}
					}()
					h = withBot(relay.Routes(hook, named("hook"), func(context.Context) error { return nil }), bot, named("bot"))
				}()
				for path, want := range map[string]string{hook: "hook", bot: "bot"} {
					w := httptest.NewRecorder()
					h.ServeHTTP(w, httptest.NewRequest(http.MethodPost, path, nil))
					if got := w.Header().Get("X-Route"); got != want {
						t.Errorf("POST %s went to %q, want %s", path, got, want)
					}
				}
				w := httptest.NewRecorder()
				h.ServeHTTP(w, httptest.NewRequest(http.MethodGet, "/readyz", nil))
				if w.Code != 200 || w.Header().Get("X-Route") != "" {
					t.Errorf("GET /readyz: %d, route %q", w.Code, w.Header().Get("X-Route"))
				}
			})
		}
	}
	if accepted < 20 {
		t.Errorf("only %d pairs accepted; the test checks little", accepted)
	}
}
