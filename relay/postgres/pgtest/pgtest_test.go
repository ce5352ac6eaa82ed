package pgtest

import (
	"errors"
	"strings"
	"testing"
)

func TestUnreachableMessage(t *testing.T) {
	const pw = "hunter2"
	msg := unreachable("postgres://relay:"+pw+"@db.example:5433/relay", errors.New("dial tcp db.example:5433 as relay:"+pw+": connection refused"))
	for _, want := range []string{"db.example:5433", EnvURL, EnvRequired} {
		if !strings.Contains(msg, want) {
			t.Errorf("message %q does not name %s", msg, want)
		}
	}
	if strings.Contains(msg, pw) {
		t.Errorf("message %q shows the password", msg)
	}
}

func TestURL(t *testing.T) {
	u := URL(t)
	schema := Schema(u)
	if !strings.HasPrefix(schema, "relay_test_") || !strings.Contains(u, "application_name="+schema) {
		t.Errorf("URL %q: schema %q, want a relay_test_ schema that is also the application name", u, schema)
	}
	if other := Schema(URL(t)); other == schema {
		t.Errorf("two URLs share the schema %s", schema)
	}
}
