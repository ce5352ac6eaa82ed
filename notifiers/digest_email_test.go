package notifiers

import (
	"context"
	"path/filepath"
	"strings"
	"testing"

	"github.com/mlrelay/relay/templates"
)

// TestDigestEmailGolden sends the default digest of a sample day through a real SMTP server
// and pins what arrives: headers, MIME structure, and both bodies. Run with -update to rewrite.
func TestDigestEmailGolden(t *testing.T) {
	set, err := templates.Load("")
	if err != nil {
		t.Fatal(err)
	}
	sum := templates.SampleSummaries()[0]
	m, err := set.RenderDigest("digest", "email", sum)
	if err != nil {
		t.Fatal(err)
	}
	m.Rule = "daily-failures"
	srv := newSMTPServer(t)
	e := newEmail(t, emailOptions(srv))
	if _, err := e.Notify(context.Background(), m); err != nil {
		t.Fatal(err)
	}
	got, root := receive(t, srv, 1)
	if len(got.To) != 2 {
		t.Errorf("envelope recipients %q", got.To)
	}
	desc := describeEmail(root)
	checkGolden(t, filepath.Join("testdata", "digest-email.golden"), []byte(desc))
	for _, want := range []string{
		"Subject: Daily failure digest:",
		"multipart/alternative",
		"--- text/plain",
		"--- text/html",
		"stability-ai/sdxl",
		"CUDA out of memory",
	} {
		if !strings.Contains(desc, want) {
			t.Errorf("the digest email lacks %q", want)
		}
	}
}
