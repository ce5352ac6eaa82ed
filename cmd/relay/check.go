package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"sort"
	"strings"
	"time"

	"github.com/mlrelay/relay/templates"
)

func cmdCheck(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs, configPath := commandFlags("check", stderr)
	print := fs.Bool("print", false, "print the effective config, secrets redacted")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("%w: check takes no arguments, got %q", errUsage, fs.Args())
	}
	cfg, err := loadConfig(*configPath)
	if err != nil {
		return err
	}
	set, err := loadTemplates(cfg)
	if err != nil {
		return err
	}
	samples, err := templates.SampleEvents()
	if err != nil {
		return err
	}
	errs := append(checkTemplates(cfg, set, samples), checkDigests(cfg, set)...)
	// What serve builds before it listens, built the same way, so that check passes no config
	// serve would refuse: the notifiers (their URLs, tokens, TLS settings) and the bot's template.
	if _, err := buildDestinations(cfg, io.Discard, slog.New(slog.DiscardHandler)); err != nil {
		errs = append(errs, err)
	}
	if cfg.Bot.Enabled() && !set.Has(cfg.Bot.Template, "discord") {
		errs = append(errs, fmt.Errorf("%s: bot.template: template set %q has nothing for discord", cfg.Source, cfg.Bot.Template))
	}
	if len(errs) > 0 {
		return errors.Join(errs...)
	}
	if *print {
		fmt.Fprintln(stdout, cfg.Redacted())
	}
	fmt.Fprintf(stdout, "%s: ok\n", cfg.Source)
	names := make([]string, 0, len(cfg.Notifiers))
	for n := range cfg.Notifiers {
		names = append(names, n)
	}
	sort.Strings(names)
	fmt.Fprintln(stdout, "notifiers:")
	for _, name := range names {
		n := cfg.Notifiers[name]
		state := "configured"
		if r, err := cfg.Resolve(name); err != nil {
			state = "NOT configured: " + err.Error()
		} else if r.Name != name {
			state = fmt.Sprintf("not configured, falls back to %s (%s)", r.Name, n.Hint())
		}
		fmt.Fprintf(stdout, "  %-12s %-8s %s\n", name, n.Type, state)
	}
	fmt.Fprintln(stdout, "rules (sample events each one matches, all templates rendered):")
	if len(cfg.Rules) == 0 {
		fmt.Fprintln(stdout, "  none: events are acknowledged and nothing is sent")
	}
	for _, r := range cfg.Rules {
		var matched []string
		for _, ev := range samples {
			ok, err := r.Match(ev)
			if err != nil {
				// serve skips the rule for such an event and logs why; so does check.
				first, _, _ := strings.Cut(err.Error(), "\n")
				matched = append(matched, fmt.Sprintf("(skipped for %s %s: %s)", ev.Kind, ev.Status, first))
				continue
			}
			if ok {
				matched = append(matched, fmt.Sprintf("%s %s", ev.Kind, ev.Status))
			}
		}
		to := joinNames(r.Notify)
		for _, d := range r.Digests {
			to = strings.TrimPrefix(to+", digest "+d, ", ")
		}
		fmt.Fprintf(stdout, "  %-20s → %-18s template %-10s matches: %s\n", r.Name, to, r.Template, orNone(matched))
	}
	if specs := digestSpecs(cfg); len(specs) > 0 {
		fmt.Fprintln(stdout, "digests (templates rendered with sample summaries):")
		for _, s := range specs {
			fmt.Fprintf(stdout, "  %-20s → %-18s template %-10s %s (%s), next %s\n", s.Name, joinNames(s.Notify), s.Template,
				s.Schedule, s.Schedule.Location(), s.Schedule.Next(time.Now()).Format("2006-01-02 15:04 MST"))
		}
	}
	return nil
}

func orNone(s []string) string {
	if len(s) == 0 {
		return "none of the samples"
	}
	return joinNames(s)
}
