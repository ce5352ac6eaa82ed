package relay_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/mlrelay/relay/relay"
)

// digestRenderer renders digests as their stored body, in upper case.
type digestRenderer struct{ plainRenderer }

func (digestRenderer) RenderDigest(set, target string, body []byte) (relay.Message, error) {
	return relay.Message{Title: set + "/" + target, Body: strings.ToUpper(string(body))}, nil
}

// closeDigest closes a period of "daily" holding one collected event, with a message to notifier.
func closeDigest(t *testing.T, st relay.Store, notifier string) {
	t.Helper()
	in := &relay.Ingest{MessageID: "m1", Kind: relay.KindPrediction, SubjectID: "p1", Status: "failed",
		ReceivedAt: time.Now().Add(-time.Hour), Body: []byte(`{"id":"p1","status":"failed"}`), Digests: []string{"daily"}}
	if err := st.Ingest(context.Background(), []*relay.Ingest{in}); err != nil {
		t.Fatal(err)
	}
	c := &relay.DigestClose{Digest: "daily", Start: time.Now().Add(-24 * time.Hour), End: time.Now(),
		Deliveries: []relay.DeliverySpec{{Rule: "daily", Notifier: notifier, Template: "digest"}},
		Build:      func(time.Time, []relay.DigestItem) ([]byte, error) { return []byte("one failure"), nil }}
	if err := st.CloseDigest(context.Background(), c); err != nil || c.Created != 1 {
		t.Fatalf("close: %v, %+v", err, c)
	}
}

func TestDispatcherSendsDigests(t *testing.T) {
	st := openStore(t)
	n := &scripted{}
	d := relay.NewDispatcher(st, digestRenderer{}, map[string]*relay.Destination{"email": {Notifier: n, Target: "email"}}, fast(), quiet)
	closeDigest(t, st, "email")
	runDispatcher(t, d)
	if l := waitSettled(t, st, 1); l[0].State != relay.Sent || l[0].Kind != relay.KindDigest {
		t.Fatalf("got %+v", l[0])
	}
	n.mu.Lock()
	defer n.mu.Unlock()
	if len(n.msgs) != 1 || n.msgs[0].Title != "digest/email" || n.msgs[0].Body != "ONE FAILURE" || n.msgs[0].Rule != "daily" {
		t.Fatalf("sent %+v", n.msgs)
	}
}

func TestDispatcherWithoutDigestRendererIsDead(t *testing.T) {
	st := openStore(t)
	n := &scripted{}
	d := relay.NewDispatcher(st, plainRenderer{}, map[string]*relay.Destination{"email": {Notifier: n, Target: "email"}}, fast(), quiet)
	closeDigest(t, st, "email")
	runDispatcher(t, d)
	if l := waitSettled(t, st, 1); l[0].State != relay.Dead || !strings.Contains(l[0].LastError, "cannot render digests") {
		t.Fatalf("got %+v", l[0])
	}
	if n.count() != 0 {
		t.Fatalf("%d sends", n.count())
	}
}
