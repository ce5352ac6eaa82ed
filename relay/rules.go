package relay

import (
	"fmt"
	"path"

	"github.com/expr-lang/expr"
	"github.com/expr-lang/expr/vm"

	"github.com/mlrelay/relay/relay/replicate"
)

// Rule picks events and names who hears about them. Empty match fields match everything.
type Rule struct {
	Name     string
	Kinds    []Kind             // prediction, training
	Statuses []replicate.Status // any of these
	Models   []string           // path.Match globs on "owner/name", e.g. "acme/*"
	Meta     map[string]string  // hook URL query parameters that must be equal
	When     string             // optional expr-lang expression over ExprEnv; must be boolean
	Notify   []string           // notifier names
	Digests  []string           // digest names the events are collected for
	Template string             // template set; "" means "default"
}

// ExprEnv is what a rule's When expression sees. Field names follow Replicate's JSON.
type ExprEnv struct {
	ID          string            `expr:"id"`
	Kind        string            `expr:"kind"`
	Model       string            `expr:"model"`
	Version     string            `expr:"version"`
	Status      string            `expr:"status"`
	Source      string            `expr:"source"`
	Deployment  string            `expr:"deployment"`
	Input       map[string]any    `expr:"input"`
	Output      any               `expr:"output"`
	Error       string            `expr:"error"`
	Logs        string            `expr:"logs"`
	Metrics     map[string]any    `expr:"metrics"`
	Meta        map[string]string `expr:"meta"`
	PredictTime float64           `expr:"predict_time"` // seconds, metrics.predict_time or 0
	Duration    float64           `expr:"duration"`     // seconds from start to completion
	QueueTime   float64           `expr:"queue_time"`   // seconds from creation to start
}

func newExprEnv(ev *Event) ExprEnv {
	return ExprEnv{
		ID: ev.ID, Kind: string(ev.Kind), Model: ev.Model, Version: ev.Version,
		Status: string(ev.Status), Source: ev.Source, Deployment: ev.Deployment,
		Input: ev.Input, Output: ev.OutputValue(), Error: string(ev.Error), Logs: string(ev.Logs),
		Metrics: ev.Metrics, Meta: ev.Meta, PredictTime: ev.PredictTime(),
		Duration: ev.Duration().Seconds(), QueueTime: ev.QueueTime().Seconds(),
	}
}

// CompiledRule is a rule ready to match: globs checked and the expression compiled.
type CompiledRule struct {
	Rule
	program *vm.Program
}

// RuleError says which part of a rule is wrong.
type RuleError struct {
	Field  string // the config key: "kinds", "statuses", "models", "when", "notify", "name"
	Reason string
}

func (e *RuleError) Error() string { return e.Field + ": " + e.Reason }

// CompileRule checks r and compiles its expression.
func CompileRule(r Rule) (*CompiledRule, error) {
	if r.Name == "" {
		return nil, &RuleError{"name", "is required"}
	}
	for _, k := range r.Kinds {
		if k != KindPrediction && k != KindTraining {
			return nil, &RuleError{"kinds", fmt.Sprintf("unknown kind %q (want prediction or training)", k)}
		}
	}
	for _, s := range r.Statuses {
		if !s.Known() {
			return nil, &RuleError{"statuses", fmt.Sprintf("unknown status %q (want one of %v)", s, replicate.Statuses)}
		}
	}
	for _, m := range r.Models {
		if _, err := path.Match(m, ""); err != nil {
			return nil, &RuleError{"models", fmt.Sprintf("bad glob %q: %v", m, err)}
		}
	}
	if len(r.Notify) == 0 && len(r.Digests) == 0 {
		return nil, &RuleError{"notify", "names no notifier (a rule needs notify, digest, or both)"}
	}
	c := &CompiledRule{Rule: r}
	if r.When != "" {
		p, err := expr.Compile(r.When, expr.Env(ExprEnv{}), expr.AsBool())
		if err != nil {
			return nil, &RuleError{"when", err.Error()}
		}
		c.program = p
	}
	if c.Template == "" {
		c.Template = "default"
	}
	return c, nil
}

// MayMatchBefore reports whether the rule could match an event at an earlier stage of the
// lifecycle than stage (see replicate.Status.Stage): if no rule can, recording that a prediction
// reached stage can never make a later event's notification stale, so it need not be stored.
func (c *CompiledRule) MayMatchBefore(stage int) bool {
	if len(c.Statuses) == 0 {
		return stage > 0
	}
	for _, s := range c.Statuses {
		if s.Stage() < stage {
			return true
		}
	}
	return false
}

// HasExpression reports whether matching needs the whole event (a When expression), rather
// than the fields ParseHead decodes.
func (c *CompiledRule) HasExpression() bool { return c.program != nil }

// Match reports whether ev is one of the rule's events.
func (c *CompiledRule) Match(ev *Event) (bool, error) {
	if !c.matchHead(ev) {
		return false, nil
	}
	return c.matchExpression(ev)
}

// matchHead checks everything but the expression; it needs only what ParseHead decodes.
func (c *CompiledRule) matchHead(ev *Event) bool {
	if len(c.Kinds) > 0 && !contains(c.Kinds, ev.Kind) {
		return false
	}
	if len(c.Statuses) > 0 && !contains(c.Statuses, ev.Status) {
		return false
	}
	if len(c.Models) > 0 {
		ok := false
		for _, m := range c.Models {
			if matched, _ := path.Match(m, ev.Model); matched {
				ok = true
				break
			}
		}
		if !ok {
			return false
		}
	}
	for k, v := range c.Meta {
		if ev.Meta[k] != v {
			return false
		}
	}
	return true
}

// matchExpression evaluates When on the whole event (true when there is none).
func (c *CompiledRule) matchExpression(ev *Event) (bool, error) {
	if c.program == nil {
		return true, nil
	}
	out, err := expr.Run(c.program, newExprEnv(ev))
	if err != nil {
		return false, fmt.Errorf("rule %s: when: %w", c.Name, err)
	}
	b, _ := out.(bool)
	return b, nil
}

func contains[T comparable](list []T, v T) bool {
	for _, e := range list {
		if e == v {
			return true
		}
	}
	return false
}
