package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"sort"
	"strings"
	"time"

	"github.com/mlrelay/relay/relay"
	"github.com/mlrelay/relay/relay/config"
	"github.com/mlrelay/relay/relay/digest"
	"github.com/mlrelay/relay/templates"
)

// renderer renders events and, for the dispatcher's digest messages, digests (see
// relay.DigestRenderer): their stored body is the period's summary as JSON.
type renderer struct {
	*templates.Set
	zones map[string]*time.Location // digest name → its time zone
}

func newRenderer(cfg *config.Config, set *templates.Set) *renderer {
	r := &renderer{Set: set, zones: map[string]*time.Location{}}
	for name, d := range cfg.Digests {
		r.zones[name] = d.Spec.Schedule.Location()
	}
	return r
}

// RenderDigest renders a stored summary for target, with its times in the digest's zone.
func (r *renderer) RenderDigest(set, target string, body []byte) (relay.Message, error) {
	var s digest.Summary
	if err := json.Unmarshal(body, &s); err != nil {
		return relay.Message{}, fmt.Errorf("stored digest unreadable: %w", err)
	}
	if loc := r.zones[s.Name]; loc != nil {
		s.From, s.To = s.From.In(loc), s.To.In(loc)
	}
	return r.Set.RenderDigest(set, target, &s)
}

// digestSpecs lists the configured digests in name order.
func digestSpecs(cfg *config.Config) []digest.Spec {
	names := make([]string, 0, len(cfg.Digests))
	for name := range cfg.Digests {
		names = append(names, name)
	}
	sort.Strings(names)
	specs := make([]digest.Spec, 0, len(names))
	for _, name := range names {
		specs = append(specs, cfg.Digests[name].Spec)
	}
	return specs
}

// checkDigests makes sure every digest's template set renders for each of its notifiers'
// targets, against the sample summaries; it returns one error per failure.
func checkDigests(cfg *config.Config, set *templates.Set) []error {
	var errs []error
	for _, spec := range digestSpecs(cfg) {
		for _, name := range spec.Notify {
			n, err := cfg.Resolve(name)
			if err != nil {
				errs = append(errs, fmt.Errorf("%s: digests.%s: %w", cfg.Source, spec.Name, err))
				continue
			}
			t := target(n.Type)
			if !set.HasDigest(spec.Template, t) {
				errs = append(errs, fmt.Errorf("%s: digests.%s.template: digest template set %q has nothing for %s (needs %s.%s.title or %s.%s.body; a digest set is named digest or digest.NAME)",
					cfg.Source, spec.Name, spec.Template, t, spec.Template, t, spec.Template, t))
				continue
			}
			for _, s := range templates.SampleSummaries() {
				if _, err := set.RenderDigest(spec.Template, t, s); err != nil {
					errs = append(errs, fmt.Errorf("%s: digests.%s → %s: sample summary: %w", cfg.Source, spec.Name, name, err))
				}
			}
		}
	}
	return errs
}

// cmdDigest runs `relay digest send|preview NAME`.
func cmdDigest(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	if len(args) == 0 {
		return fmt.Errorf("%w: digest needs a subcommand: send NAME or preview NAME", errUsage)
	}
	sub, rest := args[0], args[1:]
	fs, configPath := commandFlags("digest "+sub, stderr)
	var (
		targetName = fs.String("target", "", "preview: the target to render: text, email, slack or discord (default text, or email with --html)")
		htmlFile   = fs.String("html", "", "preview: write the email's HTML to this file")
		wait       = fs.Duration("wait", 2*time.Minute, "send: how long to wait for the messages to be sent")
	)
	switch sub {
	case "send", "preview":
	default:
		return fmt.Errorf("%w: unknown digest subcommand %q (want send or preview)", errUsage, sub)
	}
	// The digest's name may come before or after the flags.
	var name string
	if len(rest) > 0 && !strings.HasPrefix(rest[0], "-") {
		name, rest = rest[0], rest[1:]
	}
	if err := parseFlags(fs, rest); err != nil {
		return err
	}
	if name == "" && fs.NArg() == 1 {
		name = fs.Arg(0)
	} else if fs.NArg() > 0 || name == "" {
		return fmt.Errorf("%w: digest %s takes one digest name", errUsage, sub)
	}
	cfg, err := loadConfig(*configPath)
	if err != nil {
		return err
	}
	d := cfg.Digests[name]
	if d == nil {
		names := make([]string, 0, len(cfg.Digests))
		for n := range cfg.Digests {
			names = append(names, n)
		}
		sort.Strings(names)
		if len(names) == 0 {
			names = []string{"none"}
		}
		return fmt.Errorf("%s: no digest %q (defined: %s)", cfg.Source, name, strings.Join(names, ", "))
	}
	store, err := openStore(ctx, cfg)
	if err != nil {
		return err
	}
	defer store.Close()
	set, err := loadTemplates(cfg)
	if err != nil {
		return err
	}
	if sub == "preview" {
		return previewDigest(ctx, cfg, store, set, d.Spec, *targetName, *htmlFile, stdout)
	}
	return sendDigest(ctx, cfg, store, set, d.Spec, *wait, stdout, stderr)
}

// previewDigest renders the digest of the items collected so far, marking nothing as sent.
func previewDigest(ctx context.Context, cfg *config.Config, store relay.Store, set *templates.Set, spec digest.Spec, targetName, htmlFile string, stdout io.Writer) error {
	if targetName == "" {
		targetName = "text"
		if htmlFile != "" {
			targetName = "email"
		}
	}
	if htmlFile != "" && targetName != "email" {
		return fmt.Errorf("%w: --html writes the email's HTML; it goes with --target email", errUsage)
	}
	if !set.HasDigest(spec.Template, targetName) {
		return fmt.Errorf("digest template set %q has nothing for target %q", spec.Template, targetName)
	}
	now := time.Now()
	start, err := store.DigestLastEnd(ctx, spec.Name)
	if err != nil {
		return err
	}
	if start.IsZero() {
		start = spec.Schedule.Prev(now)
	}
	items, err := store.OpenDigestItems(ctx, spec.Name, now.Add(time.Nanosecond))
	if err != nil {
		return err
	}
	sum, err := digest.Summarize(spec, start, now, items)
	if err != nil {
		return err
	}
	m, err := set.RenderDigest(spec.Template, targetName, sum)
	if err != nil {
		return err
	}
	next := spec.Schedule.Next(now)
	fmt.Fprintf(stdout, "digest %s: %d items since %s; next goes out %s (a preview marks nothing as sent)\n\n",
		spec.Name, len(items), start.In(spec.Schedule.Location()).Format("2006-01-02 15:04 MST"), next.Format("2006-01-02 15:04 MST"))
	if htmlFile != "" {
		if err := os.WriteFile(htmlFile, []byte(m.Body), 0o644); err != nil {
			return err
		}
		fmt.Fprintf(stdout, "Subject: %s\nHTML written to %s\n", m.Title, htmlFile)
		return nil
	}
	switch targetName {
	case "email": // the plain-text alternative, whole
		fmt.Fprintf(stdout, "Subject: %s\n\n%s\n", m.Title, m.Text)
	default:
		fmt.Fprintf(stdout, "%s\n\n%s\n", m.Title, m.Body)
		if m.Context != "" {
			fmt.Fprintf(stdout, "\n%s\n", m.Context)
		}
	}
	return nil
}

// sendDigest closes the digest's period now and sends its messages, as the scheduler would,
// waiting for them. A period with no items sends nothing.
func sendDigest(ctx context.Context, cfg *config.Config, store relay.Store, set *templates.Set, spec digest.Spec, wait time.Duration, stdout, stderr io.Writer) error {
	if errs := checkDigests(cfg, set); len(errs) > 0 {
		return errors.Join(errs...)
	}
	log := newLogger(cfg, stderr)
	dests, err := buildDestinations(cfg, stdout, log)
	if err != nil {
		return err
	}
	now := time.Now()
	c, err := digest.Close(ctx, store, spec, now, now)
	if err != nil {
		return err
	}
	switch {
	case !c.Closed:
		if last, err := store.DigestLastEnd(ctx, spec.Name); err == nil && last.After(now.Add(time.Minute)) {
			return fmt.Errorf("digest %s: its last period ends at %s, in the future: a clock ran ahead (nothing closes before then)",
				spec.Name, last.In(spec.Schedule.Location()).Format("2006-01-02 15:04 MST"))
		}
		// Another process closed a period ending as late or later meanwhile: its message has
		// these items.
		fmt.Fprintf(stdout, "digest %s: closed just now by another process, nothing more to send\n", spec.Name)
		return nil
	case c.Items == 0:
		fmt.Fprintf(stdout, "digest %s: nothing since %s, nothing sent\n", spec.Name, c.Begin.In(spec.Schedule.Location()).Format("2006-01-02 15:04 MST"))
		return nil
	}
	subject := relay.DigestSubject(spec.Name, c.End)
	fmt.Fprintf(stdout, "digest %s: %d items since %s, %d messages\n", spec.Name, c.Items, c.Begin.In(spec.Schedule.Location()).Format("2006-01-02 15:04 MST"), c.Created)
	return dispatchUntil(ctx, cfg, store, set, dests, log, wait, stdout, c.Created, func(d relay.DeliveryInfo) bool {
		return d.Kind == relay.KindDigest && d.SubjectID == subject
	})
}

// recentDeliveries is how many of the newest deliveries dispatchUntil looks through for its
// own: with relay serve busy beside it, newer ones keep arriving.
var recentDeliveries = 5000

// dispatchUntil runs a dispatcher until each of the want deliveries that mine picks out is sent
// or dead, or wait passes, and reports them. It fails when one ended dead or is still pending,
// or when it did not find them all among the newest.
func dispatchUntil(ctx context.Context, cfg *config.Config, store relay.Store, set *templates.Set, dests map[string]*relay.Destination,
	log *slog.Logger, wait time.Duration, stdout io.Writer, want int, mine func(relay.DeliveryInfo) bool) error {
	d := cfg.Dispatch
	dispatcher := relay.NewDispatcher(store, newRenderer(cfg, set), dests, relay.DispatcherConfig{
		Workers: d.Workers, Lease: d.Lease.D(), SendTimeout: d.SendTimeout.D(), MaxAttempts: d.MaxAttempts,
		MaxAge: d.MaxAge.D(), BackoffMin: d.BackoffMin.D(), BackoffMax: d.BackoffMax.D(), Poll: 100 * time.Millisecond,
	}, log)
	runCtx, stop := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() { dispatcher.Run(runCtx); close(done) }()
	defer func() { stop(); <-done }()

	deadline := time.Now().Add(wait)
	for {
		list, err := store.Deliveries(ctx, "", recentDeliveries)
		if err != nil {
			return err
		}
		var ours []relay.DeliveryInfo
		busy := false
		for _, dl := range list {
			if mine(dl) {
				ours = append(ours, dl)
				busy = busy || dl.State == relay.Pending || dl.State == relay.Sending
			}
		}
		busy = busy || len(ours) < want
		if !busy || time.Now().After(deadline) || ctx.Err() != nil {
			failed := len(ours) < want
			if failed {
				fmt.Fprintf(stdout, "  %d of %d messages not found among the %d newest deliveries (see relay deliveries)\n",
					want-len(ours), want, recentDeliveries)
			}
			for _, dl := range ours {
				fmt.Fprintf(stdout, "  → %-10s %s", dl.Notifier, dl.State)
				if dl.LastError != "" {
					fmt.Fprintf(stdout, ": %s", dl.LastError)
				}
				fmt.Fprintln(stdout)
				failed = failed || dl.State != relay.Sent
			}
			if failed {
				return errors.New("not every message was sent (pending ones are retried by `relay serve`)")
			}
			return nil
		}
		select {
		case <-ctx.Done():
		case <-time.After(100 * time.Millisecond):
		}
	}
}
