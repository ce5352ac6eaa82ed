package relay_test

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/mlrelay/relay/relay"
	"github.com/mlrelay/relay/relay/replicate"
)

// fetcher is a relay.Fetcher whose downloads the test decides.
type fetcher struct {
	mu    sync.Mutex
	asked [][]string
	fetch func(ctx context.Context, u string) (relay.Attachment, error)
}

func (f *fetcher) Fetch(ctx context.Context, urls []string) ([]relay.Attachment, []error) {
	f.mu.Lock()
	f.asked = append(f.asked, urls)
	f.mu.Unlock()
	var (
		files []relay.Attachment
		errs  []error
	)
	for _, u := range urls {
		a, err := f.fetch(ctx, u)
		if err != nil {
			errs = append(errs, fmt.Errorf("%s: %w", u, err))
			continue
		}
		files = append(files, a)
	}
	return files, errs
}

// enqueueOutput stores a succeeded prediction with output files and one delivery to notifier.
func enqueueOutput(t *testing.T, st relay.Store, id, notifier string, files ...string) {
	t.Helper()
	out := ""
	for i, f := range files {
		if i > 0 {
			out += ","
		}
		out += fmt.Sprintf("%q", f)
	}
	out = "[" + out + "]"
	body := fmt.Sprintf(`{"id":%q,"status":"succeeded","model":"a/b","output":%s}`, id, out)
	in := &relay.Ingest{MessageID: "msg_" + id, Kind: relay.KindPrediction, SubjectID: id, Status: replicate.Succeeded,
		ReceivedAt: time.Now(), Body: []byte(body),
		Deliveries: []relay.DeliverySpec{{Rule: "r", Notifier: notifier, Template: "default"}}}
	if err := st.Ingest(context.Background(), []*relay.Ingest{in}); err != nil {
		t.Fatal(err)
	}
}

func TestDispatcherAttachesOutputFiles(t *testing.T) {
	st := openStore(t)
	f := &fetcher{fetch: func(_ context.Context, u string) (relay.Attachment, error) {
		if u == "https://files.example/b.png" {
			return relay.Attachment{}, errors.New("download failed: 404 Not Found")
		}
		return relay.Attachment{Name: "a.png", ContentType: "image/png", Data: []byte("PNG"), URL: u}, nil
	}}
	n := &scripted{}
	plain := &scripted{}
	d := relay.NewDispatcher(st, plainRenderer{}, map[string]*relay.Destination{
		"discord": {Notifier: n, Target: "text", Attach: f},
		"slack":   {Notifier: plain, Target: "text"},
	}, fast(), quiet)
	enqueueOutput(t, st, "p1", "discord", "https://files.example/a.png", "https://files.example/b.png")
	enqueueOutput(t, st, "p2", "slack", "https://files.example/c.png")
	enqueueOutput(t, st, "p3", "discord") // no output: nothing to fetch
	runDispatcher(t, d)
	for _, dl := range waitSettled(t, st, 3) {
		if dl.State != relay.Sent {
			t.Fatalf("delivery %+v not sent: a failed download must not fail it", dl)
		}
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if len(f.asked) != 1 || len(f.asked[0]) != 2 || f.asked[0][1] != "https://files.example/b.png" {
		t.Fatalf("fetcher asked for %q, want the two files of p1 only", f.asked)
	}
	n.mu.Lock()
	defer n.mu.Unlock()
	var p1 relay.Message
	for _, m := range n.msgs {
		if m.Event.ID == "p1" {
			p1 = m
		}
		if m.Event.ID == "p3" && len(m.Attachments) != 0 {
			t.Errorf("p3 has attachments %+v, it has no output", m.Attachments)
		}
	}
	if len(p1.Attachments) != 1 || p1.Attachments[0].URL != "https://files.example/a.png" || string(p1.Attachments[0].Data) != "PNG" {
		t.Fatalf("p1 attachments = %+v, want a.png only", p1.Attachments)
	}
	plain.mu.Lock()
	defer plain.mu.Unlock()
	if len(plain.msgs) != 1 || len(plain.msgs[0].Attachments) != 0 {
		t.Fatalf("a destination without Attach got %+v", plain.msgs)
	}
}

// A download that hangs is cut off within the send timeout and the message goes out with links.
func TestDispatcherSlowDownloadSendsLinks(t *testing.T) {
	st := openStore(t)
	f := &fetcher{fetch: func(ctx context.Context, u string) (relay.Attachment, error) {
		<-ctx.Done()
		return relay.Attachment{}, ctx.Err()
	}}
	n := &scripted{}
	cfg := fast()
	cfg.SendTimeout = 200 * time.Millisecond
	d := relay.NewDispatcher(st, plainRenderer{}, map[string]*relay.Destination{"discord": {Notifier: n, Target: "text", Attach: f}}, cfg, quiet)
	enqueueOutput(t, st, "p1", "discord", "https://files.example/a.png")
	start := time.Now()
	runDispatcher(t, d)
	list := waitSettled(t, st, 1)
	if list[0].State != relay.Sent || list[0].Attempts != 0 {
		t.Fatalf("got %+v, want sent at the first attempt (no failed attempts)", list[0])
	}
	n.mu.Lock()
	defer n.mu.Unlock()
	if len(n.msgs) != 1 || len(n.msgs[0].Attachments) != 0 {
		t.Fatalf("got %d messages, %+v", len(n.msgs), n.msgs)
	}
	if took := n.calls[0].Sub(start); took < 200*time.Millisecond {
		t.Fatalf("sent after %v, before the download's budget of 200ms ran out", took)
	}
}

// Stopping while a download runs hands the delivery back unattempted: nothing was sent.
func TestDispatcherShutdownDuringDownloadReleases(t *testing.T) {
	st := openStore(t)
	started := make(chan struct{})
	f := &fetcher{fetch: func(ctx context.Context, u string) (relay.Attachment, error) {
		close(started)
		<-ctx.Done()
		return relay.Attachment{}, ctx.Err()
	}}
	n := &scripted{}
	d := relay.NewDispatcher(st, plainRenderer{}, map[string]*relay.Destination{"discord": {Notifier: n, Target: "text", Attach: f}}, fast(), quiet)
	enqueueOutput(t, st, "p1", "discord", "https://files.example/a.png")
	stop := runDispatcher(t, d)
	select {
	case <-started:
	case <-time.After(10 * time.Second):
		t.Fatal("download never started")
	}
	stop()
	if n.count() != 0 {
		t.Fatalf("%d sends after stopping mid-download, want 0", n.count())
	}
	list, err := st.Deliveries(context.Background(), "", 10)
	if err != nil {
		t.Fatal(err)
	}
	if len(list) != 1 || list[0].State != relay.Pending || list[0].Attempts != 0 {
		t.Fatalf("got %+v, want the delivery pending with no attempt", list)
	}
	// Released, not left leased: a new dispatcher takes it at once.
	n2 := &scripted{}
	ok := &fetcher{fetch: func(_ context.Context, u string) (relay.Attachment, error) {
		return relay.Attachment{Name: "a.png", Data: []byte("x"), URL: u}, nil
	}}
	d2 := relay.NewDispatcher(st, plainRenderer{}, map[string]*relay.Destination{"discord": {Notifier: n2, Target: "text", Attach: ok}}, fast(), quiet)
	runDispatcher(t, d2)
	if l := waitSettled(t, st, 1); l[0].State != relay.Sent {
		t.Fatalf("got %+v", l[0])
	}
	if n2.count() != 1 {
		t.Fatalf("%d sends, want 1", n2.count())
	}
}
