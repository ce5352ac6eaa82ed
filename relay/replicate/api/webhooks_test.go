package api

import (
	"context"
	"strings"
	"testing"

	"github.com/mlrelay/relay/relay/replicate"
	"github.com/mlrelay/relay/relay/replicate/replicatetest"
)

func TestDefaultWebhookSecret(t *testing.T) {
	srv, c := standIn(t)
	ctx := context.Background()
	got, err := c.DefaultWebhookSecret(ctx)
	if err != nil || got != replicatetest.WebhookSecret {
		t.Fatalf("DefaultWebhookSecret = %q, %v; want the stand-in's secret", got, err)
	}
	if _, err := replicate.NewVerifier([]string{got}, 0); err != nil {
		t.Errorf("the secret does not make a verifier: %v", err)
	}

	rotated := "whsec_" + "cm90YXRlZCBzZWNyZXQgZm9yIHRoZSB0ZXN0"
	srv.SetSecret(rotated)
	if got, err := c.DefaultWebhookSecret(ctx); err != nil || got != rotated {
		t.Errorf("after a rotation: %q, %v", got, err)
	}

	const unusable = "whsec_!!not-base64!!"
	srv.SetSecret(unusable)
	_, err = c.DefaultWebhookSecret(ctx)
	if err == nil || !strings.Contains(err.Error(), "no usable secret") || strings.Contains(err.Error(), "not-base64") {
		t.Errorf("unusable secret: %v", err)
	}

	srv.FailNext(1, replicatetest.Failure{Status: 401})
	if _, err := c.DefaultWebhookSecret(ctx); err == nil || err.Error() != "the Replicate API token was refused" {
		t.Errorf("refused token: %v", err)
	}
}
