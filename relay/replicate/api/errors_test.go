package api

import (
	"context"
	"net/http"
	"reflect"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/mlrelay/relay/relay/replicate/replicatetest"
)

// TestErrorMapping runs every refusal the client knows through the stand-in and checks the
// message a chat user would read, the fields, and when to try again.
func TestErrorMapping(t *testing.T) {
	srv, c := standIn(t)
	ctx := context.Background()
	create := func(input map[string]any) error {
		_, err := c.CreatePrediction(ctx, replicatetest.SDXLVersion, CreateOptions{Input: input})
		return err
	}
	prompt := map[string]any{"prompt": "a cat"}
	reset := time.Now().Add(90 * time.Second).Unix()
	for _, tc := range []struct {
		name      string
		fail      *replicatetest.Failure // scripted before the call; nil for the stand-in's own answer
		call      func() error
		status    int
		message   string // the whole message, or its start when it ends in "…"
		fields    []string
		retry     time.Duration // expected RetryAfter, to the second
		retryable bool
	}{
		{name: "401 wrong token", call: func() error {
			bad := newClient(t, Options{BaseURL: srv.URL(), Token: "r8_wrong"})
			_, err := bad.GetPrediction(ctx, "abc")
			return err
		}, status: 401, message: "the Replicate API token was refused"},
		{name: "402 billing", fail: &replicatetest.Failure{Status: 402}, call: func() error { return create(prompt) },
			status: 402, message: "Replicate refused for billing reasons: set up billing or add credit to the account (You have insufficient credit to run this model.…"},
		{name: "403", fail: &replicatetest.Failure{Status: 403}, call: func() error { return create(prompt) },
			status: 403, message: "Replicate denied access to version " + replicatetest.SDXLVersion + ": You do not have permission to perform this action."},
		{name: "404 prediction", call: func() error { _, err := c.GetPrediction(ctx, "gone"); return err },
			status: 404, message: "prediction gone was not found on Replicate"},
		{name: "404 model", call: func() error { _, err := c.GetModel(ctx, "nobody/nothing"); return err },
			status: 404, message: "model nobody/nothing was not found on Replicate"},
		{name: "422 missing input", call: func() error { return create(map[string]any{"width": 512}) },
			status: 422, message: `Replicate rejected the input "prompt": prompt is required`, fields: []string{"prompt"}},
		{name: "422 out of bounds", call: func() error { return create(map[string]any{"prompt": "x", "width": 64}) },
			status: 422, message: `Replicate rejected the input "width": Must be greater than or equal to 128`, fields: []string{"width"}},
		{name: "422 wrong type", call: func() error { return create(map[string]any{"prompt": "x", "seed": "lucky"}) },
			status: 422, message: `Replicate rejected the input "seed": Invalid type. Expected: integer, given: string`, fields: []string{"seed"}},
		{name: "422 not a choice", call: func() error { return create(map[string]any{"prompt": "x", "scheduler": "fast"}) },
			status: 422, message: `Replicate rejected the input "scheduler": scheduler must be one of the following: "DDIM",…`, fields: []string{"scheduler"}},
		{name: "422 several inputs", call: func() error { return create(map[string]any{"height": 4096, "num_outputs": 0}) },
			status: 422, message: `Replicate rejected the inputs "prompt", "height", "num_outputs": prompt is required; Must be less than or equal to 2048; Must be greater than or equal to 1`,
			fields: []string{"prompt", "height", "num_outputs"}},
		{name: "422 fields only in the detail",
			fail: &replicatetest.Failure{Status: 422, Body: `{"title": "Input validation failed", "detail": "- input.steps: Must be at most 50\n- input.seed: Invalid type\n", "status": 422}`},
			call: func() error { return create(prompt) }, status: 422,
			message: `Replicate rejected the inputs "steps", "seed": input.steps: Must be at most 50; input.seed: Invalid type`, fields: []string{"steps", "seed"}},
		{name: "429 with Retry-After", fail: &replicatetest.Failure{RetryAfter: 8 * time.Second}, call: func() error { return create(prompt) },
			status: 429, message: "Replicate is rate limiting requests; try again in 8s", retry: 8 * time.Second, retryable: true},
		{name: "429 with ratelimit-reset only",
			fail:   &replicatetest.Failure{Status: 429, Title: "Request was throttled.", Header: http.Header{"Ratelimit-Reset": {"42"}}},
			call:   func() error { return create(prompt) },
			status: 429, message: "Replicate is rate limiting requests; try again in 42s", retry: 42 * time.Second, retryable: true},
		{name: "429 with a reset time",
			fail:   &replicatetest.Failure{Status: 429, Title: "Request was throttled.", Header: http.Header{"X-Ratelimit-Reset": {strconv.FormatInt(reset, 10)}}},
			call:   func() error { return create(prompt) },
			status: 429, message: "Replicate is rate limiting requests; try again in 1m…", retry: 90 * time.Second, retryable: true},
		{name: "429 with an HTTP date",
			fail:   &replicatetest.Failure{Status: 429, Title: "Request was throttled.", Header: http.Header{"Retry-After": {time.Now().Add(2 * time.Hour).UTC().Format(http.TimeFormat)}}},
			call:   func() error { return create(prompt) },
			status: 429, message: "Replicate is rate limiting requests; try again in …", retry: 2 * time.Hour, retryable: true},
		{name: "429 said in the detail only", fail: &replicatetest.Failure{Status: 429, Detail: "Request was throttled. Expected available in 3 seconds."},
			call: func() error { return create(prompt) }, status: 429, message: "Replicate is rate limiting requests; try again in 3s", retry: 3 * time.Second, retryable: true},
		{name: "429 that says nothing", fail: &replicatetest.Failure{Status: 429, Title: "Too Many Requests"},
			call: func() error { return create(prompt) }, status: 429, message: "Replicate is rate limiting requests; try again later", retryable: true},
		{name: "500", fail: &replicatetest.Failure{Status: 500}, call: func() error { return create(prompt) },
			status: 500, message: "Replicate failed to answer (500 Internal Server Error): An error occurred on Replicate's side. Please try again.; try again later", retryable: true},
		{name: "503 page from a proxy",
			fail: &replicatetest.Failure{Status: 503, Body: "<html><body>upstream down</body></html>", Header: http.Header{"Content-Type": {"text/html"}, "Retry-After": {"30"}}},
			call: func() error { return create(prompt) }, status: 503,
			message: "Replicate failed to answer (503 Service Unavailable); try again in 30s", retry: 30 * time.Second, retryable: true},
		{name: "400 plain text", fail: &replicatetest.Failure{Status: 400, Body: "bad request\nline two"},
			call: func() error { return create(prompt) }, status: 400, message: "Replicate refused the request (400 Bad Request): bad request; line two"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			srv.Reset()
			if tc.fail != nil {
				srv.FailNext(1, *tc.fail)
			}
			err := tc.call()
			e := asError(t, err)
			if e.Status != tc.status {
				t.Errorf("Status = %d, want %d", e.Status, tc.status)
			}
			msg := err.Error()
			if prefix, cut := strings.CutSuffix(tc.message, "…"); cut {
				if !strings.HasPrefix(msg, prefix) {
					t.Errorf("message = %q, want it to start %q", msg, prefix)
				}
			} else if msg != tc.message {
				t.Errorf("message = %q\nwant        %q", msg, tc.message)
			}
			if !reflect.DeepEqual(e.Fields, tc.fields) {
				t.Errorf("Fields = %q, want %q", e.Fields, tc.fields)
			}
			if (e.RetryAfter - tc.retry).Abs() > 2*time.Second {
				t.Errorf("RetryAfter = %s, want about %s", e.RetryAfter, tc.retry)
			}
			if tc.retry > 0 && (time.Until(e.ResetAt)-tc.retry).Abs() > 2*time.Second {
				t.Errorf("ResetAt = %s from now, want about %s", time.Until(e.ResetAt), tc.retry)
			}
			if tc.retry == 0 && !e.ResetAt.IsZero() {
				t.Errorf("ResetAt = %s, want zero", e.ResetAt)
			}
			if e.Retryable() != tc.retryable {
				t.Errorf("Retryable = %v, want %v", e.Retryable(), tc.retryable)
			}
			if strings.Contains(msg, "<html") || strings.Contains(msg, "\n") {
				t.Errorf("message %q carries markup or line breaks", msg)
			}
		})
	}
}

func TestErrorNamesTheCall(t *testing.T) {
	_, c := standIn(t)
	_, err := c.GetModel(context.Background(), "nobody/nothing")
	if e := asError(t, err); e.Op != "get model" || e.Subject != "model nobody/nothing" || e.Title != "Not Found" || e.Detail != "Not found." {
		t.Errorf("Op %q Subject %q Title %q Detail %q", e.Op, e.Subject, e.Title, e.Detail)
	}
}

func TestLongDetailIsBounded(t *testing.T) {
	srv, c := standIn(t)
	srv.FailNext(1, replicatetest.Failure{Status: 400, Detail: strings.Repeat("é", 2000)})
	_, err := c.GetPrediction(context.Background(), "abc")
	e := asError(t, err)
	if len(e.Detail) > maxDetail+len("…") || !strings.HasSuffix(e.Detail, "…") {
		t.Errorf("Detail is %d bytes, want at most %d and cut with an ellipsis", len(e.Detail), maxDetail)
	}
	if !strings.HasPrefix(e.Detail, "é") || strings.ContainsRune(e.Detail, '\uFFFD') {
		t.Error("the cut split a character")
	}
}

func TestHumanDuration(t *testing.T) {
	for d, want := range map[time.Duration]string{
		0:                                   "0s",
		300 * time.Millisecond:              "1s",
		8 * time.Second:                     "8s",
		60 * time.Second:                    "1m",
		125 * time.Second:                   "2m5s",
		time.Hour + 5*time.Minute:           "1h5m",
		2*time.Hour + 1500*time.Millisecond: "2h2s",
	} {
		if got := humanDuration(d); got != want {
			t.Errorf("humanDuration(%s) = %q, want %q", d, got, want)
		}
	}
}
