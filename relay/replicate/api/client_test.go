package api

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/mlrelay/relay/relay/replicate/replicatetest"
)

// standIn starts the Replicate stand-in and a client for it.
func standIn(t *testing.T) (*replicatetest.Server, *Client) {
	t.Helper()
	srv := replicatetest.NewServer()
	t.Cleanup(srv.Close)
	return srv, newClient(t, Options{BaseURL: srv.URL(), Token: replicatetest.Token, HTTPClient: srv.Client()})
}

func newClient(t *testing.T, o Options) *Client {
	t.Helper()
	c, err := New(o)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	return c
}

// asError returns err as an *Error, failing the test when it is not one.
func asError(t *testing.T, err error) *Error {
	t.Helper()
	var e *Error
	if !errors.As(err, &e) {
		t.Fatalf("error %v (%T) is not an *api.Error", err, err)
	}
	return e
}

func TestNewRefusesBadOptions(t *testing.T) {
	for _, tc := range []struct {
		name string
		o    Options
		want string
	}{
		{"no token", Options{}, "a token is required"},
		{"blank token", Options{Token: " \n"}, "a token is required"},
		{"token with a space", Options{Token: "r8_abc def"}, "spaces or control characters"},
		{"token with a newline inside", Options{Token: "r8_abc\ndef"}, "spaces or control characters"},
		{"relative base URL", Options{Token: "r8_x", BaseURL: "api.replicate.com/v1"}, "absolute http(s) URL"},
		{"ftp base URL", Options{Token: "r8_x", BaseURL: "ftp://api.replicate.com/v1"}, "absolute http(s) URL"},
		{"base URL with a query", Options{Token: "r8_x", BaseURL: "https://api.replicate.com/v1?x=1"}, "query or fragment"},
		{"negative timeout", Options{Token: "r8_x", Timeout: -time.Second}, "must not be negative"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := New(tc.o)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("New = %v, want an error containing %q", err, tc.want)
			}
			if tc.o.Token != "" && strings.TrimSpace(tc.o.Token) != "" && strings.Contains(err.Error(), tc.o.Token) {
				t.Errorf("error %q contains the token", err)
			}
		})
	}
}

func TestNewDefaults(t *testing.T) {
	c := newClient(t, Options{Token: " r8_token\n"})
	if c.BaseURL() != DefaultBaseURL {
		t.Errorf("BaseURL = %q, want %q", c.BaseURL(), DefaultBaseURL)
	}
	if c.timeout != DefaultTimeout || c.agent != DefaultUserAgent || c.token != "r8_token" {
		t.Errorf("defaults: timeout %s, agent %q, token trimmed %v", c.timeout, c.agent, c.token == "r8_token")
	}
	if c.http.CheckRedirect == nil {
		t.Error("the default HTTP client follows redirects")
	}
	c = newClient(t, Options{Token: "r8_x", BaseURL: "http://127.0.0.1:9/v1/"})
	if c.BaseURL() != "http://127.0.0.1:9/v1" {
		t.Errorf("BaseURL = %q, want the trailing slash dropped", c.BaseURL())
	}
}

func TestRequestHeaders(t *testing.T) {
	srv, _ := standIn(t)
	for _, tc := range []struct {
		name, agent, wantAgent string
	}{
		{"default user agent", "", DefaultUserAgent},
		{"own user agent", "relay-test/1.0", "relay-test/1.0"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			srv.Reset()
			c := newClient(t, Options{BaseURL: srv.URL(), Token: replicatetest.Token, UserAgent: tc.agent})
			if _, err := c.CreatePrediction(context.Background(), replicatetest.SDXLVersion,
				CreateOptions{Input: map[string]any{"prompt": "a cat"}}); err != nil {
				t.Fatal(err)
			}
			h := srv.Creates()[0].Header
			for name, want := range map[string]string{
				"Authorization": "Bearer " + replicatetest.Token,
				"User-Agent":    tc.wantAgent,
				"Content-Type":  "application/json",
				"Accept":        "application/json",
			} {
				if got := h.Get(name); got != want {
					t.Errorf("%s = %q, want %q", name, got, want)
				}
			}
		})
	}
}

func TestTimeout(t *testing.T) {
	srv, _ := standIn(t)
	c := newClient(t, Options{BaseURL: srv.URL(), Token: replicatetest.Token, Timeout: 100 * time.Millisecond})
	srv.FailNext(1, replicatetest.Failure{Delay: 5 * time.Second})
	start := time.Now()
	_, err := c.GetPrediction(context.Background(), "abc")
	if err == nil || !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("GetPrediction = %v, want a deadline error", err)
	}
	if !strings.Contains(err.Error(), "did not answer within 100ms") {
		t.Errorf("error %q does not say how long it waited", err)
	}
	if took := time.Since(start); took > 3*time.Second {
		t.Errorf("the call took %s, want about the timeout", took)
	}
}

func TestContextCancel(t *testing.T) {
	srv, c := standIn(t)
	srv.FailNext(1, replicatetest.Failure{Delay: 5 * time.Second})
	ctx, cancel := context.WithCancel(context.Background())
	go func() {
		time.Sleep(50 * time.Millisecond)
		cancel()
	}()
	_, err := c.GetPrediction(ctx, "abc")
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("GetPrediction = %v, want context.Canceled", err)
	}
}

func TestNoRedirects(t *testing.T) {
	elsewhere := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		t.Errorf("the client followed a redirect, sending %q", r.Header.Get("Authorization"))
	}))
	defer elsewhere.Close()
	moved := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		http.Redirect(w, r, elsewhere.URL+r.URL.Path, http.StatusFound)
	}))
	defer moved.Close()
	c := newClient(t, Options{BaseURL: moved.URL + "/v1", Token: replicatetest.Token})
	_, err := c.GetPrediction(context.Background(), "abc")
	if e := asError(t, err); e.Status != http.StatusFound {
		t.Errorf("Status = %d, want 302", e.Status)
	}
}

func TestMalformedAnswer(t *testing.T) {
	for _, tc := range []struct {
		name, body, want string
	}{
		{"not JSON", "<html>ok</html>", "not the JSON expected"},
		{"no id", `{"status": "starting"}`, "has no prediction id"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				w.Header().Set("Content-Type", "application/json")
				_, _ = w.Write([]byte(tc.body))
			}))
			defer srv.Close()
			c := newClient(t, Options{BaseURL: srv.URL, Token: replicatetest.Token})
			_, err := c.GetPrediction(context.Background(), "abc")
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("GetPrediction = %v, want an error containing %q", err, tc.want)
			}
		})
	}
}

func TestIDsCannotLeaveTheirPathSegment(t *testing.T) {
	srv, c := standIn(t)
	ctx := context.Background()
	for _, id := range []string{"", "..", "abc/../../models/x/y", "abc?x=1", "abc def", "a%2Fb"} {
		if _, err := c.GetPrediction(ctx, id); err == nil || !strings.Contains(err.Error(), "is not valid") {
			t.Errorf("GetPrediction(%q) = %v, want a refusal", id, err)
		}
		if _, err := c.CancelPrediction(ctx, id); err == nil {
			t.Errorf("CancelPrediction(%q) = nil error, want a refusal", id)
		}
	}
	for _, model := range []string{"", "sdxl", "a/b/c", "../x", "./x", "a/..", "a /b", "a/b?c"} {
		if _, err := c.GetModel(ctx, model); err == nil || !strings.Contains(err.Error(), "is not owner/name") {
			t.Errorf("GetModel(%q) = %v, want a refusal", model, err)
		}
		if _, err := c.CreateModelPrediction(ctx, model, CreateOptions{}); err == nil {
			t.Errorf("CreateModelPrediction(%q) = nil error", model)
		}
		if _, err := c.CreateDeploymentPrediction(ctx, model, CreateOptions{}); err == nil {
			t.Errorf("CreateDeploymentPrediction(%q) = nil error", model)
		}
	}
	if n := srv.Requests(); n != 0 {
		t.Errorf("%d requests reached the server, want none", n)
	}
}

func TestTokenNeverInErrors(t *testing.T) {
	const token = "r8_secretTOKENvalue0123456789"
	// A server that echoes the token back in every refusal, as a careless proxy might.
	echo := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		auth := r.Header.Get("Authorization")
		w.Header().Set("Content-Type", "application/problem+json")
		w.Header().Set("Retry-After", "3")
		status := http.StatusUnprocessableEntity
		switch r.URL.Path {
		case "/v1/predictions/s401":
			status = http.StatusUnauthorized
		case "/v1/predictions/s402":
			status = http.StatusPaymentRequired
		case "/v1/predictions/s429":
			status = http.StatusTooManyRequests
		case "/v1/predictions/s500":
			status = http.StatusInternalServerError
		}
		w.WriteHeader(status)
		if r.URL.Path == "/v1/predictions/s422" {
			// In a field's name, and across the cut of a long detail.
			_, _ = w.Write([]byte(`{"title": "Input validation failed", "detail": "` + strings.Repeat("x", 490) + auth +
				`", "status": 422, "invalid_fields": [{"type": "format", "field": "input.` + auth + `", "description": "bad"}]}`))
			return
		}
		_, _ = w.Write([]byte(`{"title": "bad ` + auth + `", "detail": "token ` + auth + ` refused", "status": 0}`))
	}))
	defer echo.Close()
	c := newClient(t, Options{BaseURL: echo.URL + "/v1", Token: token})
	ctx := context.Background()
	for _, id := range []string{"s401", "s402", "s422", "s429", "s500"} {
		_, err := c.GetPrediction(ctx, id)
		e := asError(t, err)
		for _, text := range append([]string{err.Error(), e.Title, e.Detail}, e.Fields...) {
			if strings.Contains(text, token[:12]) {
				t.Errorf("%s: %q contains the token or part of it", id, text)
			}
		}
	}
	// And a call that reaches nothing at all.
	closed := httptest.NewServer(http.NotFoundHandler())
	closed.Close()
	c = newClient(t, Options{BaseURL: closed.URL, Token: token})
	_, err := c.GetPrediction(ctx, "abc")
	if err == nil || strings.Contains(err.Error(), token) || !strings.Contains(err.Error(), "could not reach Replicate") {
		t.Errorf("unreachable server: %v", err)
	}
}

func TestCallerDeadline(t *testing.T) {
	srv, c := standIn(t)
	srv.FailNext(1, replicatetest.Failure{Delay: 5 * time.Second})
	ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancel()
	_, err := c.GetPrediction(ctx, "abc")
	if !errors.Is(err, context.DeadlineExceeded) || !strings.Contains(err.Error(), "did not answer within ") || strings.Contains(err.Error(), "30s") {
		t.Fatalf("GetPrediction = %v, want the caller's deadline named", err)
	}
}
