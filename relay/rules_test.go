package relay

import (
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/mlrelay/relay/relay/replicate"
)

func mustEvent(t *testing.T, body, kind string, meta map[string]string) *Event {
	t.Helper()
	ev, err := ParseEvent([]byte(body), "msg_1", kind, meta, time.Unix(0, 0))
	if err != nil {
		t.Fatal(err)
	}
	return ev
}

func TestRuleMatch(t *testing.T) {
	training := mustEvent(t, `{"id":"t1","model":"acme/sdxl","status":"succeeded","metrics":{"predict_time":502.7},
		"output":{"version":"acme/brand:abc","weights":"https://replicate.delivery/w.tar"}}`, "training", map[string]string{"team": "vision"})
	failed := mustEvent(t, `{"id":"p1","model":"stability-ai/sdxl","status":"failed","error":"CUDA out of memory",
		"input":{"prompt":"a corgi","num_outputs":2},"metrics":{"predict_time":9.2},
		"started_at":"2025-05-01T18:00:00Z","completed_at":"2025-05-01T18:01:30Z"}`, "prediction", nil)
	cases := []struct {
		name string
		rule Rule
		ev   *Event
		want bool
	}{
		{"empty rule matches all", Rule{}, failed, true},
		{"kind", Rule{Kinds: []Kind{KindTraining}}, training, true},
		{"kind mismatch", Rule{Kinds: []Kind{KindTraining}}, failed, false},
		{"status list", Rule{Statuses: []replicate.Status{replicate.Failed, replicate.Canceled}}, failed, true},
		{"status mismatch", Rule{Statuses: []replicate.Status{replicate.Succeeded}}, failed, false},
		{"model glob", Rule{Models: []string{"stability-ai/*"}}, failed, true},
		{"model glob any of", Rule{Models: []string{"acme/*", "stability-ai/sdxl"}}, failed, true},
		{"model glob mismatch", Rule{Models: []string{"acme/*"}}, failed, false},
		{"glob does not cross the slash", Rule{Models: []string{"*"}}, failed, false},
		{"meta equal", Rule{Meta: map[string]string{"team": "vision"}}, training, true},
		{"meta absent", Rule{Meta: map[string]string{"team": "vision"}}, failed, false},
		{"meta different", Rule{Meta: map[string]string{"team": "audio"}}, training, false},
		{"when on metrics", Rule{When: `predict_time > 60`}, training, true},
		{"when false", Rule{When: `predict_time > 60`}, failed, false},
		{"when on error text", Rule{When: `error contains "out of memory"`}, failed, true},
		{"when on input", Rule{When: `input.num_outputs >= 2 && duration > 60`}, failed, true},
		{"when on meta", Rule{When: `meta.team == "vision"`}, training, true},
		{"when on missing meta is false, not an error", Rule{When: `meta.team == "vision"`}, failed, false},
		{"all conditions together", Rule{Kinds: []Kind{KindTraining}, Statuses: []replicate.Status{replicate.Succeeded},
			Models: []string{"acme/*"}, Meta: map[string]string{"team": "vision"}, When: `output.version startsWith "acme/"`}, training, true},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			tc.rule.Name, tc.rule.Notify = "r", []string{"n"}
			c, err := CompileRule(tc.rule)
			if err != nil {
				t.Fatal(err)
			}
			got, err := c.Match(tc.ev)
			if err != nil {
				t.Fatal(err)
			}
			if got != tc.want {
				t.Fatalf("Match = %v, want %v", got, tc.want)
			}
		})
	}
}

func TestCompileRuleErrors(t *testing.T) {
	cases := []struct {
		name      string
		rule      Rule
		field     string
		substring string
	}{
		{"no name", Rule{Notify: []string{"n"}}, "name", "required"},
		{"no notifier", Rule{Name: "r"}, "notify", "no notifier"},
		{"bad kind", Rule{Name: "r", Notify: []string{"n"}, Kinds: []Kind{"trainings"}}, "kinds", `"trainings"`},
		{"bad status", Rule{Name: "r", Notify: []string{"n"}, Statuses: []replicate.Status{"sucess"}}, "statuses", `"sucess"`},
		{"bad glob", Rule{Name: "r", Notify: []string{"n"}, Models: []string{"acme/[x"}}, "models", "bad glob"},
		{"expression syntax", Rule{Name: "r", Notify: []string{"n"}, When: `status ==`}, "when", ""},
		{"unknown field in expression", Rule{Name: "r", Notify: []string{"n"}, When: `stauts == "failed"`}, "when", "stauts"},
		{"expression not boolean", Rule{Name: "r", Notify: []string{"n"}, When: `predict_time + 1`}, "when", "bool"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			_, err := CompileRule(tc.rule)
			var re *RuleError
			if !errors.As(err, &re) {
				t.Fatalf("error %v, want a *RuleError", err)
			}
			if re.Field != tc.field || !strings.Contains(re.Reason, tc.substring) {
				t.Fatalf("error %q on %q, want field %q mentioning %q", re.Reason, re.Field, tc.field, tc.substring)
			}
		})
	}
}

func TestRuleTemplateDefaults(t *testing.T) {
	c, err := CompileRule(Rule{Name: "r", Notify: []string{"n"}})
	if err != nil {
		t.Fatal(err)
	}
	if c.Template != "default" {
		t.Fatalf("template %q, want default", c.Template)
	}
}

func TestMayMatchBefore(t *testing.T) {
	cases := []struct {
		statuses []replicate.Status
		stage    int
		want     bool
	}{
		{nil, 0, false}, // nothing is earlier than starting
		{nil, 1, true},  // a rule on every status may match starting
		{[]replicate.Status{replicate.Succeeded, replicate.Failed}, 1, false},
		{[]replicate.Status{replicate.Succeeded, replicate.Failed}, 2, false},
		{[]replicate.Status{replicate.Starting}, 1, true},
		{[]replicate.Status{replicate.Processing}, 1, false},
		{[]replicate.Status{replicate.Processing}, 2, true},
		{[]replicate.Status{replicate.Canceled, replicate.Starting}, 2, true},
	}
	for _, tc := range cases {
		t.Run(fmt.Sprintf("%v before %d", tc.statuses, tc.stage), func(t *testing.T) {
			c, err := CompileRule(Rule{Name: "r", Notify: []string{"n"}, Statuses: tc.statuses})
			if err != nil {
				t.Fatal(err)
			}
			if got := c.MayMatchBefore(tc.stage); got != tc.want {
				t.Fatalf("MayMatchBefore(%d) = %v, want %v", tc.stage, got, tc.want)
			}
		})
	}
}
