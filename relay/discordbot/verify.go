package discordbot

import (
	"crypto/ed25519"
	"encoding/hex"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"time"
)

// The headers Discord signs every interaction request with.
const (
	// HeaderSignature carries the Ed25519 signature, in hex.
	HeaderSignature = "X-Signature-Ed25519"
	// HeaderTimestamp carries the Unix time in seconds the request was signed at.
	HeaderTimestamp = "X-Signature-Timestamp"
)

// DefaultTolerance is how far a request's timestamp may be from the local clock, either way,
// when NewVerifier is given a tolerance of 0. Discord gives no figure; five minutes is the
// usual allowance for clock skew, and an interaction older than a few seconds cannot be
// answered in time anyway.
const DefaultTolerance = 5 * time.Minute

// The errors Verify returns, wrapped with details; test for them with errors.Is. Every one of
// them means the request is answered 401.
var (
	// ErrMissingHeaders means a signature header is absent or empty.
	ErrMissingHeaders = errors.New("missing signature headers")
	// ErrBadTimestamp means the timestamp is not a Unix time in seconds.
	ErrBadTimestamp = errors.New("invalid signature timestamp")
	// ErrStaleTimestamp means the timestamp is further from now than the tolerance, in the
	// past (a replay) or in the future.
	ErrStaleTimestamp = errors.New("signature timestamp outside tolerance")
	// ErrBadSignature means the signature is malformed or does not match.
	ErrBadSignature = errors.New("invalid request signature")
)

// maxTimestamp is the number of digits in the largest int64.
const maxTimestamp = len("9223372036854775807")

// Verifier checks that interaction requests come from Discord: an Ed25519 signature, made with
// the application's key, over the timestamp header followed by the raw body. It is safe for
// concurrent use once built; set Now before sharing it.
//
// Nothing secret takes part in the check (the key is public), so there is no timing leak to
// guard against; ed25519.Verify compares in constant time regardless.
type Verifier struct {
	// Now returns the current time for the timestamp check. Default (nil): time.Now.
	Now func() time.Time

	key       ed25519.PublicKey
	tolerance time.Duration
}

// NewVerifier builds a Verifier for the application's public key as the developer portal shows
// it (64 hex digits). tolerance bounds the distance between a request's timestamp and now,
// either way; 0 means DefaultTolerance.
func NewVerifier(publicKey string, tolerance time.Duration) (*Verifier, error) {
	key, err := hex.DecodeString(strings.TrimSpace(publicKey))
	if err != nil || len(key) != ed25519.PublicKeySize {
		return nil, fmt.Errorf("discord public key must be %d hex digits", 2*ed25519.PublicKeySize)
	}
	if tolerance < 0 {
		return nil, fmt.Errorf("discord signature tolerance must not be negative, got %s", tolerance)
	}
	if tolerance == 0 {
		tolerance = DefaultTolerance
	}
	return &Verifier{key: key, tolerance: tolerance}, nil
}

// Tolerance is the largest accepted distance between a request's timestamp and now.
func (v *Verifier) Tolerance() time.Duration { return v.tolerance }

// Verify checks the signature headers in h against body, the raw bytes as received. Errors
// wrap ErrMissingHeaders, ErrBadTimestamp, ErrStaleTimestamp or ErrBadSignature.
func (v *Verifier) Verify(h http.Header, body []byte) error {
	sigHex, ts := h.Get(HeaderSignature), h.Get(HeaderTimestamp)
	switch {
	case sigHex == "":
		return fmt.Errorf("%w: no %s", ErrMissingHeaders, HeaderSignature)
	case ts == "":
		return fmt.Errorf("%w: no %s", ErrMissingHeaders, HeaderTimestamp)
	}
	unix, ok := parseTimestamp(ts)
	if !ok {
		return fmt.Errorf("%w: want Unix seconds, got %d characters", ErrBadTimestamp, len(ts))
	}
	now := time.Now
	if v.Now != nil {
		now = v.Now
	}
	// Whole seconds on both sides, compared without overflow whatever the header says.
	nowUnix := now().Unix()
	tol := uint64(v.tolerance / time.Second)
	switch {
	case unix < nowUnix && uint64(nowUnix)-uint64(unix) > tol:
		return fmt.Errorf("%w: %ds old, tolerance %s", ErrStaleTimestamp, uint64(nowUnix)-uint64(unix), v.tolerance)
	case unix > nowUnix && uint64(unix)-uint64(nowUnix) > tol:
		return fmt.Errorf("%w: %ds in the future, tolerance %s", ErrStaleTimestamp, uint64(unix)-uint64(nowUnix), v.tolerance)
	}
	if len(sigHex) != 2*ed25519.SignatureSize {
		return fmt.Errorf("%w: want %d hex digits", ErrBadSignature, 2*ed25519.SignatureSize)
	}
	var sig [ed25519.SignatureSize]byte
	if _, err := hex.Decode(sig[:], []byte(sigHex)); err != nil {
		return fmt.Errorf("%w: not hex", ErrBadSignature)
	}
	if len(v.key) != ed25519.PublicKeySize {
		return fmt.Errorf("%w: the verifier has no key", ErrBadSignature)
	}
	msg := make([]byte, 0, len(ts)+len(body))
	msg = append(append(msg, ts...), body...)
	if !ed25519.Verify(v.key, msg, sig[:]) {
		return ErrBadSignature
	}
	return nil
}

// parseTimestamp reads a Unix time in seconds written as plain decimal digits.
func parseTimestamp(s string) (int64, bool) {
	if len(s) == 0 || len(s) > maxTimestamp {
		return 0, false
	}
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return 0, false
		}
	}
	n, err := strconv.ParseInt(s, 10, 64)
	return n, err == nil
}

// SignHeaders returns the headers Discord would send with body, signed with the application's
// private key at time at. Tests and local tools use it to make requests the Handler accepts.
func SignHeaders(key ed25519.PrivateKey, at time.Time, body []byte) http.Header {
	ts := strconv.FormatInt(at.Unix(), 10)
	msg := append([]byte(ts), body...)
	h := http.Header{}
	h.Set(HeaderSignature, hex.EncodeToString(ed25519.Sign(key, msg)))
	h.Set(HeaderTimestamp, ts)
	h.Set("Content-Type", "application/json")
	return h
}
