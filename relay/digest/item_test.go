package digest

import (
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/mlrelay/relay/relay"
	"github.com/mlrelay/relay/relay/replicate"
)

// sampleEvent parses one of Replicate's sample payloads.
func sampleEvent(t *testing.T, name string) *relay.Event {
	t.Helper()
	for _, s := range replicate.Samples() {
		if s.Name == name {
			ev, err := relay.ParseEvent(s.Body, s.MessageID, s.Kind, nil, time.Unix(s.Timestamp, 0))
			if err != nil {
				t.Fatal(err)
			}
			return ev
		}
	}
	t.Fatalf("no sample %s", name)
	return nil
}

func TestItemFromEvent(t *testing.T) {
	ev := sampleEvent(t, "prediction-failed.json")
	got := ItemFromEvent(ev)
	want := Item{
		Kind:        relay.KindPrediction,
		ID:          "h2pq8d1rbnrj00cjx3ksw6tk5g",
		Model:       "stability-ai/sdxl",
		Version:     "39ed52f2a78e934b3ba6e2a89f5b1c712de7dfea535525255b1aa35c5565e08b",
		Status:      replicate.Failed,
		Error:       "NSFW content detected. Try running it again, or try a different prompt.",
		CreatedAt:   time.Date(2025, 5, 1, 18, 31, 2, 114000000, time.UTC),
		CompletedAt: time.Date(2025, 5, 1, 18, 31, 11, 402315000, time.UTC),
		PredictTime: 9.281441,
		ReceivedAt:  ev.ReceivedAt.UTC(),
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("item =\n%+v\nwant\n%+v", got, want)
	}
	if got.WebURL() != "https://replicate.com/p/h2pq8d1rbnrj00cjx3ksw6tk5g" || !got.Failed() || got.Subject() != "stability-ai/sdxl" {
		t.Errorf("WebURL, Failed, Subject = %q, %v, %q", got.WebURL(), got.Failed(), got.Subject())
	}

	ev.URLs.Web = "https://replicate.com/acme/runs/x"
	ev.Error = replicate.Text("Traceback (most recent call last):\n  File \"x.py\"\nValueError: " + strings.Repeat("x", 1000) + "\n")
	it := ItemFromEvent(ev)
	if it.WebURL() != ev.URLs.Web || it.Web != ev.URLs.Web {
		t.Errorf("a page other than the usual one is kept: %q", it.Web)
	}
	if !strings.HasPrefix(it.Error, "ValueError: xxx") || len([]rune(it.Error)) != 300 {
		t.Errorf("Error is the last line cut to 300 characters: %d, %q…", len([]rune(it.Error)), it.Error[:20])
	}
}

func TestItemSubject(t *testing.T) {
	tests := []struct {
		it   Item
		want string
	}{
		{Item{Model: "acme/x", Deployment: "acme/prod"}, "acme/x"},
		{Item{Deployment: "acme/prod", Version: "abc"}, "acme/prod"},
		{Item{Version: "39ed52f2a78e934b3ba6"}, "version 39ed52f2a78e"},
		{Item{}, "unknown model"},
	}
	for _, tt := range tests {
		if got := tt.it.Subject(); got != tt.want {
			t.Errorf("Subject of %+v = %q, want %q", tt.it, got, tt.want)
		}
	}
}

// TestItemJSON checks that every sample survives a round trip through its stored form, and that
// the form is compact: no empty fields, no default page, < and > as they are.
func TestItemJSON(t *testing.T) {
	for _, s := range replicate.Samples() {
		t.Run(s.Name, func(t *testing.T) {
			it := ItemFromEvent(sampleEvent(t, s.Name))
			b, err := MarshalItem(it)
			if err != nil {
				t.Fatal(err)
			}
			back, err := UnmarshalItem(b)
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(back, it) {
				t.Errorf("round trip:\n%+v\n%+v", back, it)
			}
			if len(b) > 500 || strings.Contains(string(b), `""`) || strings.Contains(string(b), "replicate.com/p/") {
				t.Errorf("not compact (%d bytes): %s", len(b), b)
			}
		})
	}
	it := Item{Kind: relay.KindPrediction, ID: "x", Status: replicate.Failed, Error: "<script> & @everyone",
		ReceivedAt: time.Date(2025, 11, 22, 9, 0, 0, 0, time.UTC)}
	b, err := MarshalItem(it)
	if err != nil {
		t.Fatal(err)
	}
	if want := `{"kind":"prediction","id":"x","status":"failed","error":"<script> & @everyone","received_at":"2025-11-22T09:00:00Z"}`; string(b) != want {
		t.Errorf("JSON = %s\nwant   %s", b, want)
	}
	if _, err := UnmarshalItem([]byte(`{"kind":`)); err == nil {
		t.Error("no error for a truncated item")
	}
}
