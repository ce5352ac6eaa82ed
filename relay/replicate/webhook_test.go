package replicate

import (
	"bytes"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// The public Standard Webhooks test vector (also the secret the embedded samples are signed with).
const (
	vectorSecret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
	vectorKeyB64 = "MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
	vectorID     = "msg_p5jXN8AQM9LWM0D4loKWxJek"
	vectorTS     = int64(1614265330)
	vectorBody   = `{"test": 2432232314}`
	vectorSig    = "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="
)

// otherSecret is a second, unrelated secret for rotation tests.
const otherSecret = "whsec_c2Vjb25kIHNlY3JldCBmb3IgdGhlIHJlbGF5IHRlc3Q="

// clockAt returns a clock stopped at Unix second ts.
func clockAt(ts int64) func() time.Time {
	return func() time.Time { return time.Unix(ts, 0) }
}

func mustVerifier(t testing.TB, secrets []string, tolerance time.Duration, now int64) *Verifier {
	t.Helper()
	v, err := NewVerifier(secrets, tolerance)
	if err != nil {
		t.Fatalf("NewVerifier: %v", err)
	}
	v.Now = clockAt(now)
	return v
}

func mustKey(t testing.TB, secret string) []byte {
	t.Helper()
	k, err := ParseSecret(secret)
	if err != nil {
		t.Fatalf("ParseSecret: %v", err)
	}
	return k
}

// headers builds a header map as net/http would (canonical keys); empty values are left out.
func headers(id, ts, sig string) http.Header {
	h := http.Header{}
	if id != "" {
		h.Set(HeaderID, id)
	}
	if ts != "" {
		h.Set(HeaderTimestamp, ts)
	}
	if sig != "" {
		h.Set(HeaderSignature, sig)
	}
	return h
}

// assertNoSecret fails when err's message contains any form of the given secrets.
func assertNoSecret(t *testing.T, err error, secrets ...string) {
	t.Helper()
	if err == nil {
		return
	}
	msg := err.Error()
	for _, s := range secrets {
		bare := strings.TrimPrefix(strings.TrimSpace(s), SecretPrefix)
		if bare == "" {
			continue
		}
		if strings.Contains(msg, bare) {
			t.Errorf("error %q leaks the secret", msg)
		}
		if len(bare) >= 8 && strings.Contains(msg, bare[:8]) {
			t.Errorf("error %q leaks part of the secret", msg)
		}
	}
	if msg != strings.ToLower(msg[:1])+msg[1:] {
		t.Errorf("error %q should start in lowercase", msg)
	}
}

func TestParseSecret(t *testing.T) {
	// base64 -d <<< MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw | xxd -p
	vectorKey := []byte{
		0x31, 0xf2, 0x90, 0xf6, 0xbf, 0x06, 0x29, 0x8a, 0xab, 0x4f, 0x08, 0xd4,
		0x3c, 0x3f, 0x08, 0x2c, 0xf6, 0x48, 0xa3, 0x62, 0xda, 0x2d, 0xa4, 0xb0,
	}
	tests := []struct {
		name    string
		secret  string
		want    []byte
		wantErr string
	}{
		{name: "prefixed", secret: vectorSecret, want: vectorKey},
		{name: "bare base64", secret: vectorKeyB64, want: vectorKey},
		{name: "surrounding whitespace", secret: " " + vectorSecret + "\n", want: vectorKey},
		{name: "padded", secret: "whsec_YWJjZA==", want: []byte("abcd")},
		{name: "padding stripped", secret: "whsec_YWJjZA", want: []byte("abcd")},
		{name: "empty", secret: "", wantErr: "empty"},
		{name: "prefix only", secret: "whsec_", wantErr: "empty"},
		{name: "blank", secret: "   ", wantErr: "empty"},
		{name: "not base64", secret: "whsec_sup3r$ecret!value", wantErr: "not valid base64"},
		{name: "url alphabet", secret: "whsec_ab-_cdef", wantErr: "not valid base64"},
		{name: "api token by mistake", secret: "r8_Xk3fQe9rT2bWmYp7nLs0aHcJd4uVgE1o", wantErr: "not valid base64"},
		{name: "bad padding", secret: "whsec_YWJjZA=", wantErr: "not valid base64"},
		{name: "only padding", secret: "whsec_====", wantErr: "not valid base64"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := ParseSecret(tt.secret)
			if tt.wantErr != "" {
				if err == nil {
					t.Fatalf("ParseSecret = %x, want error containing %q", got, tt.wantErr)
				}
				if !strings.Contains(err.Error(), tt.wantErr) {
					t.Errorf("error %q, want it to contain %q", err, tt.wantErr)
				}
				assertNoSecret(t, err, tt.secret)
				return
			}
			if err != nil {
				t.Fatalf("ParseSecret: %v", err)
			}
			if !bytes.Equal(got, tt.want) {
				t.Errorf("key = %x, want %x", got, tt.want)
			}
		})
	}
}

func TestNewVerifier(t *testing.T) {
	tests := []struct {
		name      string
		secrets   []string
		tolerance time.Duration
		wantTol   time.Duration
		wantErr   string
	}{
		{name: "default tolerance", secrets: []string{vectorSecret}, wantTol: 5 * time.Minute},
		{name: "own tolerance", secrets: []string{vectorSecret}, tolerance: time.Minute, wantTol: time.Minute},
		{name: "rotation", secrets: []string{vectorSecret, otherSecret}, wantTol: DefaultTolerance},
		{name: "no secrets", secrets: nil, wantErr: "at least one"},
		{name: "empty list", secrets: []string{}, wantErr: "at least one"},
		{name: "negative tolerance", secrets: []string{vectorSecret}, tolerance: -time.Second, wantErr: "negative"},
		{name: "bad second secret", secrets: []string{vectorSecret, "whsec_hunter2!!"}, wantErr: "secret 2 of 2"},
		{name: "empty secret", secrets: []string{""}, wantErr: "secret 1 of 1"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			v, err := NewVerifier(tt.secrets, tt.tolerance)
			if tt.wantErr != "" {
				if err == nil {
					t.Fatalf("NewVerifier succeeded, want error containing %q", tt.wantErr)
				}
				if !strings.Contains(err.Error(), tt.wantErr) {
					t.Errorf("error %q, want it to contain %q", err, tt.wantErr)
				}
				assertNoSecret(t, err, tt.secrets...)
				return
			}
			if err != nil {
				t.Fatalf("NewVerifier: %v", err)
			}
			if v.Tolerance() != tt.wantTol {
				t.Errorf("Tolerance() = %s, want %s", v.Tolerance(), tt.wantTol)
			}
		})
	}
}

func TestSignPublicVector(t *testing.T) {
	for name, secret := range map[string]string{"prefixed": vectorSecret, "bare": vectorKeyB64} {
		t.Run(name, func(t *testing.T) {
			got := Sign(mustKey(t, secret), vectorID, vectorTS, []byte(vectorBody))
			if got != vectorSig {
				t.Errorf("Sign = %s, want %s", got, vectorSig)
			}
		})
	}
}

func TestVerifyPublicVector(t *testing.T) {
	v := mustVerifier(t, []string{vectorSecret}, 0, vectorTS)
	h := headers(vectorID, strconv.FormatInt(vectorTS, 10), vectorSig)
	if err := v.Verify(h, []byte(vectorBody)); err != nil {
		t.Fatalf("Verify(public vector): %v", err)
	}
}

func TestVerifySamples(t *testing.T) {
	samples := Samples()
	if len(samples) != 4 {
		t.Fatalf("Samples() = %d samples, want 4", len(samples))
	}
	for _, s := range samples {
		t.Run(s.Name, func(t *testing.T) {
			v := mustVerifier(t, []string{SampleSecret}, 0, s.Timestamp)
			h := headers(s.MessageID, strconv.FormatInt(s.Timestamp, 10), s.Signature)
			if err := v.Verify(h, s.Body); err != nil {
				t.Fatalf("Verify: %v", err)
			}
			if got := Sign(mustKey(t, SampleSecret), s.MessageID, s.Timestamp, s.Body); got != s.Signature {
				t.Errorf("Sign = %s, want the captured %s", got, s.Signature)
			}
		})
	}
}

func TestVerify(t *testing.T) {
	key := mustKey(t, vectorSecret)
	body := []byte(vectorBody)
	ts := strconv.FormatInt(vectorTS, 10)
	tol := DefaultTolerance
	tolS := int64(tol / time.Second)
	// signAt signs the vector's id and body at a timestamp other than the vector's.
	signAt := func(at int64) string { return Sign(key, vectorID, at, body) }
	tampered := bytes.Clone(body)
	tampered[len(tampered)-2] ^= 0x01 // "…2314}" becomes "…2315}"
	otherSig := Sign(mustKey(t, otherSecret), vectorID, vectorTS, body)
	garbage := "v1,!!!!not-base64!!!!not-base64!!!!not-base64"

	tests := []struct {
		name    string
		h       http.Header
		body    []byte
		now     int64 // clock; the vector's timestamp when 0
		secrets []string
		want    error // nil: accepted
	}{
		{name: "valid", h: headers(vectorID, ts, vectorSig), body: body},
		{name: "lowercase header keys", body: body, h: http.Header{
			HeaderID: {vectorID}, HeaderTimestamp: {ts}, HeaderSignature: {vectorSig},
		}},
		{name: "tampered body", h: headers(vectorID, ts, vectorSig), body: tampered, want: ErrNoSignatureMatch},
		{name: "body with extra byte", h: headers(vectorID, ts, vectorSig), body: append(bytes.Clone(body), '\n'), want: ErrNoSignatureMatch},
		{name: "empty body", h: headers(vectorID, ts, vectorSig), body: nil, want: ErrNoSignatureMatch},
		{name: "tampered id", h: headers(vectorID+"x", ts, vectorSig), body: body, want: ErrNoSignatureMatch},
		{name: "tampered timestamp", h: headers(vectorID, strconv.FormatInt(vectorTS+1, 10), vectorSig), body: body, want: ErrNoSignatureMatch},
		{name: "timestamp with leading zero", h: headers(vectorID, "0"+ts, vectorSig), body: body, want: ErrNoSignatureMatch},
		{name: "stale", h: headers(vectorID, ts, vectorSig), body: body, now: vectorTS + tolS + 1, want: ErrStaleTimestamp},
		{name: "future", h: headers(vectorID, ts, vectorSig), body: body, now: vectorTS - tolS - 1, want: ErrStaleTimestamp},
		{name: "stale by a day", h: headers(vectorID, ts, vectorSig), body: body, now: vectorTS + 86400, want: ErrStaleTimestamp},
		{name: "far future", h: headers(vectorID, "9223372036854775807", signAt(1<<63-1)), body: body, want: ErrStaleTimestamp},
		{name: "exactly tolerance old", h: headers(vectorID, ts, vectorSig), body: body, now: vectorTS + tolS},
		{name: "exactly tolerance ahead", h: headers(vectorID, ts, vectorSig), body: body, now: vectorTS - tolS},
		{name: "stale even when signed", h: headers(vectorID, "1614264000", signAt(1614264000)), body: body, want: ErrStaleTimestamp},
		{name: "fresh retry timestamp", h: headers(vectorID, "1614265390", signAt(1614265390)), body: body, now: 1614265400},
		{name: "second secret matches", h: headers(vectorID, ts, vectorSig), body: body, secrets: []string{otherSecret, vectorSecret}},
		{name: "first secret matches", h: headers(vectorID, ts, otherSig), body: body, secrets: []string{otherSecret, vectorSecret}},
		{name: "rotated away", h: headers(vectorID, ts, vectorSig), body: body, secrets: []string{otherSecret}, want: ErrNoSignatureMatch},
		{name: "bare key secret", h: headers(vectorID, ts, vectorSig), body: body, secrets: []string{vectorKeyB64}},
		{name: "several signatures, last matches", h: headers(vectorID, ts, otherSig+" "+vectorSig), body: body},
		{name: "several signatures, first matches", h: headers(vectorID, ts, vectorSig+" "+otherSig), body: body},
		{name: "several signatures, none match", h: headers(vectorID, ts, otherSig+" "+otherSig), body: body, want: ErrNoSignatureMatch},
		{name: "v2 entry ignored", h: headers(vectorID, ts, "v2,"+strings.TrimPrefix(vectorSig, "v1,")), body: body, want: ErrNoSignatureMatch},
		{name: "unknown versions ignored", h: headers(vectorID, ts, "v1a,abc v0,"+strings.TrimPrefix(vectorSig, "v1,")+" "+vectorSig), body: body},
		{name: "asymmetric v1a ignored", h: headers(vectorID, ts, "v1a,"+strings.TrimPrefix(vectorSig, "v1,")), body: body, want: ErrNoSignatureMatch},
		{name: "malformed entries skipped", h: headers(vectorID, ts, "garbage ,, v1, v1 "+garbage+" v1,AAAA "+vectorSig), body: body},
		{name: "double spaces", h: headers(vectorID, ts, "  "+vectorSig+"  "), body: body},
		// The last character's spare bits differ ("E" → "G"): same bytes, non-canonical text.
		{name: "non-canonical base64", h: headers(vectorID, ts, strings.Replace(vectorSig, "1OE=", "1OG=", 1)), body: body, want: ErrNoSignatureMatch},
		{name: "uppercase version", h: headers(vectorID, ts, "V1,"+strings.TrimPrefix(vectorSig, "v1,")), body: body, want: ErrNoSignatureMatch},
		{name: "signature on a second header line", body: body, h: http.Header{
			"Webhook-Id": {vectorID}, "Webhook-Timestamp": {ts}, "Webhook-Signature": {otherSig, vectorSig},
		}},
		{name: "empty header lines", body: body, h: http.Header{
			"Webhook-Id": {vectorID}, "Webhook-Timestamp": {ts}, "Webhook-Signature": {"", ""},
		}, want: ErrMissingHeaders},
		{name: "huge id", h: headers(strings.Repeat("i", 64<<10), ts, vectorSig), body: body, want: ErrNoSignatureMatch},
		{name: "missing id", h: headers("", ts, vectorSig), body: body, want: ErrMissingHeaders},
		{name: "missing timestamp", h: headers(vectorID, "", vectorSig), body: body, want: ErrMissingHeaders},
		{name: "missing signature", h: headers(vectorID, ts, ""), body: body, want: ErrMissingHeaders},
		{name: "no headers", h: http.Header{}, body: body, want: ErrMissingHeaders},
		{name: "nil headers", h: nil, body: body, want: ErrMissingHeaders},
		{name: "empty id value", body: body, h: http.Header{"Webhook-Id": {""}, "Webhook-Timestamp": {ts}, "Webhook-Signature": {vectorSig}}, want: ErrMissingHeaders},
		{name: "non-numeric timestamp", h: headers(vectorID, "yesterday", vectorSig), body: body, want: ErrBadTimestamp},
		{name: "RFC 3339 timestamp", h: headers(vectorID, "2021-02-24T15:02:10Z", vectorSig), body: body, want: ErrBadTimestamp},
		{name: "milliseconds overflow", h: headers(vectorID, "16142653300000000000", vectorSig), body: body, want: ErrBadTimestamp},
		{name: "signed timestamp", h: headers(vectorID, "+"+ts, vectorSig), body: body, want: ErrBadTimestamp},
		{name: "negative timestamp", h: headers(vectorID, "-1", vectorSig), body: body, want: ErrBadTimestamp},
		{name: "fractional timestamp", h: headers(vectorID, ts+".5", vectorSig), body: body, want: ErrBadTimestamp},
		{name: "timestamp with space", h: headers(vectorID, ts+" ", vectorSig), body: body, want: ErrBadTimestamp},
		{name: "empty signature list", h: headers(vectorID, ts, " "), body: body, want: ErrNoSignatureMatch},
		{name: "version without signature", h: headers(vectorID, ts, "v1,"), body: body, want: ErrNoSignatureMatch},
		{name: "garbage base64", h: headers(vectorID, ts, garbage), body: body, want: ErrNoSignatureMatch},
		{name: "signature too short", h: headers(vectorID, ts, "v1,"+strings.TrimSuffix(strings.TrimPrefix(vectorSig, "v1,"), "=")), body: body, want: ErrNoSignatureMatch},
		{name: "signature too long", h: headers(vectorID, ts, vectorSig+"AAAA"), body: body, want: ErrNoSignatureMatch},
		{name: "wrong length decoded", h: headers(vectorID, ts, "v1,"+strings.Repeat("A", 40)+"AA=="), body: body, want: ErrNoSignatureMatch},
		{name: "hex signature", h: headers(vectorID, ts, "v1,"+fmt.Sprintf("%x", []byte("0123456789abcdef0123456789abcdef"))[:44]), body: body, want: ErrNoSignatureMatch},
		{name: "x-replicate-signature is not a thing", body: body, h: http.Header{
			"Webhook-Id": {vectorID}, "Webhook-Timestamp": {ts}, "X-Replicate-Signature": {vectorSig},
		}, want: ErrMissingHeaders},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			secrets := tt.secrets
			if secrets == nil {
				secrets = []string{vectorSecret}
			}
			now := tt.now
			if now == 0 {
				now = vectorTS
			}
			v := mustVerifier(t, secrets, tol, now)
			err := v.Verify(tt.h, tt.body)
			if tt.want == nil {
				if err != nil {
					t.Fatalf("Verify: %v, want success", err)
				}
				return
			}
			if !errors.Is(err, tt.want) {
				t.Fatalf("Verify = %v, want %v", err, tt.want)
			}
			assertNoSecret(t, err, append(secrets, vectorSecret, otherSecret)...)
		})
	}
}

// TestVerifyErrorMessages checks that the errors say what is wrong, in lowercase, without
// leaking anything secret.
func TestVerifyErrorMessages(t *testing.T) {
	v := mustVerifier(t, []string{vectorSecret, otherSecret}, time.Minute, vectorTS)
	ts := strconv.FormatInt(vectorTS, 10)
	tests := []struct {
		name string
		h    http.Header
		want string
	}{
		{"missing id", headers("", ts, vectorSig), "missing webhook headers: no webhook-id"},
		{"missing timestamp", headers(vectorID, "", vectorSig), "missing webhook headers: no webhook-timestamp"},
		{"missing signature", headers(vectorID, ts, ""), "missing webhook headers: no webhook-signature"},
		{"bad timestamp", headers(vectorID, "soon", vectorSig), "invalid webhook timestamp: want Unix seconds, got 4 characters"},
		{"old", headers(vectorID, strconv.FormatInt(vectorTS-61, 10), vectorSig), "webhook timestamp outside tolerance: 1m1s old, tolerance 1m0s"},
		{"new", headers(vectorID, strconv.FormatInt(vectorTS+3600, 10), vectorSig), "webhook timestamp outside tolerance: 1h0m0s in the future, tolerance 1m0s"},
		{"far future", headers(vectorID, "9223372036854775807", vectorSig), "webhook timestamp outside tolerance: 2562047h47m16s in the future, tolerance 1m0s"},
		{"no match", headers(vectorID, ts, vectorSig), "no matching webhook signature"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := v.Verify(tt.h, []byte("{}"))
			if err == nil || err.Error() != tt.want {
				t.Fatalf("Verify = %v, want %q", err, tt.want)
			}
			assertNoSecret(t, err, vectorSecret, otherSecret)
		})
	}
}

func TestVerifyRealClock(t *testing.T) {
	v, err := NewVerifier([]string{vectorSecret}, 0)
	if err != nil {
		t.Fatal(err)
	}
	body := []byte(`{"id":"x","status":"starting"}`)
	h, err := SignHeaders(vectorSecret, "msg_now", time.Now(), body)
	if err != nil {
		t.Fatal(err)
	}
	if err := v.Verify(h, body); err != nil {
		t.Fatalf("Verify with the real clock: %v", err)
	}
	old, err := SignHeaders(vectorSecret, "msg_old", time.Now().Add(-time.Hour), body)
	if err != nil {
		t.Fatal(err)
	}
	if err := v.Verify(old, body); !errors.Is(err, ErrStaleTimestamp) {
		t.Fatalf("Verify of an hour-old delivery = %v, want ErrStaleTimestamp", err)
	}
}

func TestZeroVerifier(t *testing.T) {
	var v Verifier
	v.Now = clockAt(vectorTS)
	h := headers(vectorID, strconv.FormatInt(vectorTS, 10), vectorSig)
	if err := v.Verify(h, []byte(vectorBody)); !errors.Is(err, ErrNoSignatureMatch) {
		t.Fatalf("zero Verifier: Verify = %v, want ErrNoSignatureMatch", err)
	}
}

func TestSignHeaders(t *testing.T) {
	at := time.Unix(vectorTS, 999_000_000) // sub-second part is dropped
	tests := []struct {
		name    string
		secret  string
		id      string
		at      time.Time
		wantErr string
	}{
		{name: "vector", secret: vectorSecret, id: vectorID, at: at},
		{name: "bare key", secret: vectorKeyB64, id: vectorID, at: at},
		{name: "bad secret", secret: "whsec_not*base64", id: vectorID, at: at, wantErr: "not valid base64"},
		{name: "empty secret", secret: "", id: vectorID, at: at, wantErr: "empty"},
		{name: "no id", secret: vectorSecret, id: "", at: at, wantErr: "message id is required"},
		{name: "before 1970", secret: vectorSecret, id: vectorID, at: time.Unix(-10, 0), wantErr: "before 1970"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h, err := SignHeaders(tt.secret, tt.id, tt.at, []byte(vectorBody))
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("SignHeaders error = %v, want one containing %q", err, tt.wantErr)
				}
				assertNoSecret(t, err, tt.secret)
				return
			}
			if err != nil {
				t.Fatalf("SignHeaders: %v", err)
			}
			want := map[string]string{
				"Webhook-Id":        vectorID,
				"Webhook-Timestamp": "1614265330",
				"Webhook-Signature": vectorSig,
				"Content-Type":      "application/json",
			}
			if len(h) != len(want) {
				t.Errorf("SignHeaders set %d headers, want %d: %v", len(h), len(want), h)
			}
			for k, v := range want {
				if got := h.Get(k); got != v {
					t.Errorf("header %s = %q, want %q", k, got, v)
				}
			}
			ver := mustVerifier(t, []string{vectorSecret}, 0, vectorTS)
			if err := ver.Verify(h, []byte(vectorBody)); err != nil {
				t.Errorf("Verify(SignHeaders(...)): %v", err)
			}
		})
	}
}

// TestVerifyConcurrent shares one Verifier between goroutines, as the HTTP server does, so that
// the race detector sees the recycled per-call state.
func TestVerifyConcurrent(t *testing.T) {
	// The samples were signed within a few hours of each other: a day's tolerance covers them all.
	v := mustVerifier(t, []string{otherSecret, SampleSecret}, 24*time.Hour, 1746124168)
	samples := Samples()
	var wg sync.WaitGroup
	errs := make(chan error, 8*50)
	for g := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range 50 {
				s := samples[(g+i)%len(samples)]
				h := headers(s.MessageID, strconv.FormatInt(s.Timestamp, 10), s.Signature)
				if err := v.Verify(h, s.Body); err != nil {
					errs <- fmt.Errorf("%s: %w", s.Name, err)
				}
				bad := bytes.Clone(s.Body)
				bad[i%len(bad)] ^= 0x20
				if err := v.Verify(h, bad); !errors.Is(err, ErrNoSignatureMatch) {
					errs <- fmt.Errorf("%s tampered: got %v", s.Name, err)
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
}

func BenchmarkVerify(b *testing.B) {
	body := bytes.Repeat([]byte(`{"k":"0123456789abcdef"},`), 4096/25+1)[:4096]
	ts := time.Unix(vectorTS, 0)
	h, err := SignHeaders(vectorSecret, vectorID, ts, body)
	if err != nil {
		b.Fatal(err)
	}
	for _, bc := range []struct {
		name    string
		secrets []string
	}{
		{"one secret", []string{vectorSecret}},
		{"match on second secret", []string{otherSecret, vectorSecret}},
	} {
		b.Run(bc.name, func(b *testing.B) {
			v := mustVerifier(b, bc.secrets, 0, vectorTS)
			b.ReportAllocs()
			b.SetBytes(int64(len(body)))
			for b.Loop() {
				if err := v.Verify(h, body); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

func FuzzVerify(f *testing.F) {
	ts := strconv.FormatInt(vectorTS, 10)
	f.Add(vectorID, ts, vectorSig, []byte(vectorBody), uint(0), byte(1))
	f.Add(vectorID, ts, "v1,"+strings.Repeat("A", 43)+"=", []byte(vectorBody), uint(3), byte(0x80))
	f.Add("", "", "", []byte(nil), uint(0), byte(0))
	f.Add("id", "abc", "v1,", []byte("{}"), uint(1), byte(0xff))
	f.Add("id", "-1", "v2,xyz v1,=== ,,", []byte("x"), uint(7), byte(2))
	f.Add("msg", "99999999999999999999", "v1 v1, v1,AAAA", []byte("\x00\xff"), uint(1), byte(3))
	f.Add("msg", "9223372036854775807", "   ", []byte(" "), uint(0), byte(4))
	for _, s := range Samples() {
		f.Add(s.MessageID, strconv.FormatInt(s.Timestamp, 10), s.Signature, s.Body, uint(len(s.Body)/2), byte(1))
	}
	key := mustKey(f, vectorSecret)
	v := mustVerifier(f, []string{otherSecret, vectorSecret}, time.Minute, vectorTS)

	f.Fuzz(func(t *testing.T, id, tsText, sigs string, body []byte, pos uint, flip byte) {
		// Arbitrary headers must never panic, and only a real signature is ever accepted.
		h := http.Header{"Webhook-Id": {id}, "Webhook-Timestamp": {tsText}, "Webhook-Signature": {sigs}}
		if err := v.Verify(h, body); err == nil {
			at, perr := strconv.ParseInt(tsText, 10, 64)
			want := Sign(key, id, at, body)
			if perr != nil || !strings.Contains(" "+sigs+" ", " "+want+" ") {
				t.Fatalf("Verify accepted id %q ts %q sigs %q without a valid signature", id, tsText, sigs)
			}
		}
		if id == "" {
			return
		}

		// A body signed by Sign always verifies, whatever other entries come with the signature.
		sig := Sign(key, id, vectorTS, body)
		good := http.Header{"Webhook-Id": {id}, "Webhook-Timestamp": {ts}, "Webhook-Signature": {sig}}
		if err := v.Verify(good, body); err != nil {
			t.Fatalf("Verify of a signed body: %v", err)
		}
		mixed := http.Header{"Webhook-Id": {id}, "Webhook-Timestamp": {ts}, "Webhook-Signature": {sigs + " " + sig}}
		if err := v.Verify(mixed, body); err != nil {
			t.Fatalf("Verify of a signed body among other entries: %v", err)
		}

		// Any single-byte change to the body never verifies.
		if len(body) == 0 || flip == 0 {
			return
		}
		bad := bytes.Clone(body)
		bad[pos%uint(len(bad))] ^= flip
		if err := v.Verify(good, bad); !errors.Is(err, ErrNoSignatureMatch) {
			t.Fatalf("Verify of a body changed at %d: %v, want ErrNoSignatureMatch", pos%uint(len(bad)), err)
		}
	})
}
