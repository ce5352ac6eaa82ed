// Package storetest is the conformance suite for relay.Store: every store (SQLite, PostgreSQL)
// must pass it, so that the pipeline can rely on one behaviour whatever the database.
//
// The suite observes stores only through the interface. Besides what the interface comments
// say, it pins down these points of the contract:
//
//   - A store keeps its own clock out of every decision: an event's message id, and the stage it
//     raises, count as recorded at its ReceivedAt (which Prune compares with seenBefore); its
//     deliveries are created and fall due at its ReceivedAt; a settlement takes effect at its At;
//     Claim's due and lease checks use only its now. A lease that ends exactly at now has expired.
//     A claimed delivery's LeaseUntil is exactly now+lease.
//   - A delivery keeps the event of the message that created it: a later message about the same
//     transition creates nothing and stores nothing.
//   - Settle and Release act only under the lease of the delivery's current claim. Settle fails
//     with an error wrapping relay.ErrNotClaimed, changing nothing, for a delivery that does not
//     exist, is not claimed (pending, or already sent or dead) or was taken over by a later
//     claim; Release skips such leases. A lease that expired with no one taking over still holds.
//   - Deliveries lists newest first: the reverse of creation order.
//
// The suite's times are whole milliseconds from a fixed origin, so a store may keep times to the
// microsecond (PostgreSQL does) and its clock may be anywhere.
package storetest

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/mlrelay/relay/relay"
	"github.com/mlrelay/relay/relay/replicate"
)

// Run runs the conformance suite, one subtest per behaviour. open must return a new, empty
// store for the subtest t; Run closes it when the subtest ends.
func Run(t *testing.T, open func(t *testing.T) relay.Store) {
	tests := []struct {
		name string
		fn   func(t *testing.T, s relay.Store)
	}{
		{"Accepted", testAccepted},
		{"DuplicateAcrossBatches", testDuplicateAcrossBatches},
		{"DuplicateWithinBatch", testDuplicateWithinBatch},
		{"Stages", testStages},
		{"StaleCreatesNothing", testStaleCreatesNothing},
		{"TerminalInTwoMessages", testTerminalInTwoMessages},
		{"SeparateDeliveries", testSeparateDeliveries},
		{"EventStoredOnlyWithDeliveries", testEventStoredOnlyWithDeliveries},
		{"ClaimReturnsEvent", testClaimReturnsEvent},
		{"ClaimRespectsNextAt", testClaimRespectsNextAt},
		{"ClaimRespectsLimitAndOrder", testClaimRespectsLimitAndOrder},
		{"ClaimLeases", testClaimLeases},
		{"ClaimConcurrent", testClaimConcurrent},
		{"SettleSent", testSettleSent},
		{"SettlePending", testSettlePending},
		{"SettlePendingKeepsLastError", testSettlePendingKeepsLastError},
		{"SettleDead", testSettleDead},
		{"SettleNotClaimed", testSettleNotClaimed},
		{"SettleWithExpiredLease", testSettleWithExpiredLease},
		{"SettleBatch", testSettleBatch},
		{"Release", testRelease},
		{"ReleaseWithExpiredLease", testReleaseWithExpiredLease},
		{"Deliveries", testDeliveries},
		{"PruneSeen", testPruneSeen},
		{"PruneDeliveries", testPruneDeliveries},
		{"EnsureSetting", testEnsureSetting},
		{"FailedBatchPersistsNothing", testFailedBatchPersistsNothing},
		{"ConcurrentIngest", testConcurrentIngest},
		{"Ping", testPing},
	}
	tests = append(append(tests, digestTests...), launchTests...)
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := open(t)
			t.Cleanup(func() {
				if err := s.Close(); err != nil {
					t.Errorf("Close: %v", err)
				}
			})
			tt.fn(t, s)
		})
	}
}

// t0 is the suite's clock origin: a fixed time, whole seconds, so that any store keeps it exactly.
var t0 = time.Date(2025, 3, 14, 15, 9, 26, 0, time.UTC)

// at is t0 plus d.
func at(d time.Duration) time.Time { return t0.Add(d) }

// ev builds a prediction event received at t0 plus d.
func ev(msg, subject string, status replicate.Status, d time.Duration, specs ...relay.DeliverySpec) *relay.Ingest {
	return &relay.Ingest{
		MessageID:  msg,
		Kind:       relay.KindPrediction,
		SubjectID:  subject,
		Status:     status,
		ReceivedAt: at(d),
		Meta:       map[string]string{"msg": msg},
		Body:       []byte(`{"id":"` + subject + `","status":"` + string(status) + `","msg":"` + msg + `"}`),
		Deliveries: specs,
	}
}

// spec asks for a delivery through notifier for rule.
func spec(rule, notifier string) relay.DeliverySpec {
	return relay.DeliverySpec{Rule: rule, Notifier: notifier, Template: rule + "-template"}
}

// ingest ingests one batch and fails the test on error.
func ingest(t *testing.T, s relay.Store, batch ...*relay.Ingest) []*relay.Ingest {
	t.Helper()
	if err := s.Ingest(context.Background(), batch); err != nil {
		t.Fatalf("Ingest: %v", err)
	}
	return batch
}

// result is what Ingest made of one event.
type result struct {
	Outcome relay.Outcome
	Created int
}

func (r result) String() string { return fmt.Sprintf("%s/%d", r.Outcome, r.Created) }

// results lists the outcomes of a batch.
func results(batch []*relay.Ingest) []result {
	out := make([]result, len(batch))
	for i, in := range batch {
		out[i] = result{in.Outcome, in.Created}
	}
	return out
}

// wantResults checks the outcomes of a batch.
func wantResults(t *testing.T, batch []*relay.Ingest, want ...result) {
	t.Helper()
	if got := results(batch); !slices.Equal(got, want) {
		t.Errorf("outcomes = %v, want %v", got, want)
	}
}

var (
	accepted  = result{relay.Accepted, 0}
	duplicate = result{relay.Duplicate, 0}
	stale     = result{relay.Stale, 0}
)

// created is an accepted event that created n deliveries.
func created(n int) result { return result{relay.Accepted, n} }

// list returns every delivery, newest first.
func list(t *testing.T, s relay.Store, state relay.State) []relay.DeliveryInfo {
	t.Helper()
	ds, err := s.Deliveries(context.Background(), state, 10000)
	if err != nil {
		t.Fatalf("Deliveries(%q): %v", state, err)
	}
	return ds
}

// info returns the delivery with the given id.
func info(t *testing.T, s relay.Store, id int64) relay.DeliveryInfo {
	t.Helper()
	for _, d := range list(t, s, "") {
		if d.ID == id {
			return d
		}
	}
	t.Fatalf("delivery %d not listed", id)
	return relay.DeliveryInfo{}
}

// claim claims and fails the test on error.
func claim(t *testing.T, s relay.Store, now time.Time, lease time.Duration, limit int) []relay.Delivery {
	t.Helper()
	ds, err := s.Claim(context.Background(), now, lease, limit)
	if err != nil {
		t.Fatalf("Claim(%v): %v", now.Sub(t0), err)
	}
	return ds
}

// claimIDs claims and returns the ids claimed, in the order returned.
func claimIDs(t *testing.T, s relay.Store, now time.Time, lease time.Duration, limit int) []int64 {
	t.Helper()
	return idsOf(claim(t, s, now, lease, limit))
}

// idsOf lists the ids of claimed deliveries, in order.
func idsOf(ds []relay.Delivery) []int64 {
	var ids []int64
	for _, d := range ds {
		ids = append(ids, d.ID)
	}
	return ids
}

// leasesOf maps the ids of claimed deliveries to their leases.
func leasesOf(ds []relay.Delivery) map[int64]relay.Lease {
	out := map[int64]relay.Lease{}
	for _, d := range ds {
		out[d.ID] = d.Lease()
	}
	return out
}

// claimOne claims exactly one delivery.
func claimOne(t *testing.T, s relay.Store, now time.Time) relay.Delivery {
	t.Helper()
	ds := claim(t, s, now, time.Minute, 10)
	if len(ds) != 1 {
		t.Fatalf("Claim(%v) = %d deliveries, want 1", now.Sub(t0), len(ds))
	}
	return ds[0]
}

// settle settles under lease l and fails the test on error.
func settle(t *testing.T, s relay.Store, l relay.Lease, st relay.Settlement) {
	t.Helper()
	if err := SettleOne(context.Background(), s, l, st); err != nil {
		t.Fatalf("Settle(%d, %s): %v", l.ID, st.State, err)
	}
}

// SettleOne settles one delivery under lease l (a batch of one) and returns the batch's error
// or the settlement's own.
func SettleOne(ctx context.Context, s relay.Store, l relay.Lease, st relay.Settlement) error {
	st.Lease = l
	if err := s.Settle(ctx, []*relay.Settlement{&st}); err != nil {
		return err
	}
	return st.Err
}

// release releases and fails the test on error.
func release(t *testing.T, s relay.Store, leases ...relay.Lease) {
	t.Helper()
	if err := s.Release(context.Background(), leases); err != nil {
		t.Fatalf("Release: %v", err)
	}
}

// notClaimed checks that err is Settle's refusal of a lease that no longer holds.
func notClaimed(t *testing.T, what string, err error) {
	t.Helper()
	switch {
	case err == nil:
		t.Errorf("%s succeeded", what)
	case !errors.Is(err, relay.ErrNotClaimed):
		t.Errorf("%s: error %q does not wrap relay.ErrNotClaimed", what, err)
	}
}

// unchanged checks that a delivery is listed exactly as before.
func unchanged(t *testing.T, what string, got, want relay.DeliveryInfo) {
	t.Helper()
	times := func(d *relay.DeliveryInfo) [3]time.Time {
		ts := [3]time.Time{d.NextAt, d.CreatedAt, d.UpdatedAt}
		d.NextAt, d.CreatedAt, d.UpdatedAt = time.Time{}, time.Time{}, time.Time{}
		return ts
	}
	g, w := got, want
	gt, wt := times(&g), times(&w)
	same := g == w
	for i := range gt {
		same = same && gt[i].Equal(wt[i])
	}
	if !same {
		t.Errorf("%s changed the delivery:\n got %+v\nwant %+v", what, got, want)
	}
}

// sameTime checks two times for the same instant.
func sameTime(t *testing.T, what string, got, want time.Time) {
	t.Helper()
	if !got.Equal(want) {
		t.Errorf("%s = %v, want %v", what, got, want)
	}
}

// ids lists the ids of deliveries.
func ids(ds []relay.DeliveryInfo) []int64 {
	var out []int64
	for _, d := range ds {
		out = append(out, d.ID)
	}
	return out
}

func testAccepted(t *testing.T, s relay.Store) {
	batch := []*relay.Ingest{
		ev("m1", "p1", replicate.Starting, 0),
		ev("m2", "p2", replicate.Processing, 0),
		ev("m3", "p3", replicate.Succeeded, 0),
	}
	for _, in := range batch {
		in.Outcome, in.Created = relay.Stale, 7 // Ingest must overwrite what it finds
	}
	ingest(t, s, batch...)
	wantResults(t, batch, accepted, accepted, accepted)
	if ds := list(t, s, ""); len(ds) != 0 {
		t.Errorf("events without delivery specs created %d deliveries", len(ds))
	}
	if err := s.Ingest(context.Background(), nil); err != nil {
		t.Errorf("Ingest(empty batch): %v", err)
	}
}

func testDuplicateAcrossBatches(t *testing.T, s relay.Store) {
	wantResults(t, ingest(t, s, ev("m1", "p1", replicate.Processing, 0)), accepted)
	// A retry of m1 may match other rules by now (the config changed); it still creates nothing.
	wantResults(t, ingest(t, s,
		ev("m1", "p1", replicate.Processing, time.Second, spec("r", "n")),
		ev("m2", "p1", replicate.Processing, time.Second),
	), duplicate, accepted)
	wantResults(t, ingest(t, s, ev("m2", "p1", replicate.Processing, 2*time.Second)), duplicate)
	if ds := list(t, s, ""); len(ds) != 0 {
		t.Errorf("a duplicate created %d deliveries", len(ds))
	}
}

func testDuplicateWithinBatch(t *testing.T, s relay.Store) {
	batch := ingest(t, s,
		ev("m1", "p1", replicate.Succeeded, 0, spec("r", "a")),
		ev("m1", "p1", replicate.Succeeded, 0, spec("r", "b")),
		ev("m2", "p2", replicate.Processing, 0),
		ev("m2", "p2", replicate.Processing, 0),
	)
	wantResults(t, batch, created(1), duplicate, accepted, duplicate)
	ds := list(t, s, "")
	if len(ds) != 1 || ds[0].Notifier != "a" {
		t.Errorf("deliveries = %+v, want the one for notifier a", ds)
	}
}

func testStages(t *testing.T, s relay.Store) {
	type step struct {
		status replicate.Status
		want   relay.Outcome
	}
	tests := []struct {
		name    string
		steps   []step
		inBatch bool // all steps in one batch rather than one batch each
	}{
		{"lifecycle in order", []step{
			{replicate.Starting, relay.Accepted},
			{replicate.Processing, relay.Accepted},
			{replicate.Succeeded, relay.Accepted},
		}, false},
		{"processing after terminal", []step{
			{replicate.Failed, relay.Accepted},
			{replicate.Processing, relay.Stale},
		}, false},
		{"starting after terminal", []step{
			{replicate.Canceled, relay.Accepted},
			{replicate.Starting, relay.Stale},
		}, false},
		{"starting after processing", []step{
			{replicate.Processing, relay.Accepted},
			{replicate.Starting, relay.Stale},
			{replicate.Processing, relay.Accepted},
		}, false},
		{"same stage in several messages", []step{
			{replicate.Processing, relay.Accepted},
			{replicate.Processing, relay.Accepted},
			{replicate.Succeeded, relay.Accepted},
			{replicate.Succeeded, relay.Accepted},
		}, false},
		{"skipping stages", []step{
			{replicate.Succeeded, relay.Accepted},
		}, false},
		{"stale within one batch", []step{
			{replicate.Processing, relay.Accepted},
			{replicate.Aborted, relay.Accepted},
			{replicate.Processing, relay.Stale},
			{replicate.Starting, relay.Stale},
		}, true},
	}
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			subject := fmt.Sprintf("p%d", i)
			var batch []*relay.Ingest
			var want []result
			for j, st := range tt.steps {
				in := ev(fmt.Sprintf("%s-m%d", subject, j), subject, st.status, time.Duration(j)*time.Second)
				if !tt.inBatch {
					ingest(t, s, in)
				}
				batch = append(batch, in)
				want = append(want, result{st.want, 0})
			}
			if tt.inBatch {
				ingest(t, s, batch...)
			}
			wantResults(t, batch, want...)
		})
	}

	t.Run("subjects are independent", func(t *testing.T) {
		wantResults(t, ingest(t, s,
			ev("q1-m1", "q1", replicate.Succeeded, 0),
			ev("q2-m1", "q2", replicate.Starting, 0),
		), accepted, accepted)
		// A training and a prediction may share an id; their stages are apart.
		training := ev("q1-m2", "q1", replicate.Processing, time.Second)
		training.Kind = relay.KindTraining
		wantResults(t, ingest(t, s, training), accepted)
	})
}

func testStaleCreatesNothing(t *testing.T, s relay.Store) {
	wantResults(t, ingest(t, s, ev("m1", "p1", replicate.Succeeded, 0, spec("done", "slack"))), created(1))
	batch := ingest(t, s,
		ev("m2", "p1", replicate.Processing, time.Second, spec("progress", "slack")),
		ev("m3", "p1", replicate.Starting, time.Second, spec("progress", "slack")),
	)
	wantResults(t, batch, stale, stale)
	ds := list(t, s, "")
	if len(ds) != 1 || ds[0].Rule != "done" {
		t.Errorf("deliveries = %+v, want only the one for rule done", ds)
	}
	// The stale messages were recorded: their retries are duplicates.
	wantResults(t, ingest(t, s, ev("m2", "p1", replicate.Processing, 2*time.Second)), duplicate)
}

func testTerminalInTwoMessages(t *testing.T, s relay.Store) {
	specs := []relay.DeliverySpec{spec("done", "slack"), spec("done", "email")}
	wantResults(t, ingest(t, s, ev("m1", "p1", replicate.Succeeded, 0, specs...)), created(2))
	wantResults(t, ingest(t, s, ev("m2", "p1", replicate.Succeeded, time.Second, specs...)), created(0))
	// Both in one batch, for a second subject.
	wantResults(t, ingest(t, s,
		ev("m3", "p2", replicate.Failed, 0, specs...),
		ev("m4", "p2", replicate.Failed, 0, specs...),
	), created(2), created(0))

	ds := list(t, s, "")
	if len(ds) != 4 {
		t.Fatalf("%d deliveries, want 4: %+v", len(ds), ds)
	}
	for _, d := range ds {
		if want := map[string]string{"p1": "m1", "p2": "m3"}[d.SubjectID]; d.MessageID != want {
			t.Errorf("delivery %d of %s refers to message %s, want %s", d.ID, d.SubjectID, d.MessageID, want)
		}
	}
}

func testSeparateDeliveries(t *testing.T, s relay.Store) {
	wantResults(t, ingest(t, s, ev("m1", "p1", replicate.Succeeded, 0, spec("r1", "n1"))), created(1))
	// The same transition: only the rules and notifiers not seen yet make deliveries.
	wantResults(t, ingest(t, s,
		ev("m2", "p1", replicate.Succeeded, 0, spec("r1", "n1"), spec("r2", "n1"), spec("r1", "n2")),
	), created(2))
	// Another subject, another kind, another status: each its own transition.
	training := ev("m3", "p1", replicate.Succeeded, 0, spec("r1", "n1"))
	training.Kind = relay.KindTraining
	wantResults(t, ingest(t, s,
		ev("m4", "p2", replicate.Succeeded, 0, spec("r1", "n1")),
		training,
		ev("m5", "p3", replicate.Processing, 0, spec("r1", "n1")),
		ev("m6", "p3", replicate.Succeeded, 0, spec("r1", "n1")),
	), created(1), created(1), created(1), created(1))
	// One event asking twice for the same rule and notifier gets one delivery.
	wantResults(t, ingest(t, s, ev("m7", "p4", replicate.Failed, 0, spec("r1", "n1"), spec("r1", "n1"))), created(1))

	type key struct {
		kind           relay.Kind
		subject        string
		status         replicate.Status
		rule, notifier string
	}
	got := map[key]int{}
	for _, d := range list(t, s, "") {
		got[key{d.Kind, d.SubjectID, d.Status, d.Rule, d.Notifier}]++
	}
	want := map[key]int{
		{relay.KindPrediction, "p1", replicate.Succeeded, "r1", "n1"}:  1,
		{relay.KindPrediction, "p1", replicate.Succeeded, "r2", "n1"}:  1,
		{relay.KindPrediction, "p1", replicate.Succeeded, "r1", "n2"}:  1,
		{relay.KindPrediction, "p2", replicate.Succeeded, "r1", "n1"}:  1,
		{relay.KindTraining, "p1", replicate.Succeeded, "r1", "n1"}:    1,
		{relay.KindPrediction, "p3", replicate.Processing, "r1", "n1"}: 1,
		{relay.KindPrediction, "p3", replicate.Succeeded, "r1", "n1"}:  1,
		{relay.KindPrediction, "p4", replicate.Failed, "r1", "n1"}:     1,
	}
	if !maps.Equal(got, want) {
		t.Errorf("deliveries by key = %v\nwant %v", got, want)
	}
}

func testEventStoredOnlyWithDeliveries(t *testing.T, s relay.Store) {
	// Events without deliveries leave nothing to list or claim.
	ingest(t, s,
		ev("m0", "p1", replicate.Starting, 0),
		ev("m1", "p1", replicate.Processing, time.Second),
	)
	if ds := list(t, s, ""); len(ds) != 0 {
		t.Fatalf("deliveries = %+v, want none", ds)
	}
	if ds := claim(t, s, at(time.Hour), time.Minute, 10); len(ds) != 0 {
		t.Fatalf("claimed %+v, want nothing", ds)
	}
	// The delivery carries the message that created it, not an earlier or a later one.
	first := ev("m2", "p1", replicate.Succeeded, 2*time.Second, spec("done", "slack"))
	later := ev("m3", "p1", replicate.Succeeded, 3*time.Second, spec("done", "slack"))
	later.Body = []byte(`{"later":true}`)
	later.Meta = map[string]string{"later": "yes"}
	wantResults(t, ingest(t, s, first), created(1))
	wantResults(t, ingest(t, s, later), created(0))
	d := claimOne(t, s, at(time.Hour))
	if d.MessageID != "m2" || !bytes.Equal(d.Body, first.Body) || !maps.Equal(d.Meta, first.Meta) {
		t.Errorf("claimed message %s body %s meta %v, want m2 body %s meta %v",
			d.MessageID, d.Body, d.Meta, first.Body, first.Meta)
	}
	sameTime(t, "ReceivedAt", d.ReceivedAt, first.ReceivedAt)
}

func testClaimReturnsEvent(t *testing.T, s relay.Store) {
	full := ev("m1", "t1", replicate.Succeeded, 0, spec("trained", "slack"))
	full.Kind = relay.KindTraining
	full.Meta = map[string]string{"team": "vision", "customId": "123"}
	bare := ev("m2", "p2", replicate.Failed, time.Second, spec("failed", "email"))
	bare.Meta, bare.Body = nil, nil
	ingest(t, s, full, bare)

	ds := claim(t, s, at(time.Minute), time.Minute, 10)
	if len(ds) != 2 {
		t.Fatalf("claimed %d deliveries, want 2", len(ds))
	}
	listed := list(t, s, "")
	if len(listed) != 2 {
		t.Fatalf("listed %d deliveries, want 2", len(listed))
	}
	d := ds[0]
	if d.ID != listed[1].ID {
		t.Errorf("claimed id %d, listed as %d", d.ID, listed[1].ID)
	}
	if d.Rule != "trained" || d.Notifier != "slack" || d.Template != "trained-template" || d.Attempts != 0 {
		t.Errorf("claimed rule %q notifier %q template %q attempts %d, want trained slack trained-template 0",
			d.Rule, d.Notifier, d.Template, d.Attempts)
	}
	if d.MessageID != "m1" || d.Kind != relay.KindTraining {
		t.Errorf("claimed message %q kind %q, want m1 training", d.MessageID, d.Kind)
	}
	if !maps.Equal(d.Meta, full.Meta) {
		t.Errorf("Meta = %v, want %v", d.Meta, full.Meta)
	}
	if !bytes.Equal(d.Body, full.Body) {
		t.Errorf("Body = %s, want %s", d.Body, full.Body)
	}
	sameTime(t, "ReceivedAt", d.ReceivedAt, full.ReceivedAt)
	sameTime(t, "CreatedAt", d.CreatedAt, full.ReceivedAt)

	if d := ds[1]; d.MessageID != "m2" || len(d.Meta) != 0 || len(d.Body) != 0 {
		t.Errorf("second delivery: message %q meta %v body %q, want m2 with no meta or body", d.MessageID, d.Meta, d.Body)
	}
	for _, d := range list(t, s, "") {
		if d.State != relay.Sending {
			t.Errorf("delivery %d is %s after Claim, want sending", d.ID, d.State)
		}
	}
}

func testClaimRespectsNextAt(t *testing.T, s relay.Store) {
	ingest(t, s, ev("m1", "p1", replicate.Succeeded, time.Minute, spec("r", "n")))
	// A delivery falls due when its event was received.
	if ds := claim(t, s, at(59*time.Second), time.Minute, 10); len(ds) != 0 {
		t.Errorf("claimed %d deliveries before they were due", len(ds))
	}
	d := claimOne(t, s, at(time.Minute))
	settle(t, s, d.Lease(), relay.Settlement{
		State: relay.Pending, Attempts: 1, NextAt: at(10 * time.Minute), LastError: "503", At: at(2 * time.Minute),
	})
	if ds := claim(t, s, at(10*time.Minute-time.Second), time.Minute, 10); len(ds) != 0 {
		t.Errorf("claimed %d deliveries before their retry was due", len(ds))
	}
	if got := claimOne(t, s, at(10*time.Minute)); got.ID != d.ID || got.Attempts != 1 {
		t.Errorf("claimed %d with %d attempts, want %d with 1", got.ID, got.Attempts, d.ID)
	}
}

func testClaimRespectsLimitAndOrder(t *testing.T, s relay.Store) {
	for i := range 5 {
		ingest(t, s, ev(fmt.Sprintf("m%d", i), fmt.Sprintf("p%d", i), replicate.Succeeded,
			time.Duration(i)*time.Second, spec("r", "n")))
	}
	all := ids(list(t, s, ""))
	slices.Reverse(all) // oldest first
	now := at(time.Minute)
	for _, limit := range []int{0, -1} {
		if ds := claim(t, s, now, time.Hour, limit); len(ds) != 0 {
			t.Errorf("Claim with limit %d claimed %d deliveries, want none", limit, len(ds))
		}
	}
	var got [][]int64
	leases := map[int64]relay.Lease{}
	for range 4 {
		ds := claim(t, s, now, time.Hour, 2)
		got = append(got, idsOf(ds))
		maps.Copy(leases, leasesOf(ds))
	}
	want := [][]int64{all[0:2], all[2:4], all[4:5], nil}
	for i := range want {
		if !slices.Equal(got[i], want[i]) {
			t.Errorf("claim %d = %v, want %v (all claims: %v)", i, got[i], want[i], got)
		}
	}

	// Retries are ordered by when they fall due, not by age.
	retry := map[int64]time.Duration{all[0]: 30 * time.Minute, all[1]: 10 * time.Minute, all[2]: 20 * time.Minute}
	for id, d := range retry {
		settle(t, s, leases[id], relay.Settlement{State: relay.Pending, Attempts: 1, NextAt: at(d), LastError: "x", At: now})
	}
	if got, want := claimIDs(t, s, at(25*time.Minute), time.Hour, 10), []int64{all[1], all[2]}; !slices.Equal(got, want) {
		t.Errorf("claim at +25m = %v, want %v", got, want)
	}
	if got, want := claimIDs(t, s, at(30*time.Minute), time.Minute, 10), []int64{all[0]}; !slices.Equal(got, want) {
		t.Errorf("claim at +30m = %v, want %v", got, want)
	}
}

func testClaimLeases(t *testing.T, s relay.Store) {
	ingest(t, s, ev("m1", "p1", replicate.Succeeded, 0, spec("r", "n")))
	for _, lease := range []time.Duration{0, -time.Minute} {
		if ds, err := s.Claim(context.Background(), t0, lease, 10); err == nil {
			t.Errorf("Claim with lease %v succeeded with %d deliveries, want an error", lease, len(ds))
		}
	}
	d := claimOne(t, s, t0)
	if got := info(t, s, d.ID).State; got != relay.Sending {
		t.Errorf("state after Claim = %s, want sending", got)
	}
	sameTime(t, "LeaseUntil", d.LeaseUntil, at(time.Minute))
	if l := d.Lease(); l.ID != d.ID || !l.Until.Equal(d.LeaseUntil) {
		t.Errorf("Lease() = %+v, want {%d %v}", l, d.ID, d.LeaseUntil)
	}
	for _, now := range []time.Time{t0, at(30 * time.Second), at(time.Minute - time.Millisecond)} {
		if ds := claim(t, s, now, time.Minute, 10); len(ds) != 0 {
			t.Errorf("Claim at +%v handed out a leased delivery again", now.Sub(t0))
		}
	}
	// The claimant died: once the lease expires the delivery is handed out again, attempts unchanged.
	again := claimOne(t, s, at(time.Minute))
	if again.ID != d.ID || again.Attempts != 0 {
		t.Errorf("reclaimed %d with %d attempts, want %d with 0", again.ID, again.Attempts, d.ID)
	}
	sameTime(t, "LeaseUntil of the second claim", again.LeaseUntil, at(2*time.Minute))
	// And the new lease holds in turn.
	if ds := claim(t, s, at(time.Minute+30*time.Second), time.Minute, 10); len(ds) != 0 {
		t.Errorf("Claim during the second lease handed the delivery out again")
	}
}

func testClaimConcurrent(t *testing.T, s relay.Store) {
	const n = 60
	var batch []*relay.Ingest
	for i := range n {
		batch = append(batch, ev(fmt.Sprintf("m%d", i), fmt.Sprintf("p%d", i), replicate.Succeeded, 0, spec("r", "n")))
	}
	ingest(t, s, batch...)

	var (
		mu      sync.Mutex
		claimed = map[int64]int{}
		wg      sync.WaitGroup
	)
	for range 6 {
		wg.Go(func() {
			for {
				ds, err := s.Claim(context.Background(), at(time.Minute), time.Hour, 7)
				if err != nil {
					t.Errorf("Claim: %v", err)
					return
				}
				if len(ds) == 0 {
					return
				}
				mu.Lock()
				for _, d := range ds {
					claimed[d.ID]++
				}
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	if len(claimed) != n {
		t.Errorf("%d deliveries claimed, want %d", len(claimed), n)
	}
	for id, c := range claimed {
		if c != 1 {
			t.Errorf("delivery %d claimed %d times", id, c)
		}
	}
}

func testSettleSent(t *testing.T, s relay.Store) {
	ingest(t, s, ev("m1", "p1", replicate.Succeeded, 0, spec("r", "n")))
	d := claimOne(t, s, t0)
	settle(t, s, d.Lease(), relay.Settlement{
		State: relay.Pending, Attempts: 1, NextAt: at(time.Minute), LastError: "timeout", At: at(time.Second),
	})
	retry := claimOne(t, s, at(time.Minute))
	settle(t, s, retry.Lease(), relay.Settlement{State: relay.Sent, Attempts: 1, Ref: "1712345.000100", At: at(61 * time.Second)})

	got := info(t, s, d.ID)
	if got.State != relay.Sent || got.Attempts != 1 || got.LastError != "" || got.Ref != "1712345.000100" {
		t.Errorf("after Sent: state %s attempts %d error %q ref %q, want sent 1 \"\" 1712345.000100",
			got.State, got.Attempts, got.LastError, got.Ref)
	}
	sameTime(t, "UpdatedAt", got.UpdatedAt, at(61*time.Second))
	sameTime(t, "CreatedAt", got.CreatedAt, t0)
	if ds := claim(t, s, at(24*time.Hour), time.Minute, 10); len(ds) != 0 {
		t.Errorf("a sent delivery was claimed again")
	}
}

func testSettlePending(t *testing.T, s relay.Store) {
	ingest(t, s, ev("m1", "p1", replicate.Succeeded, 0, spec("r", "n")))
	d := claimOne(t, s, t0)
	settle(t, s, d.Lease(), relay.Settlement{
		State: relay.Pending, Attempts: 1, NextAt: at(time.Minute), LastError: "503 Service Unavailable", At: at(time.Second),
	})
	got := info(t, s, d.ID)
	if got.State != relay.Pending || got.Attempts != 1 || got.LastError != "503 Service Unavailable" {
		t.Errorf("after Pending: state %s attempts %d error %q, want pending 1 \"503 Service Unavailable\"",
			got.State, got.Attempts, got.LastError)
	}
	sameTime(t, "NextAt", got.NextAt, at(time.Minute))
	sameTime(t, "UpdatedAt", got.UpdatedAt, at(time.Second))

	// The retry releases the old lease: due at NextAt, long before the old lease would end.
	if ds := claim(t, s, at(59*time.Second), time.Minute, 10); len(ds) != 0 {
		t.Errorf("claimed before NextAt")
	}
	again := claimOne(t, s, at(time.Minute))
	if again.Attempts != 1 {
		t.Errorf("retry claimed with %d attempts, want 1", again.Attempts)
	}
	settle(t, s, again.Lease(), relay.Settlement{
		State: relay.Pending, Attempts: 2, NextAt: at(5 * time.Minute), LastError: "429", At: at(61 * time.Second),
	})
	if got := info(t, s, d.ID); got.Attempts != 2 || got.LastError != "429" || !got.NextAt.Equal(at(5*time.Minute)) {
		t.Errorf("after second Pending: attempts %d error %q next %v, want 2 429 +5m", got.Attempts, got.LastError, got.NextAt.Sub(t0))
	}
}

// A delivery sent back to wait without a new error (its turn at a paced destination) keeps the
// error of its last failed attempt, for operators to see.
func testSettlePendingKeepsLastError(t *testing.T, s relay.Store) {
	ingest(t, s, ev("m1", "p1", replicate.Succeeded, 0, spec("r", "n")))
	d := claimOne(t, s, t0)
	settle(t, s, d.Lease(), relay.Settlement{
		State: relay.Pending, Attempts: 1, NextAt: at(time.Minute), LastError: "503 Service Unavailable", At: at(time.Second),
	})
	again := claimOne(t, s, at(time.Minute))
	settle(t, s, again.Lease(), relay.Settlement{State: relay.Pending, Attempts: 1, NextAt: at(2 * time.Minute), At: at(time.Minute)})
	if got := info(t, s, d.ID); got.State != relay.Pending || got.Attempts != 1 || got.LastError != "503 Service Unavailable" {
		t.Errorf("after a Pending without error: state %s attempts %d error %q, want pending 1 with the earlier error",
			got.State, got.Attempts, got.LastError)
	}
}

func testSettleDead(t *testing.T, s relay.Store) {
	ingest(t, s, ev("m1", "p1", replicate.Succeeded, 0, spec("r", "n")))
	d := claimOne(t, s, t0)
	settle(t, s, d.Lease(), relay.Settlement{State: relay.Dead, Attempts: 3, LastError: "400 invalid_blocks", At: at(time.Second)})
	got := info(t, s, d.ID)
	if got.State != relay.Dead || got.Attempts != 3 || got.LastError != "400 invalid_blocks" || got.Ref != "" {
		t.Errorf("after Dead: state %s attempts %d error %q ref %q, want dead 3 \"400 invalid_blocks\" \"\"",
			got.State, got.Attempts, got.LastError, got.Ref)
	}
	sameTime(t, "UpdatedAt", got.UpdatedAt, at(time.Second))
	if ds := claim(t, s, at(24*time.Hour), time.Minute, 10); len(ds) != 0 {
		t.Errorf("a dead delivery was claimed again")
	}
	if ds := list(t, s, relay.Dead); len(ds) != 1 || ds[0].ID != d.ID {
		t.Errorf("Deliveries(dead) = %v, want [%d]", ids(ds), d.ID)
	}
}

func testSettleNotClaimed(t *testing.T, s relay.Store) {
	ctx := context.Background()
	ingest(t, s, ev("m1", "p1", replicate.Succeeded, 0, spec("r", "a"), spec("r", "b")))
	ds := list(t, s, "")
	sent, pending := ds[1].ID, ds[0].ID

	missing := relay.Lease{ID: sent + pending + 1000, Until: at(time.Minute)}
	notClaimed(t, "Settle of a delivery that does not exist",
		SettleOne(ctx, s, missing, relay.Settlement{State: relay.Sent, At: t0}))
	notClaimed(t, "Settle of a pending delivery that was never claimed",
		SettleOne(ctx, s, relay.Lease{ID: pending, Until: at(time.Minute)}, relay.Settlement{State: relay.Sent, Ref: "x", At: t0}))
	if got := info(t, s, pending); got.State != relay.Pending || got.Ref != "" {
		t.Errorf("unclaimed delivery became %s with ref %q, want unchanged", got.State, got.Ref)
	}

	// A claimant whose lease expired must not undo the settlement of the one that took over.
	first := claim(t, s, t0, time.Minute, 1)
	if got := idsOf(first); !slices.Equal(got, []int64{sent}) {
		t.Fatalf("claimed %v, want [%d]", got, sent)
	}
	second := claim(t, s, at(time.Minute), time.Minute, 1)
	if got := idsOf(second); !slices.Equal(got, []int64{sent}) {
		t.Fatalf("claimed %v after the lease expired, want [%d]", got, sent)
	}
	settle(t, s, second[0].Lease(), relay.Settlement{State: relay.Sent, Ref: "ref-1", At: at(61 * time.Second)})
	late := relay.Settlement{State: relay.Pending, Attempts: 1, NextAt: at(2 * time.Minute), LastError: "late", At: at(62 * time.Second)}
	notClaimed(t, "Settle under an expired lease of a delivery since sent", SettleOne(ctx, s, first[0].Lease(), late))
	// Nor may a second settlement under one lease undo the first.
	notClaimed(t, "Settle of a delivery already sent", SettleOne(ctx, s, second[0].Lease(), late))
	if got := info(t, s, sent); got.State != relay.Sent || got.Ref != "ref-1" || got.LastError != "" {
		t.Errorf("sent delivery became %s ref %q error %q, want unchanged", got.State, got.Ref, got.LastError)
	}
}

func testSettleWithExpiredLease(t *testing.T, s relay.Store) {
	ctx := context.Background()
	ingest(t, s, ev("m1", "p1", replicate.Succeeded, 0, spec("r", "a"), spec("r", "b")))
	first := claim(t, s, t0, time.Second, 10)
	if len(first) != 2 {
		t.Fatalf("claimed %d, want 2", len(first))
	}
	stale, slow := first[0], first[1]
	sameTime(t, "LeaseUntil", stale.LeaseUntil, at(time.Second))

	// A claimant whose lease expired while nobody took the delivery over still holds it.
	settle(t, s, slow.Lease(), relay.Settlement{State: relay.Sent, Ref: "slow", At: at(time.Second)})
	if got := info(t, s, slow.ID); got.State != relay.Sent || got.Ref != "slow" {
		t.Errorf("after Settle under an expired lease nobody took over: %s ref %q, want sent slow", got.State, got.Ref)
	}

	// The other delivery is taken over once its lease has expired, under a later lease.
	second := claimOne(t, s, at(time.Second))
	if second.ID != stale.ID || second.Attempts != 0 {
		t.Fatalf("claimed %d with %d attempts, want %d with 0", second.ID, second.Attempts, stale.ID)
	}
	sameTime(t, "LeaseUntil of the second claim", second.LeaseUntil, at(61*time.Second))

	// The first claimant comes back: whatever it reports, the new claim stands.
	before := info(t, s, stale.ID)
	for _, st := range []relay.Settlement{
		{State: relay.Sent, Ref: "stale", At: at(2 * time.Second)},
		{State: relay.Pending, Attempts: 1, NextAt: at(3 * time.Second), LastError: "stale", At: at(2 * time.Second)},
		{State: relay.Dead, Attempts: 1, LastError: "stale", At: at(2 * time.Second)},
	} {
		notClaimed(t, fmt.Sprintf("Settle(%s) under the expired first lease", st.State), SettleOne(ctx, s, stale.Lease(), st))
	}
	got := info(t, s, stale.ID)
	unchanged(t, "Settle under the expired first lease", got, before)
	if got.State != relay.Sending {
		t.Errorf("state = %s, want still sending under the second claim", got.State)
	}
	if ds := claim(t, s, at(60*time.Second), time.Minute, 10); len(ds) != 0 {
		t.Errorf("Claim during the second lease handed the delivery out again")
	}

	// The second claimant's settlement is recorded.
	settle(t, s, second.Lease(), relay.Settlement{State: relay.Sent, Ref: "fresh", At: at(3 * time.Second)})
	got = info(t, s, stale.ID)
	if got.State != relay.Sent || got.Ref != "fresh" || got.Attempts != 0 || got.LastError != "" {
		t.Errorf("after Settle under the second lease: state %s ref %q attempts %d error %q, want sent fresh 0 \"\"",
			got.State, got.Ref, got.Attempts, got.LastError)
	}
	sameTime(t, "UpdatedAt", got.UpdatedAt, at(3*time.Second))
	notClaimed(t, "Settle under the expired first lease after the second settled",
		SettleOne(ctx, s, stale.Lease(), relay.Settlement{State: relay.Dead, Attempts: 1, LastError: "stale", At: at(4 * time.Second)}))
	unchanged(t, "Settle under the expired first lease after the second settled", info(t, s, stale.ID), got)
}

func testRelease(t *testing.T, s relay.Store) {
	ingest(t, s, ev("m1", "p1", replicate.Succeeded, 0, spec("r", "a"), spec("r", "b")))
	first := claim(t, s, t0, time.Minute, 10)
	if len(first) != 2 {
		t.Fatalf("claimed %d, want 2", len(first))
	}
	a, b := first[0].ID, first[1].ID
	settle(t, s, first[0].Lease(), relay.Settlement{State: relay.Pending, Attempts: 1, NextAt: at(time.Minute), LastError: "x", At: at(time.Second)})
	settle(t, s, first[1].Lease(), relay.Settlement{State: relay.Sent, Ref: "ref-b", At: at(time.Second)})
	retry := claimOne(t, s, at(time.Minute))

	// The retry's lease is released; the leases of claims already settled are skipped.
	release(t, s, first[0].Lease(), first[1].Lease(), retry.Lease())
	got := info(t, s, a)
	if got.State != relay.Pending || got.Attempts != 1 {
		t.Errorf("released delivery is %s with %d attempts, want pending with 1", got.State, got.Attempts)
	}
	sameTime(t, "NextAt after Release", got.NextAt, at(time.Minute))
	if got := info(t, s, b); got.State != relay.Sent || got.Ref != "ref-b" {
		t.Errorf("Release changed a sent delivery to %s ref %q", got.State, got.Ref)
	}
	// Due at once: long before the released lease would have expired.
	again := claimOne(t, s, at(time.Minute))
	if again.ID != a || again.Attempts != 1 {
		t.Errorf("claimed %d with %d attempts after Release, want %d with 1", again.ID, again.Attempts, a)
	}
	if err := s.Release(context.Background(), nil); err != nil {
		t.Errorf("Release(nil): %v", err)
	}
}

func testReleaseWithExpiredLease(t *testing.T, s relay.Store) {
	ingest(t, s, ev("m1", "p1", replicate.Succeeded, 0, spec("r", "n")))
	first := claimOne(t, s, t0)
	// The first claimant stalls; its lease expires and another takes the delivery over.
	second := claimOne(t, s, at(time.Minute))
	if second.ID != first.ID {
		t.Fatalf("claimed %d, want %d", second.ID, first.ID)
	}
	sameTime(t, "LeaseUntil of the second claim", second.LeaseUntil, at(2*time.Minute))

	// The first claimant comes back and gives the delivery up: the new claim stands.
	before := info(t, s, first.ID)
	release(t, s, first.Lease())
	got := info(t, s, first.ID)
	unchanged(t, "Release under the expired first lease", got, before)
	if got.State != relay.Sending {
		t.Errorf("state = %s, want still sending under the second claim", got.State)
	}
	if ds := claim(t, s, at(90*time.Second), time.Minute, 10); len(ds) != 0 {
		t.Errorf("Claim during the second lease handed the delivery out again")
	}
	// It is still the second claimant's to settle.
	settle(t, s, second.Lease(), relay.Settlement{
		State: relay.Pending, Attempts: 1, NextAt: at(3 * time.Minute), LastError: "503", At: at(91 * time.Second),
	})
	if got := info(t, s, first.ID); got.State != relay.Pending || got.Attempts != 1 || got.LastError != "503" {
		t.Errorf("after Settle under the second lease: %s attempts %d error %q, want pending 1 503",
			got.State, got.Attempts, got.LastError)
	}

	// Once it is claimed a third time, neither old lease releases it.
	third := claimOne(t, s, at(3*time.Minute))
	before = info(t, s, third.ID)
	release(t, s, first.Lease(), second.Lease())
	unchanged(t, "Release under the first and second leases", info(t, s, third.ID), before)
	if ds := claim(t, s, at(3*time.Minute+30*time.Second), time.Minute, 10); len(ds) != 0 {
		t.Errorf("Claim during the third lease handed the delivery out again")
	}
	release(t, s, third.Lease())
	if got := info(t, s, third.ID); got.State != relay.Pending || got.Attempts != 1 {
		t.Errorf("after Release under the third lease: %s with %d attempts, want pending with 1", got.State, got.Attempts)
	}
}

func testDeliveries(t *testing.T, s relay.Store) {
	ingest(t, s, ev("m1", "p1", replicate.Succeeded, 0, spec("r1", "slack")))
	training := ev("m2", "t2", replicate.Failed, time.Second, spec("r2", "email"))
	training.Kind = relay.KindTraining
	ingest(t, s, training)
	ingest(t, s, ev("m3", "p3", replicate.Processing, 2*time.Second, spec("r3", "discord")))

	all := list(t, s, "")
	if len(all) != 3 {
		t.Fatalf("%d deliveries, want 3", len(all))
	}
	if all[0].MessageID != "m3" || all[1].MessageID != "m2" || all[2].MessageID != "m1" {
		t.Errorf("order = %s %s %s, want newest first: m3 m2 m1", all[0].MessageID, all[1].MessageID, all[2].MessageID)
	}
	d := all[1]
	if d.Rule != "r2" || d.Notifier != "email" || d.Kind != relay.KindTraining || d.SubjectID != "t2" ||
		d.Status != replicate.Failed || d.State != relay.Pending || d.Attempts != 0 || d.LastError != "" || d.Ref != "" {
		t.Errorf("listed %+v, want r2 email training t2 failed pending", d)
	}
	sameTime(t, "CreatedAt", d.CreatedAt, at(time.Second))
	sameTime(t, "NextAt", d.NextAt, at(time.Second))

	oldest := all[2].ID
	claimed := claim(t, s, at(time.Minute), time.Minute, 1)
	if got := idsOf(claimed); !slices.Equal(got, []int64{oldest}) {
		t.Fatalf("claimed %v, want [%d]", got, oldest)
	}
	settle(t, s, claimed[0].Lease(), relay.Settlement{State: relay.Sent, Ref: "r", At: at(time.Minute)})

	for _, tt := range []struct {
		state relay.State
		limit int
		want  []int64
	}{
		{"", 2, []int64{all[0].ID, all[1].ID}},
		{"", 0, []int64{all[0].ID, all[1].ID, all[2].ID}},
		{"", -1, []int64{all[0].ID, all[1].ID, all[2].ID}},
		{relay.Pending, 0, []int64{all[0].ID, all[1].ID}},
		{relay.Sent, 10, []int64{oldest}},
		{relay.Pending, 10, []int64{all[0].ID, all[1].ID}},
		{relay.Pending, 1, []int64{all[0].ID}},
		{relay.Dead, 10, nil},
	} {
		got, err := s.Deliveries(context.Background(), tt.state, tt.limit)
		if err != nil {
			t.Fatalf("Deliveries(%q, %d): %v", tt.state, tt.limit, err)
		}
		if !slices.Equal(ids(got), tt.want) {
			t.Errorf("Deliveries(%q, %d) = %v, want %v", tt.state, tt.limit, ids(got), tt.want)
		}
	}
}

func testPruneSeen(t *testing.T, s relay.Store) {
	ingest(t, s,
		ev("old-1", "p-old", replicate.Succeeded, 0),
		ev("new-1", "p-new", replicate.Succeeded, 2*time.Hour),
	)
	if err := s.Prune(context.Background(), at(time.Hour), at(time.Hour)); err != nil {
		t.Fatalf("Prune: %v", err)
	}
	wantResults(t, ingest(t, s,
		ev("old-1", "p-x", replicate.Processing, 3*time.Hour),   // the id is forgotten
		ev("new-1", "p-y", replicate.Processing, 3*time.Hour),   // the id is kept
		ev("old-2", "p-old", replicate.Processing, 3*time.Hour), // the stage is forgotten
		ev("new-2", "p-new", replicate.Processing, 3*time.Hour), // the stage is kept
	), accepted, duplicate, accepted, stale)
}

func testPruneDeliveries(t *testing.T, s relay.Store) {
	ctx := context.Background()
	// Two deliveries of one event, so that pruning one of them must keep the event.
	shared := ev("m1", "p1", replicate.Succeeded, 0, spec("r", "sent-old"), spec("r", "pending"))
	ingest(t, s, shared,
		ev("m2", "p2", replicate.Succeeded, 0, spec("r", "dead-old")),
		ev("m3", "p3", replicate.Succeeded, 0, spec("r", "sent-new")),
		ev("m4", "p4", replicate.Succeeded, 0, spec("r", "retrying")),
		ev("m5", "p5", replicate.Succeeded, 0, spec("r", "sending")),
	)
	byNotifier := map[string]int64{}
	for _, d := range list(t, s, "") {
		byNotifier[d.Notifier] = d.ID
	}
	claimed := leasesOf(claim(t, s, t0, time.Hour, 10))
	if len(claimed) != 6 {
		t.Fatalf("claimed %d, want 6", len(claimed))
	}
	lease := func(notifier string) relay.Lease { return claimed[byNotifier[notifier]] }
	settle(t, s, lease("sent-old"), relay.Settlement{State: relay.Sent, Ref: "x", At: at(time.Minute)})
	settle(t, s, lease("dead-old"), relay.Settlement{State: relay.Dead, Attempts: 1, LastError: "x", At: at(time.Minute)})
	settle(t, s, lease("sent-new"), relay.Settlement{State: relay.Sent, Ref: "y", At: at(3 * time.Hour)})
	settle(t, s, lease("retrying"), relay.Settlement{
		State: relay.Pending, Attempts: 1, NextAt: at(5 * time.Hour), LastError: "x", At: at(time.Minute),
	})
	release(t, s, lease("pending"))

	if err := s.Prune(ctx, t0, at(2*time.Hour)); err != nil {
		t.Fatalf("Prune: %v", err)
	}
	var left []string
	for _, d := range list(t, s, "") {
		left = append(left, d.Notifier)
	}
	slices.Sort(left)
	if want := []string{"pending", "retrying", "sending", "sent-new"}; !slices.Equal(left, want) {
		t.Errorf("after Prune: %v, want %v", left, want)
	}
	// The pending delivery still has its event, although its sibling was pruned.
	d := claimOne(t, s, at(30*time.Minute))
	if d.ID != byNotifier["pending"] || d.MessageID != "m1" || !bytes.Equal(d.Body, shared.Body) {
		t.Errorf("claimed %d message %q body %s, want %d m1 %s", d.ID, d.MessageID, d.Body, byNotifier["pending"], shared.Body)
	}

	// Pruning everything finished leaves the unfinished alone.
	if err := s.Prune(ctx, at(100*time.Hour), at(100*time.Hour)); err != nil {
		t.Fatalf("Prune: %v", err)
	}
	if got := len(list(t, s, "")); got != 3 {
		t.Errorf("%d deliveries left after pruning all finished ones, want 3", got)
	}
}

func testEnsureSetting(t *testing.T, s relay.Store) {
	ctx := context.Background()
	for _, tt := range []struct{ key, value, want string }{
		{"instance-id", "first", "first"},
		{"instance-id", "second", "first"},
		{"other", "x", "x"},
		{"instance-id", "", "first"},
		{"empty", "", ""},
		{"empty", "y", ""},
	} {
		got, err := s.EnsureSetting(ctx, tt.key, tt.value)
		if err != nil {
			t.Fatalf("EnsureSetting(%q, %q): %v", tt.key, tt.value, err)
		}
		if got != tt.want {
			t.Errorf("EnsureSetting(%q, %q) = %q, want %q", tt.key, tt.value, got, tt.want)
		}
	}

	// Racing writers all end up with the one value that won.
	var (
		wg  sync.WaitGroup
		got = make([]string, 8)
	)
	for i := range got {
		wg.Go(func() {
			v, err := s.EnsureSetting(ctx, "raced", fmt.Sprintf("v%d", i))
			if err != nil {
				t.Errorf("EnsureSetting: %v", err)
			}
			got[i] = v
		})
	}
	wg.Wait()
	for _, v := range got {
		if v != got[0] || v == "" {
			t.Errorf("racing EnsureSetting returned %q, want one value for all", got)
			break
		}
	}
}

func testFailedBatchPersistsNothing(t *testing.T, s relay.Store) {
	batch := func() []*relay.Ingest {
		return []*relay.Ingest{
			ev("m1", "p1", replicate.Processing, 0),
			ev("m2", "p2", replicate.Succeeded, 0, spec("r", "n")),
			ev("m3", "p1", replicate.Succeeded, 0, spec("r", "n")),
		}
	}
	for _, tt := range []struct {
		name string
		ctx  func() (context.Context, context.CancelFunc)
	}{
		{"canceled", func() (context.Context, context.CancelFunc) {
			ctx, cancel := context.WithCancel(context.Background())
			cancel()
			return ctx, cancel
		}},
		{"deadline exceeded", func() (context.Context, context.CancelFunc) {
			return context.WithDeadline(context.Background(), time.Now().Add(-time.Second))
		}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			ctx, cancel := tt.ctx()
			defer cancel()
			if err := s.Ingest(ctx, batch()); err == nil {
				t.Fatalf("Ingest with a %s context succeeded", tt.name)
			}
		})
	}
	if ds := list(t, s, ""); len(ds) != 0 {
		t.Errorf("failed batches left %d deliveries", len(ds))
	}
	wantResults(t, ingest(t, s, batch()...), accepted, created(1), created(1))
}

func testConcurrentIngest(t *testing.T, s relay.Store) {
	const (
		workers  = 6
		batches  = 12
		perBatch = 10
		messages = 150 // message ids shared by all workers
		subjects = 15
	)
	var (
		mu       sync.Mutex
		accepts  = map[string]int{}
		creates  int
		wg       sync.WaitGroup
		seenByID = map[string]bool{}
	)
	for w := range workers {
		wg.Go(func() {
			for b := range batches {
				var batch []*relay.Ingest
				for i := range perBatch {
					// Each worker walks the ids from its own offset, so every id reaches several.
					n := (w*37 + b*perBatch + i) % messages
					msg := fmt.Sprintf("m%d", n)
					// Every message is a terminal event of one of a few subjects, so that the
					// same transition also arrives in different messages at once.
					batch = append(batch, ev(msg, fmt.Sprintf("p%d", n%subjects), replicate.Succeeded, 0, spec("r", "n")))
				}
				if err := s.Ingest(context.Background(), batch); err != nil {
					t.Errorf("Ingest: %v", err)
					return
				}
				mu.Lock()
				for _, in := range batch {
					seenByID[in.MessageID] = true
					if in.Outcome == relay.Accepted {
						accepts[in.MessageID]++
					}
					creates += in.Created
				}
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	for id := range seenByID {
		if accepts[id] != 1 {
			t.Errorf("message %s accepted %d times, want once", id, accepts[id])
		}
	}
	if creates != subjects {
		t.Errorf("Created sums to %d, want %d (one per subject)", creates, subjects)
	}
	if got := len(list(t, s, "")); got != subjects {
		t.Errorf("%d deliveries, want %d", got, subjects)
	}
}

func testPing(t *testing.T, s relay.Store) {
	if err := s.Ping(context.Background()); err != nil {
		t.Errorf("Ping: %v", err)
	}
}

func testSettleBatch(t *testing.T, s relay.Store) {
	ctx := context.Background()
	ingest(t, s, ev("m1", "p1", replicate.Succeeded, 0, spec("r", "a"), spec("r", "b"), spec("r", "c")))
	if first := claim(t, s, t0, time.Second, 10); len(first) != 3 {
		t.Fatalf("claimed %d, want 3", len(first))
	}
	// Every lease expired; a second claimant takes all three over.
	second := claim(t, s, at(2*time.Second), time.Minute, 10)
	if len(second) != 3 {
		t.Fatalf("second claim took %d, want 3", len(second))
	}
	a, b, c := second[0], second[1], second[2]
	oldB := relay.Lease{ID: b.ID, Until: at(time.Second)}

	batch := []*relay.Settlement{
		{Lease: a.Lease(), State: relay.Sent, Ref: "ref-a", At: at(3 * time.Second)},
		{Lease: oldB, State: relay.Sent, Ref: "stale", At: at(3 * time.Second)},
		{Lease: c.Lease(), State: relay.Dead, Attempts: 1, LastError: "400", At: at(3 * time.Second)},
	}
	if err := s.Settle(ctx, batch); err != nil {
		t.Fatalf("Settle(batch): %v", err)
	}
	if batch[0].Err != nil || batch[2].Err != nil {
		t.Errorf("current leases refused: %v, %v", batch[0].Err, batch[2].Err)
	}
	notClaimed(t, "the stale settlement in a batch", batch[1].Err)
	if got := info(t, s, a.ID); got.State != relay.Sent || got.Ref != "ref-a" {
		t.Errorf("a is %s ref %q, want sent ref-a", got.State, got.Ref)
	}
	if got := info(t, s, b.ID); got.State != relay.Sending || got.Ref != "" {
		t.Errorf("b is %s ref %q, want still sending under the second claim", got.State, got.Ref)
	}
	if got := info(t, s, c.ID); got.State != relay.Dead || got.LastError != "400" {
		t.Errorf("c is %s error %q, want dead 400", got.State, got.LastError)
	}

	// A batch with an invalid settlement fails whole: nothing in it is recorded.
	bad := []*relay.Settlement{
		{Lease: b.Lease(), State: relay.Sent, Ref: "ref-b", At: at(4 * time.Second)},
		{Lease: b.Lease(), State: "bogus", At: at(4 * time.Second)},
	}
	if err := s.Settle(ctx, bad); err == nil {
		t.Fatal("Settle of a batch with an invalid state succeeded")
	}
	if got := info(t, s, b.ID); got.State != relay.Sending || got.Ref != "" {
		t.Errorf("after a failed batch b is %s ref %q, want unchanged", got.State, got.Ref)
	}
	if err := s.Settle(ctx, nil); err != nil {
		t.Errorf("Settle(nil): %v", err)
	}
}
