package relay_test

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/mlrelay/relay/relay"
	"github.com/mlrelay/relay/relay/replicate"
)

// sampleVerifierAndRule returns a verifier for the sample secret and a rule that sends
// succeeded events to "slack".
func sampleVerifierAndRule(t *testing.T) (*replicate.Verifier, *relay.CompiledRule) {
	t.Helper()
	v, err := replicate.NewVerifier([]string{replicate.SampleSecret}, 0)
	if err != nil {
		t.Fatal(err)
	}
	rule, err := relay.CompileRule(relay.Rule{Name: "done", Statuses: []replicate.Status{replicate.Succeeded}, Notify: []string{"slack"}})
	if err != nil {
		t.Fatal(err)
	}
	return v, rule
}

// A retry of a delivery stored lately is answered duplicate from memory, as the store would
// answer it; past the dedup window, or without one, the store is asked.
func TestReceiverAnswersRecentRetriesFromMemory(t *testing.T) {
	for _, window := range []time.Duration{0, time.Hour} {
		t.Run(fmt.Sprintf("window=%v", window), func(t *testing.T) {
			st := &countingStore{Store: openStore(t)}
			c := relay.NewCommitter(st, 0, nil)
			defer c.Close()
			v, rule := sampleVerifierAndRule(t)
			now := time.Now()
			rc := &relay.Receiver{Verifier: v, Rules: []*relay.CompiledRule{rule}, Committer: c, DedupWindow: window,
				Now: func() time.Time { return now }}
			post := func(rc *relay.Receiver, id, body string) (int, string) {
				t.Helper()
				h, err := replicate.SignHeaders(replicate.SampleSecret, id, time.Now(), []byte(body))
				if err != nil {
					t.Fatal(err)
				}
				req := httptest.NewRequest(http.MethodPost, "/hooks/replicate?kind=prediction", strings.NewReader(body))
				req.Header = h
				w := httptest.NewRecorder()
				rc.ServeHTTP(w, req)
				return w.Code, w.Body.String()
			}
			const done = `{"id":"p1","model":"a/b","status":"succeeded"}`
			want := func(rc *relay.Receiver, id, body string, code int, outcome string, ingests int64) {
				t.Helper()
				got, answer := post(rc, id, body)
				if got != code || !strings.Contains(answer, outcome) {
					t.Errorf("%s: %d %s, want %d %s", id, got, strings.TrimSpace(answer), code, outcome)
				}
				if n := st.batches.Load(); n != ingests {
					t.Errorf("%s: the store was asked %d times in all (one webhook each), want %d", id, n, ingests)
				}
			}
			want(rc, "msg_1", done, 200, `"accepted","deliveries":1`, 1)
			if window == 0 {
				want(rc, "msg_1", done, 200, `"duplicate"`, 2) // the store decides
				return
			}
			want(rc, "msg_1", done, 200, `"duplicate","deliveries":0`, 1)
			want(rc, "msg_1", `{"id":`, 400, "malformed", 1) // a malformed body is refused whatever its id
			// The same transition in another message is the store's to judge; the new id is
			// remembered from then on.
			want(rc, "msg_2", done, 200, `"accepted","deliveries":0`, 2)
			want(rc, "msg_2", done, 200, `"duplicate"`, 2)
			// Another replica, or this one restarted, asks the store, and does not remember an
			// id the store called a duplicate: when it was first recorded is unknown here.
			other := &relay.Receiver{Verifier: v, Rules: []*relay.CompiledRule{rule}, Committer: c, DedupWindow: window,
				Now: func() time.Time { return now }}
			want(other, "msg_1", done, 200, `"duplicate"`, 3)
			want(other, "msg_1", done, 200, `"duplicate"`, 4)
			// Past the window the store is asked again (and would have forgotten the id).
			now = now.Add(window)
			want(rc, "msg_1", done, 200, `"duplicate"`, 5)
		})
	}
}

// Concurrent webhooks each store exactly the body that was sent, although the receiver reads
// bodies into pooled buffers and hands them to the store without a copy: also when commits are
// slow and senders give up waiting, so that their handlers end while others' commits still
// hold their bodies.
func TestReceiverStoresEachBodyAsSent(t *testing.T) {
	for _, tc := range []struct {
		name        string
		commitDelay time.Duration
		senderWaits time.Duration
		allAnswered bool
	}{
		{"every sender answered", 0, 10 * time.Second, true},
		{"senders give up during slow commits", 40 * time.Millisecond, 25 * time.Millisecond, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			st := openStore(t)
			c := relay.NewCommitter(&slowStore{Store: st, delay: tc.commitDelay}, 4, nil)
			defer c.Close()
			v, rule := sampleVerifierAndRule(t)
			rc := &relay.Receiver{Verifier: v, Rules: []*relay.CompiledRule{rule}, Committer: c}
			srv := httptest.NewServer(rc)
			defer srv.Close()
			client := srv.Client()
			client.Timeout = tc.senderWaits

			const n = 48
			sent := map[string]string{} // message id → body
			for i := range n {
				// Bodies of different lengths, so that a buffer reused too early would show.
				// Some carry their error as an object with spaces, which parsing reads
				// compacted and must not compact in the body itself.
				extra := ""
				if i%3 == 0 {
					extra = `, "error": {"code": 7, "detail": "out of memory"}`
				}
				sent[fmt.Sprintf("msg_%d", i)] = fmt.Sprintf(`{"id":"p%d","model":"a/b","status":"succeeded","logs":%q%s}`, i, strings.Repeat("step\n", 1+i*37), extra)
			}
			var mu sync.Mutex
			answered := map[string]bool{}
			post := func(id, body string) {
				h, err := replicate.SignHeaders(replicate.SampleSecret, id, time.Now(), []byte(body))
				if err != nil {
					t.Error(err)
					return
				}
				req, _ := http.NewRequest(http.MethodPost, srv.URL+"/hooks/replicate?kind=prediction", strings.NewReader(body))
				req.Header = h
				resp, err := client.Do(req)
				if err != nil {
					if tc.allAnswered {
						t.Error(err)
					}
					return
				}
				resp.Body.Close()
				if resp.StatusCode != 200 {
					t.Errorf("%s: %d", id, resp.StatusCode)
					return
				}
				mu.Lock()
				answered[id] = true
				mu.Unlock()
			}
			// Eight senders, each posting its share one after another, so that webhooks keep
			// arriving (and taking buffers from the pool) while earlier ones are committed.
			var wg sync.WaitGroup
			for w := range 8 {
				wg.Go(func() {
					for i := w; i < n; i += 8 {
						id := fmt.Sprintf("msg_%d", i)
						post(id, sent[id])
					}
				})
			}
			wg.Wait()
			c.Close() // commits taken before the senders gave up finish
			claimed, err := st.Claim(t.Context(), time.Now().Add(time.Minute), time.Minute, 2*n)
			if err != nil {
				t.Fatal(err)
			}
			stored := map[string]bool{}
			for _, dl := range claimed {
				stored[dl.MessageID] = true
				if want := sent[dl.MessageID]; string(dl.Body) != want {
					t.Errorf("%s: stored body\n%q\nwant\n%q", dl.MessageID, dl.Body, want)
				}
			}
			for id := range answered {
				if !stored[id] {
					t.Errorf("%s was acknowledged but not stored", id)
				}
			}
			if tc.allAnswered && len(claimed) != n {
				t.Errorf("%d deliveries stored, want %d", len(claimed), n)
			}
			if !tc.allAnswered && (len(answered) == n || len(claimed) == 0) {
				t.Errorf("%d answered and %d stored of %d: the case needs senders that gave up and commits that went on", len(answered), len(claimed), n)
			}
		})
	}
}

// slowStore takes delay longer over each Ingest.
type slowStore struct {
	relay.Store
	delay time.Duration
}

func (s *slowStore) Ingest(ctx context.Context, batch []*relay.Ingest) error {
	time.Sleep(s.delay)
	return s.Store.Ingest(ctx, batch)
}

// Each event takes its kind and metadata from its own hook URL, however the URLs alternate:
// rules match on them and the store keeps them with the event.
func TestReceiverReadsEachHookURL(t *testing.T) {
	st := openStore(t)
	c := relay.NewCommitter(st, 0, nil)
	defer c.Close()
	v, _ := sampleVerifierAndRule(t)
	rule, err := relay.CompileRule(relay.Rule{Name: "vision", Statuses: []replicate.Status{replicate.Succeeded},
		Meta: map[string]string{"team": "vision"}, Notify: []string{"slack"}})
	if err != nil {
		t.Fatal(err)
	}
	rc := &relay.Receiver{Verifier: v, Rules: []*relay.CompiledRule{rule}, Committer: c}
	queries := []string{"kind=prediction&team=vision", "kind=training&team=vision&run=7", "kind=prediction&team=nlp", ""}
	for i := range 40 {
		q := queries[i%len(queries)]
		body := fmt.Sprintf(`{"id":"p%d","model":"a/b","status":"succeeded"}`, i)
		h, err := replicate.SignHeaders(replicate.SampleSecret, fmt.Sprintf("msg_%d", i), time.Now(), []byte(body))
		if err != nil {
			t.Fatal(err)
		}
		req := httptest.NewRequest(http.MethodPost, "/hooks/replicate?"+q, strings.NewReader(body))
		req.Header = h
		w := httptest.NewRecorder()
		rc.ServeHTTP(w, req)
		want := `"deliveries":0`
		if strings.Contains(q, "vision") {
			want = `"deliveries":1`
		}
		if w.Code != 200 || !strings.Contains(w.Body.String(), want) {
			t.Fatalf("%s: %d %s, want %s", q, w.Code, w.Body, want)
		}
	}
	got, err := st.Claim(context.Background(), time.Now().Add(time.Hour), time.Minute, 100)
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 20 {
		t.Fatalf("%d deliveries, want 20", len(got))
	}
	for _, d := range got {
		var i int
		if _, err := fmt.Sscanf(d.MessageID, "msg_%d", &i); err != nil {
			t.Fatal(err)
		}
		wantKind, wantRun := relay.KindPrediction, ""
		if i%len(queries) == 1 {
			wantKind, wantRun = relay.KindTraining, "7"
		}
		if d.Kind != wantKind || d.Meta["team"] != "vision" || d.Meta["run"] != wantRun || len(d.Meta) != 2+len(wantRun) {
			t.Errorf("%s: kind %s, meta %v", d.MessageID, d.Kind, d.Meta)
		}
	}
}

// countingReader counts the bytes read from it.
type countingReader struct {
	r io.Reader
	n int64
}

func (c *countingReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.n += int64(n)
	return n, err
}

// TestReceiverRefusesBeforeReadingTheBody checks that a request without the webhook headers,
// or with a stale timestamp, is refused without its body being read: anyone can send 10 MiB.
func TestReceiverRefusesBeforeReadingTheBody(t *testing.T) {
	v, rule := sampleVerifierAndRule(t)
	rc := &relay.Receiver{Verifier: v, Rules: []*relay.CompiledRule{rule}, Committer: relay.NewCommitter(openStore(t), 0, nil),
		Logger: slog.New(slog.DiscardHandler)}
	big := strings.Repeat(`{"id":"p1"}`, 1<<20)
	stale, err := replicate.SignHeaders(replicate.SampleSecret, "msg_1", time.Now().Add(-time.Hour), []byte(big))
	if err != nil {
		t.Fatal(err)
	}
	for name, h := range map[string]http.Header{"no headers": {}, "stale timestamp": stale} {
		body := &countingReader{r: strings.NewReader(big)}
		req := httptest.NewRequest(http.MethodPost, "/hooks/replicate", body)
		req.Header = h
		w := httptest.NewRecorder()
		rc.ServeHTTP(w, req)
		if w.Code != http.StatusUnauthorized || body.n != 0 {
			t.Errorf("%s: %d after reading %d bytes, want 401 before reading any", name, w.Code, body.n)
		}
	}
}
