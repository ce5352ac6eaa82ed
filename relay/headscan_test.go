package relay

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"math/bits"
	"math/rand/v2"
	"reflect"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

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

// checkFastHead fails when the fast path vouches for a body the decoder refuses, or reads
// different values from it; and when plainHead reads the kept members otherwise than the
// decoder does.
func checkFastHead(t *testing.T, body []byte) {
	t.Helper()
	want, slowErr := slowHead(body)
	if ms, ok := headMembers(body, nil); ok {
		checkPlainHead(t, body, ms)
	}
	var got head
	if !fastHead(body, &got) {
		return // ParseHead decodes the whole body: the slow path's answer, by construction
	}
	if slowErr != nil {
		t.Fatalf("fast path accepted %q, which the decoder refuses: %v", body, slowErr)
	}
	if !reflect.DeepEqual(normal(got), normal(want)) {
		t.Fatalf("fast path read %+v, decoder %+v, from %q", got, want, body)
	}
}

// checkPlainHead fails when plainHead reads the kept members otherwise than the decoder, to the
// byte, or touches the head when it leaves them to the decoder.
func checkPlainHead(t *testing.T, body []byte, ms []member) {
	t.Helper()
	mini := membersObject(body, ms)
	var got head
	if !plainHead(body, ms, &got) {
		if !reflect.DeepEqual(got, head{}) {
			t.Fatalf("plainHead gave up on %q but wrote %+v", mini, got)
		}
		return
	}
	var want head
	if err := json2.Unmarshal(mini, &want, parseOptions); err != nil {
		t.Fatalf("plainHead read %q, which the decoder refuses: %v", mini, err)
	}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("plainHead read %+v, decoder %+v, from %q", got, want, mini)
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
	// What plainHead reads itself, and what it must leave to the decoder.
	`{"id":"p","status":"processing","urls":null,"model":null,"output":[1, 2 ,{"a" : null}]}`,
	`{"id":"pé","status":"processing","urls":{},"version":"","source":"web","deployment":"a/b"}`,
	`{"id":"p","status":"processing","urls":{"get":"g","cancel":"c","web":"w","stream":"s"}}`,
	`{"id":"p","status":"processing","urls":{"get":"a","get":"b"}}`,
	`{"id":"p","status":"processing","urls":{"GET":"a","foo":"x"}}`,
	`{"id":"p","status":"processing","urls":{"get":5}}`,
	`{"id":"p","status":"processing","urls":[]}`,
	`{"id":"p","status":1}`,
	`{"id":"p","status":"processing","output":1,"output":2}`,
	`{"id":"p\u00e9","status":"processing","model":"a\/b"}`,
	"{\"id\":\"p\xed\xa0\x80\",\"status\":\"processing\"}",
	`{"id":"p","Id":"q","status":"processing"}`,
	// Long strings, past the short path: escaped quotes, escapes at the ends, controls.
	`{"id":"p","status":"processing","logs":"` + strings.Repeat("x", 40) + `\"` + strings.Repeat("y", 40) + `"}`,
	`{"id":"p","status":"processing","logs":"` + strings.Repeat("x", 40) + `\\"}`,
	`{"id":"p","status":"processing","logs":"` + strings.Repeat("x", 40) + `\"}`,
	`{"id":"p","status":"processing","logs":"` + strings.Repeat("x", 40) + `\u00"}`,
	`{"id":"p","status":"processing","logs":"` + strings.Repeat("x", 40) + `\u001b[0m\u00E9"}`,
	`{"id":"p","status":"processing","logs":"` + strings.Repeat("x", 40) + `\"` + strings.Repeat("y", 40) + "\x1f\"}",
	`{"id":"p","status":"processing","logs":"` + strings.Repeat("x", 40) + "\x7f\x80\xff" + `\q"}`,
	`{"id":"p","status":"processing","logs":"` + strings.Repeat("x", 40),
}

func TestFastHeadAgrees(t *testing.T) {
	for _, s := range replicate.Samples() {
		checkFastHead(t, s.Body)
		if _, ok := headMembers(s.Body, nil); !ok {
			t.Errorf("fast path refused the sample %s", s.Name)
		}
	}
	for _, s := range headSeeds {
		checkFastHead(t, []byte(s))
	}
	// The fast path must not give up on what it exists for: long logs with escapes, and
	// plainHead on the members Replicate sends.
	if _, ok := headMembers([]byte(headSeeds[0]), nil); !ok {
		t.Error("fast path refused a processing event with long logs")
	}
	for _, s := range replicate.Samples() {
		if ms, ok := headMembers(s.Body, nil); ok && !plainHead(s.Body, ms, new(head)) {
			t.Errorf("plainHead left the sample %s to the decoder: %s", s.Name, membersObject(s.Body, ms))
		}
	}
}

// naiveString is scanString done byte by byte, as the JSON grammar reads.
func naiveString(b []byte, i int) int {
	for i < len(b) {
		switch c := b[i]; {
		case c == '"':
			return i + 1
		case c < 0x20:
			return -1
		case c == '\\':
			if i+1 >= len(b) {
				return -1
			}
			switch b[i+1] {
			case '"', '\\', '/', 'b', 'f', 'n', 'r', 't':
				i += 2
			case 'u':
				if i+6 > len(b) || !isHex(b[i+2]) || !isHex(b[i+3]) || !isHex(b[i+4]) || !isHex(b[i+5]) {
					return -1
				}
				i += 6
			default:
				return -1
			}
		default:
			i++
		}
	}
	return -1
}

// TestScanString compares the word-wise and IndexByte paths with naiveString on random strings
// made of the bytes that matter, at lengths around the word and window boundaries.
func TestScanString(t *testing.T) {
	alphabet := []byte("\"\\\\\\nuuAf0x \x00\x1f\x20\x7f\x80\xa2\xdc\xff")
	rng := rand.New(rand.NewPCG(1, 2))
	for range 200000 {
		b := make([]byte, rng.IntN(300))
		sparse := []int{4, 32, 256}[rng.IntN(3)] // so that some strings reach the long path
		for k := range b {
			if rng.IntN(sparse) == 0 {
				b[k] = alphabet[rng.IntN(len(alphabet))]
			} else {
				b[k] = 'a' + byte(rng.IntN(3))
			}
		}
		for _, i := range []int{0, 1, 7} {
			if i > len(b) {
				continue
			}
			if got, want := scanString(b, i), naiveString(b, i); got != want {
				t.Fatalf("scanString(%q, %d) = %d, want %d", b, i, got, want)
			}
		}
		if got, want := plainText(b), bytes.IndexByte(b, '\\') < 0 && utf8.Valid(b); got != want {
			t.Fatalf("plainText(%q) = %v", b, got)
		}
	}
}

// TestStopMask checks that the lowest byte stopMask flags is the first quote, backslash or
// control character, and that hasControl finds control characters, on words of bytes near the
// edges of what the tests tell apart.
func TestStopMask(t *testing.T) {
	edges := []byte{0x00, 0x01, 0x1f, 0x20, 0x21, '"', 0x23, 0x5b, '\\', 0x5d, 0x7f, 0x80, 0x81, 0x9f, 0xa0, 0xa2, 0xdc, 0xff}
	rng := rand.New(rand.NewPCG(3, 4))
	var w [8]byte
	for range 1 << 20 {
		for k := range w {
			w[k] = edges[rng.IntN(len(edges))]
		}
		first, control := 8, false
		for k, c := range w {
			if c < 0x20 {
				control = true
			}
			if first == 8 && (c == '"' || c == '\\' || c < 0x20) {
				first = k
			}
		}
		m := stopMask(binary.LittleEndian.Uint64(w[:]))
		if got := bits.TrailingZeros64(m) >> 3; got != first {
			t.Fatalf("stopMask(% x) flags byte %d first, want %d", w, got, first)
		}
		if hasControl(w[:]) != control {
			t.Fatalf("hasControl(% x) = %v", w, !control)
		}
	}
	// hasControl on blocks and tails, with at most one control character anywhere.
	for n := range 200 {
		b := bytes.Repeat([]byte{0xa2}, n)
		if hasControl(b) {
			t.Fatalf("hasControl found a control character in % x", b)
		}
		for k := range b {
			b[k] = 0x1f
			if !hasControl(b) {
				t.Fatalf("hasControl missed the control character at %d of %d", k, n)
			}
			b[k] = 0xa2
		}
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
	// Replicate's own samples: indented, with shorter logs and every member of a payload.
	samples := replicate.Samples()
	b.Run("samples", func(b *testing.B) {
		n := 0
		for _, s := range samples {
			n += len(s.Body)
		}
		b.SetBytes(int64(n / len(samples)))
		for k := 0; b.Loop(); k++ {
			s := samples[k%len(samples)]
			if _, err := ParseHead(s.Body, "m", s.Kind, nil, time.Time{}); err != nil {
				b.Fatal(err)
			}
		}
	})
}
