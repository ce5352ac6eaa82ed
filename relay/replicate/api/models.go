package api

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"net/http"
	"sort"
	"strconv"
	"strings"
	"time"
)

// Model is a model as GET /models/{owner}/{name} describes it.
type Model struct {
	Owner         string `json:"owner"`
	Name          string `json:"name"`
	Description   string `json:"description"`
	Visibility    string `json:"visibility"` // "public" or "private"
	URL           string `json:"url"`        // its page on replicate.com
	CoverImageURL string `json:"cover_image_url"`
	RunCount      int64  `json:"run_count"`
	// LatestVersion is the version a run by name uses; nil for a model with no version yet.
	LatestVersion *Version `json:"latest_version"`
}

// Version is one version of a model.
type Version struct {
	// ID is the 64-hex version id.
	ID         string    `json:"id"`
	CreatedAt  time.Time `json:"created_at"`
	CogVersion string    `json:"cog_version"`
	// OpenAPISchema is the version's OpenAPI document as Replicate sent it; InputSchema reads
	// the input part of it.
	OpenAPISchema json.RawMessage `json:"openapi_schema"`
}

// GetModel returns a model, "owner/name", with its latest version and that version's schema.
func (c *Client) GetModel(ctx context.Context, model string) (*Model, error) {
	owner, name, err := splitName("model", model)
	if err != nil {
		return nil, fmt.Errorf("get model: %w", err)
	}
	var m Model
	k := call{op: "get model", subject: "model " + model, method: http.MethodGet, path: []string{"models", owner, name}}
	if err := c.do(ctx, k, &m); err != nil {
		return nil, err
	}
	return &m, nil
}

// InputSchema is the input a model version takes, read from its OpenAPI schema
// (components.schemas.Input), so that a caller can describe the inputs and check them before
// spending a call.
type InputSchema struct {
	// Properties are the inputs in the order the model's author gave them (x-order), then by
	// name.
	Properties []InputProperty
}

// InputProperty is one input of a model.
type InputProperty struct {
	Name string
	// Type is the JSON Schema type: "string", "integer", "number", "boolean", "array" or
	// "object"; empty when the schema gives none.
	Type string
	// Format refines Type, e.g. "uri" for a file given by URL.
	Format string
	// ItemType is the type of an array's items, when Type is "array".
	ItemType    string
	Title       string
	Description string
	// Default is the value used when the input is left out, decoded from JSON (numbers are
	// float64); HasDefault tells a null default from none.
	Default    any
	HasDefault bool
	// Enum lists the allowed values, when the input is a choice (numbers are float64).
	Enum []any
	// Minimum and Maximum bound a number, when the schema says so.
	Minimum, Maximum *float64
	// Required inputs must be given.
	Required bool
	// Order is the position the author gave (x-order); properties without one come last.
	Order int
}

// schemaNode is the part of a JSON Schema the input description needs.
type schemaNode struct {
	Type        json.RawMessage       `json:"type"` // "string", or ["string", "null"]
	Format      string                `json:"format"`
	Title       string                `json:"title"`
	Description string                `json:"description"`
	Default     json.RawMessage       `json:"default"`
	Enum        []any                 `json:"enum"`
	Minimum     *float64              `json:"minimum"`
	Maximum     *float64              `json:"maximum"`
	Order       *int                  `json:"x-order"`
	Ref         string                `json:"$ref"`
	AllOf       []schemaNode          `json:"allOf"`
	AnyOf       []schemaNode          `json:"anyOf"`
	Items       *schemaNode           `json:"items"`
	Properties  map[string]schemaNode `json:"properties"`
	Required    []string              `json:"required"`
}

// refPrefix starts the references a Cog schema uses between its components.
const refPrefix = "#/components/schemas/"

// InputSchema reads the version's input schema. Enumerations, which Cog writes as a reference
// to a separate component, are resolved.
func (v *Version) InputSchema() (*InputSchema, error) {
	if len(v.OpenAPISchema) == 0 || string(v.OpenAPISchema) == "null" {
		return nil, errors.New("the model version has no schema")
	}
	var doc struct {
		Components struct {
			Schemas map[string]schemaNode `json:"schemas"`
		} `json:"components"`
	}
	if err := json.Unmarshal(v.OpenAPISchema, &doc); err != nil {
		return nil, fmt.Errorf("the model version's schema is not valid JSON: %w", err)
	}
	input, ok := doc.Components.Schemas["Input"]
	if !ok {
		return nil, errors.New("the model version's schema has no Input")
	}
	required := map[string]bool{}
	for _, n := range input.Required {
		required[n] = true
	}
	s := &InputSchema{}
	for name, node := range input.Properties {
		p := InputProperty{Name: name, Required: required[name], Order: math.MaxInt}
		fill(&p, node, doc.Components.Schemas, 0)
		s.Properties = append(s.Properties, p)
	}
	sort.Slice(s.Properties, func(i, j int) bool {
		a, b := s.Properties[i], s.Properties[j]
		if a.Order != b.Order {
			return a.Order < b.Order
		}
		return a.Name < b.Name
	})
	return s, nil
}

// maxRefDepth bounds reference chains, so that a cyclic schema cannot loop.
const maxRefDepth = 8

// fill copies what node says into p, without overwriting what a closer node already said, and
// follows references and allOf/anyOf members.
func fill(p *InputProperty, node schemaNode, comps map[string]schemaNode, depth int) {
	if depth > maxRefDepth {
		return
	}
	if p.Type == "" {
		p.Type = schemaType(node.Type)
	}
	setString(&p.Format, node.Format)
	setString(&p.Title, node.Title)
	setString(&p.Description, node.Description)
	if !p.HasDefault && len(node.Default) > 0 {
		p.HasDefault = json.Unmarshal(node.Default, &p.Default) == nil
	}
	if p.Enum == nil && len(node.Enum) > 0 {
		p.Enum = node.Enum
	}
	if p.Minimum == nil {
		p.Minimum = node.Minimum
	}
	if p.Maximum == nil {
		p.Maximum = node.Maximum
	}
	if node.Order != nil && p.Order == math.MaxInt {
		p.Order = *node.Order
	}
	if node.Items != nil && p.ItemType == "" {
		p.ItemType = schemaType(node.Items.Type)
	}
	if name, ok := strings.CutPrefix(node.Ref, refPrefix); ok {
		if target, ok := comps[name]; ok {
			fill(p, target, comps, depth+1)
		}
	}
	for _, sub := range append(append([]schemaNode(nil), node.AllOf...), node.AnyOf...) {
		fill(p, sub, comps, depth+1)
	}
}

func setString(dst *string, v string) {
	if *dst == "" {
		*dst = v
	}
}

// schemaType reads "type": a name, or a list of names of which "null" is not the one wanted.
func schemaType(raw json.RawMessage) string {
	var one string
	if json.Unmarshal(raw, &one) == nil {
		if one == "null" {
			return ""
		}
		return one
	}
	var many []string
	if json.Unmarshal(raw, &many) == nil {
		for _, t := range many {
			if t != "null" {
				return t
			}
		}
	}
	return ""
}

// Property returns the input called name.
func (s *InputSchema) Property(name string) (InputProperty, bool) {
	for _, p := range s.Properties {
		if p.Name == name {
			return p, true
		}
	}
	return InputProperty{}, false
}

// Names lists the inputs in schema order.
func (s *InputSchema) Names() []string {
	names := make([]string, len(s.Properties))
	for i, p := range s.Properties {
		names[i] = p.Name
	}
	return names
}

// InputError is an input the schema refuses; its message names the input.
type InputError struct {
	// Field is the input's name.
	Field string
	// Reason completes the sentence "input <field> ...", e.g. "must be at least 128".
	Reason string
}

// Error implements error.
func (e *InputError) Error() string { return "input " + strconv.Quote(e.Field) + " " + e.Reason }

// Conform checks input against the schema and returns a copy in the types the schema asks for:
// a number given for a text input becomes its text, "512" given for an integer becomes 512, a
// single value given for a list becomes a list of one. It refuses, with an *InputError naming
// the input, a name the model does not take (Replicate would silently ignore it), a value that
// cannot be converted, a value outside the enumeration or the bounds, and a missing required
// input. Inputs are checked in name order, so the same mistake always gives the same error.
func (s *InputSchema) Conform(input map[string]any) (map[string]any, error) {
	keys := make([]string, 0, len(input))
	for k := range input {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	out := make(map[string]any, len(input))
	for _, k := range keys {
		p, ok := s.Property(k)
		if !ok {
			return nil, &InputError{Field: k, Reason: "is not an input of this model (it takes " + strings.Join(s.Names(), ", ") + ")"}
		}
		v, err := p.conform(input[k])
		if err != nil {
			return nil, err
		}
		out[k] = v
	}
	for _, p := range s.Properties {
		if _, given := out[p.Name]; p.Required && !given {
			return nil, &InputError{Field: p.Name, Reason: "is required"}
		}
	}
	return out, nil
}

// conform converts v to p's type and checks it against p's enumeration and bounds.
func (p InputProperty) conform(v any) (any, error) {
	conv, ok := convert(p.Type, v)
	if !ok {
		return nil, &InputError{Field: p.Name, Reason: "must be " + article(p.Type) + ", got " + describe(v)}
	}
	if p.Type == "array" && p.ItemType != "" {
		items := conv.([]any)
		for i, it := range items {
			c, ok := convert(p.ItemType, it)
			if !ok {
				return nil, &InputError{Field: p.Name, Reason: "must be a list of " + plural(p.ItemType) + ", got " + describe(it)}
			}
			items[i] = c
		}
	}
	if len(p.Enum) > 0 && !inEnum(conv, p.Enum) {
		return nil, &InputError{Field: p.Name, Reason: "must be one of " + enumList(p.Enum) + ", got " + describe(v)}
	}
	if f, isNum := number(conv); isNum {
		if p.Minimum != nil && f < *p.Minimum {
			return nil, &InputError{Field: p.Name, Reason: "must be at least " + formatNumber(*p.Minimum) + ", got " + formatNumber(f)}
		}
		if p.Maximum != nil && f > *p.Maximum {
			return nil, &InputError{Field: p.Name, Reason: "must be at most " + formatNumber(*p.Maximum) + ", got " + formatNumber(f)}
		}
	}
	return conv, nil
}

// maxExactInt is the largest integer a float64 (and so a JSON number in most decoders) holds
// exactly.
const maxExactInt = 1 << 53

// convert turns v into a value of JSON Schema type t, when it can do so without losing
// anything. An unknown or empty type takes v as it is.
func convert(t string, v any) (any, bool) {
	switch t {
	case "integer":
		if n, ok := integer(v); ok {
			return n, true
		}
		switch x := v.(type) {
		case string:
			n, err := strconv.ParseInt(strings.TrimSpace(x), 10, 64)
			return n, err == nil
		case json.Number:
			n, err := x.Int64()
			return n, err == nil
		}
		f, ok := number(v)
		if !ok || f != math.Trunc(f) || math.Abs(f) > maxExactInt {
			return nil, false
		}
		return int64(f), true
	case "number":
		if s, ok := v.(string); ok {
			f, err := strconv.ParseFloat(strings.TrimSpace(s), 64)
			return f, err == nil && !math.IsInf(f, 0) && !math.IsNaN(f)
		}
		if n, ok := integer(v); ok {
			return n, true
		}
		f, ok := number(v)
		return f, ok
	case "boolean":
		switch x := v.(type) {
		case bool:
			return x, true
		case string:
			switch strings.ToLower(strings.TrimSpace(x)) {
			case "true":
				return true, true
			case "false":
				return false, true
			}
		}
		return nil, false
	case "string":
		switch x := v.(type) {
		case string:
			return x, true
		case bool:
			return strconv.FormatBool(x), true
		case json.Number:
			return x.String(), true
		}
		if n, ok := integer(v); ok {
			return strconv.FormatInt(n, 10), true
		}
		if f, ok := number(v); ok {
			return formatNumber(f), true
		}
		return nil, false
	case "array":
		if list, ok := v.([]any); ok {
			return append([]any(nil), list...), true
		}
		if v == nil {
			return nil, false
		}
		return []any{v}, true
	case "object":
		m, ok := v.(map[string]any)
		return m, ok
	}
	return v, true
}

// integer reads v as an int64 when it is one of Go's integer types.
func integer(v any) (int64, bool) {
	switch x := v.(type) {
	case int:
		return int64(x), true
	case int8:
		return int64(x), true
	case int16:
		return int64(x), true
	case int32:
		return int64(x), true
	case int64:
		return x, true
	case uint8:
		return int64(x), true
	case uint16:
		return int64(x), true
	case uint32:
		return int64(x), true
	case uint:
		if uint64(x) <= math.MaxInt64 {
			return int64(x), true
		}
	case uint64:
		if x <= math.MaxInt64 {
			return int64(x), true
		}
	}
	return 0, false
}

// number reads v as a float64 when it is any Go number or a json.Number.
func number(v any) (float64, bool) {
	if n, ok := integer(v); ok {
		return float64(n), true
	}
	switch x := v.(type) {
	case float64:
		return x, !math.IsInf(x, 0) && !math.IsNaN(x)
	case float32:
		return float64(x), !math.IsInf(float64(x), 0) && !math.IsNaN(float64(x))
	case json.Number:
		f, err := x.Float64()
		return f, err == nil
	case uint:
		return float64(x), true
	case uint64:
		return float64(x), true
	}
	return 0, false
}

func inEnum(v any, enum []any) bool {
	vf, vNum := number(v)
	for _, e := range enum {
		if ef, eNum := number(e); vNum && eNum {
			if vf == ef {
				return true
			}
			continue
		}
		if v == e {
			return true
		}
	}
	return false
}

func enumList(enum []any) string {
	parts := make([]string, len(enum))
	for i, e := range enum {
		parts[i] = describe(e)
	}
	return strings.Join(parts, ", ")
}

// describe writes a value for a message: text quoted (and bounded), numbers plainly.
func describe(v any) string {
	switch x := v.(type) {
	case string:
		return quoteBounded(x)
	case nil:
		return "nothing"
	}
	if f, ok := number(v); ok {
		if n, isInt := integer(v); isInt {
			return strconv.FormatInt(n, 10)
		}
		return formatNumber(f)
	}
	b, err := json.Marshal(v)
	if err != nil {
		return fmt.Sprintf("%v", v)
	}
	return quoteBounded(string(b))
}

func formatNumber(f float64) string { return strconv.FormatFloat(f, 'f', -1, 64) }

func article(t string) string {
	switch t {
	case "integer":
		return "an integer"
	case "array":
		return "a list"
	case "object":
		return "an object"
	case "":
		return "a value"
	}
	return "a " + t
}

func plural(t string) string {
	switch t {
	case "string":
		return "texts"
	case "boolean":
		return "booleans"
	}
	return t + "s"
}

// Describe writes the property on one line for a help text, e.g.
// `width: integer, 128 to 1024, default 1024 — Width of output image`.
func (p InputProperty) Describe() string {
	var b strings.Builder
	b.WriteString(p.Name)
	b.WriteString(": ")
	switch {
	case len(p.Enum) > 0:
		b.WriteString("one of " + enumList(p.Enum))
	case p.Type == "array" && p.ItemType != "":
		b.WriteString("list of " + plural(p.ItemType))
	case p.Type == "string" && p.Format == "uri":
		b.WriteString("file URL")
	case p.Type != "":
		b.WriteString(p.Type)
	default:
		b.WriteString("any value")
	}
	switch {
	case p.Minimum != nil && p.Maximum != nil:
		b.WriteString(", " + formatNumber(*p.Minimum) + " to " + formatNumber(*p.Maximum))
	case p.Minimum != nil:
		b.WriteString(", at least " + formatNumber(*p.Minimum))
	case p.Maximum != nil:
		b.WriteString(", at most " + formatNumber(*p.Maximum))
	}
	switch {
	case p.Required:
		b.WriteString(", required")
	case p.HasDefault && p.Default != nil:
		b.WriteString(", default " + describe(p.Default))
	}
	if p.Description != "" {
		b.WriteString(" — " + oneLine(p.Description))
	}
	return b.String()
}
