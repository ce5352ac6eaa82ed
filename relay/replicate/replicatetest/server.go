// Package replicatetest is a local stand-in for the part of Replicate's HTTP API the relay
// calls: creating a prediction (by version, by official model name, on a deployment), getting
// and cancelling one, describing a model, and handing out the webhook signing secret.
//
// It answers as Replicate does: Bearer authentication, 201 with a realistic prediction (urls
// included) on create, application/problem+json errors (422 with invalid_fields when an input
// breaks the model's schema, 404 for what does not exist), and 429 with Retry-After when a test
// scripts it. It records every create call it receives, so a test can assert the webhook URL,
// its filter and the input; and Complete produces the signed completion webhook for a created
// prediction, so an end-to-end test can finish one.
//
// Server serves it on a loopback httptest server; Handler serves it anywhere. Neither needs a
// *testing.T.
package replicatetest

import (
	"bytes"
	"crypto/rand"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/mlrelay/relay/relay/replicate"
)

// The stand-in's fixed identities.
const (
	// APIPath is the prefix of the API, with its version.
	APIPath = "/v1"
	// Token is the API token the stand-in accepts, as "Authorization: Bearer <token>".
	Token = "r8_replicatetest0123456789abcdefghijklmnopq"
	// WebhookSecret is the account's webhook signing secret, as GET /webhooks/default/secret
	// hands it out (until SetSecret changes it).
	WebhookSecret = "whsec_cmVwbGljYXRldGVzdCB3ZWJob29rIHNpZ25pbmcga2V5"
)

// maxBody bounds a request body; Replicate's inputs are small, files go by URL.
const maxBody = 1 << 20

// Op names a kind of call, for scripting failures of one kind only.
type Op string

// The calls the stand-in answers.
const (
	OpCreate Op = "create" // any of the three ways to create a prediction
	OpGet    Op = "get"    // GET /predictions/{id}
	OpCancel Op = "cancel" // POST /predictions/{id}/cancel
	OpModel  Op = "model"  // GET /models/{owner}/{name}
	OpSecret Op = "secret" // GET /webhooks/default/secret
)

// Failure is a scripted answer to one request, in place of the normal one.
type Failure struct {
	// Op restricts the failure to one kind of call; "" matches any. A request takes the first
	// scripted failure that matches it.
	Op Op
	// Status is the HTTP status to answer. 0 means 429, except when Delay is the only thing
	// set: then the normal answer comes once the delay is over.
	Status int
	// Title and Detail fill the problem+json body; default: Replicate's for the status.
	Title, Detail string
	// Body replaces the whole body, sent as it is with Content-Type application/problem+json
	// unless Header sets another.
	Body string
	// RetryAfter sets Retry-After (whole seconds, rounded up) and the ratelimit-* headers,
	// and the wait the default 429 detail names.
	RetryAfter time.Duration
	// Header holds further response headers.
	Header http.Header
	// Delay holds the answer back this long. A client that gives up meanwhile, or the stand-in
	// closing, ends the request without an answer.
	Delay time.Duration
	// AnswerLost carries the call out (a create makes its prediction, which then runs and
	// sends its webhooks), then holds the answer back for Delay and drops the connection
	// without it: a gateway timing out after Replicate acted. Status and the rest are unused.
	AnswerLost bool
}

// Create is a create call the stand-in received, whatever it answered.
type Create struct {
	// Path is the request path, e.g. /v1/models/black-forest-labs/flux-schnell/predictions.
	Path string
	// Version is the version field of POST /predictions; Model the owner/name of the models
	// endpoint; Deployment the owner/name of the deployments endpoint. One of them is set.
	Version, Model, Deployment string
	// Input is the input as sent (numbers are float64); nil when absent.
	Input map[string]any
	// Webhook and WebhookEventsFilter are as sent.
	Webhook             string
	WebhookEventsFilter []string
	// Header holds the request headers (Authorization, Prefer, Cancel-After, User-Agent, ...).
	Header http.Header
	// Body is the raw request body.
	Body []byte
	// Status is the status the stand-in answered with; PredictionID the prediction it
	// created, or "" when it refused.
	Status       int
	PredictionID string
	// Time is when the call arrived.
	Time time.Time
}

// Handler is the stand-in as an http.Handler. It is safe for concurrent use.
type Handler struct {
	mux *http.ServeMux

	mu          sync.Mutex
	models      map[string]*Model // by owner/name
	schemas     map[string]*inputSchema
	deployments map[string]string // deployment owner/name -> model owner/name
	predictions map[string]*prediction
	creates     []*Create
	failures    []Failure
	requests    int
	secret      string
	messages    int
	changed     chan struct{} // closed and replaced whenever a create is recorded

	done      chan struct{} // closed by Close, to release held requests
	closeOnce sync.Once
}

// NewHandler returns a stand-in that knows SDXL, FluxSchnell and Deployment.
func NewHandler() *Handler {
	h := &Handler{done: make(chan struct{}), changed: make(chan struct{})}
	h.reset()
	mux := http.NewServeMux()
	mux.HandleFunc("POST "+APIPath+"/predictions", h.endpoint(OpCreate, h.createByVersion))
	mux.HandleFunc("GET "+APIPath+"/predictions/{id}", h.endpoint(OpGet, h.get))
	mux.HandleFunc("POST "+APIPath+"/predictions/{id}/cancel", h.endpoint(OpCancel, h.cancel))
	mux.HandleFunc("GET "+APIPath+"/models/{owner}/{name}", h.endpoint(OpModel, h.model))
	mux.HandleFunc("POST "+APIPath+"/models/{owner}/{name}/predictions", h.endpoint(OpCreate, h.createByModel))
	mux.HandleFunc("POST "+APIPath+"/deployments/{owner}/{name}/predictions", h.endpoint(OpCreate, h.createOnDeployment))
	mux.HandleFunc("GET "+APIPath+"/webhooks/default/secret", h.endpoint(OpSecret, h.webhookSecret))
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		h.count()
		for _, m := range []string{http.MethodGet, http.MethodPost} {
			other := r.Clone(r.Context())
			other.Method = m
			if _, pattern := mux.Handler(other); pattern != "/" {
				w.Header().Set("Allow", m)
				writeProblem(w, http.StatusMethodNotAllowed, "Method Not Allowed", "Method \""+r.Method+"\" not allowed.", nil)
				return
			}
		}
		writeProblem(w, http.StatusNotFound, "", "Not found.", nil)
	})
	h.mux = mux
	return h
}

func (h *Handler) reset() {
	h.models = map[string]*Model{}
	h.schemas = map[string]*inputSchema{}
	for _, m := range builtinModels() {
		if err := h.addModel(m); err != nil {
			panic(err) // the built-in schemas are constants
		}
	}
	h.deployments = map[string]string{Deployment: SDXL}
	h.predictions = map[string]*prediction{}
	h.creates = nil
	h.failures = nil
	h.requests = 0
	h.secret = WebhookSecret
	h.messages = 0
}

// Reset forgets predictions, recorded calls, scripted failures and added models, and restores
// the default secret.
func (h *Handler) Reset() {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.reset()
	h.signal()
}

// Close releases requests held by a Delay, dropping their connections. The handler still
// answers afterwards, without delays.
func (h *Handler) Close() { h.closeOnce.Do(func() { close(h.done) }) }

// AddModel makes a model known, or replaces one of the same owner/name. Its schema must
// describe an Input.
func (h *Handler) AddModel(m Model) error {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.addModel(m)
}

func (h *Handler) addModel(m Model) error {
	s, err := parseSchema(m.Schema)
	if err != nil {
		return fmt.Errorf("replicatetest: model %s: %w", m.ref(), err)
	}
	h.models[m.ref()] = &m
	h.schemas[m.ref()] = s
	return nil
}

// AddDeployment makes a deployment, "owner/name", that runs model, a known "owner/name".
func (h *Handler) AddDeployment(deployment, model string) error {
	h.mu.Lock()
	defer h.mu.Unlock()
	if _, ok := h.models[model]; !ok {
		return fmt.Errorf("replicatetest: deployment %s: unknown model %s", deployment, model)
	}
	h.deployments[deployment] = model
	return nil
}

// Secret is the webhook signing secret the stand-in hands out and signs with by default.
func (h *Handler) Secret() string {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.secret
}

// SetSecret changes the webhook signing secret, as a rotation would.
func (h *Handler) SetSecret(secret string) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.secret = secret
}

// FailNext scripts the next n matching requests to fail with f, replacing any failures still
// scripted: FailNext(0, Failure{}) cancels them.
func (h *Handler) FailNext(n int, f Failure) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.failures = nil
	for range n {
		h.failures = append(h.failures, f)
	}
}

// ThenFail scripts n more failures after those already scripted.
func (h *Handler) ThenFail(n int, f Failure) {
	h.mu.Lock()
	defer h.mu.Unlock()
	for range n {
		h.failures = append(h.failures, f)
	}
}

// Requests is the number of requests received, refused ones included.
func (h *Handler) Requests() int {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.requests
}

// Creates returns the create calls received so far, oldest first.
func (h *Handler) Creates() []Create {
	h.mu.Lock()
	defer h.mu.Unlock()
	out := make([]Create, len(h.creates))
	for i, c := range h.creates {
		out[i] = *c
	}
	return out
}

// WaitForCreates waits until at least n create calls were received and answered, and returns
// them all. After timeout it returns those so far and an error.
func (h *Handler) WaitForCreates(n int, timeout time.Duration) ([]Create, error) {
	t := time.NewTimer(timeout)
	defer t.Stop()
	for {
		h.mu.Lock()
		var answered []Create
		for _, c := range h.creates {
			if c.Status != 0 {
				answered = append(answered, *c)
			}
		}
		changed := h.changed
		h.mu.Unlock()
		if len(answered) >= n {
			return answered, nil
		}
		select {
		case <-changed:
		case <-t.C:
			return answered, fmt.Errorf("replicatetest: %d of %d create calls after %s", len(answered), n, timeout)
		}
	}
}

// signal wakes WaitForCreates; the caller holds mu.
func (h *Handler) signal() {
	close(h.changed)
	h.changed = make(chan struct{})
}

// Prediction returns a prediction's current state, as GET /predictions/{id} would.
func (h *Handler) Prediction(id string) (*replicate.Prediction, bool) {
	h.mu.Lock()
	p, ok := h.predictions[id]
	var body []byte
	if ok {
		body = p.body()
	}
	h.mu.Unlock()
	if !ok {
		return nil, false
	}
	var out replicate.Prediction
	if err := json.Unmarshal(body, &out); err != nil {
		panic(fmt.Sprintf("replicatetest: prediction %s: %v", id, err)) // built by the stand-in
	}
	return &out, true
}

// ServeHTTP implements http.Handler.
func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request) { h.mux.ServeHTTP(w, r) }

func (h *Handler) count() {
	h.mu.Lock()
	h.requests++
	h.mu.Unlock()
}

// endpointFunc answers one kind of call; body is the request body already read.
type endpointFunc func(w http.ResponseWriter, r *http.Request, body []byte)

// endpoint wraps an answer with what every call goes through: the body read (and a create
// recorded), a scripted failure, then authentication.
func (h *Handler) endpoint(op Op, fn endpointFunc) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		h.count()
		body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, maxBody))
		if err != nil {
			writeProblem(w, http.StatusRequestEntityTooLarge, "Request body too large", "", nil)
			return
		}
		aw := &answerWriter{ResponseWriter: w, done: h.done, req: r}
		if op == OpCreate {
			c := h.record(r, body)
			aw.onAnswer = func(status int, id string) {
				h.mu.Lock()
				defer h.mu.Unlock()
				// c stays valid even if Reset forgot it meanwhile.
				c.Status, c.PredictionID = status, id
				h.signal()
			}
		}
		if h.scripted(op, aw, r) {
			return
		}
		if !authorized(r.Header.Get("Authorization")) {
			writeProblem(aw, http.StatusUnauthorized, "Unauthenticated", "You did not pass a valid authentication token", nil)
			return
		}
		fn(aw, r, body)
	}
}

// answerWriter completes a create's record (the status, the prediction made) as the answer
// starts, so that a client holding its answer always finds the record complete.
type answerWriter struct {
	http.ResponseWriter
	predictionID string                                // set by a create that made one
	onAnswer     func(status int, predictionID string) // nil when there is nothing to record
	answered     bool
	// lost, if set, is the scripted AnswerLost failure: the answer is dropped instead.
	lost *Failure
	done <-chan struct{} // the stand-in closing
	req  *http.Request
}

// WriteHeader implements http.ResponseWriter.
func (a *answerWriter) WriteHeader(status int) {
	if !a.answered {
		a.answered = true
		if a.onAnswer != nil {
			a.onAnswer(status, a.predictionID)
		}
	}
	if a.lost != nil {
		t := time.NewTimer(a.lost.Delay)
		defer t.Stop()
		select {
		case <-t.C:
		case <-a.req.Context().Done():
		case <-a.done:
		}
		panic(http.ErrAbortHandler) // the connection drops without an answer
	}
	a.ResponseWriter.WriteHeader(status)
}

// Write implements http.ResponseWriter.
func (a *answerWriter) Write(b []byte) (int, error) {
	if !a.answered {
		a.WriteHeader(http.StatusOK)
	}
	return a.ResponseWriter.Write(b)
}

// authorized accepts the token with the Bearer scheme, and with the older Token scheme that
// Replicate still honours.
func authorized(header string) bool {
	scheme, token, ok := strings.Cut(header, " ")
	return ok && (strings.EqualFold(scheme, "Bearer") || strings.EqualFold(scheme, "Token")) && token == Token
}

// record keeps a create call as received.
func (h *Handler) record(r *http.Request, body []byte) *Create {
	var req struct {
		Version             string         `json:"version"`
		Input               map[string]any `json:"input"`
		Webhook             string         `json:"webhook"`
		WebhookEventsFilter []string       `json:"webhook_events_filter"`
	}
	_ = json.Unmarshal(body, &req) // a malformed body is recorded with its bytes only
	c := &Create{Path: r.URL.Path, Version: req.Version, Input: req.Input, Webhook: req.Webhook,
		WebhookEventsFilter: req.WebhookEventsFilter, Header: r.Header.Clone(), Body: body, Time: time.Now()}
	switch {
	case strings.HasPrefix(r.URL.Path, APIPath+"/models/"):
		c.Model = r.PathValue("owner") + "/" + r.PathValue("name")
	case strings.HasPrefix(r.URL.Path, APIPath+"/deployments/"):
		c.Deployment = r.PathValue("owner") + "/" + r.PathValue("name")
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	h.creates = append(h.creates, c)
	return c
}

// scripted answers with the first scripted failure that matches op, if any, and reports
// whether it answered.
func (h *Handler) scripted(op Op, w http.ResponseWriter, r *http.Request) bool {
	h.mu.Lock()
	var f Failure
	found := false
	for i, c := range h.failures {
		if c.Op == "" || c.Op == op {
			f, found = c, true
			h.failures = append(h.failures[:i:i], h.failures[i+1:]...)
			break
		}
	}
	h.mu.Unlock()
	if !found {
		return false
	}
	if f.AnswerLost {
		if aw, ok := w.(*answerWriter); ok {
			aw.lost = &f
		}
		return false
	}
	if f.Delay > 0 {
		t := time.NewTimer(f.Delay)
		defer t.Stop()
		select {
		case <-t.C:
		case <-r.Context().Done():
			panic(http.ErrAbortHandler) // the client gave up: no answer
		case <-h.done:
			panic(http.ErrAbortHandler)
		}
		if f.Status == 0 && f.RetryAfter == 0 {
			return false
		}
	}
	status := f.Status
	if status == 0 {
		status = http.StatusTooManyRequests
	}
	for k, vs := range f.Header {
		w.Header()[k] = append([]string(nil), vs...)
	}
	if f.RetryAfter > 0 {
		secs := strconv.FormatInt(int64((f.RetryAfter+time.Second-1)/time.Second), 10)
		w.Header().Set("Retry-After", secs)
		w.Header().Set("Ratelimit-Limit", "600")
		w.Header().Set("Ratelimit-Remaining", "0")
		w.Header().Set("Ratelimit-Reset", secs)
	}
	if f.Body != "" {
		if w.Header().Get("Content-Type") == "" {
			w.Header().Set("Content-Type", "application/problem+json")
		}
		w.WriteHeader(status)
		_, _ = io.WriteString(w, f.Body)
		return true
	}
	title, detail := f.Title, f.Detail
	if title == "" && detail == "" {
		title, detail = defaultProblem(status, f.RetryAfter)
	}
	writeProblem(w, status, title, detail, nil)
	return true
}

// defaultProblem is Replicate's title and detail for a status.
func defaultProblem(status int, retryAfter time.Duration) (string, string) {
	switch status {
	case http.StatusUnauthorized:
		return "Unauthenticated", "You did not pass a valid authentication token"
	case http.StatusPaymentRequired:
		return "Insufficient credit", "You have insufficient credit to run this model. Go to https://replicate.com/account/billing#billing to purchase credit. Once you purchase credit, please wait a few minutes before trying again."
	case http.StatusForbidden:
		return "Forbidden", "You do not have permission to perform this action."
	case http.StatusNotFound:
		return "", "Not found."
	case http.StatusUnprocessableEntity:
		return "Input validation failed", "- input: prompt is required\n"
	case http.StatusTooManyRequests:
		secs := max(1, int64((retryAfter+time.Second-1)/time.Second))
		unit := "seconds"
		if secs == 1 {
			unit = "second"
		}
		return "Request was throttled.", fmt.Sprintf("Request was throttled. Expected available in %d %s.", secs, unit)
	}
	return http.StatusText(status), "An error occurred on Replicate's side. Please try again."
}

// writeProblem answers with an application/problem+json body.
func writeProblem(w http.ResponseWriter, status int, title, detail string, fields []invalidField) {
	p := map[string]any{"status": status, "detail": detail}
	if title != "" {
		p["title"] = title
	}
	if len(fields) > 0 {
		p["invalid_fields"] = fields
	}
	w.Header().Set("Content-Type", "application/problem+json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(p)
}

func writeJSON(w http.ResponseWriter, status int, body []byte) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_, _ = w.Write(body)
}

// createRequest is the body of a create call.
type createRequest struct {
	Version             string         `json:"version"`
	Input               map[string]any `json:"input"`
	Webhook             string         `json:"webhook"`
	WebhookEventsFilter []string       `json:"webhook_events_filter"`
}

func decodeCreate(w http.ResponseWriter, body []byte) (*createRequest, bool) {
	var req createRequest
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.UseNumber()
	if err := dec.Decode(&req); err != nil {
		writeProblem(w, http.StatusBadRequest, "Invalid JSON", "The request body is not valid JSON: "+err.Error(), nil)
		return nil, false
	}
	return &req, true
}

// createByVersion answers POST /predictions. version is a version id, "owner/name:id", or
// "owner/name" for an official model.
func (h *Handler) createByVersion(w http.ResponseWriter, r *http.Request, body []byte) {
	req, ok := decodeCreate(w, body)
	if !ok {
		return
	}
	if req.Version == "" {
		fields := []invalidField{{Type: "required", Field: "version", Description: "version is required"}}
		writeProblem(w, http.StatusUnprocessableEntity, "Invalid version or not permitted", "- version: version is required\n", fields)
		return
	}
	h.mu.Lock()
	m := h.byVersion(req.Version)
	h.mu.Unlock()
	if m == nil {
		writeProblem(w, http.StatusUnprocessableEntity, "Invalid version or not permitted",
			"The specified version does not exist (or perhaps you don't have permission to use it?)", nil)
		return
	}
	version := m.Version
	if m.Official && !strings.Contains(req.Version, ":") && req.Version != m.Version {
		version = "hidden"
	}
	h.create(w, r, req, m, version, "")
}

// byVersion finds the model a version field names; the caller holds mu.
func (h *Handler) byVersion(v string) *Model {
	name, id, hasID := strings.Cut(v, ":")
	for _, m := range h.models {
		switch {
		case !hasID && v == m.Version,
			hasID && name == m.ref() && id == m.Version,
			!hasID && v == m.ref() && m.Official:
			return m
		}
	}
	return nil
}

// createByModel answers POST /models/{owner}/{name}/predictions: official models only.
func (h *Handler) createByModel(w http.ResponseWriter, r *http.Request, body []byte) {
	req, ok := decodeCreate(w, body)
	if !ok {
		return
	}
	h.mu.Lock()
	m := h.models[r.PathValue("owner")+"/"+r.PathValue("name")]
	h.mu.Unlock()
	if m == nil || !m.Official {
		writeProblem(w, http.StatusNotFound, "", "The requested resource could not be found.", nil)
		return
	}
	h.create(w, r, req, m, "hidden", "")
}

// createOnDeployment answers POST /deployments/{owner}/{name}/predictions.
func (h *Handler) createOnDeployment(w http.ResponseWriter, r *http.Request, body []byte) {
	req, ok := decodeCreate(w, body)
	if !ok {
		return
	}
	dep := r.PathValue("owner") + "/" + r.PathValue("name")
	h.mu.Lock()
	m := h.models[h.deployments[dep]]
	h.mu.Unlock()
	if m == nil {
		writeProblem(w, http.StatusNotFound, "", "Not found.", nil)
		return
	}
	h.create(w, r, req, m, m.Version, dep)
}

// create checks the request and, when it is valid, starts a prediction of m and answers 201.
func (h *Handler) create(w http.ResponseWriter, r *http.Request, req *createRequest, m *Model, version, deployment string) {
	if req.Webhook != "" {
		if u, err := url.Parse(req.Webhook); err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" {
			fields := []invalidField{{Type: "format", Field: "webhook", Description: "Does not match format 'uri'"}}
			writeProblem(w, http.StatusUnprocessableEntity, "Input validation failed", "- webhook: Does not match format 'uri'\n", fields)
			return
		}
	}
	for _, ev := range req.WebhookEventsFilter {
		switch ev {
		case "start", "output", "logs", "completed":
		default:
			d := "webhook_events_filter must be one of the following: \"start\", \"output\", \"logs\", \"completed\""
			fields := []invalidField{{Type: "enum", Field: "webhook_events_filter.0", Description: d}}
			writeProblem(w, http.StatusUnprocessableEntity, "Input validation failed", "- "+d+"\n", fields)
			return
		}
	}
	if req.Input == nil {
		fields := []invalidField{{Type: "required", Field: "(root)", Description: "input is required"}}
		writeProblem(w, http.StatusUnprocessableEntity, "Input validation failed", "- (root): input is required\n", fields)
		return
	}
	h.mu.Lock()
	schema := h.schemas[m.ref()]
	h.mu.Unlock()
	if bad := schema.check(req.Input); len(bad) > 0 {
		var detail strings.Builder
		for _, f := range bad {
			fmt.Fprintf(&detail, "- %s: %s\n", f.Field, f.Description)
		}
		writeProblem(w, http.StatusUnprocessableEntity, "Input validation failed", detail.String(), bad)
		return
	}

	filter := req.WebhookEventsFilter
	if req.Webhook != "" && len(filter) == 0 {
		filter = []string{"start", "output", "logs", "completed"}
	}
	p := &prediction{
		ID: newID(), Model: m.ref(), Version: version, Input: req.Input, Status: replicate.Starting,
		Source: "api", CreatedAt: time.Now(), Deployment: deployment,
		Webhook: req.Webhook, WebhookEventsFilter: filter, api: apiBase(r),
	}
	h.mu.Lock()
	h.predictions[p.ID] = p
	body := p.body()
	h.mu.Unlock()
	if aw, ok := w.(*answerWriter); ok {
		aw.predictionID = p.ID
	}
	writeJSON(w, http.StatusCreated, body)
}

// apiBase is the stand-in's own API root as the client reached it, for a prediction's urls.
func apiBase(r *http.Request) string {
	scheme := "http"
	if r.TLS != nil {
		scheme = "https"
	}
	return scheme + "://" + r.Host + APIPath
}

// get answers GET /predictions/{id}.
func (h *Handler) get(w http.ResponseWriter, r *http.Request, _ []byte) {
	h.mu.Lock()
	p, ok := h.predictions[r.PathValue("id")]
	var body []byte
	if ok {
		body = p.body()
	}
	h.mu.Unlock()
	if !ok {
		writeProblem(w, http.StatusNotFound, "", "Not found.", nil)
		return
	}
	writeJSON(w, http.StatusOK, body)
	return
}

// cancel answers POST /predictions/{id}/cancel: a running prediction becomes canceled; one that
// already finished is returned as it is.
func (h *Handler) cancel(w http.ResponseWriter, r *http.Request, _ []byte) {
	h.mu.Lock()
	p, ok := h.predictions[r.PathValue("id")]
	var body []byte
	if ok {
		if !p.Status.Terminal() {
			now := time.Now()
			p.Status = replicate.Canceled
			p.CompletedAt = now
			if p.StartedAt.IsZero() {
				p.StartedAt = now
			}
		}
		body = p.body()
	}
	h.mu.Unlock()
	if !ok {
		writeProblem(w, http.StatusNotFound, "", "Not found.", nil)
		return
	}
	writeJSON(w, http.StatusOK, body)
	return
}

// model answers GET /models/{owner}/{name}.
func (h *Handler) model(w http.ResponseWriter, r *http.Request, _ []byte) {
	h.mu.Lock()
	m, ok := h.models[r.PathValue("owner")+"/"+r.PathValue("name")]
	h.mu.Unlock()
	if !ok {
		writeProblem(w, http.StatusNotFound, "", "Not found.", nil)
		return
	}
	body, err := json.Marshal(map[string]any{
		"url":             "https://replicate.com/" + m.ref(),
		"owner":           m.Owner,
		"name":            m.Name,
		"description":     m.Description,
		"visibility":      "public",
		"github_url":      nil,
		"paper_url":       nil,
		"license_url":     nil,
		"run_count":       1234567,
		"cover_image_url": "https://tjzk.replicate.delivery/models_models_cover_image/" + m.Name + ".png",
		"default_example": nil,
		"latest_version": map[string]any{
			"id":             m.Version,
			"created_at":     "2024-08-01T12:00:00.000000Z",
			"cog_version":    "0.9.13",
			"openapi_schema": m.Schema,
		},
	})
	if err != nil {
		panic(err) // the schema was checked when the model was added
	}
	writeJSON(w, http.StatusOK, body)
	return
}

// webhookSecret answers GET /webhooks/default/secret.
func (h *Handler) webhookSecret(w http.ResponseWriter, _ *http.Request, _ []byte) {
	body, _ := json.Marshal(map[string]string{"key": h.Secret()})
	writeJSON(w, http.StatusOK, body)
	return
}

// idAlphabet is the alphabet of Replicate's prediction ids: lowercase base32 without the
// letters easily misread.
const idAlphabet = "0123456789abcdefghjkmnpqrstvwxyz"

// newID returns a fresh 26-character prediction id.
func newID() string {
	var b [26]byte
	if _, err := rand.Read(b[:]); err != nil {
		panic(err)
	}
	for i := range b {
		b[i] = idAlphabet[int(b[i])%len(idAlphabet)]
	}
	return string(b[:])
}

// Server is a Handler on a loopback HTTP server.
type Server struct {
	*Handler
	srv *httptest.Server
}

// NewServer starts a stand-in.
func NewServer() *Server {
	h := NewHandler()
	return &Server{Handler: h, srv: httptest.NewServer(h)}
}

// URL is the API root, e.g. http://127.0.0.1:41234/v1, for the client's base URL.
func (s *Server) URL() string { return s.srv.URL + APIPath }

// Client returns an HTTP client for the server.
func (s *Server) Client() *http.Client { return s.srv.Client() }

// Close releases held requests and shuts the server down.
func (s *Server) Close() {
	s.Handler.Close()
	s.srv.Close()
}
