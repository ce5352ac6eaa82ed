package discordbot

import (
	"encoding/json"
	"fmt"
	"reflect"
	"strings"
	"testing"
	"unicode/utf16"
)

func TestResponseBuilders(t *testing.T) {
	for _, tc := range []struct {
		name string
		got  any
		want string
	}{
		{"pong", Pong(), `{"type":1}`},
		{"deferred", Deferred(false), `{"type":5}`},
		{"deferred ephemeral", Deferred(true), `{"type":5,"data":{"tts":false,"content":"","components":null,"embeds":null,"flags":64}}`},
		{"reply", Reply("@everyone look"), `{"type":4,"data":{"tts":false,"content":"@everyone look","components":null,"embeds":null,"allowed_mentions":{"parse":[],"replied_user":false}}}`},
		{"ephemeral", Ephemeral("no"), `{"type":4,"data":{"tts":false,"content":"no","components":null,"embeds":null,"allowed_mentions":{"parse":[],"replied_user":false},"flags":64}}`},
	} {
		b, err := json.Marshal(tc.got)
		if err != nil || string(b) != tc.want {
			t.Errorf("%s = %s, %v\nwant %s", tc.name, b, err, tc.want)
		}
	}
}

func TestReplyTruncates(t *testing.T) {
	for _, tc := range []struct {
		name string
		in   string
	}{
		{"ascii", strings.Repeat("a", 2500)},
		{"accents", strings.Repeat("é", 2500)},
		{"emoji count double", strings.Repeat("🎨", 1500)},
	} {
		got := Reply(tc.in).Data.Content
		if n := len(utf16.Encode([]rune(got))); n > MaxContent || !strings.HasSuffix(got, "…") {
			t.Errorf("%s: %d UTF-16 units, ends %q", tc.name, n, got[len(got)-4:])
		}
		if !strings.HasPrefix(tc.in, strings.TrimSuffix(got, "…")) {
			t.Errorf("%s: the cut changed the text", tc.name)
		}
	}
	exact := strings.Repeat("a", MaxContent)
	if Reply(exact).Data.Content != exact {
		t.Error("content of exactly the limit was cut")
	}
}

func TestChoices(t *testing.T) {
	var many []string
	for i := range 30 {
		many = append(many, fmt.Sprintf("owner/model-%02d", i))
	}
	r := Choices(append([]string{"", strings.Repeat("x", 101)}, many...)...)
	if r.Type != 8 || len(r.Data.Choices) != MaxChoices || r.Data.Choices[0].Name != "owner/model-00" || r.Data.Choices[0].Value != "owner/model-00" {
		t.Errorf("Choices: type %d, %d choices, first %+v", r.Type, len(r.Data.Choices), r.Data.Choices[0])
	}
}

func TestSuggest(t *testing.T) {
	models := []string{"stability-ai/sdxl", "black-forest-labs/flux-schnell", "black-forest-labs/flux-dev", "bytedance/sdxl-lightning-4step"}
	for _, tc := range []struct {
		typed string
		want  []string
	}{
		{"", models},
		{"  ", models},
		{"black", []string{"black-forest-labs/flux-schnell", "black-forest-labs/flux-dev"}},
		{"SDXL", []string{"stability-ai/sdxl", "bytedance/sdxl-lightning-4step"}},
		// Those that start with it come first, then those that contain it.
		{"b", []string{"black-forest-labs/flux-schnell", "black-forest-labs/flux-dev", "bytedance/sdxl-lightning-4step", "stability-ai/sdxl"}},
		{"st", []string{"stability-ai/sdxl", "black-forest-labs/flux-schnell", "black-forest-labs/flux-dev", "bytedance/sdxl-lightning-4step"}},
		{"nothing", nil},
	} {
		if got := Suggest(models, tc.typed); !reflect.DeepEqual(got, tc.want) {
			t.Errorf("Suggest(%q) = %v, want %v", tc.typed, got, tc.want)
		}
	}
	var many []string
	for i := range 40 {
		many = append(many, fmt.Sprintf("m/%d", i))
	}
	if got := Suggest(many, "m/"); len(got) != MaxChoices {
		t.Errorf("Suggest gave %d, want at most %d", len(got), MaxChoices)
	}
}
