package replicate

import (
	"embed"
	"encoding/json"
	"fmt"
	"sort"
	"strconv"
	"strings"
)

// samplesFS holds Replicate's sample payloads and the signed headers that came with them.
//
//go:embed samples/*.json
var samplesFS embed.FS

// Sample is a captured webhook delivery: the exact body bytes and the headers it was signed with.
type Sample struct {
	Name      string // file name, e.g. "training-succeeded.json"
	Kind      string // "prediction" or "training"
	Status    Status
	Body      []byte
	MessageID string // webhook-id
	Timestamp int64  // webhook-timestamp
	Signature string // webhook-signature
}

// SampleSecret is the secret the samples were signed with (a public test secret).
const SampleSecret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"

// Samples returns the embedded sample deliveries, sorted by name.
func Samples() []Sample {
	raw, err := samplesFS.ReadFile("samples/signed-headers.json")
	if err != nil {
		panic(err) // embedded at build time
	}
	var signed struct {
		Deliveries map[string]map[string]string `json:"deliveries"`
	}
	if err := json.Unmarshal(raw, &signed); err != nil {
		panic(fmt.Sprintf("samples: %v", err))
	}
	var out []Sample
	for name, h := range signed.Deliveries {
		body, err := samplesFS.ReadFile("samples/" + name)
		if err != nil {
			panic(err)
		}
		var head struct {
			Status Status `json:"status"`
		}
		if err := json.Unmarshal(body, &head); err != nil {
			panic(fmt.Sprintf("samples: %s: %v", name, err))
		}
		ts, _ := strconv.ParseInt(h["webhook-timestamp"], 10, 64)
		out = append(out, Sample{
			Name:      name,
			Kind:      strings.SplitN(name, "-", 2)[0],
			Status:    head.Status,
			Body:      body,
			MessageID: h["webhook-id"],
			Timestamp: ts,
			Signature: h["webhook-signature"],
		})
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out
}
