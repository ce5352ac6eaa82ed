package api

import (
	"context"
	"net/http"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/mlrelay/relay/relay/replicate"
	"github.com/mlrelay/relay/relay/replicate/replicatetest"
)

const hookURL = "https://relay.example.com/hooks/replicate?kind=prediction"

func sdxlInput() map[string]any {
	return map[string]any{"prompt": "an astronaut riding a horse", "width": 768, "num_outputs": 2, "seed": int64(42)}
}

func TestCreatePrediction(t *testing.T) {
	srv, c := standIn(t)
	filter := []string{EventStart, EventCompleted}
	ctx := context.Background()
	for _, tc := range []struct {
		name        string
		create      func() (*replicate.Prediction, error)
		path        string
		version     string // sent in the body
		model       string
		deployment  string
		wantVersion string // reported by the prediction
	}{
		{"by version", func() (*replicate.Prediction, error) {
			return c.CreatePrediction(ctx, replicatetest.SDXLVersion, CreateOptions{Input: sdxlInput(), Webhook: hookURL, WebhookEventsFilter: filter})
		}, "/v1/predictions", replicatetest.SDXLVersion, "", "", replicatetest.SDXLVersion},
		{"by official model", func() (*replicate.Prediction, error) {
			return c.CreateModelPrediction(ctx, replicatetest.FluxSchnell, CreateOptions{Input: map[string]any{"prompt": "a cat"}, Webhook: hookURL, WebhookEventsFilter: filter})
		}, "/v1/models/black-forest-labs/flux-schnell/predictions", "", replicatetest.FluxSchnell, "", "hidden"},
		{"on a deployment", func() (*replicate.Prediction, error) {
			return c.CreateDeploymentPrediction(ctx, replicatetest.Deployment, CreateOptions{Input: sdxlInput(), Webhook: hookURL, WebhookEventsFilter: filter})
		}, "/v1/deployments/acme/sdxl-prod/predictions", "", "", replicatetest.Deployment, replicatetest.SDXLVersion},
		{"launch owner/name:version", func() (*replicate.Prediction, error) {
			return c.Launch(ctx, replicatetest.SDXL+":"+replicatetest.SDXLVersion, CreateOptions{Input: sdxlInput(), Webhook: hookURL, WebhookEventsFilter: filter})
		}, "/v1/predictions", replicatetest.SDXL + ":" + replicatetest.SDXLVersion, "", "", replicatetest.SDXLVersion},
		{"launch owner/name", func() (*replicate.Prediction, error) {
			return c.Launch(ctx, replicatetest.FluxSchnell, CreateOptions{Input: map[string]any{"prompt": "a cat"}, Webhook: hookURL, WebhookEventsFilter: filter})
		}, "/v1/models/black-forest-labs/flux-schnell/predictions", "", replicatetest.FluxSchnell, "", "hidden"},
		{"launch a bare version", func() (*replicate.Prediction, error) {
			return c.Launch(ctx, strings.ToUpper(replicatetest.SDXLVersion), CreateOptions{Input: sdxlInput(), Webhook: hookURL, WebhookEventsFilter: filter})
		}, "/v1/predictions", replicatetest.SDXLVersion, "", "", replicatetest.SDXLVersion},
	} {
		t.Run(tc.name, func(t *testing.T) {
			srv.Reset()
			p, err := tc.create()
			if err != nil {
				t.Fatal(err)
			}
			if p.ID == "" || p.Status != replicate.Starting || p.Version != tc.wantVersion {
				t.Errorf("prediction id %q status %q version %q, want starting with version %q", p.ID, p.Status, p.Version, tc.wantVersion)
			}
			if p.URLs.Get != srv.URL()+"/predictions/"+p.ID || p.URLs.Web != "https://replicate.com/p/"+p.ID {
				t.Errorf("urls = %+v", p.URLs)
			}
			if p.Webhook != hookURL || !reflect.DeepEqual(p.WebhookEventsFilter, filter) {
				t.Errorf("echoed webhook %q filter %v", p.Webhook, p.WebhookEventsFilter)
			}
			creates := srv.Creates()
			if len(creates) != 1 {
				t.Fatalf("%d create calls, want 1", len(creates))
			}
			got := creates[0]
			if got.Path != tc.path || got.Version != tc.version || got.Model != tc.model || got.Deployment != tc.deployment {
				t.Errorf("call %s version %q model %q deployment %q", got.Path, got.Version, got.Model, got.Deployment)
			}
			if got.Webhook != hookURL || !reflect.DeepEqual(got.WebhookEventsFilter, filter) {
				t.Errorf("sent webhook %q filter %v", got.Webhook, got.WebhookEventsFilter)
			}
			if got.Status != http.StatusCreated || got.PredictionID != p.ID {
				t.Errorf("stand-in answered %d with %q", got.Status, got.PredictionID)
			}
			if got.Input["prompt"] == nil || got.Header.Get("Prefer") != "" || got.Header.Get("Cancel-After") != "" {
				t.Errorf("input %v, Prefer %q, Cancel-After %q", got.Input, got.Header.Get("Prefer"), got.Header.Get("Cancel-After"))
			}
		})
	}
}

func TestCreateSendsInputAsGiven(t *testing.T) {
	srv, c := standIn(t)
	_, err := c.CreatePrediction(context.Background(), replicatetest.SDXLVersion, CreateOptions{Input: map[string]any{
		"prompt": "a \"quoted\" prompt", "width": 768, "guidance_scale": 7.5, "apply_watermark": false, "seed": int64(1) << 40,
	}})
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]any{"prompt": "a \"quoted\" prompt", "width": 768.0, "guidance_scale": 7.5, "apply_watermark": false, "seed": float64(int64(1) << 40)}
	if got := srv.Creates()[0].Input; !reflect.DeepEqual(got, want) {
		t.Errorf("input = %v, want %v", got, want)
	}
	if !strings.Contains(string(srv.Creates()[0].Body), `"seed":1099511627776`) {
		t.Errorf("body %s does not carry the seed as an exact integer", srv.Creates()[0].Body)
	}
}

func TestCreateWithoutWebhookOrInput(t *testing.T) {
	srv, c := standIn(t)
	// No input at all is sent as {}: the model then says what is missing.
	_, err := c.CreatePrediction(context.Background(), replicatetest.SDXLVersion, CreateOptions{})
	if e := asError(t, err); e.Status != http.StatusUnprocessableEntity || !reflect.DeepEqual(e.Fields, []string{"prompt"}) {
		t.Errorf("error %v fields %v, want 422 naming prompt", err, e.Fields)
	}
	got := srv.Creates()[0]
	if string(got.Body) != `{"version":"`+replicatetest.SDXLVersion+`","input":{}}` {
		t.Errorf("body = %s, want no webhook fields and an empty input", got.Body)
	}
}

func TestCreateHeaders(t *testing.T) {
	srv, c := standIn(t)
	_, err := c.CreatePrediction(context.Background(), replicatetest.SDXLVersion, CreateOptions{
		Input: map[string]any{"prompt": "x"}, Wait: 4500 * time.Millisecond, CancelAfter: 5 * time.Minute,
	})
	if err != nil {
		t.Fatal(err)
	}
	h := srv.Creates()[0].Header
	if h.Get("Prefer") != "wait=5" || h.Get("Cancel-After") != "300s" {
		t.Errorf("Prefer %q Cancel-After %q, want wait=5 and 300s", h.Get("Prefer"), h.Get("Cancel-After"))
	}
}

func TestCreateOptionsChecked(t *testing.T) {
	srv, c := standIn(t)
	for _, tc := range []struct {
		name string
		o    CreateOptions
		want string
	}{
		{"unknown event", CreateOptions{Webhook: hookURL, WebhookEventsFilter: []string{"start", "done"}}, `unknown webhook event "done"`},
		{"filter without webhook", CreateOptions{WebhookEventsFilter: []string{"completed"}}, "needs a webhook URL"},
		{"wait too long", CreateOptions{Wait: 61 * time.Second}, "wait must be between"},
		{"negative wait", CreateOptions{Wait: -time.Second}, "wait must be between"},
		{"negative cancel-after", CreateOptions{CancelAfter: -time.Second}, "cancel-after must not be negative"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := c.CreatePrediction(context.Background(), replicatetest.SDXLVersion, tc.o)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("CreatePrediction = %v, want an error containing %q", err, tc.want)
			}
		})
	}
	if _, err := c.CreatePrediction(context.Background(), " ", CreateOptions{}); err == nil {
		t.Error("CreatePrediction with no version succeeded")
	}
	if n := srv.Requests(); n != 0 {
		t.Errorf("%d requests reached the server, want none", n)
	}
}

func TestCreateRefusals(t *testing.T) {
	_, c := standIn(t)
	ctx := context.Background()
	for _, tc := range []struct {
		name   string
		create func() error
		status int
		want   string
	}{
		{"community model by name", func() error {
			_, err := c.Launch(ctx, replicatetest.SDXL, CreateOptions{Input: map[string]any{"prompt": "x"}})
			return err
		}, 404, "model stability-ai/sdxl was not found on Replicate (only official models run without a version; give owner/name:version)"},
		{"unknown version", func() error {
			_, err := c.Launch(ctx, replicatetest.SDXL+":"+strings.Repeat("ab", 32), CreateOptions{Input: map[string]any{"prompt": "x"}})
			return err
		}, 422, "Replicate rejected the request: The specified version does not exist"},
		{"unknown deployment", func() error {
			_, err := c.CreateDeploymentPrediction(ctx, "acme/nothing", CreateOptions{Input: map[string]any{"prompt": "x"}})
			return err
		}, 404, "deployment acme/nothing was not found on Replicate"},
		{"bad webhook URL", func() error {
			_, err := c.CreatePrediction(ctx, replicatetest.SDXLVersion, CreateOptions{Input: map[string]any{"prompt": "x"}, Webhook: "relay.example.com/hook"})
			return err
		}, 422, `Replicate rejected the field "webhook": Does not match format 'uri'`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := tc.create()
			e := asError(t, err)
			if e.Status != tc.status || !strings.HasPrefix(err.Error(), tc.want) {
				t.Errorf("error %d %q, want %d %q", e.Status, err, tc.status, tc.want)
			}
		})
	}
}

func TestGetPrediction(t *testing.T) {
	srv, c := standIn(t)
	ctx := context.Background()
	created, err := c.CreatePrediction(ctx, replicatetest.SDXLVersion, CreateOptions{Input: sdxlInput(), Webhook: hookURL})
	if err != nil {
		t.Fatal(err)
	}
	got, err := c.GetPrediction(ctx, created.ID)
	if err != nil {
		t.Fatal(err)
	}
	if got.ID != created.ID || got.Status != replicate.Starting || got.Model != replicatetest.SDXL || !got.CompletedAt.IsZero() {
		t.Errorf("got %+v", got)
	}
	if _, err := srv.Complete(created.ID, replicatetest.Completion{}); err != nil {
		t.Fatal(err)
	}
	got, err = c.GetPrediction(ctx, created.ID)
	if err != nil {
		t.Fatal(err)
	}
	if got.Status != replicate.Succeeded || got.CompletedAt.IsZero() || !strings.Contains(string(got.Output), "out-1.png") {
		t.Errorf("after completion: status %q completed %v output %s", got.Status, got.CompletedAt, got.Output)
	}

	_, err = c.GetPrediction(ctx, "nosuchprediction")
	if e := asError(t, err); e.Status != 404 || err.Error() != "prediction nosuchprediction was not found on Replicate" {
		t.Errorf("unknown prediction: %d %q", e.Status, err)
	}
}

func TestCancelPrediction(t *testing.T) {
	srv, c := standIn(t)
	ctx := context.Background()
	running, err := c.CreatePrediction(ctx, replicatetest.SDXLVersion, CreateOptions{Input: sdxlInput()})
	if err != nil {
		t.Fatal(err)
	}
	got, err := c.CancelPrediction(ctx, running.ID)
	if err != nil {
		t.Fatal(err)
	}
	if got.ID != running.ID || got.Status != replicate.Canceled || got.CompletedAt.IsZero() {
		t.Errorf("cancelled: status %q completed %v", got.Status, got.CompletedAt)
	}

	done, err := c.CreatePrediction(ctx, replicatetest.SDXLVersion, CreateOptions{Input: sdxlInput()})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := srv.Complete(done.ID, replicatetest.Completion{}); err != nil {
		t.Fatal(err)
	}
	got, err = c.CancelPrediction(ctx, done.ID)
	if err != nil || got.Status != replicate.Succeeded {
		t.Errorf("cancelling a finished prediction: %v, status %q; want it returned unchanged", err, got.Status)
	}

	_, err = c.CancelPrediction(ctx, "nosuchprediction")
	if e := asError(t, err); e.Status != 404 || e.Op != "cancel prediction" {
		t.Errorf("unknown prediction: %d %q op %q", e.Status, err, e.Op)
	}
}

func TestParseRef(t *testing.T) {
	v := replicatetest.SDXLVersion
	for _, tc := range []struct {
		in      string
		want    Ref
		subject string
		err     string
	}{
		{"stability-ai/sdxl", Ref{Owner: "stability-ai", Name: "sdxl"}, "model stability-ai/sdxl", ""},
		{" stability-ai/sdxl:" + v + " ", Ref{Owner: "stability-ai", Name: "sdxl", Version: v}, "model stability-ai/sdxl:" + v, ""},
		{"owner/name.v2_x:" + strings.ToUpper(v), Ref{Owner: "owner", Name: "name.v2_x", Version: v}, "", ""},
		{v, Ref{Version: v}, "version " + v, ""},
		{"", Ref{}, "", `model "" is not owner/name`},
		{"sdxl", Ref{}, "", `model "sdxl" is not owner/name`},
		{"a/b/c", Ref{}, "", "is not owner/name"},
		{"../sdxl", Ref{}, "", "is not owner/name"},
		{"a/b:", Ref{}, "", `model version "" is not a version id`},
		{"a/b:39ed52f2", Ref{}, "", `model version "39ed52f2" is not a version id (64 hex digits)`},
		{"a/b:" + strings.Repeat("z", 64), Ref{}, "", "is not a version id"},
		{strings.Repeat("x", 200), Ref{}, "", "…\" is not owner/name"},
	} {
		t.Run(tc.in, func(t *testing.T) {
			got, err := ParseRef(tc.in)
			if tc.err != "" {
				if err == nil || !strings.Contains(err.Error(), tc.err) {
					t.Fatalf("ParseRef = %+v, %v; want an error containing %q", got, err, tc.err)
				}
				return
			}
			if err != nil || got != tc.want {
				t.Fatalf("ParseRef = %+v, %v; want %+v", got, err, tc.want)
			}
			if again, err := ParseRef(got.String()); err != nil || again != got {
				t.Errorf("ParseRef(String()) = %+v, %v", again, err)
			}
			if tc.subject != "" && got.Subject() != tc.subject {
				t.Errorf("Subject = %q, want %q", got.Subject(), tc.subject)
			}
		})
	}
}

// A version is sent with the model it was named with, so that another model's version cannot
// pass for a version of an allowed model: Replicate refuses the pair, and nothing runs.
func TestLaunchRefusesAnotherModelsVersion(t *testing.T) {
	srv, c := standIn(t)
	_, err := c.Launch(context.Background(), replicatetest.FluxSchnell+":"+replicatetest.SDXLVersion,
		CreateOptions{Input: sdxlInput(), Webhook: hookURL})
	if err == nil || !strings.Contains(err.Error(), "version does not exist") {
		t.Fatalf("err = %v, want Replicate's refusal of the version", err)
	}
	if creates := srv.Creates(); len(creates) != 1 || creates[0].Status != http.StatusUnprocessableEntity || creates[0].PredictionID != "" {
		t.Fatalf("creates = %+v, want one refused", creates)
	}
}
