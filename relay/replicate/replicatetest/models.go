package replicatetest

import (
	"encoding/json"
	"errors"
	"fmt"
	"sort"
	"strings"
)

// The models and the deployment the stand-in knows from the start.
const (
	// SDXL is a community model: it runs by version (POST /predictions), and the models
	// endpoint answers 404 for it as Replicate does for any model that is not official.
	SDXL = "stability-ai/sdxl"
	// SDXLVersion is SDXL's one version.
	SDXLVersion = "39ed52f2a78e934b3ba6e2a89f5b1c712de7dfea535525255b1aa35c5565e08b"
	// FluxSchnell is an official model: it runs by name, and its predictions report the version
	// "hidden".
	FluxSchnell = "black-forest-labs/flux-schnell"
	// FluxSchnellVersion is the id GET /models reports as its latest version.
	FluxSchnellVersion = "c846a69991daf4c0e5d016514849d14ee5b2e6846ce6b9d6f21369e564cfe51e"
	// Deployment runs SDXL on the account's own hardware.
	Deployment = "acme/sdxl-prod"
)

// Model is a model the stand-in can run.
type Model struct {
	// Owner and Name make its "owner/name".
	Owner, Name string
	// Description is shown by GET /models.
	Description string
	// Official models run by name; others only by version.
	Official bool
	// Version is the latest version's id, 64 hex digits.
	Version string
	// Schema is the version's OpenAPI document; components.schemas.Input describes the input,
	// and creating a prediction checks the input against it.
	Schema json.RawMessage
}

func (m *Model) ref() string { return m.Owner + "/" + m.Name }

// sdxlSchema is the input part of SDXL's real schema, as Cog writes it: the scheduler choice
// is a separate component referred to with allOf.
const sdxlSchema = `{
  "openapi": "3.0.2",
  "info": {"title": "Cog", "version": "0.1.0"},
  "paths": {},
  "components": {
    "schemas": {
      "Input": {
        "type": "object",
        "title": "Input",
        "required": ["prompt"],
        "properties": {
          "prompt": {"type": "string", "title": "Prompt", "x-order": 0, "description": "Input prompt"},
          "negative_prompt": {"type": "string", "title": "Negative Prompt", "default": "", "x-order": 1, "description": "Input Negative Prompt"},
          "image": {"type": "string", "title": "Image", "format": "uri", "x-order": 2, "description": "Input image for img2img or inpaint mode"},
          "width": {"type": "integer", "title": "Width", "default": 1024, "minimum": 128, "maximum": 2048, "x-order": 3, "description": "Width of output image"},
          "height": {"type": "integer", "title": "Height", "default": 1024, "minimum": 128, "maximum": 2048, "x-order": 4, "description": "Height of output image"},
          "num_outputs": {"type": "integer", "title": "Num Outputs", "default": 1, "minimum": 1, "maximum": 4, "x-order": 5, "description": "Number of images to output."},
          "scheduler": {"allOf": [{"$ref": "#/components/schemas/scheduler"}], "default": "K_EULER", "x-order": 6, "description": "scheduler"},
          "num_inference_steps": {"type": "integer", "title": "Num Inference Steps", "default": 50, "minimum": 1, "maximum": 500, "x-order": 7, "description": "Number of denoising steps"},
          "guidance_scale": {"type": "number", "title": "Guidance Scale", "default": 7.5, "minimum": 1, "maximum": 50, "x-order": 8, "description": "Scale for classifier-free guidance"},
          "seed": {"type": "integer", "title": "Seed", "x-order": 9, "description": "Random seed. Leave blank to randomize the seed"},
          "apply_watermark": {"type": "boolean", "title": "Apply Watermark", "default": true, "x-order": 10, "description": "Applies a watermark to enable determining if an image is generated in downstream applications."}
        }
      },
      "scheduler": {
        "enum": ["DDIM", "DPMSolverMultistep", "HeunDiscrete", "KarrasDPM", "K_EULER_ANCESTRAL", "K_EULER", "PNDM"],
        "type": "string",
        "title": "scheduler",
        "description": "An enumeration."
      },
      "Output": {"type": "array", "items": {"type": "string", "format": "uri"}, "title": "Output"}
    }
  }
}`

// fluxSchema is the input part of FLUX.1 [schnell]'s schema.
const fluxSchema = `{
  "openapi": "3.0.2",
  "info": {"title": "Cog", "version": "0.1.0"},
  "paths": {},
  "components": {
    "schemas": {
      "Input": {
        "type": "object",
        "title": "Input",
        "required": ["prompt"],
        "properties": {
          "prompt": {"type": "string", "title": "Prompt", "x-order": 0, "description": "Prompt for generated image"},
          "aspect_ratio": {"allOf": [{"$ref": "#/components/schemas/aspect_ratio"}], "default": "1:1", "x-order": 1, "description": "Aspect ratio for the generated image"},
          "num_outputs": {"type": "integer", "title": "Num Outputs", "default": 1, "minimum": 1, "maximum": 4, "x-order": 2, "description": "Number of outputs to generate"},
          "num_inference_steps": {"type": "integer", "title": "Num Inference Steps", "default": 4, "minimum": 1, "maximum": 4, "x-order": 3, "description": "Number of denoising steps. 4 is recommended, and lower number of steps produce lower quality outputs, faster."},
          "seed": {"type": "integer", "title": "Seed", "x-order": 4, "description": "Random seed. Set for reproducible generation"},
          "output_format": {"allOf": [{"$ref": "#/components/schemas/output_format"}], "default": "webp", "x-order": 5, "description": "Format of the output images"},
          "output_quality": {"type": "integer", "title": "Output Quality", "default": 80, "minimum": 0, "maximum": 100, "x-order": 6, "description": "Quality when saving the output images, from 0 to 100."},
          "go_fast": {"type": "boolean", "title": "Go Fast", "default": true, "x-order": 7, "description": "Run faster predictions with model optimized for speed"}
        }
      },
      "aspect_ratio": {"enum": ["1:1", "16:9", "21:9", "3:2", "2:3", "4:5", "5:4", "3:4", "4:3", "9:16", "9:21"], "type": "string", "title": "aspect_ratio", "description": "An enumeration."},
      "output_format": {"enum": ["webp", "jpg", "png"], "type": "string", "title": "output_format", "description": "An enumeration."},
      "Output": {"type": "array", "items": {"type": "string", "format": "uri"}, "title": "Output"}
    }
  }
}`

// builtinModels are the models a new Handler knows.
func builtinModels() []Model {
	return []Model{
		{Owner: "stability-ai", Name: "sdxl", Description: "A text-to-image generative AI model that creates beautiful images",
			Version: SDXLVersion, Schema: json.RawMessage(sdxlSchema)},
		{Owner: "black-forest-labs", Name: "flux-schnell", Official: true,
			Description: "The fastest image generation model tailored for local development and personal use",
			Version:     FluxSchnellVersion, Schema: json.RawMessage(fluxSchema)},
	}
}

// inputSchema is what the stand-in checks an input against: a small part of JSON Schema.
type inputSchema struct {
	required []string
	props    map[string]propSchema
}

type propSchema struct {
	typ      string
	enum     []any
	min, max *float64
}

// node is a schema node as the stand-in reads it.
type node struct {
	Type       string          `json:"type"`
	Enum       []any           `json:"enum"`
	Minimum    *float64        `json:"minimum"`
	Maximum    *float64        `json:"maximum"`
	Ref        string          `json:"$ref"`
	AllOf      []node          `json:"allOf"`
	Required   []string        `json:"required"`
	Properties map[string]node `json:"properties"`
}

// parseSchema reads the Input of an OpenAPI document. References are followed one level deep,
// which is all Cog writes.
func parseSchema(doc json.RawMessage) (*inputSchema, error) {
	var d struct {
		Components struct {
			Schemas map[string]node `json:"schemas"`
		} `json:"components"`
	}
	if err := json.Unmarshal(doc, &d); err != nil {
		return nil, fmt.Errorf("schema: %w", err)
	}
	in, ok := d.Components.Schemas["Input"]
	if !ok {
		return nil, errors.New("schema has no components.schemas.Input")
	}
	s := &inputSchema{required: in.Required, props: map[string]propSchema{}}
	for name, n := range in.Properties {
		p := propSchema{typ: n.Type, enum: n.Enum, min: n.Minimum, max: n.Maximum}
		for _, sub := range n.AllOf {
			target, ok := d.Components.Schemas[strings.TrimPrefix(sub.Ref, "#/components/schemas/")]
			if !ok {
				continue
			}
			if p.typ == "" {
				p.typ = target.Type
			}
			if p.enum == nil {
				p.enum = target.Enum
			}
		}
		s.props[name] = p
	}
	return s, nil
}

// invalidField is one entry of a 422's invalid_fields.
type invalidField struct {
	Type        string `json:"type"`
	Field       string `json:"field"`
	Description string `json:"description"`
}

// check validates input the way Replicate does: missing required inputs, wrong types, values
// outside an enumeration or bounds. Inputs the schema does not name are ignored, as Replicate
// ignores them. Numbers in input are json.Number.
func (s *inputSchema) check(input map[string]any) []invalidField {
	var bad []invalidField
	for _, name := range s.required {
		if _, ok := input[name]; !ok {
			bad = append(bad, invalidField{Type: "required", Field: "input", Description: name + " is required"})
		}
	}
	names := make([]string, 0, len(input))
	for k := range input {
		names = append(names, k)
	}
	sort.Strings(names)
	for _, name := range names {
		p, ok := s.props[name]
		if !ok {
			continue
		}
		v := input[name]
		field := "input." + name
		if given := jsonType(v); p.typ != "" && !typeMatches(p.typ, given) {
			bad = append(bad, invalidField{Type: "invalid_type", Field: field,
				Description: "Invalid type. Expected: " + p.typ + ", given: " + given})
			continue
		}
		if len(p.enum) > 0 && !enumHas(p.enum, v) {
			quoted := make([]string, len(p.enum))
			for i, e := range p.enum {
				b, _ := json.Marshal(e)
				quoted[i] = string(b)
			}
			bad = append(bad, invalidField{Type: "enum", Field: field,
				Description: name + " must be one of the following: " + strings.Join(quoted, ", ")})
			continue
		}
		if n, ok := v.(json.Number); ok {
			f, _ := n.Float64()
			if p.min != nil && f < *p.min {
				bad = append(bad, invalidField{Type: "number_gte", Field: field,
					Description: "Must be greater than or equal to " + formatFloat(*p.min)})
			}
			if p.max != nil && f > *p.max {
				bad = append(bad, invalidField{Type: "number_lte", Field: field,
					Description: "Must be less than or equal to " + formatFloat(*p.max)})
			}
		}
	}
	return bad
}

// jsonType names the JSON Schema type of a value decoded with UseNumber.
func jsonType(v any) string {
	switch x := v.(type) {
	case nil:
		return "null"
	case bool:
		return "boolean"
	case string:
		return "string"
	case []any:
		return "array"
	case map[string]any:
		return "object"
	case json.Number:
		if f, err := x.Float64(); err == nil && f == float64(int64(f)) {
			return "integer"
		}
		return "number"
	}
	return "unknown"
}

func typeMatches(want, given string) bool {
	return want == given || (want == "number" && given == "integer")
}

func enumHas(enum []any, v any) bool {
	for _, e := range enum {
		if ef, ok := e.(float64); ok {
			if n, isNum := v.(json.Number); isNum {
				if f, err := n.Float64(); err == nil && f == ef {
					return true
				}
			}
			continue
		}
		if e == v {
			return true
		}
	}
	return false
}

func formatFloat(f float64) string {
	b, _ := json.Marshal(f)
	return string(b)
}
