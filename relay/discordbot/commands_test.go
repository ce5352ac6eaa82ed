package discordbot

import (
	"encoding/json"
	"reflect"
	"regexp"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/bwmarrin/discordgo"
)

// Discord's rules for command and option names and descriptions.
var discordName = regexp.MustCompile(`^[-_\p{Ll}\p{N}]{1,32}$`)

func TestDefinitions(t *testing.T) {
	defs := Definitions()
	names := []string{}
	for _, c := range defs {
		names = append(names, c.Name)
		if !discordName.MatchString(c.Name) || c.Type != discordgo.ChatApplicationCommand {
			t.Errorf("command %q: bad name or type %d", c.Name, c.Type)
		}
		if n := utf8.RuneCountInString(c.Description); n < 1 || n > 100 {
			t.Errorf("/%s: description of %d characters", c.Name, n)
		}
		if c.Contexts == nil || len(*c.Contexts) != 1 || (*c.Contexts)[0] != discordgo.InteractionContextGuild {
			t.Errorf("/%s is not limited to servers", c.Name)
		}
		if len(c.Options) > 25 {
			t.Errorf("/%s has %d options", c.Name, len(c.Options))
		}
		optional := false
		for _, o := range c.Options {
			if !discordName.MatchString(o.Name) {
				t.Errorf("/%s %s: bad name", c.Name, o.Name)
			}
			if n := utf8.RuneCountInString(o.Description); n < 1 || n > 100 {
				t.Errorf("/%s %s: description of %d characters", c.Name, o.Name, n)
			}
			if o.Required && optional {
				t.Errorf("/%s %s: required after an optional option", c.Name, o.Name)
			}
			optional = optional || !o.Required
			if o.Autocomplete && len(o.Choices) > 0 {
				t.Errorf("/%s %s: autocomplete and choices together", c.Name, o.Name)
			}
			if len(o.Choices) > 25 {
				t.Errorf("/%s %s: %d choices", c.Name, o.Name, len(o.Choices))
			}
		}
	}
	if strings.Join(names, " ") != "predict status cancel" {
		t.Errorf("commands = %v", names)
	}

	predict := defs[0]
	opts := map[string]*discordgo.ApplicationCommandOption{}
	order := []string{}
	for _, o := range predict.Options {
		opts[o.Name] = o
		order = append(order, o.Name)
	}
	if want := "prompt model negative_prompt width height aspect_ratio num_outputs seed inputs"; strings.Join(order, " ") != want {
		t.Errorf("/predict options = %v, want %s", order, want)
	}
	if !opts["prompt"].Required || opts["model"].Required || !opts["model"].Autocomplete {
		t.Error("prompt must be required; model optional and autocompleted")
	}
	for name, typ := range map[string]discordgo.ApplicationCommandOptionType{
		"width": discordgo.ApplicationCommandOptionInteger, "height": discordgo.ApplicationCommandOptionInteger,
		"num_outputs": discordgo.ApplicationCommandOptionInteger, "seed": discordgo.ApplicationCommandOptionInteger,
		"negative_prompt": discordgo.ApplicationCommandOptionString, "inputs": discordgo.ApplicationCommandOptionString,
	} {
		if opts[name].Type != typ {
			t.Errorf("%s has type %s, want %s", name, opts[name].Type, typ)
		}
	}
	if n := opts["num_outputs"]; *n.MinValue != 1 || n.MaxValue != 4 {
		t.Errorf("num_outputs bounds %v..%v", *n.MinValue, n.MaxValue)
	}
	for _, c := range defs[1:] {
		if len(c.Options) != 1 || c.Options[0].Name != "id" || !c.Options[0].Required {
			t.Errorf("/%s options = %+v", c.Name, c.Options)
		}
	}

	// What registration sends: the bounds present, the zero ones left out.
	b, err := json.Marshal(defs)
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{`"name":"width","description":"Image width in pixels","channel_types":null,"required":false,"options":null,"autocomplete":false,"choices":null,"min_value":64,"max_value":4096`,
		`"name":"seed","description":"Random seed, to repeat a result","channel_types":null,"required":false,"options":null,"autocomplete":false,"choices":null,"min_value":0}`,
		`"contexts":[0]`} {
		if !strings.Contains(string(b), want) {
			t.Errorf("registration JSON lacks %s", want)
		}
	}
}

// commandInteraction parses the JSON Discord would send for a command with opts.
func commandInteraction(t *testing.T, name string, opts ...option) *Interaction {
	t.Helper()
	var raw discordgo.Interaction
	if err := json.Unmarshal(interaction(2, name, opts...), &raw); err != nil {
		t.Fatal(err)
	}
	return &Interaction{Interaction: &raw, Received: testNow}
}

func TestParsePredict(t *testing.T) {
	prompt := option{Name: "prompt", Type: 3, Value: "  an astronaut riding a horse  "}
	for _, tc := range []struct {
		name string
		opts []option
		want PredictArgs
		err  string
	}{
		{"prompt only", []option{prompt}, PredictArgs{Input: map[string]any{"prompt": "an astronaut riding a horse"}}, ""},
		{"every typed option", []option{prompt,
			{Name: "model", Type: 3, Value: " stability-ai/sdxl "},
			{Name: "negative_prompt", Type: 3, Value: "blurry"},
			{Name: "width", Type: 4, Value: 768}, {Name: "height", Type: 4, Value: 512},
			{Name: "aspect_ratio", Type: 3, Value: "16:9"},
			{Name: "num_outputs", Type: 4, Value: 2}, {Name: "seed", Type: 4, Value: 4294967295},
		}, PredictArgs{Model: "stability-ai/sdxl", Input: map[string]any{
			"prompt": "an astronaut riding a horse", "negative_prompt": "blurry", "width": int64(768), "height": int64(512),
			"aspect_ratio": "16:9", "num_outputs": int64(2), "seed": int64(4294967295)}}, ""},
		{"inputs merged", []option{prompt, {Name: "seed", Type: 4, Value: 1},
			{Name: "inputs", Type: 3, Value: `guidance_scale=7.5 scheduler="K_EULER" apply_watermark=false`}},
			PredictArgs{Input: map[string]any{"prompt": "an astronaut riding a horse", "seed": int64(1),
				"guidance_scale": 7.5, "scheduler": "K_EULER", "apply_watermark": false}}, ""},
		{"input given twice", []option{prompt, {Name: "seed", Type: 4, Value: 1}, {Name: "inputs", Type: 3, Value: "seed=2"}},
			PredictArgs{}, `inputs: "seed" is given twice, as an option and in inputs; keep one`},
		{"prompt given twice", []option{prompt, {Name: "inputs", Type: 3, Value: "prompt=x"}},
			PredictArgs{}, `inputs: "prompt" is given twice`},
		{"typed option in inputs, in bounds", []option{prompt, {Name: "inputs", Type: 3, Value: "num_outputs=4 width=1024 aspect_ratio=16:9 seed=7"}},
			PredictArgs{Input: map[string]any{"prompt": "an astronaut riding a horse", "num_outputs": int64(4), "width": int64(1024),
				"aspect_ratio": "16:9", "seed": int64(7)}}, ""},
		{"too many outputs in inputs", []option{prompt, {Name: "inputs", Type: 3, Value: "num_outputs=500 guidance_scale=7"}},
			PredictArgs{}, `inputs: num_outputs must be a whole number from 1 to 4, got 500`},
		{"side in inputs", []option{prompt, {Name: "inputs", Type: 3, Value: "width=100000"}},
			PredictArgs{}, `inputs: width must be a whole number from 64 to 4096, got 100000`},
		{"fractional side in inputs", []option{prompt, {Name: "inputs", Type: 3, Value: "height=512.5"}},
			PredictArgs{}, `inputs: height must be a whole number from 64 to 4096, got 512.5`},
		{"aspect ratio in inputs", []option{prompt, {Name: "inputs", Type: 3, Value: "aspect_ratio=1:100"}},
			PredictArgs{}, `inputs: aspect_ratio must be one of 1:1,`},
		{"bad inputs", []option{prompt, {Name: "inputs", Type: 3, Value: "steps=50 a cat"}},
			PredictArgs{}, `inputs: expected key=value, got "a"`},
		{"blank prompt", []option{{Name: "prompt", Type: 3, Value: "   "}}, PredictArgs{}, "the prompt is empty"},
		{"no prompt", nil, PredictArgs{}, "the prompt is empty"},
		{"fractional integer", []option{prompt, {Name: "width", Type: 4, Value: 512.5}}, PredictArgs{}, "width must be a whole number"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := ParsePredict(commandInteraction(t, "predict", tc.opts...))
			if tc.err != "" {
				if err == nil || !strings.HasPrefix(err.Error(), tc.err) {
					t.Fatalf("ParsePredict = %+v, %v; want an error starting %q", got, err, tc.err)
				}
				return
			}
			if err != nil || !reflect.DeepEqual(got, tc.want) {
				t.Fatalf("ParsePredict = %#v, %v\nwant %#v", got, err, tc.want)
			}
		})
	}
	if _, err := ParsePredict(commandInteraction(t, "status")); err == nil {
		t.Error("ParsePredict read a /status command")
	}
}

func TestParsePredictionID(t *testing.T) {
	const id = "q7vz2m5c1srj40cjx3kr8f1n2w"
	for _, tc := range []struct{ in, want, err string }{
		{id, id, ""},
		{"  " + id + "\n", id, ""},
		{"https://replicate.com/p/" + id, id, ""},
		{"replicate.com/p/" + id + "/", id, ""},
		{"https://www.replicate.com/p/" + id + "?tab=output", id, ""},
		{"https://api.replicate.com/v1/predictions/" + id, id, ""},
		{"", "", `"" is not a prediction id`},
		{"abc/../x", "", "is not a prediction id"},
		{"https://evil.example/p/" + id, "", "is not a prediction id"},
		{"<@123>", "", `"<@123>" is not a prediction id`},
		{strings.Repeat("a", 65), "", "is not a prediction id"},
	} {
		got, err := ParsePredictionID(tc.in)
		if tc.err != "" {
			if err == nil || !strings.Contains(err.Error(), tc.err) {
				t.Errorf("ParsePredictionID(%q) = %q, %v; want an error containing %q", tc.in, got, err, tc.err)
			}
			continue
		}
		if err != nil || got != tc.want {
			t.Errorf("ParsePredictionID(%q) = %q, %v; want %q", tc.in, got, err, tc.want)
		}
	}
}

func TestInteractionOptions(t *testing.T) {
	in := commandInteraction(t, "predict",
		option{Name: "prompt", Type: 3, Value: "x"}, option{Name: "seed", Type: 4, Value: 1e16},
		option{Name: "guidance", Type: 10, Value: 7.5}, option{Name: "flag", Type: 5, Value: true})
	if _, ok := in.Int("seed"); ok {
		t.Error("Int accepted a value beyond 2^53")
	}
	if f, ok := in.Float("guidance"); !ok || f != 7.5 {
		t.Errorf("Float = %v, %v", f, ok)
	}
	if b, ok := in.Bool("flag"); !ok || !b {
		t.Errorf("Bool = %v, %v", b, ok)
	}
	if _, ok := in.String("seed"); ok {
		t.Error("String read a number")
	}
	for _, get := range []func() bool{
		func() bool { _, ok := in.String("nothing"); return ok },
		func() bool { _, ok := in.Int("nothing"); return ok },
		func() bool { _, ok := in.Float("nothing"); return ok },
		func() bool { _, ok := in.Bool("nothing"); return ok },
		func() bool { _, _, ok := in.Focused(); return ok },
	} {
		if get() {
			t.Error("an absent option was found")
		}
	}
	ping := &Interaction{Interaction: &discordgo.Interaction{Type: discordgo.InteractionPing, User: &discordgo.User{ID: "42"}}}
	if ping.Command() != "" || ping.UserID() != "42" {
		t.Errorf("PING: command %q user %q", ping.Command(), ping.UserID())
	}
	if _, ok := ping.String("prompt"); ok {
		t.Error("a PING has options")
	}
}
