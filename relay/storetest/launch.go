package storetest

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/mlrelay/relay/relay"
)

// launchTests are the suite's launch behaviours, run by Run.
var launchTests = []struct {
	name string
	fn   func(t *testing.T, s relay.Store)
}{
	{"LaunchSaveAndFind", testLaunchSaveAndFind},
	{"LaunchAddOnce", testLaunchAddOnce},
	{"LaunchPrune", testLaunchPrune},
}

func launch(id string, d time.Duration) relay.Launch {
	return relay.Launch{PredictionID: id, Model: "acme/sdxl", GuildID: "10", ChannelID: "20", UserID: "30",
		Token: "tok-" + id, TokenExpires: at(d + 15*time.Minute), CreatedAt: at(d)}
}

func testLaunchSaveAndFind(t *testing.T, s relay.Store) {
	ctx := context.Background()
	if _, err := s.Launch(ctx, "p1"); !errors.Is(err, relay.ErrNoLaunch) {
		t.Fatalf("Launch of an unknown prediction: %v, want ErrNoLaunch", err)
	}
	l := launch("p1", 0)
	if err := s.SaveLaunch(ctx, l); err != nil {
		t.Fatal(err)
	}
	got, err := s.Launch(ctx, "p1")
	if err != nil {
		t.Fatal(err)
	}
	sameTime(t, "token expiry", got.TokenExpires, l.TokenExpires)
	sameTime(t, "created", got.CreatedAt, l.CreatedAt)
	got.TokenExpires, got.CreatedAt = l.TokenExpires, l.CreatedAt
	if got != l {
		t.Fatalf("Launch = %+v, want %+v", got, l)
	}
	// Saving again replaces the record.
	l.ChannelID, l.Token = "21", "tok-2"
	if err := s.SaveLaunch(ctx, l); err != nil {
		t.Fatal(err)
	}
	if got, err := s.Launch(ctx, "p1"); err != nil || got.ChannelID != "21" || got.Token != "tok-2" {
		t.Fatalf("after saving again: %+v, %v", got, err)
	}
	if err := s.SaveLaunch(ctx, relay.Launch{}); err == nil {
		t.Error("a launch without a prediction id was saved")
	}
}

// testLaunchAddOnce checks that AddLaunch records an id once: a second add (a replayed
// interaction, on this process or another) changes nothing and says so.
func testLaunchAddOnce(t *testing.T, s relay.Store) {
	ctx := context.Background()
	l := launch(relay.PendingLaunchID("900"), 0)
	if err := s.AddLaunch(ctx, l); err != nil {
		t.Fatal(err)
	}
	again := l
	again.UserID, again.Token = "31", "tok-replayed"
	if err := s.AddLaunch(ctx, again); !errors.Is(err, relay.ErrLaunchExists) {
		t.Fatalf("adding the same id again: %v, want ErrLaunchExists", err)
	}
	// The same interaction replayed later (same token, another time) is refused too.
	replay := l
	replay.CreatedAt = l.CreatedAt.Add(time.Second)
	if err := s.AddLaunch(ctx, replay); !errors.Is(err, relay.ErrLaunchExists) {
		t.Fatalf("a replay of the interaction: %v, want ErrLaunchExists", err)
	}

	if got, err := s.Launch(ctx, l.PredictionID); err != nil || got.UserID != "30" || got.Token != l.Token {
		t.Fatalf("after a second add: %+v, %v; want the first record", got, err)
	}
	if err := s.AddLaunch(ctx, relay.Launch{}); err == nil || errors.Is(err, relay.ErrLaunchExists) {
		t.Errorf("a launch without a prediction id: %v, want another error", err)
	}
}

func testLaunchPrune(t *testing.T, s relay.Store) {
	ctx := context.Background()
	for _, l := range []relay.Launch{launch("old", 0), launch("new", 48*time.Hour)} {
		if err := s.SaveLaunch(ctx, l); err != nil {
			t.Fatal(err)
		}
	}
	if err := s.Prune(ctx, at(24*time.Hour), at(24*time.Hour)); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Launch(ctx, "old"); !errors.Is(err, relay.ErrNoLaunch) {
		t.Errorf("a launch created before doneBefore survived the prune: %v", err)
	}
	if _, err := s.Launch(ctx, "new"); err != nil {
		t.Errorf("a recent launch was pruned: %v", err)
	}
}
