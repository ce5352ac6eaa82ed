package relay

import (
	"encoding/json"
	"reflect"
	"strings"
	"testing"
	"time"

	json2 "github.com/go-json-experiment/json"

	"github.com/mlrelay/relay/relay/replicate"
)

// slowHead decodes the head from the whole body: what ParseHead did before its fast path, and
// the oracle the fast path must agree with.
func slowHead(body []byte) (head, error) {
	var h head
	err := json2.Unmarshal(body, &h, parseOptions)
	return h, err
}

// fastHead is ParseHead's decoding step.
func fastHead(body []byte) (head, bool, error) {
	mini, ok := headMembers(body)
	if !ok {
		return head{}, false, nil
	}
	var h head
	err := json2.Unmarshal(mini, &h, parseOptions)
	return h, true, err
}

// checkFastHead fails when the fast path vouches for a body the decoder refuses, or reads
// different values from it.
func checkFastHead(t *testing.T, body []byte) {
	t.Helper()
	want, slowErr := slowHead(body)
	got, ok, fastErr := fastHead(body)
	if !ok || fastErr != nil {
		return // ParseHead decodes the whole body: the slow path's answer, by construction
	}
	if slowErr != nil {
		t.Fatalf("fast path accepted %q, which the decoder refuses: %v", body, slowErr)
	}
	if !reflect.DeepEqual(normal(got), normal(want)) {
		t.Fatalf("fast path read %+v, decoder %+v, from %q", got, want, body)
	}
}

// normal makes heads comparable: the raw output compacted, as members may carry whitespace.
func normal(h head) head {
	if len(h.Output) > 0 {
		var v any
		if json.Unmarshal(h.Output, &v) == nil {
			b, _ := json.Marshal(v)
			h.Output = b
		}
	}
	return h
}

var headSeeds = []string{
	`{"id":"p1","status":"processing","logs":"` + strings.Repeat(`step \"1\"\n\u00e9 `, 50) + `"}`,
	`{"ID":"p1","Status":"succeeded","out_put":"x","Output":["https://a.example/1.png"]}`,
	`{"id":"a","id":"b","status":"processing","urls":{"get":"g"},"urls":{"web":"w"}}`,
	`{"\u0069d":"esc","status":"starting"}`,
	`{"ſtatus":"failed","id":"kelvin"}`,
	`{"id":"p","status":"processing","metrics":{"predict_time":1.5e3,"n":-0,"x":[true,false,null,{}]}}`,
	`{"id":"p","status":"processing","logs":"bad \x01 control"}`,
	`{"id":"p","status":"processing","logs":"\ud800 lone"}`,
	"{\"id\":\"p\xff\",\"status\":\"processing\",\"logs\":\"\xfe\"}",
	`{"id":"p","status":"processing"} trailing`,
	`{"id":"p","status":"processing",}`,
	`{"id":"p","status":"processing","n":01}`,
	`{"id":"p","status":"processing","n":1.}`,
	`{"id":5,"status":"processing"}`,
	`{"id":"p","status":"processing","input":` + strings.Repeat("[", 600) + strings.Repeat("]", 600) + `}`,
	` { "id" : "p" , "status" : "canceled" } `,
	`[]`, `null`, `"x"`, `{`, ``, `{}`,
}

func TestFastHeadAgrees(t *testing.T) {
	for _, s := range replicate.Samples() {
		checkFastHead(t, s.Body)
		if _, ok := headMembers(s.Body); !ok {
			t.Errorf("fast path refused the sample %s", s.Name)
		}
	}
	for _, s := range headSeeds {
		checkFastHead(t, []byte(s))
	}
	// The fast path must not give up on what it exists for: long logs with escapes.
	if _, ok := headMembers([]byte(headSeeds[0])); !ok {
		t.Error("fast path refused a processing event with long logs")
	}
}

func FuzzFastHead(f *testing.F) {
	for _, s := range replicate.Samples() {
		f.Add(s.Body)
	}
	for _, s := range headSeeds {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		checkFastHead(t, body)
	})
}

func BenchmarkParseHead(b *testing.B) {
	body := []byte(`{"id":"p1","model":"a/b","version":"v","status":"processing","input":{"prompt":"a cat"},"logs":"` +
		strings.Repeat(` 42%|████      | 21/50 [00:03<00:05,  5.61it/s]\n`, 100) + `","output":null,"urls":{"get":"g","web":"w"}}`)
	b.Run("fast", func(b *testing.B) {
		b.SetBytes(int64(len(body)))
		for b.Loop() {
			if _, err := ParseHead(body, "m", "prediction", nil, time.Time{}); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("whole", func(b *testing.B) {
		b.SetBytes(int64(len(body)))
		for b.Loop() {
			if _, err := slowHead(body); err != nil {
				b.Fatal(err)
			}
		}
	})
}
