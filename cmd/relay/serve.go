package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os/signal"
	"slices"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/mlrelay/relay/relay"
	"github.com/mlrelay/relay/relay/config"
	"github.com/mlrelay/relay/relay/digest"
	"github.com/mlrelay/relay/relay/replicate"
	"github.com/mlrelay/relay/templates"
)

// settleWait is what a shutdown allows, past the longest send, for recording its outcome.
const settleWait = 5 * time.Second

func cmdServe(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs, configPath := commandFlags("serve", stderr)
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("%w: serve takes no arguments, got %q", errUsage, fs.Args())
	}
	cfg, err := loadConfig(*configPath)
	if err != nil {
		return err
	}
	tuneGC()
	ctx, stop := signal.NotifyContext(ctx, syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	return serve(ctx, cfg, stdout, stderr, nil)
}

// serve runs the relay until ctx is cancelled. If ready is not nil it receives the listening
// address once the relay accepts webhooks (tests and the benchmark use it).
func serve(ctx context.Context, cfg *config.Config, stdout, stderr io.Writer, ready chan<- string) error {
	log := newLogger(cfg, stderr)
	store, err := openStore(ctx, cfg)
	if err != nil {
		return err
	}
	defer store.Close()

	secrets, generated, err := webhookSecrets(ctx, cfg, store)
	if err != nil {
		return err
	}
	verifier, err := replicate.NewVerifier(secrets, cfg.Replicate.Tolerance.D())
	if err != nil {
		return fmt.Errorf("%s: replicate.webhook_secrets: %w", cfg.Source, err)
	}
	if generated {
		log.Warn("no webhook secret configured: using a generated local secret (relay send-test uses it); set REPLICATE_WEBHOOK_SECRET to receive Replicate's webhooks")
	}
	set, err := loadTemplates(cfg)
	if err != nil {
		return err
	}
	samples, err := templates.SampleEvents()
	if err != nil {
		return err
	}
	if errs := append(checkTemplates(cfg, set, samples), checkDigests(cfg, set)...); len(errs) > 0 {
		return errors.Join(errs...)
	}
	dests, err := buildDestinations(cfg, stdout, log)
	if err != nil {
		return err
	}

	rules := cfg.Rules
	bot, err := newDiscordBot(cfg, store, set, log)
	if err != nil {
		return err
	}
	if bot != nil {
		rules = append(slices.Clip(rules), bot.rule)
		dests[botDestination] = bot.destination
	}

	d := cfg.Dispatch
	dispatcher := relay.NewDispatcher(store, newRenderer(cfg, set), dests, relay.DispatcherConfig{
		Workers: d.Workers, Lease: d.Lease.D(), SendTimeout: d.SendTimeout.D(), MaxAttempts: d.MaxAttempts,
		MaxAge: d.MaxAge.D(), BackoffMin: d.BackoffMin.D(), BackoffMax: d.BackoffMax.D(),
	}, log)
	committer := relay.NewCommitter(store, 512, func(created int) {
		if created > 0 {
			dispatcher.Wake()
		}
	})
	receiver := &relay.Receiver{
		Verifier:  verifier,
		Rules:     rules,
		Committer: committer,
		MaxBody:   int64(cfg.Server.MaxBody),
		Logger:    log,

		DedupWindow: cfg.Store.DedupWindow.D(),
	}
	var stopping atomic.Bool
	routes := relay.Routes(cfg.Server.HookPath, receiver, func(ctx context.Context) error {
		if stopping.Load() {
			return errors.New("shutting down")
		}
		// The answer is public: the store's own error (a database host, a user) goes to the log.
		if err := store.Ping(ctx); err != nil {
			log.Warn("not ready: the store does not answer", "err", err)
			return errors.New("the store does not answer")
		}
		// A store that answers reads may still refuse writes (a full disk, a database gone
		// read-only after a failover).
		if err := committer.Failing(time.Now()); err != nil {
			log.Warn("not ready: the store refuses webhooks", "err", err)
			return err
		}
		return nil
	})
	if bot != nil {
		routes = withBot(routes, cfg.Bot.Path, bot.handler)
		log.Info("discord bot on", "interactions", cfg.Bot.Path, "models", len(cfg.Bot.Models))
	}
	srv := &http.Server{
		Handler:           routes,
		ReadHeaderTimeout: 5 * time.Second,
		ReadTimeout:       cfg.Server.ReadTimeout.D(),
		WriteTimeout:      cfg.Server.ReadTimeout.D() + 15*time.Second,
		IdleTimeout:       2 * time.Minute,
		ErrorLog:          nil,
	}
	ln, err := net.Listen("tcp", cfg.Server.Addr)
	if err != nil {
		committer.Close()
		return fmt.Errorf("%s: server.addr: %w", cfg.Source, err)
	}

	workCtx, stopWork := context.WithCancel(context.WithoutCancel(ctx))
	var wg sync.WaitGroup
	wg.Go(func() { dispatcher.Run(workCtx) })
	if specs := digestSpecs(cfg); len(specs) > 0 {
		runner := &digest.Runner{Store: store, Digests: specs, Wake: dispatcher.Wake, Log: log}
		wg.Go(func() { runner.Run(workCtx) })
	}
	wg.Go(func() {
		relay.RunPruner(workCtx, store, 10*time.Minute, cfg.Store.DedupWindow.D(), cfg.Store.Retention.D(), log)
	})
	serveErr := make(chan error, 1)
	go func() { serveErr <- srv.Serve(ln) }()

	log.Info("relay listening", "addr", ln.Addr().String(), "hook", cfg.Server.HookPath, "store", cfg.Store.Driver(),
		"rules", len(cfg.Rules), "notifiers", len(dests), "config", cfg.Source, "version", versionString())
	if ready != nil {
		ready <- ln.Addr().String()
	}

	var runErr error
	select {
	case <-ctx.Done():
		log.Info("shutting down: no new webhooks; finishing work in flight")
	case runErr = <-serveErr:
	}
	// The dispatcher stops at once, beside the HTTP server: it starts no new send, lets the
	// sends in flight finish and gives back the deliveries it had claimed. Handlers finish and
	// their items are committed before the committer stops.
	stopping.Store(true)
	stopWork()
	start := time.Now()
	shutCtx, cancel := context.WithTimeout(context.Background(), cfg.Server.ShutdownTimeout.D())
	defer cancel()
	if err := srv.Shutdown(shutCtx); err != nil {
		log.Error("http shutdown incomplete", "err", err)
	}
	committer.Close()
	done := make(chan struct{})
	go func() { wg.Wait(); close(done) }()
	// A send in flight is waited for even past shutdown_timeout, up to its own bound: leaving
	// it unrecorded would make another process send it again once its lease expires.
	wait := time.NewTimer(max(cfg.Server.ShutdownTimeout.D(), d.SendTimeout.D()+settleWait) - time.Since(start))
	defer wait.Stop()
	select {
	case <-done:
	case <-wait.C:
		log.Error("dispatcher did not stop in time; leased deliveries will be retried after their lease expires")
	}
	log.Info("stopped")
	if errors.Is(runErr, http.ErrServerClosed) {
		runErr = nil
	}
	return runErr
}

// withBot routes the bot's path to bot and everything else to routes.
func withBot(routes http.Handler, path string, bot http.Handler) http.Handler {
	mux := http.NewServeMux()
	mux.Handle("/", routes)
	mux.Handle(path, bot)
	return mux
}
