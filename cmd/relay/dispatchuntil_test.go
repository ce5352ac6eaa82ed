package main

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"log/slog"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/mlrelay/relay/relay"
	"github.com/mlrelay/relay/relay/replicate"
	"github.com/mlrelay/relay/templates"
)

// relay digest send does not report success for messages it could not find: with relay serve
// busy beside it, newer deliveries can push its own out of the newest it lists.
func TestDispatchUntilDoesNotReportUnseenMessagesSent(t *testing.T) {
	slack := newSlack(t)
	cfg := e2eConfig(t, filepath.Join(t.TempDir(), "relay.db"), slack.WebhookURL(), "")
	ctx := context.Background()
	store, err := openStore(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer store.Close()
	for i, notifier := range []string{"slack", "elsewhere"} { // ours first, then a newer one
		id := fmt.Sprintf("p%d", i)
		in := &relay.Ingest{MessageID: "msg_" + id, Kind: relay.KindPrediction, SubjectID: id, Status: replicate.Succeeded,
			ReceivedAt: time.Now().Add(time.Duration(i) * time.Millisecond),
			Body:       []byte(fmt.Sprintf(`{"id":%q,"model":"a/b","status":"succeeded"}`, id)),
			Deliveries: []relay.DeliverySpec{{Rule: "r", Notifier: notifier, Template: "default"}}}
		if err := store.Ingest(ctx, []*relay.Ingest{in}); err != nil {
			t.Fatal(err)
		}
	}
	set, err := templates.Load("")
	if err != nil {
		t.Fatal(err)
	}
	log := slog.New(slog.DiscardHandler)
	dests, err := buildDestinations(cfg, io.Discard, log)
	if err != nil {
		t.Fatal(err)
	}
	defer func(n int) { recentDeliveries = n }(recentDeliveries)
	recentDeliveries = 1 // only the newer one is listed
	var out bytes.Buffer
	err = dispatchUntil(ctx, cfg, store, set, dests, log, 500*time.Millisecond, &out, 1,
		func(d relay.DeliveryInfo) bool { return d.SubjectID == "p0" })
	if err == nil || !strings.Contains(out.String(), "1 of 1 messages not found") {
		t.Fatalf("err %v, output %q; want a failure saying the message was not found", err, out.String())
	}
}
