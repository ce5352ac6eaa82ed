// Package pgtest gives tests a PostgreSQL schema of their own on the test server, so that tests
// against PostgreSQL (the store's, end-to-end, benchmarks) start empty, stay independent, and can
// run in parallel.
//
// The server is the one EnvURL names, by default DefaultURL. When it cannot be reached within
// two seconds the tests that need it are skipped, with a message saying how to provide one,
// unless EnvRequired is set to 1 (CI sets it): then they fail.
package pgtest

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"net/url"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
)

const (
	// EnvURL names the environment variable holding the test server's postgres:// URL.
	EnvURL = "RELAY_TEST_POSTGRES"
	// EnvRequired names the environment variable that, set to 1, makes tests fail rather than
	// skip when the server cannot be reached.
	EnvRequired = "RELAY_TEST_POSTGRES_REQUIRED"
	// DefaultURL is the server used when EnvURL is not set: a local one with trust
	// authentication.
	DefaultURL = "postgres://postgres@127.0.0.1:5432/test?sslmode=disable"
)

// reachTimeout is how long Server waits for the server to answer.
const reachTimeout = 2 * time.Second

// reach checks once per process whether the server answers.
var reach = sync.OnceValues(func() (string, error) {
	base := os.Getenv(EnvURL)
	if base == "" {
		base = DefaultURL
	}
	if u, err := url.Parse(base); err != nil || (u.Scheme != "postgres" && u.Scheme != "postgresql") {
		return base, fmt.Errorf("%s is not a postgres:// URL", EnvURL)
	}
	ctx, cancel := context.WithTimeout(context.Background(), reachTimeout)
	defer cancel()
	conn, err := pgx.Connect(ctx, base)
	if err != nil {
		return base, err
	}
	defer conn.Close(context.Background())
	return base, conn.Ping(ctx)
})

// Server returns the test server's URL once it has checked that the server answers. Otherwise it
// skips t, or fails it when EnvRequired is 1.
func Server(t testing.TB) string {
	t.Helper()
	base, err := reach()
	if err != nil {
		msg := unreachable(base, err)
		if os.Getenv(EnvRequired) == "1" {
			t.Fatal(msg)
		}
		t.Skip(msg)
	}
	return base
}

// unreachable explains why the tests cannot run, without the URL's password.
func unreachable(base string, err error) string {
	shown := "the value of " + EnvURL // not a URL: not shown, as it may hold a password
	if u, perr := url.Parse(base); perr == nil {
		shown = u.Redacted()
	}
	return fmt.Sprintf("PostgreSQL is not reachable at %s: %v\n"+
		"Set %s to the postgres:// URL of a server to test against (a user that may create schemas); "+
		"with %s=1 an unreachable server fails the tests instead of skipping them.",
		shown, redact(err, base), EnvURL, EnvRequired)
}

// redact returns err's message with the URL's password masked.
func redact(err error, base string) string {
	msg := err.Error()
	if u, perr := url.Parse(base); perr == nil {
		if pw, ok := u.User.Password(); ok && pw != "" {
			return strings.ReplaceAll(msg, pw, "xxxxx")
		}
	}
	return msg
}

// URL creates a new, empty schema on the test server and returns a URL whose connections use it:
// its search_path is the schema, and so is its application_name, which lets a test find the
// connections of its own stores in pg_stat_activity. The schema is dropped, with everything in
// it, when t ends; stores opened on it must be closed before (a t.Cleanup registered after URL
// runs first). Like Server, it skips or fails t when the server cannot be reached.
func URL(t testing.TB) string {
	t.Helper()
	base := Server(t)
	var b [8]byte
	rand.Read(b[:])
	schema := "relay_test_" + hex.EncodeToString(b[:])
	name := pgx.Identifier{schema}.Sanitize()

	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := exec(ctx, base, "CREATE SCHEMA "+name); err != nil {
		t.Fatalf("pgtest: create schema: %s", redact(err, base))
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		if err := exec(ctx, base, "DROP SCHEMA "+name+" CASCADE"); err != nil {
			t.Errorf("pgtest: drop schema %s: %s", schema, redact(err, base))
		}
	})

	u, _ := url.Parse(base) // parsed by Server already
	q := u.Query()
	q.Set("search_path", schema)
	q.Set("application_name", schema)
	u.RawQuery = q.Encode()
	return u.String()
}

// Schema returns the schema that a URL made by URL points at.
func Schema(u string) string {
	p, err := url.Parse(u)
	if err != nil {
		return ""
	}
	return p.Query().Get("search_path")
}

// Terminate terminates the server's connections opened with a URL made by URL (those whose
// application_name is its schema), as a server restart or an administrator would, waits until
// they are gone, and returns how many there were.
func Terminate(t testing.TB, u string) int {
	t.Helper()
	base := Server(t)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	conn, err := pgx.Connect(ctx, base)
	if err != nil {
		t.Fatalf("pgtest: %s", redact(err, base))
	}
	defer conn.Close(context.Background())
	var n int
	if err := conn.QueryRow(ctx, `SELECT count(pg_terminate_backend(pid, 5000)) FROM pg_stat_activity
		WHERE application_name = $1 AND pid <> pg_backend_pid()`, Schema(u)).Scan(&n); err != nil {
		t.Fatalf("pgtest: terminate: %s", redact(err, base))
	}
	return n
}

// exec runs sql on a new connection to the server at base.
func exec(ctx context.Context, base, sql string) error {
	conn, err := pgx.Connect(ctx, base)
	if err != nil {
		return err
	}
	defer conn.Close(context.Background())
	_, err = conn.Exec(ctx, sql)
	return err
}
