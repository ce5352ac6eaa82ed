package storetest

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/mlrelay/relay/relay"
	"github.com/mlrelay/relay/relay/replicate"
)

// digestTests are the suite's digest behaviours, run by Run.
var digestTests = []struct {
	name string
	fn   func(t *testing.T, s relay.Store)
}{
	{"DigestCollectsOncePerTransition", testDigestCollectsOnce},
	{"DigestClosePeriod", testDigestClosePeriod},
	{"DigestClosedLateIsNew", testDigestClosedLateIsNew},
	{"DigestCloseOnce", testDigestCloseOnce},
	{"DigestEmptyPeriod", testDigestEmptyPeriod},
	{"DigestFailedBuildChangesNothing", testDigestFailedBuild},
	{"DigestConcurrentClose", testDigestConcurrentClose},
	{"DigestPrune", testDigestPrune},
}

// collected is a terminal event collected for the digests named, with no delivery.
func collected(msg, subject string, status replicate.Status, d time.Duration, digests ...string) *relay.Ingest {
	e := ev(msg, subject, status, d)
	e.Digests = digests
	return e
}

// closeReq asks to close digest at end, with one delivery through notifier "mail" and a
// message that lists the message ids of the items.
func closeReq(digest string, start, end time.Time) *relay.DigestClose {
	return &relay.DigestClose{
		Digest: digest, Start: start, End: end,
		Deliveries: []relay.DeliverySpec{{Rule: digest, Notifier: "mail", Template: "digest"}},
		Build: func(begin time.Time, items []relay.DigestItem) ([]byte, error) {
			var ids []string
			for _, it := range items {
				ids = append(ids, it.MessageID)
			}
			return []byte(begin.UTC().Format(time.RFC3339) + " " + strings.Join(ids, ",")), nil
		},
	}
}

func closeDigest(t *testing.T, s relay.Store, c *relay.DigestClose) *relay.DigestClose {
	t.Helper()
	if err := s.CloseDigest(context.Background(), c); err != nil {
		t.Fatalf("CloseDigest: %v", err)
	}
	return c
}

func openIDs(t *testing.T, s relay.Store, digest string, before time.Time) []string {
	t.Helper()
	items, err := s.OpenDigestItems(context.Background(), digest, before)
	if err != nil {
		t.Fatalf("OpenDigestItems: %v", err)
	}
	var ids []string
	for _, it := range items {
		ids = append(ids, it.MessageID)
	}
	return ids
}

func testDigestCollectsOnce(t *testing.T, s relay.Store) {
	batch := ingest(t, s,
		collected("m1", "p1", replicate.Failed, 0, "daily", "weekly"),
		collected("m2", "p1", replicate.Failed, time.Second, "daily"),   // same transition, another message
		collected("m1", "p1", replicate.Failed, 2*time.Second, "daily"), // a retry
		collected("m3", "p2", replicate.Failed, 3*time.Second, "daily"),
	)
	var got []string
	for _, e := range batch {
		got = append(got, fmt.Sprintf("%s/%d", e.Outcome, e.Collected))
	}
	if want := []string{"accepted/2", "accepted/0", "duplicate/0", "accepted/1"}; !slices.Equal(got, want) {
		t.Fatalf("outcome/collected = %v, want %v", got, want)
	}
	if ids := openIDs(t, s, "daily", at(time.Hour)); !slices.Equal(ids, []string{"m1", "m3"}) {
		t.Errorf("daily holds %v, want [m1 m3]", ids)
	}
	if ids := openIDs(t, s, "weekly", at(time.Hour)); !slices.Equal(ids, []string{"m1"}) {
		t.Errorf("weekly holds %v, want [m1]", ids)
	}
	items, err := s.OpenDigestItems(context.Background(), "daily", at(time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	if it := items[0]; it.Kind != relay.KindPrediction || it.Meta["msg"] != "m1" || !strings.Contains(string(it.Body), `"p1"`) {
		t.Errorf("item = %+v, want the event as ingested", it)
	}
	sameTime(t, "item received", items[0].ReceivedAt, at(0))
	if ids := openIDs(t, s, "daily", at(3*time.Second)); !slices.Equal(ids, []string{"m1"}) {
		t.Errorf("daily before 3s holds %v, want [m1]", ids)
	}
}

func testDigestClosePeriod(t *testing.T, s relay.Store) {
	ingest(t, s,
		collected("m1", "p1", replicate.Failed, 0, "daily"),
		collected("m2", "p2", replicate.Failed, time.Hour, "daily"),
		collected("m3", "p3", replicate.Failed, 3*time.Hour, "daily"), // after the end: next period
	)
	if last, err := s.DigestLastEnd(context.Background(), "daily"); err != nil || !last.IsZero() {
		t.Fatalf("DigestLastEnd before any close = %v, %v; want zero", last, err)
	}
	c := closeDigest(t, s, closeReq("daily", at(-time.Hour), at(2*time.Hour)))
	if !c.Closed || c.Items != 2 || c.Created != 1 {
		t.Fatalf("close: closed %v, %d items, %d created; want true, 2, 1", c.Closed, c.Items, c.Created)
	}
	sameTime(t, "first period's start", c.Begin, at(-time.Hour))
	last, err := s.DigestLastEnd(context.Background(), "daily")
	if err != nil {
		t.Fatal(err)
	}
	sameTime(t, "last end", last, at(2*time.Hour))
	if ids := openIDs(t, s, "daily", at(24*time.Hour)); !slices.Equal(ids, []string{"m3"}) {
		t.Errorf("open after the close: %v, want [m3]", ids)
	}
	// The message is an outbox delivery like any other, due at the end, with the built body.
	d := claimOne(t, s, at(2*time.Hour))
	if d.Kind != relay.KindDigest || d.Rule != "daily" || d.Notifier != "mail" || d.Template != "digest" {
		t.Errorf("digest delivery = %+v", d)
	}
	if want := at(-time.Hour).Format(time.RFC3339) + " m1,m2"; string(d.Body) != want {
		t.Errorf("body = %q, want %q", d.Body, want)
	}
	settle(t, s, d.Lease(), relay.Settlement{State: relay.Sent, At: at(2 * time.Hour)})
	// The next period starts where this one ended and takes the rest.
	c2 := closeDigest(t, s, closeReq("daily", at(-time.Hour), at(26*time.Hour)))
	if !c2.Closed || c2.Items != 1 {
		t.Fatalf("second close: %+v", c2)
	}
	sameTime(t, "second period's start", c2.Begin, at(2*time.Hour))
	d2 := claimOne(t, s, at(26*time.Hour))
	if want := at(2*time.Hour).Format(time.RFC3339) + " m3"; string(d2.Body) != want {
		t.Errorf("second body = %q, want %q", d2.Body, want)
	}
}

// A period closed long after its end (a relay that was down over a weekly tick) makes a
// message created and due when it is closed, whose age counts from then: dated at the end, its
// first temporary failure would already be past the dispatcher's MaxAge.
func testDigestClosedLateIsNew(t *testing.T, s relay.Store) {
	ingest(t, s, collected("m1", "p1", replicate.Failed, 0, "weekly"))
	c := closeReq("weekly", at(-time.Hour), at(time.Hour))
	c.Now = at(72 * time.Hour)
	if closeDigest(t, s, c); !c.Closed || c.Created != 1 {
		t.Fatalf("close: %+v", c)
	}
	if ds := claim(t, s, at(72*time.Hour-time.Second), time.Minute, 10); len(ds) != 0 {
		t.Errorf("the message was due before the period was closed")
	}
	d := claimOne(t, s, at(72*time.Hour))
	sameTime(t, "CreatedAt", d.CreatedAt, at(72*time.Hour))
	if got := info(t, s, d.ID); !got.CreatedAt.Equal(at(72 * time.Hour)) {
		t.Errorf("listed CreatedAt %v, want the close", got.CreatedAt.Sub(t0))
	}
}

func testDigestCloseOnce(t *testing.T, s relay.Store) {
	ingest(t, s, collected("m1", "p1", replicate.Failed, 0, "daily"))
	closeDigest(t, s, closeReq("daily", at(-time.Hour), at(time.Hour)))
	ingest(t, s, collected("m2", "p2", replicate.Failed, 30*time.Minute, "daily")) // late arrival, before the end
	for _, end := range []time.Duration{time.Hour, 30 * time.Minute} {
		c := closeDigest(t, s, closeReq("daily", at(-time.Hour), at(end)))
		if c.Closed || c.Created != 0 || c.Items != 0 {
			t.Errorf("closing again at %v: %+v, want nothing closed", end, c)
		}
	}
	if n := len(list(t, s, "")); n != 1 {
		t.Errorf("%d deliveries, want 1", n)
	}
	// An item that arrives late for a closed period goes into the next one: never lost.
	c := closeDigest(t, s, closeReq("daily", at(-time.Hour), at(2*time.Hour)))
	if !c.Closed || c.Items != 1 {
		t.Errorf("next close: %+v, want the late item", c)
	}
}

func testDigestEmptyPeriod(t *testing.T, s relay.Store) {
	c := closeReq("daily", at(-time.Hour), at(time.Hour))
	built := false
	c.Build = func(time.Time, []relay.DigestItem) ([]byte, error) { built = true; return nil, nil }
	closeDigest(t, s, c)
	if !c.Closed || c.Items != 0 || c.Created != 0 || built {
		t.Fatalf("empty close: %+v, built %v; want closed with nothing sent", c, built)
	}
	if n := len(list(t, s, "")); n != 0 {
		t.Errorf("%d deliveries for an empty period", n)
	}
	last, err := s.DigestLastEnd(context.Background(), "daily")
	if err != nil {
		t.Fatal(err)
	}
	sameTime(t, "empty period recorded", last, at(time.Hour))
}

func testDigestFailedBuild(t *testing.T, s relay.Store) {
	ingest(t, s, collected("m1", "p1", replicate.Failed, 0, "daily"))
	c := closeReq("daily", at(-time.Hour), at(time.Hour))
	c.Build = func(time.Time, []relay.DigestItem) ([]byte, error) { return nil, errors.New("boom") }
	if err := s.CloseDigest(context.Background(), c); err == nil || c.Closed {
		t.Fatalf("CloseDigest with a failing Build: err %v, closed %v; want an error", err, c.Closed)
	}
	if ids := openIDs(t, s, "daily", at(time.Hour)); !slices.Equal(ids, []string{"m1"}) {
		t.Errorf("open after a failed close: %v, want [m1]", ids)
	}
	if last, _ := s.DigestLastEnd(context.Background(), "daily"); !last.IsZero() {
		t.Errorf("a failed close recorded a period ending %v", last)
	}
	if c := closeDigest(t, s, closeReq("daily", at(-time.Hour), at(time.Hour))); !c.Closed || c.Items != 1 {
		t.Errorf("retry after a failed close: %+v", c)
	}
}

func testDigestConcurrentClose(t *testing.T, s relay.Store) {
	for i := range 20 {
		ingest(t, s, collected(fmt.Sprintf("m%d", i), fmt.Sprintf("p%d", i), replicate.Failed, time.Duration(i)*time.Minute, "daily"))
	}
	var (
		wg     sync.WaitGroup
		mu     sync.Mutex
		closed int
	)
	for range 8 {
		wg.Go(func() {
			c := closeReq("daily", at(-time.Hour), at(time.Hour))
			if err := s.CloseDigest(context.Background(), c); err != nil {
				t.Errorf("CloseDigest: %v", err)
				return
			}
			mu.Lock()
			defer mu.Unlock()
			if c.Closed {
				closed++
				if c.Items != 20 {
					t.Errorf("the close took %d items, want 20", c.Items)
				}
			}
		})
	}
	wg.Wait()
	if closed != 1 {
		t.Errorf("%d closes succeeded, want 1", closed)
	}
	if n := len(list(t, s, "")); n != 1 {
		t.Errorf("%d deliveries, want 1", n)
	}
}

func testDigestPrune(t *testing.T, s relay.Store) {
	// p1 has a delivery and is collected; p2 is only collected.
	e1 := collected("m1", "p1", replicate.Failed, 0, "daily")
	e1.Deliveries = []relay.DeliverySpec{spec("r", "slack")}
	ingest(t, s, e1, collected("m2", "p2", replicate.Failed, 0, "daily"))
	d := claimOne(t, s, at(0))
	settle(t, s, d.Lease(), relay.Settlement{State: relay.Sent, At: at(time.Minute)})
	// The delivery is pruned, but the digest still needs its event.
	if err := s.Prune(context.Background(), at(48*time.Hour), at(48*time.Hour)); err != nil {
		t.Fatal(err)
	}
	c := closeDigest(t, s, closeReq("daily", at(-time.Hour), at(49*time.Hour)))
	if c.Items != 2 {
		t.Fatalf("close after pruning the delivery: %+v, want both items", c)
	}
	msg := claimOne(t, s, at(49*time.Hour))
	if !strings.Contains(string(msg.Body), "m1,m2") {
		t.Errorf("digest body %q lost an item", msg.Body)
	}
	settle(t, s, msg.Lease(), relay.Settlement{State: relay.Sent, At: at(49 * time.Hour)})
	// Items of a period closed before doneBefore go; the period is still remembered.
	if err := s.Prune(context.Background(), at(100*time.Hour), at(100*time.Hour)); err != nil {
		t.Fatal(err)
	}
	if n := len(list(t, s, "")); n != 0 {
		t.Errorf("%d deliveries left after pruning", n)
	}
	last, err := s.DigestLastEnd(context.Background(), "daily")
	if err != nil {
		t.Fatal(err)
	}
	sameTime(t, "last end after pruning", last, at(49*time.Hour))
}
