package replicatetest

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/mlrelay/relay/relay/replicate"
)

// do sends a request to the stand-in with the right token unless auth says otherwise.
func do(t *testing.T, s *Server, method, path, auth, body string) (int, http.Header, []byte) {
	t.Helper()
	req, err := http.NewRequest(method, s.URL()+path, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	if auth != "" {
		req.Header.Set("Authorization", auth)
	}
	resp, err := s.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, resp.Header, b
}

const bearer = "Bearer " + Token

// create starts an SDXL prediction with a webhook and returns its id.
func create(t *testing.T, s *Server, hook string) string {
	t.Helper()
	body := `{"version": "` + SDXLVersion + `", "input": {"prompt": "a cat", "num_outputs": 2}, "webhook": "` + hook + `", "webhook_events_filter": ["start", "completed"]}`
	status, _, b := do(t, s, "POST", "/predictions", bearer, body)
	if status != http.StatusCreated {
		t.Fatalf("create: %d %s", status, b)
	}
	var p struct{ ID string }
	if err := json.Unmarshal(b, &p); err != nil || p.ID == "" {
		t.Fatalf("create answered %s", b)
	}
	return p.ID
}

func TestAuthentication(t *testing.T) {
	s := NewServer()
	defer s.Close()
	for _, tc := range []struct {
		auth string
		want int
	}{
		{"", 401},
		{"Bearer wrong", 401},
		{Token, 401},
		{"Basic " + Token, 401},
		{bearer, 404},
		{"Token " + Token, 404},
	} {
		status, hd, body := do(t, s, "GET", "/predictions/none", tc.auth, "")
		if status != tc.want {
			t.Errorf("Authorization %q: %d, want %d", tc.auth, status, tc.want)
		}
		if hd.Get("Content-Type") != "application/problem+json" || !json.Valid(body) {
			t.Errorf("Authorization %q: %s %s is not problem+json", tc.auth, hd.Get("Content-Type"), body)
		}
	}
}

func TestRoutes(t *testing.T) {
	s := NewServer()
	defer s.Close()
	for _, tc := range []struct {
		method, path string
		want         int
	}{
		{"GET", "/predictions", 405},
		{"DELETE", "/predictions/abc", 405},
		{"GET", "/predictions/abc/cancel", 405},
		{"GET", "/nothing/here", 404},
		{"POST", "/models/stability-ai/sdxl", 405},
		{"GET", "/models/nobody/nothing", 404},
	} {
		if status, _, body := do(t, s, tc.method, tc.path, bearer, ""); status != tc.want {
			t.Errorf("%s %s: %d %s, want %d", tc.method, tc.path, status, body, tc.want)
		}
	}
}

func TestCreateAnswer(t *testing.T) {
	s := NewServer()
	defer s.Close()
	status, hd, body := do(t, s, "POST", "/predictions", bearer,
		`{"version": "`+SDXLVersion+`", "input": {"prompt": "a cat", "seed": 12345678901234}, "webhook": "https://relay.example.com/h"}`)
	if status != http.StatusCreated || hd.Get("Content-Type") != "application/json" {
		t.Fatalf("%d %s", status, hd.Get("Content-Type"))
	}
	var p map[string]any
	if err := json.Unmarshal(body, &p); err != nil {
		t.Fatal(err)
	}
	for _, key := range []string{"id", "model", "version", "input", "logs", "output", "error", "status", "created_at",
		"started_at", "completed_at", "urls", "metrics", "webhook", "webhook_events_filter", "data_removed", "source"} {
		if _, ok := p[key]; !ok {
			t.Errorf("the prediction has no %q", key)
		}
	}
	if p["status"] != "starting" || p["output"] != nil || p["started_at"] != nil || p["error"] != nil {
		t.Errorf("a new prediction: %s", body)
	}
	if !strings.Contains(string(body), `"seed":12345678901234`) {
		t.Errorf("the input is not echoed as sent: %s", body)
	}
	// All events by default when a webhook is given without a filter, as Replicate does.
	if f, _ := p["webhook_events_filter"].([]any); len(f) != 4 {
		t.Errorf("webhook_events_filter = %v", p["webhook_events_filter"])
	}
	urls, _ := p["urls"].(map[string]any)
	if urls["get"] != s.URL()+"/predictions/"+p["id"].(string) {
		t.Errorf("urls.get = %v", urls["get"])
	}
	// The answer is what a GET returns afterwards.
	if _, _, got := do(t, s, "GET", "/predictions/"+p["id"].(string), bearer, ""); string(got) != string(body) {
		t.Errorf("GET returns\n%s\nnot the create answer\n%s", got, body)
	}
}

func TestCreateByVersionForms(t *testing.T) {
	s := NewServer()
	defer s.Close()
	for _, tc := range []struct {
		version string
		want    int
		model   string
		reports string
	}{
		{SDXLVersion, 201, SDXL, SDXLVersion},
		{SDXL + ":" + SDXLVersion, 201, SDXL, SDXLVersion},
		{FluxSchnell, 201, FluxSchnell, "hidden"},
		{SDXL, 422, "", ""},
		{strings.Repeat("0", 64), 422, "", ""},
		{"", 422, "", ""},
	} {
		input := `{"prompt": "x"}`
		status, _, body := do(t, s, "POST", "/predictions", bearer, `{"version": "`+tc.version+`", "input": `+input+`}`)
		if status != tc.want {
			t.Errorf("version %q: %d %s, want %d", tc.version, status, body, tc.want)
			continue
		}
		if status == 201 {
			var p struct{ Model, Version string }
			_ = json.Unmarshal(body, &p)
			if p.Model != tc.model || p.Version != tc.reports {
				t.Errorf("version %q runs %s reporting %q", tc.version, p.Model, p.Version)
			}
		}
	}
}

func TestInputValidation(t *testing.T) {
	s := NewServer()
	defer s.Close()
	status, _, body := do(t, s, "POST", "/predictions", bearer,
		`{"version": "`+SDXLVersion+`", "input": {"width": 100, "height": 512.5, "scheduler": "fast", "apply_watermark": "no", "unknown": 1}}`)
	if status != 422 {
		t.Fatalf("%d %s", status, body)
	}
	var p struct {
		Title, Detail string
		Status        int
		InvalidFields []invalidField `json:"invalid_fields"`
	}
	if err := json.Unmarshal(body, &p); err != nil {
		t.Fatal(err)
	}
	want := []invalidField{
		{"required", "input", "prompt is required"},
		{"invalid_type", "input.apply_watermark", "Invalid type. Expected: boolean, given: string"},
		{"invalid_type", "input.height", "Invalid type. Expected: integer, given: number"},
		{"enum", "input.scheduler", `scheduler must be one of the following: "DDIM", "DPMSolverMultistep", "HeunDiscrete", "KarrasDPM", "K_EULER_ANCESTRAL", "K_EULER", "PNDM"`},
		{"number_gte", "input.width", "Must be greater than or equal to 128"},
	}
	if len(p.InvalidFields) != len(want) {
		t.Fatalf("invalid_fields = %+v", p.InvalidFields)
	}
	for i := range want {
		if p.InvalidFields[i] != want[i] {
			t.Errorf("invalid_fields[%d] = %+v, want %+v", i, p.InvalidFields[i], want[i])
		}
	}
	if p.Status != 422 || p.Title != "Input validation failed" || !strings.HasPrefix(p.Detail, "- input: prompt is required\n- input.apply_watermark:") {
		t.Errorf("title %q status %d detail %q", p.Title, p.Status, p.Detail)
	}
	if c := s.Creates(); len(c) != 1 || c[0].Status != 422 || c[0].PredictionID != "" || c[0].Input["width"] != 100.0 {
		t.Errorf("recorded %+v", c)
	}
}

func TestScriptedFailures(t *testing.T) {
	s := NewServer()
	defer s.Close()
	s.FailNext(1, Failure{Op: OpCreate, RetryAfter: 1500 * time.Millisecond})
	// A call of another kind passes untouched.
	if status, _, _ := do(t, s, "GET", "/models/"+SDXL, bearer, ""); status != 200 {
		t.Fatalf("GET model: %d", status)
	}
	status, hd, body := do(t, s, "POST", "/predictions", bearer, `{"version": "`+SDXLVersion+`", "input": {"prompt": "x"}}`)
	if status != 429 || hd.Get("Retry-After") != "2" || hd.Get("Ratelimit-Reset") != "2" {
		t.Errorf("%d Retry-After %q ratelimit-reset %q", status, hd.Get("Retry-After"), hd.Get("Ratelimit-Reset"))
	}
	if !strings.Contains(string(body), "Expected available in 2 seconds.") {
		t.Errorf("body %s", body)
	}
	if c := s.Creates(); len(c) != 1 || c[0].Status != 429 {
		t.Errorf("the refused create is not recorded with its status: %+v", c)
	}
	if status, _, _ := do(t, s, "POST", "/predictions", bearer, `{"version": "`+SDXLVersion+`", "input": {"prompt": "x"}}`); status != 201 {
		t.Errorf("after the failure: %d", status)
	}

	s.FailNext(2, Failure{Status: 500})
	s.ThenFail(1, Failure{Status: 402})
	got := []int{}
	for range 4 {
		status, _, _ := do(t, s, "GET", "/webhooks/default/secret", bearer, "")
		got = append(got, status)
	}
	if want := []int{500, 500, 402, 200}; !slices.Equal(got, want) {
		t.Errorf("statuses %v, want %v", got, want)
	}
	s.FailNext(0, Failure{})
	if s.Requests() != 7 {
		t.Errorf("Requests = %d, want 7", s.Requests())
	}
}

func TestDelayReleasedByClose(t *testing.T) {
	s := NewServer()
	s.FailNext(1, Failure{Delay: time.Minute})
	done := make(chan error, 1)
	go func() {
		_, err := s.Client().Get(s.URL() + "/predictions/abc")
		done <- err
	}()
	time.Sleep(50 * time.Millisecond)
	start := time.Now()
	s.Close()
	select {
	case err := <-done:
		if err == nil {
			t.Error("a held request got an answer")
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Close did not release the held request")
	}
	if time.Since(start) > 5*time.Second {
		t.Error("Close took too long")
	}
}

func TestCompleteDelivery(t *testing.T) {
	var (
		mu       sync.Mutex
		received []*http.Request
		bodies   [][]byte
	)
	receiver := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		mu.Lock()
		received, bodies = append(received, r), append(bodies, b)
		mu.Unlock()
	}))
	defer receiver.Close()
	s := NewServer()
	defer s.Close()
	id := create(t, s, receiver.URL+"/hooks/replicate?kind=prediction")

	at := time.Unix(1_750_000_000, 0)
	d, err := s.Complete(id, Completion{At: at})
	if err != nil {
		t.Fatal(err)
	}
	if d.URL != receiver.URL+"/hooks/replicate?kind=prediction" || !strings.HasPrefix(d.MessageID, "msg_") {
		t.Errorf("URL %q MessageID %q", d.URL, d.MessageID)
	}
	v, err := replicate.NewVerifier([]string{WebhookSecret}, 0)
	if err != nil {
		t.Fatal(err)
	}
	v.Now = func() time.Time { return at }
	if err := v.Verify(d.Header, d.Body); err != nil {
		t.Fatalf("the delivery does not verify: %v", err)
	}
	var p replicate.Prediction
	if err := json.Unmarshal(d.Body, &p); err != nil {
		t.Fatal(err)
	}
	if p.ID != id || p.Status != replicate.Succeeded || !p.CompletedAt.Equal(at) || p.Metrics["total_time"] == nil {
		t.Errorf("delivered %+v", p)
	}
	var out []string
	if err := json.Unmarshal(p.Output, &out); err != nil || len(out) != 2 || out[1] != "https://replicate.delivery/xezq/"+id+"/out-1.png" {
		t.Errorf("output %s, want two default images", p.Output)
	}
	if got, _ := s.Prediction(id); got.Status != replicate.Succeeded {
		t.Errorf("GET after completion: %q", got.Status)
	}
	if _, err := s.Complete(id, Completion{}); err == nil {
		t.Error("a finished prediction completed twice")
	}

	// A retry is the same message re-signed.
	retry, err := d.Retry(at.Add(time.Minute))
	if err != nil {
		t.Fatal(err)
	}
	v.Now = func() time.Time { return at.Add(time.Minute) }
	if err := v.Verify(retry.Header, retry.Body); err != nil || retry.MessageID != d.MessageID ||
		retry.Header.Get(replicate.HeaderID) != d.MessageID || retry.Header.Get(replicate.HeaderTimestamp) == d.Header.Get(replicate.HeaderTimestamp) {
		t.Errorf("retry: %v, headers %v", err, retry.Header)
	}

	for _, x := range []Delivery{d, retry} {
		if status, err := x.Send(context.Background(), nil); err != nil || status != 200 {
			t.Fatalf("Send: %d %v", status, err)
		}
	}
	mu.Lock()
	defer mu.Unlock()
	if len(received) != 2 || string(bodies[0]) != string(d.Body) || received[1].Header.Get(replicate.HeaderID) != d.MessageID ||
		received[0].URL.Query().Get("kind") != "prediction" {
		t.Errorf("the receiver got %d deliveries", len(received))
	}
}

func TestCompleteFailureAndSecrets(t *testing.T) {
	s := NewServer()
	defer s.Close()
	id := create(t, s, "https://relay.example.com/hooks/replicate")
	const own = "whsec_b3duIHNlY3JldCBvZiB0aGUgdGVzdA=="
	d, err := s.Complete(id, Completion{Status: replicate.Failed, Logs: "step 1\n", Secret: own})
	if err != nil {
		t.Fatal(err)
	}
	v, _ := replicate.NewVerifier([]string{own}, 0)
	if err := v.Verify(d.Header, d.Body); err != nil {
		t.Errorf("not signed with the given secret: %v", err)
	}
	var p replicate.Prediction
	_ = json.Unmarshal(d.Body, &p)
	if p.Status != replicate.Failed || p.Error != defaultError || p.Logs != "step 1\n" || string(p.Output) != "null" {
		t.Errorf("failed prediction: %+v", p)
	}
	for _, c := range []Completion{{Status: replicate.Processing}} {
		if _, err := s.Complete(id, c); err == nil {
			t.Errorf("Complete(%+v) succeeded", c)
		}
	}
	if _, err := s.Complete("nothing", Completion{}); err == nil {
		t.Error("Complete of an unknown prediction succeeded")
	}
	start, err := s.Webhook(id, "", time.Time{})
	if err != nil || start.MessageID == d.MessageID {
		t.Errorf("Webhook: %v, message id %q reused", err, start.MessageID)
	}
	if _, err := (Delivery{}).Send(context.Background(), nil); err == nil {
		t.Error("Send without a URL succeeded")
	}
}

func TestWaitForCreates(t *testing.T) {
	s := NewServer()
	defer s.Close()
	go func() {
		time.Sleep(20 * time.Millisecond)
		req, _ := http.NewRequest("POST", s.URL()+"/models/"+FluxSchnell+"/predictions", strings.NewReader(`{"input": {"prompt": "x"}}`))
		req.Header.Set("Authorization", bearer)
		if resp, err := s.Client().Do(req); err == nil {
			resp.Body.Close()
		}
	}()
	got, err := s.WaitForCreates(1, 5*time.Second)
	if err != nil || len(got) != 1 || got[0].Model != FluxSchnell || got[0].Status != 201 || got[0].PredictionID == "" {
		t.Fatalf("WaitForCreates = %+v, %v", got, err)
	}
	if _, err := s.WaitForCreates(2, 10*time.Millisecond); err == nil {
		t.Error("WaitForCreates(2) returned without a second call")
	}
}

func TestModelsAndDeployments(t *testing.T) {
	s := NewServer()
	defer s.Close()
	if err := s.AddModel(Model{Owner: "a", Name: "b", Schema: json.RawMessage(`{}`)}); err == nil {
		t.Error("AddModel accepted a schema without Input")
	}
	if err := s.AddDeployment("acme/other", "nobody/nothing"); err == nil {
		t.Error("AddDeployment accepted an unknown model")
	}
	if err := s.AddModel(Model{Owner: "acme", Name: "echo", Official: true, Version: strings.Repeat("e", 64),
		Schema: json.RawMessage(`{"components": {"schemas": {"Input": {"properties": {"text": {"type": "string"}}}}}}`)}); err != nil {
		t.Fatal(err)
	}
	if err := s.AddDeployment("acme/echo-prod", "acme/echo"); err != nil {
		t.Fatal(err)
	}
	status, _, body := do(t, s, "POST", "/deployments/acme/echo-prod/predictions", bearer, `{"input": {"text": "hi"}}`)
	if status != 201 || !strings.Contains(string(body), `"deployment":"acme/echo-prod"`) {
		t.Errorf("deployment create: %d %s", status, body)
	}
	// Not official: the models endpoint does not run it.
	if status, _, _ := do(t, s, "POST", "/models/"+SDXL+"/predictions", bearer, `{"input": {"prompt": "x"}}`); status != 404 {
		t.Errorf("community model by name: %d, want 404", status)
	}
	s.Reset()
	if status, _, _ := do(t, s, "GET", "/models/acme/echo", bearer, ""); status != 404 {
		t.Errorf("after Reset an added model is still known: %d", status)
	}
}
