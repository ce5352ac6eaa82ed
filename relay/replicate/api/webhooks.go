package api

import (
	"context"
	"fmt"
	"net/http"
	"strings"

	"github.com/mlrelay/relay/relay/replicate"
)

// DefaultWebhookSecret returns the account's webhook signing secret, "whsec_<base64>"
// (GET /webhooks/default/secret), the one replicate.NewVerifier checks deliveries with. The
// secret is checked to be usable before it is returned; an error never contains it.
func (c *Client) DefaultWebhookSecret(ctx context.Context) (string, error) {
	var answer struct {
		Key string `json:"key"`
	}
	k := call{op: "get webhook secret", subject: "the default webhook secret", method: http.MethodGet,
		path: []string{"webhooks", "default", "secret"}}
	if err := c.do(ctx, k, &answer); err != nil {
		return "", err
	}
	key := strings.TrimSpace(answer.Key)
	if _, err := replicate.ParseSecret(key); err != nil {
		// ParseSecret's errors never quote the secret.
		return "", fmt.Errorf("get webhook secret: Replicate's answer holds no usable secret: %w", err)
	}
	return key, nil
}
