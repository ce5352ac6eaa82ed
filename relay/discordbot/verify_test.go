package discordbot

import (
	"bytes"
	"crypto/ed25519"
	"encoding/hex"
	"errors"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/bwmarrin/discordgo"
)

// testKey is the application's key pair in these tests, generated from a fixed seed.
var testKey = ed25519.NewKeyFromSeed(bytes.Repeat([]byte{7}, ed25519.SeedSize))

// otherKey belongs to someone else.
var otherKey = ed25519.NewKeyFromSeed(bytes.Repeat([]byte{9}, ed25519.SeedSize))

func publicHex(k ed25519.PrivateKey) string {
	return hex.EncodeToString(k.Public().(ed25519.PublicKey))
}

// testNow is the tests' fixed clock.
var testNow = time.Unix(1_750_000_000, 0)

func TestVerify(t *testing.T) {
	body := []byte(`{"type":1,"id":"1","application_id":"2","token":"t"}`)
	ts := strconv.FormatInt(testNow.Unix(), 10)
	signed := SignHeaders(testKey, testNow, body)
	sig := signed.Get(HeaderSignature)

	headers := func(sig, ts string) http.Header {
		h := http.Header{}
		if sig != "" {
			h.Set(HeaderSignature, sig)
		}
		if ts != "" {
			h.Set(HeaderTimestamp, ts)
		}
		return h
	}
	signAt := func(key ed25519.PrivateKey, at time.Time) http.Header { return SignHeaders(key, at, body) }
	raw, _ := hex.DecodeString(sig)
	raw[5] ^= 1
	flipped := hex.EncodeToString(raw)

	for _, tc := range []struct {
		name string
		h    http.Header
		body []byte
		want error
	}{
		{"valid", signed, body, nil},
		{"valid, upper-case hex", headers(strings.ToUpper(sig), ts), body, nil},
		{"tampered body", signed, []byte(`{"type":2,"id":"1","application_id":"2","token":"t"}`), ErrBadSignature},
		{"body with a byte added", signed, append(append([]byte(nil), body...), ' '), ErrBadSignature},
		{"tampered timestamp", headers(sig, strconv.FormatInt(testNow.Unix()+1, 10)), body, ErrBadSignature},
		{"tampered signature", headers(flipped, ts), body, ErrBadSignature},
		{"wrong key", signAt(otherKey, testNow), body, ErrBadSignature},
		{"stale", signAt(testKey, testNow.Add(-DefaultTolerance-time.Second)), body, ErrStaleTimestamp},
		{"old but within tolerance", signAt(testKey, testNow.Add(-DefaultTolerance)), body, nil},
		{"future", signAt(testKey, testNow.Add(DefaultTolerance+time.Second)), body, ErrStaleTimestamp},
		{"ahead but within tolerance", signAt(testKey, testNow.Add(DefaultTolerance)), body, nil},
		{"far future", signAt(testKey, time.Unix(1<<62, 0)), body, ErrStaleTimestamp},
		{"missing signature", headers("", ts), body, ErrMissingHeaders},
		{"missing timestamp", headers(sig, ""), body, ErrMissingHeaders},
		{"missing both", http.Header{}, body, ErrMissingHeaders},
		{"signature not hex", headers(strings.Repeat("zz", ed25519.SignatureSize), ts), body, ErrBadSignature},
		{"signature too short", headers(sig[:len(sig)-2], ts), body, ErrBadSignature},
		{"signature too long", headers(sig+"00", ts), body, ErrBadSignature},
		{"timestamp in milliseconds", headers(sig, ts+"000"), body, ErrStaleTimestamp},
		{"negative timestamp", headers(sig, "-"+ts), body, ErrBadTimestamp},
		{"timestamp with a space", headers(sig, " "+ts), body, ErrBadTimestamp},
		{"timestamp as a float", headers(sig, ts+".5"), body, ErrBadTimestamp},
		{"timestamp overflowing int64", headers(sig, "99999999999999999999"), body, ErrBadTimestamp},
		{"largest timestamp", headers(sig, "9223372036854775807"), body, ErrStaleTimestamp},
	} {
		t.Run(tc.name, func(t *testing.T) {
			v, err := NewVerifier(publicHex(testKey), 0)
			if err != nil {
				t.Fatal(err)
			}
			v.Now = func() time.Time { return testNow }
			got := v.Verify(tc.h, tc.body)
			if !errors.Is(got, tc.want) || (tc.want == nil) != (got == nil) {
				t.Fatalf("Verify = %v, want %v", got, tc.want)
			}
		})
	}
}

// TestVerifyAgreesWithDiscordgo checks the scheme against discordgo's own implementation of
// Discord's documented check.
func TestVerifyAgreesWithDiscordgo(t *testing.T) {
	body := []byte(`{"type":2,"data":{"name":"predict"}}`)
	for _, key := range []ed25519.PrivateKey{testKey, otherKey} {
		h := SignHeaders(key, time.Now(), body)
		req := httptest.NewRequest("POST", "/", bytes.NewReader(body))
		req.Header = h
		theirs := discordgo.VerifyInteraction(req, testKey.Public().(ed25519.PublicKey))
		v, _ := NewVerifier(publicHex(testKey), 0)
		ours := v.Verify(h, body) == nil
		if ours != theirs {
			t.Errorf("our verdict %v, discordgo's %v", ours, theirs)
		}
	}
}

func TestVerifierTolerance(t *testing.T) {
	v, err := NewVerifier(publicHex(testKey), 10*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	v.Now = func() time.Time { return testNow }
	body := []byte(`{}`)
	if err := v.Verify(SignHeaders(testKey, testNow.Add(-10*time.Second), body), body); err != nil {
		t.Errorf("10s old with 10s tolerance: %v", err)
	}
	if err := v.Verify(SignHeaders(testKey, testNow.Add(-11*time.Second), body), body); !errors.Is(err, ErrStaleTimestamp) {
		t.Errorf("11s old with 10s tolerance: %v", err)
	}
	if v.Tolerance() != 10*time.Second {
		t.Errorf("Tolerance = %s", v.Tolerance())
	}
}

func TestNewVerifierRefuses(t *testing.T) {
	for _, tc := range []struct {
		name, key string
		tol       time.Duration
	}{
		{"empty key", "", 0},
		{"not hex", strings.Repeat("g", 64), 0},
		{"short key", publicHex(testKey)[:62], 0},
		{"private key", hex.EncodeToString(testKey), 0},
		{"negative tolerance", publicHex(testKey), -time.Second},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if _, err := NewVerifier(tc.key, tc.tol); err == nil {
				t.Error("NewVerifier accepted it")
			}
		})
	}
	if _, err := NewVerifier(" "+publicHex(testKey)+"\n", 0); err != nil {
		t.Errorf("a key with surrounding spaces: %v", err)
	}
}

func TestZeroVerifierRefusesAll(t *testing.T) {
	var v Verifier
	body := []byte(`{}`)
	if err := v.Verify(SignHeaders(testKey, time.Now(), body), body); !errors.Is(err, ErrBadSignature) {
		t.Errorf("zero Verifier: %v", err)
	}
}
