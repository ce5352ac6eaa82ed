// Package postgres implements relay.Store on PostgreSQL, so that several relay replicas can share
// one database: they cooperate only through it.
//
//   - Dedup and transition uniqueness are constraints (seen's primary key, the unique transition
//     of a delivery or a digest item), written with INSERT ... ON CONFLICT, so that a message or a
//     transition counts once however many replicas receive it at the same moment.
//   - An Ingest batch is one transaction, sent as one pipeline (a round trip for the whole
//     batch). It starts by taking a transaction-scoped advisory lock per subject, in one global
//     order, so that concurrent batches about the same predictions queue for each other in that
//     order rather than deadlock on the rows they share.
//   - Claim picks due deliveries with FOR UPDATE SKIP LOCKED and leases them in the same
//     statement: replicas claiming at once never take the same delivery, and never wait for each
//     other either.
//   - CloseDigest holds an advisory lock per digest, so that the replicas closing one period take
//     turns and all but the first find it closed; the unique (digest, period_end) backs it up.
//   - Migrations run under an advisory lock, so that replicas starting together apply each once.
//
// Times are stored as BIGINT unix nanoseconds (UTC), so that a lease's end, the token of a
// claim, comes back exactly as Claim computed it.
//
// Connections come from a pgxpool; statements are prepared and cached per connection (pgx's
// default; pgx's default_query_exec_mode URL parameter changes it, for a pooler that cannot keep
// prepared statements). An operation whose connection turns out to be lost (the server
// restarted, or its backend was terminated) runs once more on a new connection, after the pool
// has dropped the others it held, which were most likely lost the same way; while the server is
// away, every method returns an error as soon as connecting fails or its context ends.
package postgres

import (
	"context"
	"embed"
	"errors"
	"fmt"
	"net/url"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/mlrelay/relay/relay"
	"github.com/mlrelay/relay/relay/internal/migrations"
)

var _ relay.Store = (*Store)(nil)

// migrations holds the schema, one file per step, applied in name order. A file's version is the
// number its name starts with; applied versions are recorded in schema_migrations.
//
//go:embed migrations/*.sql
var migrationFiles embed.FS

// The classes of the store's two-key advisory locks (pg_advisory_xact_lock(class, key)), whose
// keys hash the current schema with a name, so that relays on different schemas of one database
// never wait for each other. Subject locks use the one-key form, a key space of its own.
const (
	lockMigrate int32 = 0x72656c00 + iota // "rel\0"
	lockDigest
	lockPrune
)

// lockSQL takes the advisory lock of class $1 and name $2 in the current schema, until the
// transaction ends.
const lockSQL = `SELECT pg_advisory_xact_lock($1, hashtext(coalesce(current_schema(), '') || ':' || $2::text))`

// defaultConnectTimeout bounds each connection attempt when the URL sets no connect_timeout, so
// that a server that accepts TCP connections but never answers fails operations rather than
// holding them up to the operating system's own timeout.
const defaultConnectTimeout = 5 * time.Second

// Store is a relay.Store on a PostgreSQL database. It is safe for concurrent use, and several
// Stores, in one process or many, may share one database.
type Store struct {
	pool *pgxpool.Pool
}

// Open connects to the PostgreSQL database at rawURL, a postgres:// URL, and brings its schema
// up to date. The store's tables live in the first schema of the connection's search_path (which the
// URL may set, as ?search_path=name). Pool settings come from the URL too (pool_max_conns, ...).
// Errors never show the URL's password.
func Open(ctx context.Context, rawURL string) (*Store, error) {
	cfg, err := pgxpool.ParseConfig(rawURL)
	if err != nil {
		return nil, fmt.Errorf("postgres: open: %w", parseError(rawURL, err))
	}
	if cfg.ConnConfig.ConnectTimeout == 0 {
		cfg.ConnConfig.ConnectTimeout = defaultConnectTimeout
	}
	target := fmt.Sprintf("%s:%d/%s", cfg.ConnConfig.Host, cfg.ConnConfig.Port, cfg.ConnConfig.Database)
	pool, err := pgxpool.NewWithConfig(ctx, cfg)
	if err != nil {
		return nil, fmt.Errorf("postgres: open %s: %w", target, err)
	}
	s := &Store{pool: pool}
	if err := s.migrate(ctx); err != nil {
		pool.Close()
		return nil, fmt.Errorf("postgres: open %s: %w", target, err)
	}
	return s, nil
}

// parseError is the error of a URL that pgx could not parse, without the URL's password. pgx
// masks the passwords it recognises, on a best-effort basis; here the password of a URL that
// parses as a URL is masked as well, as written and decoded, and a URL that does not parse at
// all is not quoted.
func parseError(rawURL string, err error) error {
	u, uerr := url.Parse(rawURL)
	if uerr != nil {
		return errors.New("the URL does not parse (it is not shown, as it may hold a password)")
	}
	pw, ok := u.User.Password()
	if !ok {
		return err
	}
	// The password as written: between the first ':' and the last '@' of the authority, which is
	// how url.Parse, which accepted it, reads it.
	authority := rawURL[strings.Index(rawURL, "//")+2:]
	if i := strings.IndexAny(authority, "/?#"); i >= 0 {
		authority = authority[:i]
	}
	userinfo := authority[:max(strings.LastIndex(authority, "@"), 0)]
	_, written, _ := strings.Cut(userinfo, ":")
	msg := err.Error()
	for _, p := range []string{written, pw} {
		if p != "" {
			msg = strings.ReplaceAll(msg, p, "xxxxx")
		}
	}
	return errors.New(msg)
}

// Close closes the pool. Deliveries still leased stay sending until their lease expires.
func (s *Store) Close() error {
	s.pool.Close()
	return nil
}

// Ping checks that the database answers and holds the store's schema.
func (s *Store) Ping(ctx context.Context) error {
	err := s.do(ctx, func(c *pgx.Conn) error {
		var v *int
		return c.QueryRow(ctx, `SELECT max(version) FROM schema_migrations`).Scan(&v)
	})
	if err != nil {
		return fmt.Errorf("postgres: ping: %w", err)
	}
	return nil
}

// attempts is how many times do runs an operation whose connection turns out to be lost.
const attempts = 2

// do runs op on a connection from the pool. When op fails because the connection was lost, op
// runs once more on a new connection, after the pool has dropped the connections it held (a
// server restart or an administrator loses them all at once, and a connection idle for less than
// a second is handed out without a check). Every operation may run again safely: reads and
// idempotent writes obviously, and the others because a lost connection either rolled their
// transaction back, or (when it went between the commit and its reply) makes the second run
// find the work done: an Ingest reports its events as duplicates, a Settle its leases as no
// longer held, a CloseDigest the period as closed, and a Claim leaves the first run's leases to
// expire.
func (s *Store) do(ctx context.Context, op func(*pgx.Conn) error) error {
	for attempt := 1; ; attempt++ {
		c, err := s.pool.Acquire(ctx)
		if err != nil {
			return err
		}
		err = op(c.Conn())
		lost := err != nil && c.Conn().IsClosed()
		c.Release()
		if !lost || attempt == attempts || ctx.Err() != nil {
			return err
		}
		s.pool.Reset()
	}
}

// loadMigrations reads the embedded migrations in version order.
func loadMigrations() ([]migrations.Migration, error) {
	return migrations.Load(migrationFiles, "migrations")
}

// migrate applies the migrations the schema lacks, all in one transaction that holds the
// schema's migration lock, so that replicas starting at the same time apply each step once: the
// others wait for the lock, then find every step recorded.
func (s *Store) migrate(ctx context.Context) error {
	ms, err := loadMigrations()
	if err != nil {
		return err
	}
	err = s.do(ctx, func(c *pgx.Conn) error {
		return pgx.BeginFunc(ctx, c, func(tx pgx.Tx) error { return applyMigrations(ctx, tx, ms) })
	})
	if err != nil {
		return fmt.Errorf("migrate: %w", err)
	}
	return nil
}

// applyMigrations applies, inside tx, the migrations not recorded in schema_migrations.
func applyMigrations(ctx context.Context, tx pgx.Tx, ms []migrations.Migration) error {
	// The lock comes first: two transactions creating schema_migrations at once would otherwise
	// collide on the catalog, IF NOT EXISTS notwithstanding.
	if _, err := tx.Exec(ctx, lockSQL, lockMigrate, "migrate"); err != nil {
		return err
	}
	if _, err := tx.Exec(ctx, `CREATE TABLE IF NOT EXISTS schema_migrations (
		version    INTEGER     PRIMARY KEY,
		name       TEXT        NOT NULL,
		applied_at TIMESTAMPTZ NOT NULL DEFAULT now()
	)`); err != nil {
		return err
	}
	rows, err := tx.Query(ctx, `SELECT version FROM schema_migrations`)
	if err != nil {
		return err
	}
	applied, err := pgx.CollectRows(rows, pgx.RowTo[int])
	if err != nil {
		return err
	}
	done := map[int]bool{}
	latest := 0
	for _, v := range applied {
		done[v] = true
		latest = max(latest, v)
	}
	if n := len(ms); n > 0 && latest > ms[n-1].Version {
		return fmt.Errorf("the database has schema version %d, newer than this relay knows (%d)", latest, ms[n-1].Version)
	}
	for _, m := range ms {
		if done[m.Version] {
			continue
		}
		// Without arguments, pgx sends the file as one simple query: several statements.
		if _, err := tx.Exec(ctx, m.SQL); err != nil {
			return fmt.Errorf("%s: %w", m.Name, err)
		}
		if _, err := tx.Exec(ctx, `INSERT INTO schema_migrations (version, name) VALUES ($1, $2)`, m.Version, m.Name); err != nil {
			return fmt.Errorf("%s: %w", m.Name, err)
		}
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
