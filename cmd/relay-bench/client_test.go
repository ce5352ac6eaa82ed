package main

import (
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/mlrelay/relay/relay/replicate"
)

// The poster must read every shape of answer net/http can give, and sign as Replicate does.
func TestPosterAnswers(t *testing.T) {
	const secret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
	verifier, err := replicate.NewVerifier([]string{secret}, time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	big := strings.Repeat("x", maxAnswer+1000)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		if err := verifier.Verify(r.Header, body); err != nil {
			http.Error(w, "bad signature: "+err.Error(), http.StatusUnauthorized)
			return
		}
		switch string(body) {
		case "small":
			_, _ = io.WriteString(w, `{"outcome":"accepted","deliveries":1}`)
		case "chunked":
			_, _ = io.WriteString(w, "part one, ")
			w.(http.Flusher).Flush()
			_, _ = io.WriteString(w, "part two")
		case "big":
			w.(http.Flusher).Flush()
			_, _ = io.WriteString(w, big)
		case "close":
			w.Header().Set("Connection", "close")
			w.WriteHeader(http.StatusServiceUnavailable)
			_, _ = io.WriteString(w, "closing")
		case "empty":
			w.WriteHeader(http.StatusNoContent)
		}
	}))
	defer srv.Close()

	p, err := newPoster(context.Background(), srv.URL+"/hooks/replicate?kind=prediction", secret)
	if err != nil {
		t.Fatal(err)
	}
	defer p.close()
	var resp []byte
	for i, c := range []struct {
		body, want string
		code       int
		open       bool // the connection stays open afterwards
	}{
		{"small", `{"outcome":"accepted","deliveries":1}`, 200, true},
		{"chunked", "part one, part two", 200, true},
		{"big", big[:maxAnswer], 200, true},
		{"close", "closing", 503, false},
		{"empty", "", 204, true},
		{"small", `{"outcome":"accepted","deliveries":1}`, 200, true},
	} {
		code, lat, err := p.post(context.Background(), "msg_"+c.body, []byte(c.body), &resp)
		if err != nil {
			t.Fatalf("%d %s: %v", i, c.body, err)
		}
		if code != c.code || string(resp) != c.want {
			t.Errorf("%d %s: got %d %.60q, want %d %.60q", i, c.body, code, resp, c.code, c.want)
		}
		if lat <= 0 {
			t.Errorf("%d %s: latency %v", i, c.body, lat)
		}
		if open := p.conn != nil; open != c.open {
			t.Errorf("%d %s: connection open %v, want %v", i, c.body, open, c.open)
		}
	}
}

// A cancelled run ends a request in flight at once.
func TestPosterCancel(t *testing.T) {
	release := make(chan struct{})
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { <-release }))
	defer srv.Close()
	defer close(release)
	ctx, cancel := context.WithCancel(context.Background())
	p, err := newPoster(ctx, srv.URL+"/", "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw")
	if err != nil {
		t.Fatal(err)
	}
	defer p.close()
	var resp []byte
	time.AfterFunc(100*time.Millisecond, cancel)
	start := time.Now()
	if _, _, err := p.post(ctx, "msg_1", []byte("{}"), &resp); err == nil {
		t.Fatal("post succeeded after cancel")
	}
	if d := time.Since(start); d > 10*time.Second {
		t.Errorf("cancelled post took %v", d)
	}
}
