// Command relay receives Replicate webhooks and turns them into Slack notifications (and, from
// the console notifier, readable lines on standard output).
//
// Usage:
//
//	relay serve      [--config FILE]   run the relay
//	relay check      [--config FILE]   validate a config and render every rule against samples
//	relay send-test  [--config FILE]   post signed sample events to a running relay
//	relay deliveries [--config FILE]   list deliveries (e.g. --state dead)
//	relay digest send|preview NAME     send a digest now, or show the next one
//	relay discord register [--guild ID] register the bot's slash commands
//	relay version
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"runtime/debug"
	_ "time/tzdata" // digests' time zones work on machines without a zone database
)

// version is set at build time with -ldflags "-X main.version=v1.2.3".
var version = ""

func main() {
	os.Exit(run(context.Background(), os.Args[1:], os.Stdout, os.Stderr))
}

// errUsage marks errors caused by the command line; run prints usage for them.
var errUsage = errors.New("usage")

func run(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		usage(stderr)
		return 2
	}
	var err error
	switch cmd, rest := args[0], args[1:]; cmd {
	case "serve":
		err = cmdServe(ctx, rest, stdout, stderr)
	case "check":
		err = cmdCheck(ctx, rest, stdout, stderr)
	case "send-test":
		err = cmdSendTest(ctx, rest, stdout, stderr)
	case "deliveries":
		err = cmdDeliveries(ctx, rest, stdout, stderr)
	case "digest":
		err = cmdDigest(ctx, rest, stdout, stderr)
	case "discord":
		err = cmdDiscord(ctx, rest, stdout, stderr)
	case "version", "--version", "-version":
		fmt.Fprintln(stdout, "relay", versionString())
		return 0
	case "help", "-h", "--help", "-help":
		usage(stdout)
		return 0
	default:
		fmt.Fprintf(stderr, "relay: unknown command %q\n\n", cmd)
		usage(stderr)
		return 2
	}
	switch {
	case err == nil:
		return 0
	case errors.Is(err, flag.ErrHelp):
		return 0
	case errors.Is(err, errUsage):
		fmt.Fprintln(stderr, "relay:", err)
		return 2
	default:
		fmt.Fprintln(stderr, "relay:", err)
		return 1
	}
}

// commandFlags starts a subcommand's flag set with the --config flag every subcommand takes.
func commandFlags(name string, stderr io.Writer) (*flag.FlagSet, *string) {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.SetOutput(stderr)
	return fs, fs.String("config", "", "config file (default: the embedded defaults)")
}

// parseFlags parses args, marking a bad command line as a usage error (exit status 2).
func parseFlags(fs *flag.FlagSet, args []string) error {
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return err
		}
		return fmt.Errorf("%w: %s: %v", errUsage, fs.Name(), err)
	}
	return nil
}

func usage(w io.Writer) {
	fmt.Fprint(w, `relay turns Replicate webhooks into notifications.

Usage:
  relay serve      [--config FILE]                       run the relay
  relay check      [--config FILE] [--print]             validate a config; render every rule against the samples
  relay send-test  [--config FILE] [--kind K] [--status S] [--url URL] [--repeat N]
                                                         post correctly signed sample events to a running relay
  relay deliveries [--config FILE] [--state S] [--limit N]
                                                         list recent deliveries (pending, sending, sent, dead)
  relay digest send NAME    [--config FILE] [--wait D]   close the digest's period now and send it
  relay digest preview NAME [--config FILE] [--target T] [--html FILE]
                                                         render the next digest without marking anything sent
  relay discord register [--config FILE] [--guild ID]    register the bot's slash commands with Discord
  relay version

With no --config, the relay runs on its embedded defaults: SQLite in ./relay.db, listening on
127.0.0.1:8080, and every terminal event printed on the console (or sent to Slack when
SLACK_WEBHOOK_URL is set). See config.example.toml for every option.
`)
}

func versionString() string {
	if version != "" {
		return version
	}
	if bi, ok := debug.ReadBuildInfo(); ok {
		v := bi.Main.Version
		for _, s := range bi.Settings {
			if s.Key == "vcs.revision" && len(s.Value) >= 12 {
				v += " " + s.Value[:12]
			}
		}
		if v != "" {
			return v
		}
	}
	return "(devel)"
}
