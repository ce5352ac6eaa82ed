package api

import (
	"context"
	"encoding/json"
	"reflect"
	"strings"
	"testing"

	"github.com/mlrelay/relay/relay/replicate/replicatetest"
)

// sdxlSchema fetches SDXL's input schema from the stand-in.
func sdxlSchema(t *testing.T) *InputSchema {
	t.Helper()
	_, c := standIn(t)
	m, err := c.GetModel(context.Background(), replicatetest.SDXL)
	if err != nil {
		t.Fatal(err)
	}
	s, err := m.LatestVersion.InputSchema()
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func TestGetModel(t *testing.T) {
	_, c := standIn(t)
	m, err := c.GetModel(context.Background(), replicatetest.SDXL)
	if err != nil {
		t.Fatal(err)
	}
	if m.Owner != "stability-ai" || m.Name != "sdxl" || m.Visibility != "public" || m.URL != "https://replicate.com/stability-ai/sdxl" || m.RunCount == 0 {
		t.Errorf("model = %+v", m)
	}
	if m.LatestVersion == nil || m.LatestVersion.ID != replicatetest.SDXLVersion || m.LatestVersion.CreatedAt.IsZero() || m.LatestVersion.CogVersion == "" {
		t.Fatalf("latest version = %+v", m.LatestVersion)
	}
	if !json.Valid(m.LatestVersion.OpenAPISchema) {
		t.Error("the OpenAPI schema is not kept as JSON")
	}
}

func TestInputSchema(t *testing.T) {
	s := sdxlSchema(t)
	want := []string{"prompt", "negative_prompt", "image", "width", "height", "num_outputs", "scheduler",
		"num_inference_steps", "guidance_scale", "seed", "apply_watermark"}
	if got := s.Names(); !reflect.DeepEqual(got, want) {
		t.Errorf("Names = %v, want x-order %v", got, want)
	}
	f := func(v float64) *float64 { return &v }
	for _, tc := range []InputProperty{
		{Name: "prompt", Type: "string", Title: "Prompt", Description: "Input prompt", Required: true, Order: 0},
		{Name: "image", Type: "string", Format: "uri", Title: "Image", Description: "Input image for img2img or inpaint mode", Order: 2},
		{Name: "width", Type: "integer", Title: "Width", Description: "Width of output image", Default: 1024.0, HasDefault: true, Minimum: f(128), Maximum: f(2048), Order: 3},
		{Name: "scheduler", Type: "string", Title: "scheduler", Description: "scheduler", Default: "K_EULER", HasDefault: true, Order: 6,
			Enum: []any{"DDIM", "DPMSolverMultistep", "HeunDiscrete", "KarrasDPM", "K_EULER_ANCESTRAL", "K_EULER", "PNDM"}},
		{Name: "guidance_scale", Type: "number", Title: "Guidance Scale", Description: "Scale for classifier-free guidance", Default: 7.5, HasDefault: true, Minimum: f(1), Maximum: f(50), Order: 8},
		{Name: "apply_watermark", Type: "boolean", Title: "Apply Watermark", Default: true, HasDefault: true, Order: 10,
			Description: "Applies a watermark to enable determining if an image is generated in downstream applications."},
	} {
		got, ok := s.Property(tc.Name)
		if !ok {
			t.Errorf("no property %q", tc.Name)
			continue
		}
		if !reflect.DeepEqual(got, tc) {
			t.Errorf("%s:\n got %+v\nwant %+v", tc.Name, got, tc)
		}
	}
	if _, ok := s.Property("nothing"); ok {
		t.Error("Property found an input that does not exist")
	}
}

func TestInputSchemaShapes(t *testing.T) {
	for _, tc := range []struct {
		name, schema string
		want         InputProperty
		err          string
	}{
		{"nullable type list", `{"components": {"schemas": {"Input": {"properties": {"x": {"type": ["integer", "null"], "default": null}}}}}}`,
			InputProperty{Name: "x", Type: "integer", HasDefault: true, Order: maxOrder()}, ""},
		{"anyOf with null", `{"components": {"schemas": {"Input": {"properties": {"x": {"anyOf": [{"type": "number"}, {"type": "null"}], "x-order": 3}}}}}}`,
			InputProperty{Name: "x", Type: "number", Order: 3}, ""},
		{"array of files", `{"components": {"schemas": {"Input": {"properties": {"x": {"type": "array", "items": {"type": "string", "format": "uri"}}}}}}}`,
			InputProperty{Name: "x", Type: "array", ItemType: "string", Order: maxOrder()}, ""},
		{"cyclic reference", `{"components": {"schemas": {"Input": {"properties": {"x": {"$ref": "#/components/schemas/a"}}}, "a": {"$ref": "#/components/schemas/a"}}}}`,
			InputProperty{Name: "x", Order: maxOrder()}, ""},
		{"no Input", `{"components": {"schemas": {}}}`, InputProperty{}, "has no Input"},
		{"not JSON", `{`, InputProperty{}, "not valid JSON"},
		{"empty", ``, InputProperty{}, "has no schema"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			v := &Version{OpenAPISchema: json.RawMessage(tc.schema)}
			s, err := v.InputSchema()
			if tc.err != "" {
				if err == nil || !strings.Contains(err.Error(), tc.err) {
					t.Fatalf("InputSchema = %v, want an error containing %q", err, tc.err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if got, _ := s.Property("x"); !reflect.DeepEqual(got, tc.want) {
				t.Errorf("got %+v\nwant %+v", got, tc.want)
			}
		})
	}
}

func maxOrder() int { return int(^uint(0) >> 1) }

func TestConform(t *testing.T) {
	s := sdxlSchema(t)
	for _, tc := range []struct {
		name  string
		input map[string]any
		want  map[string]any
		err   string
	}{
		{"typed values pass", map[string]any{"prompt": "a cat", "width": int64(768), "guidance_scale": 7.5, "apply_watermark": false},
			map[string]any{"prompt": "a cat", "width": int64(768), "guidance_scale": 7.5, "apply_watermark": false}, ""},
		{"text converted to the schema's types", map[string]any{"prompt": "a cat", "width": "768", "guidance_scale": "7", "apply_watermark": "False", "seed": 42.0},
			map[string]any{"prompt": "a cat", "width": int64(768), "guidance_scale": 7.0, "apply_watermark": false, "seed": int64(42)}, ""},
		{"numbers converted to text", map[string]any{"prompt": int64(1984), "negative_prompt": 2.5},
			map[string]any{"prompt": "1984", "negative_prompt": "2.5"}, ""},
		{"integers as numbers", map[string]any{"prompt": "x", "guidance_scale": 8}, map[string]any{"prompt": "x", "guidance_scale": int64(8)}, ""},
		{"a choice", map[string]any{"prompt": "x", "scheduler": "DDIM"}, map[string]any{"prompt": "x", "scheduler": "DDIM"}, ""},
		{"unknown input", map[string]any{"prompt": "x", "widht": 512}, nil,
			`input "widht" is not an input of this model (it takes prompt, negative_prompt, image, width, height, num_outputs, scheduler, num_inference_steps, guidance_scale, seed, apply_watermark)`},
		{"missing required", map[string]any{"width": 512}, nil, `input "prompt" is required`},
		{"not an integer", map[string]any{"prompt": "x", "width": 512.5}, nil, `input "width" must be an integer, got 512.5`},
		{"text that is no integer", map[string]any{"prompt": "x", "seed": "lucky"}, nil, `input "seed" must be an integer, got "lucky"`},
		{"not a boolean", map[string]any{"prompt": "x", "apply_watermark": "yes"}, nil, `input "apply_watermark" must be a boolean, got "yes"`},
		{"not a number", map[string]any{"prompt": "x", "guidance_scale": "NaN"}, nil, `input "guidance_scale" must be a number, got "NaN"`},
		{"below the minimum", map[string]any{"prompt": "x", "width": 64}, nil, `input "width" must be at least 128, got 64`},
		{"above the maximum", map[string]any{"prompt": "x", "guidance_scale": 50.5}, nil, `input "guidance_scale" must be at most 50, got 50.5`},
		{"not a choice", map[string]any{"prompt": "x", "scheduler": "fast"}, nil,
			`input "scheduler" must be one of "DDIM", "DPMSolverMultistep", "HeunDiscrete", "KarrasDPM", "K_EULER_ANCESTRAL", "K_EULER", "PNDM", got "fast"`},
		{"a list for text", map[string]any{"prompt": []any{"a"}}, nil, `input "prompt" must be a string, got "[\"a\"]"`},
		{"first mistake by name", map[string]any{"width": 1, "height": 1}, nil, `input "height" must be at least 128, got 1`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := s.Conform(tc.input)
			if tc.err != "" {
				if err == nil || err.Error() != tc.err {
					t.Fatalf("Conform = %v\nwant %s", err, tc.err)
				}
				var ie *InputError
				if !asInputError(err, &ie) || !strings.Contains(tc.err, `"`+ie.Field+`"`) {
					t.Errorf("error is not an *InputError naming the field: %#v", err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(got, tc.want) {
				t.Errorf("Conform = %#v\nwant %#v", got, tc.want)
			}
		})
	}
}

func asInputError(err error, target **InputError) bool {
	ie, ok := err.(*InputError)
	*target = ie
	return ok
}

func TestConformLists(t *testing.T) {
	v := &Version{OpenAPISchema: json.RawMessage(`{"components": {"schemas": {"Input": {"properties": {
		"images": {"type": "array", "items": {"type": "string"}},
		"sizes": {"type": "array", "items": {"type": "integer"}, "minimum": 0}}}}}}`)}
	s, err := v.InputSchema()
	if err != nil {
		t.Fatal(err)
	}
	got, err := s.Conform(map[string]any{"images": "https://example.com/a.png", "sizes": []any{"1", 2.0}})
	want := map[string]any{"images": []any{"https://example.com/a.png"}, "sizes": []any{int64(1), int64(2)}}
	if err != nil || !reflect.DeepEqual(got, want) {
		t.Errorf("Conform = %#v, %v; want %#v", got, err, want)
	}
	_, err = s.Conform(map[string]any{"sizes": []any{"one"}})
	if err == nil || err.Error() != `input "sizes" must be a list of integers, got "one"` {
		t.Errorf("Conform = %v", err)
	}
}

func TestConformLeavesInputAlone(t *testing.T) {
	s := sdxlSchema(t)
	in := map[string]any{"prompt": "x", "width": "512"}
	if _, err := s.Conform(in); err != nil {
		t.Fatal(err)
	}
	if in["width"] != "512" {
		t.Errorf("Conform changed its input: %v", in)
	}
}

func TestDescribe(t *testing.T) {
	s := sdxlSchema(t)
	for name, want := range map[string]string{
		"prompt":          "prompt: string, required — Input prompt",
		"width":           "width: integer, 128 to 2048, default 1024 — Width of output image",
		"scheduler":       `scheduler: one of "DDIM", "DPMSolverMultistep", "HeunDiscrete", "KarrasDPM", "K_EULER_ANCESTRAL", "K_EULER", "PNDM", default "K_EULER" — scheduler`,
		"image":           "image: file URL — Input image for img2img or inpaint mode",
		"negative_prompt": `negative_prompt: string, default "" — Input Negative Prompt`,
		"seed":            "seed: integer — Random seed. Leave blank to randomize the seed",
	} {
		p, _ := s.Property(name)
		if got := p.Describe(); got != want {
			t.Errorf("Describe(%s) = %q\nwant %q", name, got, want)
		}
	}
}

func TestConformNumericChoices(t *testing.T) {
	v := &Version{OpenAPISchema: json.RawMessage(`{"components": {"schemas": {"Input": {"properties": {
		"steps": {"allOf": [{"$ref": "#/components/schemas/steps"}]},
		"ratio": {"type": "number", "enum": [0.5, 1, 2]}}},
		"steps": {"type": "integer", "enum": [1, 2, 4]}}}}`)}
	s, err := v.InputSchema()
	if err != nil {
		t.Fatal(err)
	}
	got, err := s.Conform(map[string]any{"steps": "4", "ratio": int64(1)})
	if want := map[string]any{"steps": int64(4), "ratio": int64(1)}; err != nil || !reflect.DeepEqual(got, want) {
		t.Errorf("Conform = %#v, %v; want %#v", got, err, want)
	}
	if _, err := s.Conform(map[string]any{"steps": 3}); err == nil || err.Error() != `input "steps" must be one of 1, 2, 4, got 3` {
		t.Errorf("Conform(steps=3) = %v", err)
	}
	if _, err := s.Conform(map[string]any{"ratio": uint8(3)}); err == nil || err.Error() != `input "ratio" must be one of 0.5, 1, 2, got 3` {
		t.Errorf("Conform(ratio=3) = %v", err)
	}
}
