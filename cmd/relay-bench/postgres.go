package main

import (
	"context"
	"fmt"
	"net/url"
	"os"
	"time"

	"github.com/jackc/pgx/v5"
)

// postgresEnv names the PostgreSQL server -store postgres runs against.
const postgresEnv = "RELAY_BENCH_POSTGRES"

const defaultPostgres = "postgres://postgres@127.0.0.1:5432/test?sslmode=disable"

// pgSchema is a fresh schema for one run on the PostgreSQL server, so that each run starts
// empty; url points the relay at it (search_path).
type pgSchema struct {
	base, name, url string
}

// newPGSchema creates the run's schema.
func newPGSchema(ctx context.Context, run int) (*pgSchema, error) {
	base := os.Getenv(postgresEnv)
	if base == "" {
		base = defaultPostgres
	}
	s := &pgSchema{base: base, name: fmt.Sprintf("relay_bench_%d_%d", os.Getpid(), run)}
	if err := s.exec(ctx, "CREATE SCHEMA "+pgx.Identifier{s.name}.Sanitize()); err != nil {
		return nil, err
	}
	u, err := url.Parse(base)
	if err != nil {
		return nil, fmt.Errorf("%s: not a URL", postgresEnv)
	}
	q := u.Query()
	q.Set("search_path", s.name)
	u.RawQuery = q.Encode()
	s.url = u.String()
	return s, nil
}

// drop removes the run's schema and everything in it.
func (s *pgSchema) drop() error {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	return s.exec(ctx, "DROP SCHEMA "+pgx.Identifier{s.name}.Sanitize()+" CASCADE")
}

func (s *pgSchema) exec(ctx context.Context, sql string) error {
	conn, err := pgx.Connect(ctx, s.base)
	if err != nil {
		return fmt.Errorf("postgres (%s): %w", postgresEnv, err)
	}
	defer conn.Close(ctx)
	_, err = conn.Exec(ctx, sql)
	return err
}
