package relay_test

import (
	"fmt"
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
// bodies into pooled buffers and hands them to the store without a copy.
func TestReceiverStoresEachBodyAsSent(t *testing.T) {
	st := openStore(t)
	c := relay.NewCommitter(st, 0, nil)
	defer c.Close()
	v, rule := sampleVerifierAndRule(t)
	rc := &relay.Receiver{Verifier: v, Rules: []*relay.CompiledRule{rule}, Committer: c}
	srv := httptest.NewServer(rc)
	defer srv.Close()

	const n = 48
	sent := map[string]string{} // message id → body
	for i := range n {
		// Bodies of different lengths, so that a buffer reused too early would show.
		// Some carry their error as an object with spaces, which parsing reads compacted and
		// must not compact in the body itself.
		extra := ""
		if i%3 == 0 {
			extra = `, "error": {"code": 7, "detail": "out of memory"}`
		}
		sent[fmt.Sprintf("msg_%d", i)] = fmt.Sprintf(`{"id":"p%d","model":"a/b","status":"succeeded","logs":%q%s}`, i, strings.Repeat("step\n", 1+i*37), extra)
	}
	var wg sync.WaitGroup
	for id, body := range sent {
		wg.Go(func() {
			h, err := replicate.SignHeaders(replicate.SampleSecret, id, time.Now(), []byte(body))
			if err != nil {
				t.Error(err)
				return
			}
			req, _ := http.NewRequest(http.MethodPost, srv.URL+"/hooks/replicate?kind=prediction", strings.NewReader(body))
			req.Header = h
			resp, err := srv.Client().Do(req)
			if err != nil {
				t.Error(err)
				return
			}
			resp.Body.Close()
			if resp.StatusCode != 200 {
				t.Errorf("%s: %d", id, resp.StatusCode)
			}
		})
	}
	wg.Wait()
	claimed, err := st.Claim(t.Context(), time.Now().Add(time.Minute), time.Minute, 2*n)
	if err != nil {
		t.Fatal(err)
	}
	if len(claimed) != n {
		t.Fatalf("%d deliveries stored, want %d", len(claimed), n)
	}
	for _, dl := range claimed {
		if want := sent[dl.MessageID]; string(dl.Body) != want {
			t.Errorf("%s: stored body\n%q\nwant\n%q", dl.MessageID, dl.Body, want)
		}
	}
}
