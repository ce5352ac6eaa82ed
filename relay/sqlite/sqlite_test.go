package sqlite

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/mlrelay/relay/relay"
	"github.com/mlrelay/relay/relay/replicate"
	"github.com/mlrelay/relay/relay/storetest"
)

// openTemp opens a store on a new file in t's temporary directory and closes it at the end.
func openTemp(t testing.TB) (*Store, string) {
	t.Helper()
	path := filepath.Join(t.TempDir(), "relay.db")
	s, err := Open(context.Background(), path)
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	t.Cleanup(func() { s.Close() })
	return s, path
}

func TestConformance(t *testing.T) {
	storetest.Run(t, func(t *testing.T) relay.Store {
		s, err := Open(context.Background(), filepath.Join(t.TempDir(), "relay.db"))
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

func TestPragmas(t *testing.T) {
	s, _ := openTemp(t)
	for _, tt := range []struct{ pragma, want string }{
		{"journal_mode", "wal"},
		{"synchronous", "2"}, // FULL
		{"busy_timeout", "10000"},
		{"foreign_keys", "1"},
	} {
		var got string
		if err := s.db.QueryRow("PRAGMA " + tt.pragma).Scan(&got); err != nil {
			t.Fatalf("PRAGMA %s: %v", tt.pragma, err)
		}
		if got != tt.want {
			t.Errorf("PRAGMA %s = %s, want %s", tt.pragma, got, tt.want)
		}
	}
}

func TestOpenReservedCharacters(t *testing.T) {
	name := "a?b#c%20d e.db"
	path := filepath.Join(t.TempDir(), name)
	s, err := Open(context.Background(), path)
	if err != nil {
		t.Fatalf("Open(%q): %v", path, err)
	}
	defer s.Close()
	if _, err := os.Stat(path); err != nil {
		t.Errorf("the database is not at %q: %v", path, err)
	}
}

func TestOpenFails(t *testing.T) {
	path := filepath.Join(t.TempDir(), "missing-dir", "relay.db")
	_, err := Open(context.Background(), path)
	if err == nil {
		t.Fatalf("Open in a missing directory succeeded")
	}
	if !strings.HasPrefix(err.Error(), "sqlite: open ") || !strings.Contains(err.Error(), path) {
		t.Errorf("error %q should start with \"sqlite: open\" and name the file", err)
	}
}

func TestReopen(t *testing.T) {
	ctx := context.Background()
	s, path := openTemp(t)
	first := []*relay.Ingest{
		event("m1", "p1", replicate.Succeeded, "done"),
		event("m2", "p2", replicate.Processing, ""),
		event("m3", "p3", replicate.Failed, "failed"),
	}
	if err := s.Ingest(ctx, first); err != nil {
		t.Fatal(err)
	}
	ds, err := s.Claim(ctx, time.Now(), time.Hour, 1)
	if err != nil || len(ds) != 1 {
		t.Fatalf("Claim = %d, %v", len(ds), err)
	}
	if err := storetest.SettleOne(ctx, s, ds[0].Lease(), relay.Settlement{State: relay.Sent, Ref: "ts-1", At: time.Now()}); err != nil {
		t.Fatal(err)
	}
	if _, err := s.EnsureSetting(ctx, "instance", "one"); err != nil {
		t.Fatal(err)
	}
	before, err := s.Deliveries(ctx, "", 10)
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}

	s, err = Open(ctx, path)
	if err != nil {
		t.Fatalf("reopen: %v", err)
	}
	defer s.Close()
	again := []*relay.Ingest{
		event("m1", "p1", replicate.Succeeded, "done"),
		event("m4", "p2", replicate.Starting, "started"),
		event("m5", "p3", replicate.Failed, "failed"),
	}
	if err := s.Ingest(ctx, again); err != nil {
		t.Fatal(err)
	}
	for i, want := range []relay.Outcome{relay.Duplicate, relay.Stale, relay.Accepted} {
		if again[i].Outcome != want || again[i].Created != 0 {
			t.Errorf("after reopen, %s is %s/%d, want %s/0", again[i].MessageID, again[i].Outcome, again[i].Created, want)
		}
	}
	after, err := s.Deliveries(ctx, "", 10)
	if err != nil {
		t.Fatal(err)
	}
	if fmt.Sprint(after) != fmt.Sprint(before) {
		t.Errorf("deliveries after reopen:\n%v\nwant\n%v", after, before)
	}
	if v, err := s.EnsureSetting(ctx, "instance", "two"); err != nil || v != "one" {
		t.Errorf("EnsureSetting after reopen = %q, %v; want one", v, err)
	}
	ds, err = s.Claim(ctx, time.Now(), time.Hour, 10)
	if err != nil || len(ds) != 1 {
		t.Fatalf("Claim after reopen = %d, %v; want the one pending delivery", len(ds), err)
	}
	if d := ds[0]; d.MessageID != "m3" || !bytes.Equal(d.Body, first[2].Body) || d.Meta["team"] != "vision" {
		t.Errorf("claimed %+v, want m3 with its body and meta", d)
	}
}

func TestMigrations(t *testing.T) {
	ctx := context.Background()
	ms, err := loadMigrations()
	if err != nil {
		t.Fatal(err)
	}
	if len(ms) == 0 {
		t.Fatal("no migrations embedded")
	}
	dir := t.TempDir()
	path := filepath.Join(dir, "relay.db")

	// Several processes starting at once on a new file: each step still runs once.
	var wg sync.WaitGroup
	for range 4 {
		wg.Go(func() {
			s, err := Open(ctx, path)
			if err != nil {
				t.Errorf("Open: %v", err)
				return
			}
			s.Close()
		})
	}
	wg.Wait()

	applied := func() map[int]int64 {
		s, err := Open(ctx, path)
		if err != nil {
			t.Fatalf("Open: %v", err)
		}
		defer s.Close()
		rows, err := s.db.Query(`SELECT version, applied_at FROM schema_migrations`)
		if err != nil {
			t.Fatal(err)
		}
		defer rows.Close()
		got := map[int]int64{}
		for rows.Next() {
			var v int
			var at int64
			if err := rows.Scan(&v, &at); err != nil {
				t.Fatal(err)
			}
			got[v] = at
		}
		return got
	}
	first := applied()
	if len(first) != len(ms) {
		t.Fatalf("%d migrations recorded, want %d", len(first), len(ms))
	}
	for _, m := range ms {
		if _, ok := first[m.Version]; !ok {
			t.Errorf("migration %s not recorded", m.Name)
		}
	}
	if second := applied(); fmt.Sprint(second) != fmt.Sprint(first) {
		t.Errorf("reopening changed the recorded migrations: %v, was %v", second, first)
	}

	// A database written by a newer relay is refused rather than misused.
	s, err := Open(ctx, path)
	if err != nil {
		t.Fatal(err)
	}
	future := ms[len(ms)-1].Version + 1
	if _, err := s.db.Exec(`INSERT INTO schema_migrations VALUES (?, 'future.sql', 0)`, future); err != nil {
		t.Fatal(err)
	}
	s.Close()
	if s, err := Open(ctx, path); err == nil {
		s.Close()
		t.Errorf("Open of a database at schema version %d succeeded", future)
	} else if !strings.Contains(err.Error(), "newer") {
		t.Errorf("Open error %q should say the schema is newer", err)
	}
}

// TestIngestAtomic fails a batch halfway, after earlier events were written inside the
// transaction, and checks that none of them persisted.
func TestIngestAtomic(t *testing.T) {
	ctx := context.Background()
	s, _ := openTemp(t)
	// A temporary trigger lives on the store's only connection, so Ingest runs into it.
	if _, err := s.db.Exec(`CREATE TEMP TRIGGER boom BEFORE INSERT ON main.seen
		WHEN NEW.message_id = 'boom' BEGIN SELECT RAISE(ABORT, 'boom'); END`); err != nil {
		t.Fatal(err)
	}
	batch := func() []*relay.Ingest {
		return []*relay.Ingest{
			event("m1", "p1", replicate.Processing, ""),
			event("m2", "p2", replicate.Succeeded, "done"),
			event("boom", "p3", replicate.Succeeded, "done"),
		}
	}
	err := s.Ingest(ctx, batch())
	if err == nil {
		t.Fatal("Ingest succeeded through a failing statement")
	}
	if !strings.HasPrefix(err.Error(), "sqlite: ingest boom: ") {
		t.Errorf("error %q should start with \"sqlite: ingest boom: \"", err)
	}
	if _, err := s.db.Exec(`DROP TRIGGER temp.boom`); err != nil {
		t.Fatal(err)
	}
	for _, table := range []string{"seen", "subjects", "events", "deliveries"} {
		var n int
		if err := s.db.QueryRow(`SELECT count(*) FROM ` + table).Scan(&n); err != nil {
			t.Fatal(err)
		}
		if n != 0 {
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
// observe from outside: events store a body only when they create a delivery.
func TestNoEventWithoutDelivery(t *testing.T) {
	ctx := context.Background()
	s, _ := openTemp(t)
	batch := []*relay.Ingest{
		event("m1", "p1", replicate.Processing, ""),
		event("m2", "p1", replicate.Succeeded, "done"),
		event("m3", "p1", replicate.Succeeded, "done"), // same transition: creates nothing
		event("m4", "p1", replicate.Processing, "progress"),
	}
	if err := s.Ingest(ctx, batch); err != nil {
		t.Fatal(err)
	}
	var msgs []string
	rows, err := s.db.Query(`SELECT message_id FROM events ORDER BY id`)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	for rows.Next() {
		var m string
		if err := rows.Scan(&m); err != nil {
			t.Fatal(err)
		}
		msgs = append(msgs, m)
	}
	if fmt.Sprint(msgs) != "[m2]" {
		t.Errorf("events stored: %v, want [m2]", msgs)
	}
}

// TestQueryPlans guards the plans of the queries that run often or on large tables: each must
// search its index rather than scan a table.
func TestQueryPlans(t *testing.T) {
	s, _ := openTemp(t)
	for _, tt := range []struct {
		name  string
		query string
		args  []any
		want  []string
	}{
		{"claim", claimDueSQL, []any{0, 10}, []string{"deliveries_due", "deliveries_lease"}},
		{"prune seen", pruneSeenSQL, []any{0, 10}, []string{"seen_seen_at"}},
		{"prune subjects", pruneSubjectsSQL, []any{0, 10}, []string{"subjects_updated_at"}},
		{"prune deliveries", pruneDeliveriesSQL, []any{0, 10}, []string{"deliveries_done"}},
		{"prune event", pruneEventSQL, []any{0}, []string{"deliveries_event", "digest_items_event"}},
		{"open digest items", openItemsSQL, []any{"d", 10}, []string{"digest_items_open"}},
		{"prune launches", pruneLaunchesSQL, []any{0, 10}, []string{"launches_created_at"}},
		{"prune digest items", pruneDigestItemsSQL, []any{0, 10}, []string{"digest_periods_end", "digest_items_period"}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			rows, err := s.db.Query(`EXPLAIN QUERY PLAN `+tt.query, tt.args...)
			if err != nil {
				t.Fatal(err)
			}
			defer rows.Close()
			var plan []string
			for rows.Next() {
				var id, parent, unused int
				var detail string
				if err := rows.Scan(&id, &parent, &unused, &detail); err != nil {
					t.Fatal(err)
				}
				plan = append(plan, detail)
			}
			text := strings.Join(plan, "\n")
			for _, want := range tt.want {
				if !strings.Contains(text, want) {
					t.Errorf("plan does not use %s:\n%s", want, text)
				}
			}
			for _, line := range plan {
				if strings.HasPrefix(line, "SCAN ") && !strings.HasPrefix(line, "SCAN (subquery") {
					t.Errorf("plan scans a table:\n%s", text)
				}
			}
		})
	}
}

// TestTwoStores shares one file between two stores, as two relay processes would, and checks
// that together they accept each message once and claim each delivery once.
func TestTwoStores(t *testing.T) {
	ctx := context.Background()
	a, path := openTemp(t)
	b, err := Open(ctx, path)
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	stores := []*Store{a, b, a, b}

	const messages, subjects = 200, 40
	var (
		mu       sync.Mutex
		accepted = map[string]int{}
		created  int
		wg       sync.WaitGroup
	)
	for w, s := range stores {
		wg.Go(func() {
			for start := 0; start < messages; start += 10 {
				var batch []*relay.Ingest
				for i := range 10 {
					n := (start + i + w*53) % messages
					batch = append(batch, event(fmt.Sprint("m", n), fmt.Sprint("p", n%subjects), replicate.Succeeded, "done"))
				}
				if err := s.Ingest(ctx, batch); err != nil {
					t.Errorf("Ingest: %v", err)
					return
				}
				mu.Lock()
				for _, in := range batch {
					if in.Outcome == relay.Accepted {
						accepted[in.MessageID]++
					}
					created += in.Created
				}
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	if len(accepted) != messages {
		t.Errorf("%d messages accepted, want %d", len(accepted), messages)
	}
	for m, n := range accepted {
		if n != 1 {
			t.Errorf("message %s accepted %d times", m, n)
		}
	}
	if created != subjects {
		t.Errorf("%d deliveries created, want %d", created, subjects)
	}

	claimed := map[int64]int{}
	for _, s := range stores {
		wg.Go(func() {
			for {
				ds, err := s.Claim(ctx, time.Now(), time.Hour, 3)
				if err != nil {
					t.Errorf("Claim: %v", err)
					return
				}
				if len(ds) == 0 {
					return
				}
				for _, d := range ds {
					if err := storetest.SettleOne(ctx, s, d.Lease(), relay.Settlement{State: relay.Sent, At: time.Now()}); err != nil {
						t.Errorf("Settle: %v", err)
					}
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
	if len(claimed) != subjects {
		t.Errorf("%d deliveries claimed, want %d", len(claimed), subjects)
	}
	for id, n := range claimed {
		if n != 1 {
			t.Errorf("delivery %d claimed %d times", id, n)
		}
	}
}

// childEnv names the database a child process of TestProcesses works on.
const childEnv = "RELAY_SQLITE_TEST_CHILD"

// TestProcesses runs real processes on one file, so that file locking between processes is
// exercised too, not only between connections of one process.
func TestProcesses(t *testing.T) {
	if testing.Short() {
		t.Skip("starts processes")
	}
	path := filepath.Join(t.TempDir(), "relay.db")
	const children = 3
	outs := make([][]byte, children)
	var wg sync.WaitGroup
	for i := range children {
		wg.Go(func() {
			cmd := exec.Command(os.Args[0], "-test.run=^TestChildProcess$", "-test.v")
			cmd.Env = append(os.Environ(), childEnv+"="+path, "RELAY_SQLITE_TEST_OFFSET="+strconv.Itoa(i*61))
			out, err := cmd.CombinedOutput()
			if err != nil {
				t.Errorf("child %d: %v\n%s", i, err, out)
			}
			outs[i] = out
		})
	}
	wg.Wait()

	accepted, claimed := map[string]int{}, map[string]int{}
	created := 0
	for _, out := range outs {
		sc := bufio.NewScanner(bytes.NewReader(out))
		for sc.Scan() {
			f := strings.Fields(sc.Text())
			if len(f) != 2 {
				continue
			}
			switch f[0] {
			case "accepted":
				accepted[f[1]]++
			case "claimed":
				claimed[f[1]]++
			case "created":
				n, _ := strconv.Atoi(f[1])
				created += n
			}
		}
	}
	if len(accepted) != childMessages {
		t.Errorf("%d messages accepted, want %d", len(accepted), childMessages)
	}
	for m, n := range accepted {
		if n != 1 {
			t.Errorf("message %s accepted by %d processes", m, n)
		}
	}
	if created != childSubjects {
		t.Errorf("%d deliveries created, want %d", created, childSubjects)
	}
	if len(claimed) == 0 {
		t.Errorf("the processes claimed nothing")
	}
	for id, n := range claimed {
		if n != 1 {
			t.Errorf("delivery %s claimed %d times", id, n)
		}
	}
	s, err := Open(context.Background(), path)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	sent, err := s.Deliveries(context.Background(), relay.Sent, 0)
	if err != nil {
		t.Fatal(err)
	}
	if len(sent) != len(claimed) {
		t.Errorf("%d deliveries sent, but %d claimed", len(sent), len(claimed))
	}
}

const childMessages, childSubjects = 180, 30

// TestChildProcess is one process of TestProcesses; it does nothing when run on its own.
func TestChildProcess(t *testing.T) {
	path := os.Getenv(childEnv)
	if path == "" {
		t.Skip("runs only as a child of TestProcesses")
	}
	offset, _ := strconv.Atoi(os.Getenv("RELAY_SQLITE_TEST_OFFSET"))
	ctx := context.Background()
	s, err := Open(ctx, path)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	for start := 0; start < childMessages; start += 12 {
		var batch []*relay.Ingest
		for i := range 12 {
			n := (start + i + offset) % childMessages
			batch = append(batch, event(fmt.Sprint("m", n), fmt.Sprint("p", n%childSubjects), replicate.Succeeded, "done"))
		}
		if err := s.Ingest(ctx, batch); err != nil {
			t.Fatal(err)
		}
		for _, in := range batch {
			if in.Outcome == relay.Accepted {
				fmt.Println("accepted", in.MessageID)
			}
			fmt.Println("created", in.Created)
		}
		ds, err := s.Claim(ctx, time.Now(), time.Hour, 2)
		if err != nil {
			t.Fatal(err)
		}
		for _, d := range ds {
			if err := storetest.SettleOne(ctx, s, d.Lease(), relay.Settlement{State: relay.Sent, At: time.Now()}); err != nil {
				t.Fatal(err)
			}
			fmt.Println("claimed", d.ID)
		}
	}
}

// TestLeaseToken checks what the conformance suite, with its whole milliseconds, cannot: a
// lease is matched to the nanosecond that Claim stored and returned, whatever the zone of the
// time presented, and a refused Settle says why.
func TestLeaseToken(t *testing.T) {
	ctx := context.Background()
	s, _ := openTemp(t)
	if err := s.Ingest(ctx, []*relay.Ingest{
		event("m1", "p1", replicate.Succeeded, "done"),
		event("m2", "p2", replicate.Succeeded, "done"),
	}); err != nil {
		t.Fatal(err)
	}
	now := time.Unix(time.Now().Unix()+60, 123_456_789).In(time.FixedZone("UTC+2", 2*60*60))
	lease := 1500*time.Millisecond + time.Nanosecond
	ds, err := s.Claim(ctx, now, lease, 10)
	if err != nil || len(ds) != 2 {
		t.Fatalf("Claim = %d, %v; want 2", len(ds), err)
	}
	d := ds[0]
	want := now.UnixNano() + int64(lease)
	var stored int64
	if err := s.db.QueryRow(`SELECT lease_until FROM deliveries WHERE id = ?`, d.ID).Scan(&stored); err != nil {
		t.Fatal(err)
	}
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

func TestCheckpointsRunInTheBackground(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "relay.db")
	s, err := Open(ctx, path)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	// Commits never checkpoint: a commit that did would hold up every webhook waiting on it.
	var auto int
	if err := s.db.QueryRowContext(ctx, `PRAGMA wal_autocheckpoint`).Scan(&auto); err != nil {
		t.Fatal(err)
	}
	if auto != 0 {
		t.Fatalf("wal_autocheckpoint = %d on the writing connection, want 0", auto)
	}
	// Well past the 1000-page threshold of the automatic checkpoint.
	for b := range 50 {
		var batch []*relay.Ingest
		for i := range 200 {
			batch = append(batch, &relay.Ingest{MessageID: fmt.Sprintf("m%d-%d", b, i), Kind: relay.KindPrediction,
				SubjectID: fmt.Sprintf("p%d-%d", b, i), Status: replicate.Processing, ReceivedAt: time.Now()})
		}
		if err := s.Ingest(ctx, batch); err != nil {
			t.Fatal(err)
		}
	}
	// The background checkpointer copies the log back without anyone asking.
	deadline := time.Now().Add(10 * time.Second)
	for {
		var busy, logFrames, done int
		// NOOP only reports the counts, checkpointing nothing itself.
		if err := s.db.QueryRowContext(ctx, `PRAGMA wal_checkpoint(NOOP)`).Scan(&busy, &logFrames, &done); err != nil {
			t.Fatal(err)
		}
		if logFrames > 1000 && done == logFrames {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("after 10s: %d of %d log frames checkpointed", done, logFrames)
		}
		time.Sleep(100 * time.Millisecond)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	// Close leaves the log empty.
	if fi, err := os.Stat(path + "-wal"); err == nil && fi.Size() != 0 {
		t.Fatalf("-wal is %d bytes after Close, want 0", fi.Size())
	}
}

func TestWALStaysBoundedUnderSustainedWrites(t *testing.T) {
	old := walRestartFrames
	walRestartFrames = 2000 // about 8 MiB of log, to keep the test short
	defer func() { walRestartFrames = old }()
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "relay.db")
	s, err := Open(ctx, path)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	// Write without pause, as a busy relay does: a passive checkpoint never catches up with a
	// log that grows while it copies, so without a restart the log grows for good. The test
	// writes a volume, not a time, so that a slow or busy machine writes as much: ten times
	// the restart threshold (each event is a page of body and a little more), or until the
	// log has started over twice.
	body := bytes.Repeat([]byte("x"), 4096)
	var maxWAL int64
	maxFrames, last, restarts := 0, 0, 0
	deadline := time.Now().Add(60 * time.Second)
	for b := 0; b*20 < 10*walRestartFrames && restarts < 2 && time.Now().Before(deadline); b++ {
		var batch []*relay.Ingest
		for i := range 20 {
			batch = append(batch, &relay.Ingest{MessageID: fmt.Sprintf("m%d-%d", b, i), Kind: relay.KindPrediction,
				SubjectID: fmt.Sprintf("p%d-%d", b, i), Status: replicate.Succeeded, ReceivedAt: time.Now(), Body: body,
				Deliveries: []relay.DeliverySpec{{Rule: "r", Notifier: "n", Template: "default"}}})
		}
		if err := s.Ingest(ctx, batch); err != nil {
			t.Fatal(err)
		}
		if fi, err := os.Stat(path + "-wal"); err == nil && fi.Size() > maxWAL {
			maxWAL = fi.Size()
		}
		var busy, frames, copied int
		if err := s.db.QueryRowContext(ctx, `PRAGMA wal_checkpoint(NOOP)`).Scan(&busy, &frames, &copied); err != nil {
			t.Fatal(err)
		}
		maxFrames = max(maxFrames, frames)
		if frames < last {
			restarts++ // the log started over from the beginning
		}
		last = frames
	}
	db, _ := os.Stat(path)
	t.Logf("database %d MiB; log started over %d times, at most %d frames in use, its file at most %d MiB",
		db.Size()>>20, restarts, maxFrames, maxWAL>>20)
	if restarts < 2 {
		t.Fatalf("the log started over %d times while %d events were written (it reached %d frames): it only grows", restarts, 10*walRestartFrames, maxFrames)
	}
	if maxFrames > 25*walRestartFrames {
		t.Fatalf("the log grew to %d frames under sustained writes, beyond %d", maxFrames, 25*walRestartFrames)
	}
	// After the log starts over its file is cut back to journal_size_limit (64 MiB).
	if limit := int64(64<<20 + 25*walRestartFrames*4096); maxWAL > limit {
		t.Fatalf("the log file grew to %d MiB, beyond %d MiB", maxWAL>>20, limit>>20)
	}
}

// TestDurability checks the synchronous level of each kind of transaction: FULL for ingests
// (an acknowledgement promises the event survives a power loss), NORMAL for the dispatcher's
// claims and outcomes, whichever ran before.
func TestDurability(t *testing.T) {
	s, _ := openTemp(t)
	ctx := context.Background()
	level := func(durable bool) int {
		t.Helper()
		tx, err := s.begin(ctx, durable)
		if err != nil {
			t.Fatal(err)
		}
		defer tx.Rollback()
		var n int
		if err := tx.QueryRowContext(ctx, `PRAGMA synchronous`).Scan(&n); err != nil {
			t.Fatal(err)
		}
		return n
	}
	const normal, full = 1, 2
	for i, tc := range []struct {
		durable bool
		want    int
	}{{true, full}, {false, normal}, {false, normal}, {true, full}, {false, normal}, {true, full}} {
		if got := level(tc.durable); got != tc.want {
			t.Fatalf("step %d: durable=%v runs at synchronous=%d, want %d", i, tc.durable, got, tc.want)
		}
	}
	// The real calls: a claim leaves the connection at NORMAL, and the ingest after it is FULL
	// again (begin is the only way into a write transaction).
	if _, err := s.Claim(ctx, time.Now(), time.Minute, 10); err != nil {
		t.Fatal(err)
	}
	if s.sync != "NORMAL" {
		t.Fatalf("after a claim the connection is at %s, want NORMAL", s.sync)
	}
	if err := s.Ingest(ctx, []*relay.Ingest{{MessageID: "m1", Kind: relay.KindPrediction, SubjectID: "p1", Status: "processing"}}); err != nil {
		t.Fatal(err)
	}
	if s.sync != "FULL" {
		t.Fatalf("after an ingest the connection is at %s, want FULL", s.sync)
	}
}

// TestTwoStoresCloseDigestOnce has two stores on one file, as two relay processes, close the
// same digest period at once: one closes it, with every item, and one message is created.
func TestTwoStoresCloseDigestOnce(t *testing.T) {
	ctx := context.Background()
	a, path := openTemp(t)
	b, err := Open(ctx, path)
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	t0 := time.Date(2026, 11, 22, 9, 0, 0, 0, time.UTC)
	for i := range 50 {
		in := &relay.Ingest{MessageID: fmt.Sprint("m", i), Kind: relay.KindPrediction, SubjectID: fmt.Sprint("p", i),
			Status: replicate.Failed, ReceivedAt: t0.Add(-time.Duration(i+1) * time.Minute), Body: []byte(`{}`), Digests: []string{"daily"}}
		if err := []*Store{a, b}[i%2].Ingest(ctx, []*relay.Ingest{in}); err != nil {
			t.Fatal(err)
		}
	}
	var (
		wg      sync.WaitGroup
		mu      sync.Mutex
		results []*relay.DigestClose
	)
	for i := range 6 {
		s := []*Store{a, b}[i%2]
		wg.Go(func() {
			c := &relay.DigestClose{Digest: "daily", Start: t0.Add(-24 * time.Hour), End: t0,
				Deliveries: []relay.DeliverySpec{{Rule: "daily", Notifier: "email", Template: "digest"}},
				Build: func(_ time.Time, items []relay.DigestItem) ([]byte, error) {
					return []byte(fmt.Sprint(len(items))), nil
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
			if c.Items != 50 || c.Created != 1 {
				t.Errorf("the close took %d items and created %d deliveries, want 50 and 1", c.Items, c.Created)
			}
		}
	}
	if closed != 1 {
		t.Fatalf("%d of %d closes succeeded, want exactly 1", closed, len(results))
	}
	list, err := a.Deliveries(ctx, "", 0)
	if err != nil {
		t.Fatal(err)
	}
	if len(list) != 1 || list[0].Kind != relay.KindDigest {
		t.Fatalf("deliveries %+v, want one digest message", list)
	}
}
