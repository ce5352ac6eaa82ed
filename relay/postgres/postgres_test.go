package postgres

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/mlrelay/relay/relay"
	"github.com/mlrelay/relay/relay/postgres/pgtest"
	"github.com/mlrelay/relay/relay/replicate"
	"github.com/mlrelay/relay/relay/storetest"
)

// openURL opens a store at u and closes it when t ends.
func openURL(t *testing.T, u string) *Store {
	t.Helper()
	s, err := Open(context.Background(), u)
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

// openFresh opens a store on a new schema of the test server and closes it when t ends.
func openFresh(t *testing.T) *Store {
	t.Helper()
	return openURL(t, pgtest.URL(t))
}

func TestConformance(t *testing.T) {
	t.Parallel()
	storetest.Run(t, func(t *testing.T) relay.Store {
		s, err := Open(context.Background(), pgtest.URL(t))
		if err != nil {
			t.Fatalf("Open: %v", err)
		}
		return s
	})
}

// event builds a terminal prediction event with one delivery, or none when rule is "".
func event(msg, subject string, status replicate.Status, rule string) *relay.Ingest {
	in := &relay.Ingest{
		MessageID:  msg,
		Kind:       relay.KindPrediction,
		SubjectID:  subject,
		Status:     status,
		ReceivedAt: time.Now(),
		Meta:       map[string]string{"team": "vision"},
		Body:       []byte(`{"id":"` + subject + `"}`),
	}
	if rule != "" {
		in.Deliveries = []relay.DeliverySpec{{Rule: rule, Notifier: "slack", Template: "default"}}
	}
	return in
}

// query returns the single value a query selects, read on the store's own pool.
func query[T any](t *testing.T, s *Store, sql string, args ...any) T {
	t.Helper()
	var v T
	if err := s.pool.QueryRow(context.Background(), sql, args...).Scan(&v); err != nil {
		t.Fatalf("%s: %v", sql, err)
	}
	return v
}

func TestOpenErrorsHideThePassword(t *testing.T) {
	t.Parallel()
	const pw = "s3cret-Pa55"
	for _, tt := range []struct{ name, url string }{
		{"not a URL", "postgres://relay:" + pw + "@[::1/relay"},
		{"bad parameter", "postgres://relay:" + pw + "@127.0.0.1/relay?connect_timeout=soon"},
		{"encoded password", "postgres://relay:" + pw + "%2Fx@127.0.0.1/relay?pool_max_conns=many"},
		{"nothing listening", "postgres://relay:" + pw + "@127.0.0.1:1/relay?sslmode=disable"},
		{"password in the query", "postgres://relay@127.0.0.1/relay?password=" + pw + "&pool_max_conns=many"},
		{"encoded password in the query", "postgres://relay@127.0.0.1/relay?sslpassword=" + pw + "%2Fx&connect_timeout=soon"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			s, err := Open(ctx, tt.url)
			if err == nil {
				s.Close()
				t.Fatal("Open succeeded")
			}
			if msg := err.Error(); !strings.HasPrefix(msg, "postgres: open") || strings.Contains(msg, pw) {
				t.Errorf("error %q should start with \"postgres: open\" and not show the password", msg)
			}
		})
	}
}

func TestMigrations(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	ms, err := loadMigrations()
	if err != nil {
		t.Fatal(err)
	}
	if len(ms) == 0 {
		t.Fatal("no migrations embedded")
	}
	u := pgtest.URL(t)

	// Several replicas starting at once on a new schema: each step still runs once.
	var wg sync.WaitGroup
	for range 6 {
		wg.Go(func() {
			s, err := Open(ctx, u)
			if err != nil {
				t.Errorf("Open: %v", err)
				return
			}
			s.Close()
		})
	}
	wg.Wait()

	// applied lists the recorded migrations: "name applied_at" by version.
	applied := func() map[int]string {
		s := openURL(t, u)
		defer s.Close()
		rows, err := s.pool.Query(ctx, `SELECT version, name || ' ' || applied_at FROM schema_migrations`)
		if err != nil {
			t.Fatal(err)
		}
		defer rows.Close()
		got := map[int]string{}
		for rows.Next() {
			var (
				v   int
				rec string
			)
			if err := rows.Scan(&v, &rec); err != nil {
				t.Fatal(err)
			}
			got[v] = rec
		}
		if err := rows.Err(); err != nil {
			t.Fatal(err)
		}
		return got
	}
	first := applied()
	if len(first) != len(ms) {
		t.Fatalf("%d migrations recorded, want %d: %v", len(first), len(ms), first)
	}
	for _, m := range ms {
		if !strings.HasPrefix(first[m.Version], m.Name+" ") {
			t.Errorf("migration %s recorded as %q", m.Name, first[m.Version])
		}
	}
	if second := applied(); fmt.Sprint(second) != fmt.Sprint(first) {
		t.Errorf("reopening changed the recorded migrations: %v, was %v", second, first)
	}

	// A schema written by a newer relay is refused rather than misused.
	s := openURL(t, u)
	future := ms[len(ms)-1].Version + 1
	if _, err := s.pool.Exec(ctx, `INSERT INTO schema_migrations (version, name) VALUES ($1, 'future.sql')`, future); err != nil {
		t.Fatal(err)
	}
	s.Close()
	if s, err := Open(ctx, u); err == nil {
		s.Close()
		t.Errorf("Open of a schema at version %d succeeded", future)
	} else if !strings.Contains(err.Error(), "newer") {
		t.Errorf("Open error %q should say the schema is newer", err)
	}
}

// TestIngestAtomic fails a batch at its last event, after the earlier ones were written inside
// the transaction, and checks that none of them persisted.
func TestIngestAtomic(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	s := openFresh(t)
	if _, err := s.pool.Exec(ctx, `
		CREATE FUNCTION boom() RETURNS trigger LANGUAGE plpgsql AS $$
		BEGIN
			IF NEW.message_id = 'boom' THEN RAISE EXCEPTION 'boom'; END IF;
			RETURN NEW;
		END $$;
		CREATE TRIGGER boom BEFORE INSERT ON seen FOR EACH ROW EXECUTE FUNCTION boom()`); err != nil {
		t.Fatal(err)
	}
	batch := func() []*relay.Ingest {
		in := event("m3", "p3", replicate.Failed, "failed")
		in.Digests = []string{"daily"}
		return []*relay.Ingest{
			event("m1", "p1", replicate.Processing, ""),
			event("m2", "p2", replicate.Succeeded, "done"),
			in,
			event("boom", "p4", replicate.Succeeded, "done"),
		}
	}
	failed := batch()
	err := s.Ingest(ctx, failed)
	if err == nil {
		t.Fatal("Ingest succeeded through a failing statement")
	}
	if !strings.HasPrefix(err.Error(), "postgres: ingest: event boom: ") {
		t.Errorf("error %q should start with \"postgres: ingest: event boom: \"", err)
	}
	for _, in := range failed {
		if in.Outcome != relay.Accepted || in.Created != 0 || in.Collected != 0 {
			t.Errorf("%s is %s/%d/%d after the failed batch, want the zero outcome", in.MessageID, in.Outcome, in.Created, in.Collected)
		}
	}
	if _, err := s.pool.Exec(ctx, `DROP TRIGGER boom ON seen`); err != nil {
		t.Fatal(err)
	}
	for _, table := range []string{"seen", "subjects", "events", "deliveries", "digest_items"} {
		if n := query[int](t, s, `SELECT count(*) FROM `+table); n != 0 {
			t.Errorf("the failed batch left %d rows in %s", n, table)
		}
	}
	again := batch()
	if err := s.Ingest(ctx, again); err != nil {
		t.Fatal(err)
	}
	for _, in := range again {
		if in.Outcome != relay.Accepted {
			t.Errorf("%s is %s after the failed batch, want accepted", in.MessageID, in.Outcome)
		}
	}
}

// TestNoEventWithoutDelivery checks at the table level what the conformance suite can only
// observe from outside: events are stored only when they create a delivery or a digest item.
func TestNoEventWithoutDelivery(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	s := openFresh(t)
	collected := event("m5", "p2", replicate.Failed, "")
	collected.Digests = []string{"daily"}
	again := event("m6", "p2", replicate.Failed, "")
	again.Digests = []string{"daily"}
	batch := []*relay.Ingest{
		event("m1", "p1", replicate.Processing, ""),
		event("m2", "p1", replicate.Succeeded, "done"),
		event("m3", "p1", replicate.Succeeded, "done"), // same transition: creates nothing
		event("m4", "p1", replicate.Processing, "progress"),
		collected,
		again, // same transition, same digest: collects nothing
	}
	if err := s.Ingest(ctx, batch); err != nil {
		t.Fatal(err)
	}
	rows, err := s.pool.Query(ctx, `SELECT message_id FROM events ORDER BY id`)
	if err != nil {
		t.Fatal(err)
	}
	msgs, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		t.Fatal(err)
	}
	if want := []string{"m2", "m5"}; !slices.Equal(msgs, want) {
		t.Errorf("events stored: %v, want %v", msgs, want)
	}
}

func TestLeaseToken(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	s := openFresh(t)
	if err := s.Ingest(ctx, []*relay.Ingest{
		event("m1", "p1", replicate.Succeeded, "done"),
		event("m2", "p2", replicate.Succeeded, "done"),
	}); err != nil {
		t.Fatal(err)
	}
	// Nanoseconds that a timestamptz column would round away.
	now := time.Unix(time.Now().Unix()+60, 123_456_789).In(time.FixedZone("UTC+2", 2*60*60))
	lease := 1500*time.Millisecond + time.Nanosecond
	ds, err := s.Claim(ctx, now, lease, 10)
	if err != nil || len(ds) != 2 {
		t.Fatalf("Claim = %d, %v; want 2", len(ds), err)
	}
	d := ds[0]
	want := now.UnixNano() + int64(lease)
	stored := query[int64](t, s, `SELECT lease_until FROM deliveries WHERE id = $1`, d.ID)
	if d.LeaseUntil.UnixNano() != want || stored != want {
		t.Errorf("LeaseUntil = %d, stored %d, want both %d", d.LeaseUntil.UnixNano(), stored, want)
	}

	sent := relay.Settlement{State: relay.Sent, Ref: "ts", At: now}
	for _, tt := range []struct {
		name  string
		lease relay.Lease
		want  string
	}{
		{"a nanosecond later", relay.Lease{ID: d.ID, Until: d.LeaseUntil.Add(time.Nanosecond)}, "claimed under another lease"},
		{"a nanosecond earlier", relay.Lease{ID: d.ID, Until: d.LeaseUntil.Add(-time.Nanosecond)}, "claimed under another lease"},
		{"zero", relay.Lease{ID: d.ID}, "claimed under another lease"},
		{"unknown id", relay.Lease{ID: d.ID + 1000, Until: d.LeaseUntil}, "no such delivery"},
	} {
		err := storetest.SettleOne(ctx, s, tt.lease, sent)
		if !errors.Is(err, relay.ErrNotClaimed) || !strings.Contains(fmt.Sprint(err), tt.want) {
			t.Errorf("Settle under a lease %s: %v, want relay.ErrNotClaimed saying %q", tt.name, err, tt.want)
		}
	}
	// The same instant in another zone is the same lease.
	l := d.Lease()
	l.Until = l.Until.In(time.FixedZone("UTC-7", -7*60*60))
	if err := storetest.SettleOne(ctx, s, l, sent); err != nil {
		t.Fatalf("Settle under the claim's own lease: %v", err)
	}
	if err := storetest.SettleOne(ctx, s, l, sent); !errors.Is(err, relay.ErrNotClaimed) || !strings.Contains(err.Error(), "(it is sent)") {
		t.Errorf("second Settle: %v, want relay.ErrNotClaimed saying it is sent", err)
	}
	if err := storetest.SettleOne(ctx, s, ds[1].Lease(), relay.Settlement{State: "bogus", At: now}); err == nil || errors.Is(err, relay.ErrNotClaimed) {
		t.Errorf("Settle as an unknown state: %v, want an error other than relay.ErrNotClaimed", err)
	}

	// Release matches to the nanosecond too.
	if err := s.Release(ctx, []relay.Lease{{ID: ds[1].ID, Until: ds[1].LeaseUntil.Add(time.Nanosecond)}}); err != nil {
		t.Fatal(err)
	}
	if got, err := s.Deliveries(ctx, relay.Sending, 0); err != nil || len(got) != 1 || got[0].ID != ds[1].ID {
		t.Fatalf("after Release under a wrong lease, sending = %v, %v; want [%d]", got, err, ds[1].ID)
	}
	if err := s.Release(ctx, []relay.Lease{ds[1].Lease()}); err != nil {
		t.Fatal(err)
	}
	if got, err := s.Deliveries(ctx, relay.Pending, 0); err != nil || len(got) != 1 || got[0].ID != ds[1].ID {
		t.Fatalf("after Release under its lease, pending = %v, %v; want [%d]", got, err, ds[1].ID)
	}
}

// replicas opens n stores on one new schema, as n relay processes sharing a database would.
func replicas(t *testing.T, n int) []*Store {
	t.Helper()
	u := pgtest.URL(t)
	var ss []*Store
	for range n {
		ss = append(ss, openURL(t, u))
	}
	return ss
}

func TestReplicasClaimEachDeliveryOnce(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	stores := replicas(t, 3)
	const n = 300
	for start := 0; start < n; start += 20 {
		var batch []*relay.Ingest
		for i := start; i < start+20; i++ {
			batch = append(batch, event(fmt.Sprint("m", i), fmt.Sprint("p", i), replicate.Succeeded, "done"))
		}
		if err := stores[start/20%3].Ingest(ctx, batch); err != nil {
			t.Fatal(err)
		}
	}

	// Three workers per replica claim and settle until nothing is left.
	var (
		mu      sync.Mutex
		claimed = map[int64]int{}
		wg      sync.WaitGroup
	)
	for w := range 9 {
		s := stores[w%3]
		wg.Go(func() {
			for {
				ds, err := s.Claim(ctx, time.Now(), time.Hour, 7)
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
				var batch []*relay.Settlement
				for _, d := range ds {
					batch = append(batch, &relay.Settlement{Lease: d.Lease(), State: relay.Sent, At: time.Now()})
				}
				if err := s.Settle(ctx, batch); err != nil {
					t.Errorf("Settle: %v", err)
					return
				}
				for _, st := range batch {
					if st.Err != nil {
						t.Errorf("Settle delivery %d: %v", st.Lease.ID, st.Err)
					}
				}
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
	if sent, err := stores[0].Deliveries(ctx, relay.Sent, 0); err != nil || len(sent) != n {
		t.Errorf("%d deliveries sent (%v), want %d", len(sent), err, n)
	}
}

func TestReplicasCloseEachPeriodOnce(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	stores := replicas(t, 3)
	t0 := time.Date(2026, 11, 22, 9, 0, 0, 0, time.UTC)
	for i := range 50 {
		in := &relay.Ingest{MessageID: fmt.Sprint("m", i), Kind: relay.KindPrediction, SubjectID: fmt.Sprint("p", i),
			Status: replicate.Failed, ReceivedAt: t0.Add(-time.Duration(i+1) * time.Minute), Body: []byte(`{}`), Digests: []string{"daily"}}
		if err := stores[i%3].Ingest(ctx, []*relay.Ingest{in}); err != nil {
			t.Fatal(err)
		}
	}
	for day := range 2 {
		end := t0.Add(time.Duration(day) * 24 * time.Hour)
		var (
			wg      sync.WaitGroup
			mu      sync.Mutex
			results []*relay.DigestClose
		)
		for i := range 12 {
			s := stores[i%3]
			wg.Go(func() {
				c := &relay.DigestClose{Digest: "daily", Start: t0.Add(-24 * time.Hour), End: end,
					Deliveries: []relay.DeliverySpec{{Rule: "daily", Notifier: "email", Template: "digest"}},
					Build: func(_ time.Time, items []relay.DigestItem) ([]byte, error) {
						return fmt.Append(nil, len(items)), nil
					}}
				if err := s.CloseDigest(ctx, c); err != nil {
					t.Error(err)
					return
				}
				mu.Lock()
				results = append(results, c)
				mu.Unlock()
			})
		}
		wg.Wait()
		closed := 0
		for _, c := range results {
			if c.Closed {
				closed++
				if want := []int{50, 0}[day]; c.Items != want || c.Created != min(want, 1) {
					t.Errorf("day %d: the close took %d items and created %d deliveries, want %d and %d",
						day, c.Items, c.Created, want, min(want, 1))
				}
			}
		}
		if closed != 1 {
			t.Errorf("day %d: %d of %d closes succeeded, want exactly 1", day, closed, len(results))
		}
	}
	list, err := stores[1].Deliveries(ctx, "", 0)
	if err != nil {
		t.Fatal(err)
	}
	if len(list) != 1 || list[0].Kind != relay.KindDigest {
		t.Fatalf("deliveries %+v, want one digest message", list)
	}
	if n := query[int](t, stores[2], `SELECT count(*) FROM digest_periods`); n != 2 {
		t.Errorf("%d periods recorded, want 2", n)
	}
}

// TestReplicasIngestWithoutDeadlock has two replicas ingest batches about the same subjects in
// opposite orders. Taking the rows of seen, subjects and deliveries in the order of its events,
// each batch would wait for the other's: the subject locks make them queue instead. A deadlock
// would fail an Ingest (the store does not retry one).
func TestReplicasIngestWithoutDeadlock(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	stores := replicas(t, 2)
	const subjects, rounds = 40, 15
	var (
		wg      sync.WaitGroup
		mu      sync.Mutex
		created int
	)
	for r, s := range stores {
		wg.Go(func() {
			for round := range rounds {
				var batch []*relay.Ingest
				for i := range subjects {
					p := i
					if r == 1 {
						p = subjects - 1 - i
					}
					batch = append(batch, event(fmt.Sprintf("r%d-%d-%d", r, round, p), fmt.Sprint("p", p), replicate.Succeeded, "done"))
				}
				if err := s.Ingest(ctx, batch); err != nil {
					t.Errorf("Ingest: %v", err)
					return
				}
				mu.Lock()
				for _, in := range batch {
					created += in.Created
				}
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	if created != subjects {
		t.Errorf("%d deliveries created, want %d (one per subject)", created, subjects)
	}
}

// TestPruneInChunks prunes more rows than one chunk holds, from two replicas at once, and checks
// that everything finished is gone: the message ids, stages, deliveries, and the events, each of
// which had two deliveries that either replica might have pruned.
func TestPruneInChunks(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	stores := replicas(t, 2)
	const n = pruneChunk + pruneChunk/2 // events, each with two deliveries
	at := time.Now().Add(-time.Hour)
	for start := 0; start < n; start += 250 {
		var batch []*relay.Ingest
		for i := start; i < min(start+250, n); i++ {
			in := event(fmt.Sprint("m", i), fmt.Sprint("p", i), replicate.Succeeded, "done")
			in.Deliveries = append(in.Deliveries, relay.DeliverySpec{Rule: "done", Notifier: "email", Template: "default"})
			in.ReceivedAt = at
			batch = append(batch, in)
		}
		if err := stores[0].Ingest(ctx, batch); err != nil {
			t.Fatal(err)
		}
	}
	for {
		ds, err := stores[0].Claim(ctx, at, time.Minute, 500)
		if err != nil {
			t.Fatal(err)
		}
		if len(ds) == 0 {
			break
		}
		var batch []*relay.Settlement
		for _, d := range ds {
			batch = append(batch, &relay.Settlement{Lease: d.Lease(), State: relay.Sent, At: at})
		}
		if err := stores[0].Settle(ctx, batch); err != nil {
			t.Fatal(err)
		}
	}

	var wg sync.WaitGroup
	for _, s := range stores {
		wg.Go(func() {
			if err := s.Prune(ctx, time.Now(), time.Now()); err != nil {
				t.Errorf("Prune: %v", err)
			}
		})
	}
	wg.Wait()
	for _, table := range []string{"seen", "subjects", "deliveries", "events"} {
		if left := query[int](t, stores[1], `SELECT count(*) FROM `+table); left != 0 {
			t.Errorf("%d rows left in %s after pruning", left, table)
		}
	}
}

// TestConnectionsTerminated terminates every connection of a store, as a server restart or an
// administrator would, and checks that the very next calls succeed on new connections.
func TestConnectionsTerminated(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	u := pgtest.URL(t)
	s := openURL(t, u)
	if err := s.Ingest(ctx, []*relay.Ingest{event("m1", "p1", replicate.Succeeded, "done")}); err != nil {
		t.Fatal(err)
	}
	// Several connections in the pool, which hands out one idle for less than a second without
	// checking it first: the calls below meet the terminated connections themselves.
	var conns []*pgxpool.Conn
	for range 4 {
		c, err := s.pool.Acquire(ctx)
		if err != nil {
			t.Fatal(err)
		}
		conns = append(conns, c)
	}
	for _, c := range conns {
		c.Release()
	}
	if n := pgtest.Terminate(t, u); n < 4 {
		t.Fatalf("terminated %d connections, want at least 4", n)
	}

	if err := s.Ping(ctx); err != nil {
		t.Errorf("Ping after the connections were terminated: %v", err)
	}
	batch := []*relay.Ingest{event("m2", "p2", replicate.Succeeded, "done"), event("m1", "p1", replicate.Succeeded, "done")}
	if err := s.Ingest(ctx, batch); err != nil {
		t.Fatalf("Ingest after the connections were terminated: %v", err)
	}
	if batch[0].Outcome != relay.Accepted || batch[0].Created != 1 || batch[1].Outcome != relay.Duplicate {
		t.Errorf("outcomes %s/%d %s, want accepted/1 duplicate", batch[0].Outcome, batch[0].Created, batch[1].Outcome)
	}

	// Terminated again, one call of each kind.
	pgtest.Terminate(t, u)
	ds, err := s.Claim(ctx, time.Now(), time.Minute, 10)
	if err != nil || len(ds) != 2 {
		t.Fatalf("Claim after the connections were terminated = %d, %v; want 2", len(ds), err)
	}
	pgtest.Terminate(t, u)
	if err := storetest.SettleOne(ctx, s, ds[0].Lease(), relay.Settlement{State: relay.Sent, At: time.Now()}); err != nil {
		t.Errorf("Settle after the connections were terminated: %v", err)
	}
	pgtest.Terminate(t, u)
	if got, err := s.Deliveries(ctx, relay.Sent, 0); err != nil || len(got) != 1 {
		t.Errorf("Deliveries after the connections were terminated = %d, %v; want 1", len(got), err)
	}
}

// TestServerAway takes the server away and brings it back: while it is away every call fails
// promptly (no hang), and when it is back the store carries on with what it stored before.
func TestServerAway(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	p, u := pgtest.NewProxy(t, pgtest.URL(t))
	s := openURL(t, u)
	if err := s.Ingest(ctx, []*relay.Ingest{event("m1", "p1", replicate.Succeeded, "done")}); err != nil {
		t.Fatal(err)
	}

	p.Stop()
	for name, call := range map[string]func(context.Context) error{
		"Ping": s.Ping,
		"Ingest": func(ctx context.Context) error {
			return s.Ingest(ctx, []*relay.Ingest{event("m2", "p2", replicate.Succeeded, "done")})
		},
		"Claim": func(ctx context.Context) error {
			_, err := s.Claim(ctx, time.Now(), time.Minute, 10)
			return err
		},
		"Deliveries": func(ctx context.Context) error {
			_, err := s.Deliveries(ctx, "", 0)
			return err
		},
	} {
		ctx, cancel := context.WithTimeout(ctx, 20*time.Second)
		start := time.Now()
		if err := call(ctx); err == nil {
			t.Errorf("%s succeeded while the server was away", name)
		} else if elapsed := time.Since(start); elapsed > 5*time.Second {
			t.Errorf("%s took %v to fail while the server was away: %v", name, elapsed, err)
		}
		cancel()
	}

	p.Start(t)
	if err := s.Ping(ctx); err != nil {
		t.Fatalf("Ping once the server is back: %v", err)
	}
	batch := []*relay.Ingest{event("m1", "p1", replicate.Succeeded, "done"), event("m2", "p2", replicate.Succeeded, "done")}
	if err := s.Ingest(ctx, batch); err != nil {
		t.Fatalf("Ingest once the server is back: %v", err)
	}
	if batch[0].Outcome != relay.Duplicate || batch[1].Outcome != relay.Accepted {
		t.Errorf("outcomes %s %s, want duplicate accepted", batch[0].Outcome, batch[1].Outcome)
	}
	if ds, err := s.Claim(ctx, time.Now(), time.Minute, 10); err != nil || len(ds) != 2 {
		t.Errorf("Claim once the server is back = %d, %v; want 2", len(ds), err)
	}
}

// TestServerSilent makes the server stop answering: calls return when their context ends
// rather than hang.
func TestServerSilent(t *testing.T) {
	t.Parallel()
	p, u := pgtest.NewProxy(t, pgtest.URL(t))
	s := openURL(t, u)
	// Dropped before the store closes: pgx waits up to 15 seconds for a connection it gave up on
	// to be closed by the server, which a silent server never does.
	t.Cleanup(p.Stop)
	if err := s.Ping(context.Background()); err != nil {
		t.Fatal(err)
	}
	p.Silence()
	for name, call := range map[string]func(context.Context) error{
		"Ping": s.Ping,
		"Ingest": func(ctx context.Context) error {
			return s.Ingest(ctx, []*relay.Ingest{event("m1", "p1", replicate.Succeeded, "done")})
		},
	} {
		ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
		start := time.Now()
		err := call(ctx)
		elapsed := time.Since(start)
		cancel()
		if err == nil {
			t.Errorf("%s succeeded while the server was silent", name)
		}
		if elapsed > 3*time.Second {
			t.Errorf("%s returned %v after its context ended", name, elapsed-300*time.Millisecond)
		}
	}
}
