// Package sqlite implements relay.Store on one SQLite file, the relay's embedded default.
//
// The file is opened in WAL mode with synchronous=FULL, so that every acknowledged ingest survives
// a power loss, and a busy timeout, so that several relay processes can share it. Each Store uses
// a single connection: writes from its goroutines queue in Go rather than spin in SQLite's busy
// handler, and every write transaction starts with BEGIN IMMEDIATE, so that two processes never
// deadlock upgrading a read lock. Times are stored as unix nanoseconds (UTC).
//
// Checkpoints (copying the write-ahead log back into the database) run on a second connection
// in the background, never inside a commit: with SQLite's automatic checkpoint, the commit that
// crosses the log's threshold copies every page and fsyncs the database before it returns, and
// the webhooks waiting on that commit wait with it (hundreds of milliseconds after a prune).
package sqlite

import (
	"context"
	"database/sql"
	"embed"
	"errors"
	"fmt"
	"strings"
	"time"

	sqlitedriver "modernc.org/sqlite" // registers the "sqlite" driver
	sqlite3 "modernc.org/sqlite/lib"

	"github.com/mlrelay/relay/relay"
	"github.com/mlrelay/relay/relay/internal/migrations"
)

var _ relay.Store = (*Store)(nil)

// migrations holds the schema, one file per step, applied in name order. A file's version is the
// number its name starts with; applied versions are recorded in schema_migrations.
//
//go:embed migrations/*.sql
var migrationFiles embed.FS

// Store is a relay.Store on one SQLite file. It is safe for concurrent use.
type Store struct {
	db *sql.DB

	// sync is the synchronous level set on the connection, read and changed only while holding
	// it (see begin).
	sync string

	ckpt     *sql.DB       // a second connection, for background checkpoints only
	stopCkpt chan struct{} // closed by Close
	ckptDone chan struct{} // closed when the checkpointer has stopped

	// The statements of the hot paths, prepared once on the only connection.
	insertSeen       *sql.Stmt
	raiseStage       *sql.Stmt
	insertEvent      *sql.Stmt
	insertDelivery   *sql.Stmt
	insertDigestItem *sql.Stmt
	dropEvent        *sql.Stmt
	claimDue         *sql.Stmt
	lease            *sql.Stmt
	settle           *sql.Stmt
	release          *sql.Stmt
}

// Open opens the SQLite database at path, creating the file if it does not exist, and brings its
// schema up to date.
func Open(ctx context.Context, path string) (*Store, error) {
	db, err := sql.Open("sqlite", dsn(path))
	if err != nil {
		return nil, fmt.Errorf("sqlite: open %s: %w", path, err)
	}
	// One connection for everything: see the package comment. It is never recycled, so the
	// statements prepared on it stay prepared.
	db.SetMaxOpenConns(1)
	db.SetMaxIdleConns(1)
	db.SetConnMaxLifetime(0)
	db.SetConnMaxIdleTime(0)

	s := &Store{db: db, sync: "FULL"} // as the DSN sets it
	if err := retryBusy(ctx, func() error { return s.migrate(ctx) }); err != nil {
		db.Close()
		return nil, fmt.Errorf("sqlite: open %s: %w", path, err)
	}
	if err := s.prepare(ctx); err != nil {
		s.Close()
		return nil, fmt.Errorf("sqlite: open %s: %w", path, err)
	}
	if err := s.startCheckpointer(path); err != nil {
		s.Close()
		return nil, fmt.Errorf("sqlite: open %s: %w", path, err)
	}
	return s, nil
}

// retryBusy runs f again while it fails with SQLITE_BUSY, for up to the busy timeout. Several
// processes opening a new file at once race to switch it to WAL mode, which needs the file to
// themselves; the losers get SQLITE_BUSY at once, without SQLite's busy handler waiting for
// them, and succeed when they try again.
func retryBusy(ctx context.Context, f func() error) error {
	deadline := time.Now().Add(10 * time.Second)
	for wait := 5 * time.Millisecond; ; wait = min(2*wait, 200*time.Millisecond) {
		err := f()
		var se *sqlitedriver.Error
		if err == nil || !errors.As(err, &se) || se.Code()&0xff != sqlite3.SQLITE_BUSY || time.Now().After(deadline) {
			return err
		}
		select {
		case <-ctx.Done():
			return err
		case <-time.After(wait):
		}
	}
}

// walRestartFrames is the log size (pages) past which the checkpointer restarts the log. A
// passive checkpoint never blocks writers, but under sustained writes it never catches up with
// the frames appended while it copies, and SQLite only starts the log over once it is wholly
// copied: the log would grow without bound. A RESTART checkpoint, run on the writing
// connection, holds writes back for the time it takes to copy what the passive rounds left,
// then lets the next writer start the log from the beginning; journal_size_limit then shrinks
// the file. About 40 MiB with 4 KiB pages.
var walRestartFrames = 10000

// checkpointEvery is how often the background checkpointer runs.
const checkpointEvery = 500 * time.Millisecond

// startCheckpointer opens the checkpoint connection and starts its goroutine, which Close stops.
func (s *Store) startCheckpointer(path string) error {
	ckpt, err := sql.Open("sqlite", dsn(path))
	if err != nil {
		return err
	}
	ckpt.SetMaxOpenConns(1)
	ckpt.SetConnMaxLifetime(0)
	if err := retryBusy(context.Background(), ckpt.Ping); err != nil {
		ckpt.Close()
		return fmt.Errorf("checkpoint connection: %w", err)
	}
	s.ckpt, s.stopCkpt, s.ckptDone = ckpt, make(chan struct{}), make(chan struct{})
	go func() {
		defer close(s.ckptDone)
		t := time.NewTicker(checkpointEvery)
		defer t.Stop()
		for {
			select {
			case <-s.stopCkpt:
				return
			case <-t.C:
			}
			// PASSIVE copies what it can without waiting for, or blocking, the writer. An error
			// (a busy database, say) only means this round did less; the next one catches up.
			var busy, logFrames, copied int
			if ckpt.QueryRow(`PRAGMA wal_checkpoint(PASSIVE)`).Scan(&busy, &logFrames, &copied) != nil {
				continue
			}
			if logFrames > walRestartFrames {
				// On the writing connection, where it queues between transactions: from here
				// it would wait for a gap between them that the writer never leaves.
				_, _ = s.db.Exec(`PRAGMA wal_checkpoint(RESTART)`)
			}
		}
	}()
	return nil
}

// dsn turns a file name into the driver's connection string. The name is written as an SQLite
// URI, with the characters that URIs reserve escaped, so that any file name works.
func dsn(path string) string {
	esc := strings.NewReplacer("%", "%25", "?", "%3f", "#", "%23").Replace(path)
	return "file:" + esc +
		"?_txlock=immediate" +
		// busy_timeout comes first so that switching to WAL already waits for other processes.
		"&_pragma=busy_timeout(10000)" +
		"&_pragma=journal_mode(WAL)" +
		"&_pragma=synchronous(FULL)" +
		// Commits never checkpoint; the background checkpointer does (see the package comment).
		"&_pragma=wal_autocheckpoint(0)" +
		// After the log starts over, its file is cut back to this size (64 MiB).
		"&_pragma=journal_size_limit(67108864)" +
		"&_pragma=foreign_keys(1)"
}

// writeTx is a write transaction on the store's connection, which it holds until it ends.
type writeTx struct {
	*sql.Tx
	conn *sql.Conn
}

func (t writeTx) Commit() error {
	defer t.conn.Close() // gives the connection back; a second Close is harmless
	return t.Tx.Commit()
}

func (t writeTx) Rollback() error {
	defer t.conn.Close()
	return t.Tx.Rollback()
}

// begin starts a write transaction. A durable one (synchronous=FULL) is on disk when it
// commits, even through a power loss: every ingest, whose commit an acknowledgement waits for.
// Others (synchronous=NORMAL: claims, outcomes, releases, pruning) survive the process
// crashing but may be lost with the machine's power, until the next durable commit syncs the
// log; that costs at worst a notification sent again, never one lost, and spares an fsync per
// transaction on the dispatcher's path, which would otherwise hold the connection (and the
// webhooks waiting on it) for most of the time under load.
func (s *Store) begin(ctx context.Context, durable bool) (writeTx, error) {
	conn, err := s.db.Conn(ctx)
	if err != nil {
		return writeTx{}, err
	}
	level := "NORMAL"
	if durable {
		level = "FULL"
	}
	if s.sync != level {
		if _, err := conn.ExecContext(ctx, "PRAGMA synchronous = "+level); err != nil {
			conn.Close()
			return writeTx{}, err
		}
		s.sync = level
	}
	tx, err := conn.BeginTx(ctx, nil)
	if err != nil {
		conn.Close()
		return writeTx{}, err
	}
	return writeTx{Tx: tx, conn: conn}, nil
}

// Close closes the database. Deliveries still leased stay sending until their lease expires.
func (s *Store) Close() error {
	for _, st := range []*sql.Stmt{
		s.insertSeen, s.raiseStage, s.insertEvent, s.insertDelivery, s.insertDigestItem, s.dropEvent,
		s.claimDue, s.lease, s.settle, s.release,
	} {
		if st != nil {
			st.Close()
		}
	}
	if s.ckpt != nil {
		close(s.stopCkpt)
		<-s.ckptDone
		s.ckpt.Close()
		s.ckpt = nil
	}
	if err := s.db.Close(); err != nil {
		return fmt.Errorf("sqlite: close: %w", err)
	}
	return nil
}

// Ping checks that the database file can be read.
func (s *Store) Ping(ctx context.Context) error {
	var n int
	if err := s.db.QueryRowContext(ctx, `SELECT count(*) FROM schema_migrations`).Scan(&n); err != nil {
		return fmt.Errorf("sqlite: ping: %w", err)
	}
	return nil
}

// loadMigrations reads the embedded migrations in version order.
func loadMigrations() ([]migrations.Migration, error) {
	return migrations.Load(migrationFiles, "migrations")
}

// migrate applies the migrations the database lacks, all in one transaction, so that processes
// opening a new file at the same time apply each step exactly once.
func (s *Store) migrate(ctx context.Context) error {
	ms, err := loadMigrations()
	if err != nil {
		return err
	}
	tx, err := s.begin(ctx, true)
	if err != nil {
		return fmt.Errorf("migrate: %w", err)
	}
	defer tx.Rollback()
	if _, err := tx.ExecContext(ctx, `CREATE TABLE IF NOT EXISTS schema_migrations (
		version    INTEGER PRIMARY KEY,
		name       TEXT    NOT NULL,
		applied_at INTEGER NOT NULL
	)`); err != nil {
		return fmt.Errorf("migrate: %w", err)
	}
	applied := map[int]bool{}
	latest := 0
	rows, err := tx.QueryContext(ctx, `SELECT version FROM schema_migrations`)
	if err != nil {
		return fmt.Errorf("migrate: %w", err)
	}
	for rows.Next() {
		var v int
		if err := rows.Scan(&v); err != nil {
			rows.Close()
			return fmt.Errorf("migrate: %w", err)
		}
		applied[v] = true
		latest = max(latest, v)
	}
	if err := rows.Close(); err != nil {
		return fmt.Errorf("migrate: %w", err)
	}
	if n := len(ms); n > 0 && latest > ms[n-1].Version {
		return fmt.Errorf("migrate: the database has schema version %d, newer than this relay knows (%d)",
			latest, ms[n-1].Version)
	}
	for _, m := range ms {
		if applied[m.Version] {
			continue
		}
		if _, err := tx.ExecContext(ctx, m.SQL); err != nil {
			return fmt.Errorf("migrate %s: %w", m.Name, err)
		}
		if _, err := tx.ExecContext(ctx,
			`INSERT INTO schema_migrations (version, name, applied_at) VALUES (?, ?, ?)`,
			m.Version, m.Name, time.Now().UnixNano()); err != nil {
			return fmt.Errorf("migrate %s: %w", m.Name, err)
		}
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("migrate: %w", err)
	}
	return nil
}

// prepare prepares the statements of the hot paths.
func (s *Store) prepare(ctx context.Context) error {
	for _, p := range []struct {
		st    **sql.Stmt
		query string
	}{
		{&s.insertSeen, insertSeenSQL},
		{&s.raiseStage, raiseStageSQL},
		{&s.insertEvent, insertEventSQL},
		{&s.insertDelivery, insertDeliverySQL},
		{&s.insertDigestItem, insertDigestItemSQL},
		{&s.dropEvent, dropEventSQL},
		{&s.claimDue, claimDueSQL},
		{&s.lease, leaseSQL},
		{&s.settle, settleSQL},
		{&s.release, releaseSQL},
	} {
		st, err := s.db.PrepareContext(ctx, p.query)
		if err != nil {
			return fmt.Errorf("prepare: %w", err)
		}
		*p.st = st
	}
	return nil
}

// nanos is t as stored: unix nanoseconds, or the fallback for the zero time, which has none.
func nanos(t time.Time, fallback int64) int64 {
	if t.IsZero() {
		return fallback
	}
	return t.UnixNano()
}

// fromNanos is the time stored as n.
func fromNanos(n int64) time.Time { return time.Unix(0, n).UTC() }
