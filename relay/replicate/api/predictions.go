package api

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"regexp"
	"strconv"
	"strings"
	"time"

	"github.com/mlrelay/relay/relay/replicate"
)

// The webhook events Replicate can be asked to send, for CreateOptions.WebhookEventsFilter.
const (
	EventStart     = "start"
	EventOutput    = "output"
	EventLogs      = "logs"
	EventCompleted = "completed"
)

// maxWait is the longest Replicate holds a create call with "Prefer: wait".
const maxWait = 60 * time.Second

// CreateOptions is what a new prediction is given besides the model to run.
type CreateOptions struct {
	// Input is the model's input, e.g. {"prompt": "...", "width": 1024}. Nil sends {}.
	Input map[string]any
	// Webhook is the URL Replicate posts the prediction to as it progresses; empty for none.
	Webhook string
	// WebhookEventsFilter picks the deliveries, e.g. {EventStart, EventCompleted}; empty
	// leaves Replicate's default (every event).
	WebhookEventsFilter []string
	// Wait, when positive, asks Replicate to hold the answer until the prediction finishes or
	// this much time passes ("Prefer: wait=N", whole seconds, at most 60 s). Default: answer at
	// once.
	Wait time.Duration
	// CancelAfter, when positive, is the prediction's deadline: Replicate cancels it if it has
	// not finished this long after creation ("Cancel-After", whole seconds). Default: none.
	CancelAfter time.Duration
}

// request is the JSON body of a create call.
type request struct {
	Version             string         `json:"version,omitempty"`
	Input               map[string]any `json:"input"`
	Webhook             string         `json:"webhook,omitempty"`
	WebhookEventsFilter []string       `json:"webhook_events_filter,omitempty"`
}

// createCall checks o and builds the create call for path, named subject.
func createCall(subject string, path []string, version string, o CreateOptions) (call, error) {
	k := call{op: "create prediction", subject: subject, method: http.MethodPost, path: path, header: http.Header{}}
	for _, ev := range o.WebhookEventsFilter {
		switch ev {
		case EventStart, EventOutput, EventLogs, EventCompleted:
		default:
			return k, fmt.Errorf("create prediction: unknown webhook event %q (want start, output, logs or completed)", ev)
		}
	}
	if len(o.WebhookEventsFilter) > 0 && o.Webhook == "" {
		return k, errors.New("create prediction: a webhook events filter needs a webhook URL")
	}
	if o.Wait < 0 || o.Wait > maxWait {
		return k, fmt.Errorf("create prediction: wait must be between 0 and %s, got %s", maxWait, o.Wait)
	}
	if o.CancelAfter < 0 {
		return k, fmt.Errorf("create prediction: cancel-after must not be negative, got %s", o.CancelAfter)
	}
	if o.Wait > 0 {
		k.header.Set("Prefer", "wait="+strconv.FormatInt(ceilSeconds(o.Wait), 10))
		k.timeout = o.Wait + 10*time.Second
	}
	if o.CancelAfter > 0 {
		k.header.Set("Cancel-After", strconv.FormatInt(ceilSeconds(o.CancelAfter), 10)+"s")
	}
	input := o.Input
	if input == nil {
		input = map[string]any{}
	}
	k.body = request{Version: version, Input: input, Webhook: o.Webhook, WebhookEventsFilter: o.WebhookEventsFilter}
	return k, nil
}

func ceilSeconds(d time.Duration) int64 { return int64((d + time.Second - 1) / time.Second) }

// CreatePrediction starts a prediction of a model version (POST /predictions). version is the
// 64-hex version id, as Replicate also accepts "owner/name:id".
func (c *Client) CreatePrediction(ctx context.Context, version string, o CreateOptions) (*replicate.Prediction, error) {
	if strings.TrimSpace(version) == "" {
		return nil, errors.New("create prediction: a version is required")
	}
	k, err := createCall("version "+version, []string{"predictions"}, version, o)
	if err != nil {
		return nil, err
	}
	return c.prediction(ctx, k)
}

// CreateModelPrediction starts a prediction of an official model's current version by its name,
// "owner/name" (POST /models/{owner}/{name}/predictions). Other models need a version: Replicate
// answers 404 for them, and the error says so.
func (c *Client) CreateModelPrediction(ctx context.Context, model string, o CreateOptions) (*replicate.Prediction, error) {
	owner, name, err := splitName("model", model)
	if err != nil {
		return nil, fmt.Errorf("create prediction: %w", err)
	}
	k, err := createCall("model "+model, []string{"models", owner, name, "predictions"}, "", o)
	if err != nil {
		return nil, err
	}
	k.hint404 = "only official models run without a version; give owner/name:version"
	return c.prediction(ctx, k)
}

// CreateDeploymentPrediction starts a prediction on a deployment, "owner/name"
// (POST /deployments/{owner}/{name}/predictions).
func (c *Client) CreateDeploymentPrediction(ctx context.Context, deployment string, o CreateOptions) (*replicate.Prediction, error) {
	owner, name, err := splitName("deployment", deployment)
	if err != nil {
		return nil, fmt.Errorf("create prediction: %w", err)
	}
	k, err := createCall("deployment "+deployment, []string{"deployments", owner, name, "predictions"}, "", o)
	if err != nil {
		return nil, err
	}
	return c.prediction(ctx, k)
}

// Launch starts a prediction of ref, as ParseRef reads it: with a version it calls
// CreatePrediction, without one CreateModelPrediction (an official model). A version is sent
// with its model, "owner/name:hash", which Replicate refuses when the version is not that
// model's: a version alone names any model, whatever name was checked against an allow-list.
func (c *Client) Launch(ctx context.Context, ref string, o CreateOptions) (*replicate.Prediction, error) {
	r, err := ParseRef(ref)
	if err != nil {
		return nil, fmt.Errorf("create prediction: %w", err)
	}
	if r.Version != "" {
		k, err := createCall(r.Subject(), []string{"predictions"}, r.String(), o)
		if err != nil {
			return nil, err
		}
		return c.prediction(ctx, k)
	}
	return c.CreateModelPrediction(ctx, r.Owner+"/"+r.Name, o)
}

// GetPrediction returns the current state of a prediction (GET /predictions/{id}).
func (c *Client) GetPrediction(ctx context.Context, id string) (*replicate.Prediction, error) {
	if err := checkID(id); err != nil {
		return nil, fmt.Errorf("get prediction: %w", err)
	}
	return c.prediction(ctx, call{op: "get prediction", subject: "prediction " + id, method: http.MethodGet,
		path: []string{"predictions", id}})
}

// CancelPrediction asks Replicate to cancel a prediction (POST /predictions/{id}/cancel) and
// returns its state after the request. A prediction that already finished is returned as it is.
func (c *Client) CancelPrediction(ctx context.Context, id string) (*replicate.Prediction, error) {
	if err := checkID(id); err != nil {
		return nil, fmt.Errorf("cancel prediction: %w", err)
	}
	return c.prediction(ctx, call{op: "cancel prediction", subject: "prediction " + id, method: http.MethodPost,
		path: []string{"predictions", id, "cancel"}})
}

func (c *Client) prediction(ctx context.Context, k call) (*replicate.Prediction, error) {
	var p replicate.Prediction
	if err := c.do(ctx, k, &p); err != nil {
		return nil, err
	}
	if p.ID == "" {
		return nil, fmt.Errorf("%s: Replicate's answer has no prediction id", k.op)
	}
	return &p, nil
}

// Ref names a model to run: "owner/name" (an official model), "owner/name:version", or a bare
// 64-hex version id.
type Ref struct {
	Owner, Name string // empty for a bare version id
	Version     string // 64 lowercase hex digits, or empty
}

var (
	// nameSegment is what Replicate allows in an owner or model name.
	nameSegment = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._-]{0,99}$`)
	// versionID is a version id: 64 hex digits.
	versionID = regexp.MustCompile(`^[0-9a-fA-F]{64}$`)
	// predictionID is a prediction id: letters and digits (Replicate's are 26 lowercase).
	predictionID = regexp.MustCompile(`^[A-Za-z0-9]{1,64}$`)
)

// ParseRef reads "owner/name", "owner/name:version" or a bare version id. Errors quote the text
// they refuse (bounded), for the person who typed it.
func ParseRef(s string) (Ref, error) {
	s = strings.TrimSpace(s)
	if versionID.MatchString(s) {
		return Ref{Version: strings.ToLower(s)}, nil
	}
	model, version, hasVersion := strings.Cut(s, ":")
	owner, name, err := splitName("model", model)
	if err != nil {
		return Ref{}, err
	}
	if hasVersion && !versionID.MatchString(version) {
		return Ref{}, fmt.Errorf("model version %s is not a version id (64 hex digits)", quoteBounded(version))
	}
	return Ref{Owner: owner, Name: name, Version: strings.ToLower(version)}, nil
}

// String writes r back as ParseRef reads it.
func (r Ref) String() string {
	switch {
	case r.Owner == "":
		return r.Version
	case r.Version == "":
		return r.Owner + "/" + r.Name
	}
	return r.Owner + "/" + r.Name + ":" + r.Version
}

// Subject names r in messages: "model owner/name", "model owner/name:version" or "version id".
func (r Ref) Subject() string {
	if r.Owner == "" {
		return "version " + r.Version
	}
	return "model " + r.String()
}

// splitName reads "owner/name", refusing anything that could leave its place in a URL path.
func splitName(kind, s string) (owner, name string, err error) {
	owner, name, ok := strings.Cut(s, "/")
	if !ok || !validSegment(owner) || !validSegment(name) {
		return "", "", fmt.Errorf("%s %s is not owner/name", kind, quoteBounded(s))
	}
	return owner, name, nil
}

func validSegment(s string) bool {
	return nameSegment.MatchString(s) && s != "." && s != ".."
}

func checkID(id string) error {
	if !predictionID.MatchString(id) {
		return fmt.Errorf("prediction id %s is not valid (letters and digits)", quoteBounded(id))
	}
	return nil
}

// quoteBounded quotes user text for an error message, cut to a length that keeps it readable.
func quoteBounded(s string) string {
	const maxQuoted = 80
	if len(s) > maxQuoted {
		cut := maxQuoted
		for cut > 0 && !isRuneStart(s[cut]) {
			cut--
		}
		s = s[:cut] + "…"
	}
	return strconv.Quote(s)
}
