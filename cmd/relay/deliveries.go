package main

import (
	"context"
	"fmt"
	"io"
	"text/tabwriter"
	"time"

	"github.com/mlrelay/relay/relay"
)

func cmdDeliveries(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs, configPath := commandFlags("deliveries", stderr)
	state := fs.String("state", "", "pending, sending, sent or dead (default: any)")
	limit := fs.Int("limit", 20, "how many, newest first")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("%w: deliveries takes no arguments, got %q (flags go before them)", errUsage, fs.Args())
	}
	switch relay.State(*state) {
	case "", relay.Pending, relay.Sending, relay.Sent, relay.Dead:
	default:
		return fmt.Errorf("%w: --state must be pending, sending, sent or dead", errUsage)
	}
	cfg, err := loadConfig(*configPath)
	if err != nil {
		return err
	}
	store, err := openStore(ctx, cfg)
	if err != nil {
		return err
	}
	defer store.Close()
	list, err := store.Deliveries(ctx, relay.State(*state), *limit)
	if err != nil {
		return err
	}
	tw := tabwriter.NewWriter(stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "ID\tSTATE\tFAILURES\tRULE\tNOTIFIER\tEVENT\tUPDATED\tLAST ERROR")
	for _, d := range list {
		fmt.Fprintf(tw, "%d\t%s\t%d\t%s\t%s\t%s %s %s\t%s\t%s\n", d.ID, d.State, d.Attempts, d.Rule, d.Notifier,
			d.Kind, d.SubjectID, d.Status, d.UpdatedAt.Local().Format(time.DateTime), d.LastError)
	}
	return tw.Flush()
}
