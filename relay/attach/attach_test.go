package attach

import (
	"bytes"
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

var png = append([]byte("\x89PNG\r\n\x1a\n"), bytes.Repeat([]byte{7}, 1000)...)

// files is a stand-in for replicate.delivery: a TLS file server that counts its requests.
type files struct {
	*httptest.Server
	hits atomic.Int64
}

func newFiles(t *testing.T) *files {
	t.Helper()
	f := &files{}
	mux := http.NewServeMux()
	mux.HandleFunc("/pbxt/out-0.png", func(w http.ResponseWriter, r *http.Request) { w.Write(png) })
	mux.HandleFunc("/pbxt/out-1.webp", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "image/webp")
		w.Write([]byte("RIFF....WEBPVP8 "))
	})
	mux.HandleFunc("/pbxt/big.png", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Length", strconv.Itoa(2<<20))
		w.Write(bytes.Repeat([]byte{1}, 2<<20))
	})
	mux.HandleFunc("/pbxt/chunked-big.png", func(w http.ResponseWriter, r *http.Request) {
		for range 40 { // no Content-Length: 2.5 MiB in chunks
			w.Write(bytes.Repeat([]byte{1}, 64<<10))
			w.(http.Flusher).Flush()
		}
	})
	mux.HandleFunc("/pbxt/slow.png", func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-r.Context().Done():
		case <-time.After(5 * time.Second):
		}
	})
	mux.HandleFunc("/pbxt/redirect-away", func(w http.ResponseWriter, r *http.Request) {
		http.Redirect(w, r, "https://evil.example/steal", http.StatusFound)
	})
	mux.HandleFunc("/pbxt/redirect-home", func(w http.ResponseWriter, r *http.Request) {
		http.Redirect(w, r, "/pbxt/out-0.png", http.StatusFound)
	})
	f.Server = httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		f.hits.Add(1)
		mux.ServeHTTP(w, r)
	}))
	t.Cleanup(f.Close)
	return f
}

func (f *files) fetcher(o Options) *Fetcher {
	if o.Hosts == nil {
		o.Hosts = []string{"127.0.0.1"}
	}
	o.Client = f.Client()
	return New(o)
}

func TestFetch(t *testing.T) {
	srv := newFiles(t)
	f := srv.fetcher(Options{MaxBytes: 1 << 20, Timeout: 500 * time.Millisecond})
	got, errs := f.Fetch(context.Background(), []string{srv.URL + "/pbxt/out-0.png", srv.URL + "/pbxt/out-1.webp"})
	if len(errs) != 0 {
		t.Fatalf("errors: %v", errs)
	}
	if len(got) != 2 || !bytes.Equal(got[0].Data, png) || got[0].Name != "out-0.png" || got[0].ContentType != "image/png" {
		t.Fatalf("first file: %+v", got)
	}
	if got[1].ContentType != "image/webp" || got[1].URL != srv.URL+"/pbxt/out-1.webp" {
		t.Fatalf("second file: %+v", got[1])
	}
}

func TestFetchRefusesAndLimits(t *testing.T) {
	srv := newFiles(t)
	cases := []struct {
		name     string
		url      string
		opts     Options
		want     string
		requests int64 // requests the file server may see
		refused  bool  // errors.Is ErrNotAllowed
	}{
		{"host not allowed", srv.URL + "/pbxt/out-0.png", Options{Hosts: []string{"replicate.delivery"}}, "not on the allow-list", 0, true},
		{"plain http", strings.Replace(srv.URL, "https://", "http://", 1) + "/pbxt/out-0.png", Options{}, "only https", 0, true},
		{"user info", strings.Replace(srv.URL, "https://", "https://replicate.delivery@", 1) + "/x.png", Options{}, "user information", 0, true},
		{"too large by Content-Length", srv.URL + "/pbxt/big.png", Options{MaxBytes: 1 << 20}, "over the limit", 1, false},
		{"too large while reading", srv.URL + "/pbxt/chunked-big.png", Options{MaxBytes: 1 << 20}, "over the limit", 1, false},
		{"not found", srv.URL + "/pbxt/gone.png", Options{}, "404", 1, false},
		{"timeout", srv.URL + "/pbxt/slow.png", Options{Timeout: 200 * time.Millisecond}, "deadline exceeded", 1, false},
		{"redirect off the allow-list", srv.URL + "/pbxt/redirect-away", Options{}, "not on the allow-list", 1, true},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			before := srv.hits.Load()
			got, errs := srv.fetcher(tc.opts).Fetch(context.Background(), []string{tc.url})
			if len(got) != 0 || len(errs) != 1 {
				t.Fatalf("got %d files and errors %v, want one error", len(got), errs)
			}
			if !strings.Contains(errs[0].Error(), tc.want) {
				t.Fatalf("error %q, want it to mention %q", errs[0], tc.want)
			}
			if errors.Is(errs[0], ErrNotAllowed) != tc.refused {
				t.Fatalf("errors.Is(ErrNotAllowed) = %v, want %v (%v)", !tc.refused, tc.refused, errs[0])
			}
			if n := srv.hits.Load() - before; n > tc.requests {
				t.Fatalf("the file server saw %d requests, want at most %d", n, tc.requests)
			}
		})
	}
}

func TestFetchRedirectWithinAllowList(t *testing.T) {
	srv := newFiles(t)
	got, errs := srv.fetcher(Options{}).Fetch(context.Background(), []string{srv.URL + "/pbxt/redirect-home"})
	if len(errs) != 0 || len(got) != 1 || !bytes.Equal(got[0].Data, png) {
		t.Fatalf("got %v, errors %v", got, errs)
	}
}

func TestFetchCountLimitKeepsTheRestAsLinks(t *testing.T) {
	srv := newFiles(t)
	u := srv.URL + "/pbxt/out-0.png"
	got, errs := srv.fetcher(Options{MaxFiles: 2}).Fetch(context.Background(), []string{u, u, u, u, u})
	if len(got) != 2 || len(errs) != 1 || !strings.Contains(errs[0].Error(), "3 more files not attached: at most 2 files") {
		t.Fatalf("got %d files, errors %v", len(got), errs)
	}
}

func TestFetchPartialFailure(t *testing.T) {
	srv := newFiles(t)
	got, errs := srv.fetcher(Options{}).Fetch(context.Background(),
		[]string{"https://elsewhere.example/a.png", srv.URL + "/pbxt/out-0.png"})
	if len(got) != 1 || len(errs) != 1 {
		t.Fatalf("got %d files and %d errors, want 1 and 1", len(got), len(errs))
	}
}

func TestAllowList(t *testing.T) {
	f := New(Options{Hosts: []string{"replicate.delivery", ".cdn.example"}})
	for u, want := range map[string]bool{
		"https://replicate.delivery/a.png":      true,
		"https://REPLICATE.delivery/a.png":      true,
		"https://replicate.delivery:443/a.png":  true,
		"https://x.replicate.delivery/a.png":    false,
		"https://img.cdn.example/a.png":         true,
		"https://cdn.example.evil.com/a.png":    false,
		"https://replicate.delivery.evil/a.png": false,
		"http://replicate.delivery/a.png":       false,
		"ftp://replicate.delivery/a.png":        false,
		// A zone ends in the allowed suffix and still connects to ::1 (or 127.0.0.1).
		"https://[::1%25a.cdn.example]/a.png":              false,
		"https://[::ffff:127.0.0.1%25a.cdn.example]/a.png": false,
		"https://[::1]/a.png":                              false,
	} {
		uu, _ := url.Parse(u)
		if got := f.allowed(uu) == nil; got != want {
			t.Errorf("allowed(%s) = %v, want %v", u, got, want)
		}
	}
}

func TestFileName(t *testing.T) {
	for in, want := range map[string]string{
		"https://replicate.delivery/pbxt/x/out-0.png":       "out-0.png",
		"https://replicate.delivery/pbxt/x/we ird;name.png": "we_ird_name.png",
		"https://replicate.delivery/":                       "output",
		"https://replicate.delivery/pbxt/..":                "output",
	} {
		u, _ := url.Parse(in)
		if got := fileName(u); got != want {
			t.Errorf("fileName(%s) = %q, want %q", in, got, want)
		}
	}
}
