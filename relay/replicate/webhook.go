package replicate

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"fmt"
	"hash"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"
)

// The Standard Webhooks headers Replicate sends with every delivery.
const (
	// HeaderID carries the message id, identical on every retry of one message.
	HeaderID = "webhook-id"
	// HeaderTimestamp carries the Unix time in seconds of this delivery attempt.
	HeaderTimestamp = "webhook-timestamp"
	// HeaderSignature carries a space-separated list of "<version>,<base64>" signatures.
	HeaderSignature = "webhook-signature"
)

// DefaultTolerance is how far a delivery's timestamp may be from the local clock, either way,
// when NewVerifier is given a tolerance of 0.
const DefaultTolerance = 5 * time.Minute

// SecretPrefix starts every secret Replicate hands out ("whsec_<base64 key>").
const SecretPrefix = "whsec_"

// The errors Verify returns, wrapped with details; test for them with errors.Is.
var (
	// ErrMissingHeaders means one of the three webhook headers is absent or empty.
	ErrMissingHeaders = errors.New("missing webhook headers")
	// ErrBadTimestamp means webhook-timestamp is not a Unix time in seconds.
	ErrBadTimestamp = errors.New("invalid webhook timestamp")
	// ErrStaleTimestamp means webhook-timestamp is further from now than the tolerance,
	// in the past (a replay, or a retry held too long) or in the future (clock skew).
	ErrStaleTimestamp = errors.New("webhook timestamp outside tolerance")
	// ErrNoSignatureMatch means no v1 signature in webhook-signature matches any secret.
	ErrNoSignatureMatch = errors.New("no matching webhook signature")
)

// sigEncoding decodes signatures strictly: a non-canonical encoding of the right bytes (the spare
// low bits of the last character set) is refused, as the libraries that compare base64 text do.
var sigEncoding = base64.StdEncoding.Strict()

// Canonical forms of the header names: net/http stores headers under these keys, and looking
// them up directly avoids canonicalising the names on every call.
const (
	canonicalID        = "Webhook-Id"
	canonicalTimestamp = "Webhook-Timestamp"
	canonicalSignature = "Webhook-Signature"
)

const (
	macSize         = sha256.Size                  // 32 bytes of HMAC-SHA256
	macBase64Size   = (macSize + 2) / 3 * 4        // 44 characters of padded base64
	maxTimestamp    = len("9223372036854775807")   // digits in the largest int64
	prefixGuess     = 96                           // id + "." + timestamp + "." fits in most cases
	maxPooledPrefix = 4096                         // larger prefix buffers are not kept for reuse
	decodedSize     = macBase64Size / 4 * 3        // room base64 decoding asks for (33 bytes)
	secretHint      = "expected whsec_ and base64" // what a secret should look like, never the secret
)

// ParseSecret decodes a Standard Webhooks secret, "whsec_<base64>", into the HMAC key. A bare
// base64 key without the prefix is accepted too, as the Standard Webhooks libraries do.
// Surrounding whitespace (a trailing newline from a secrets file) is ignored. Errors never
// contain the secret.
func ParseSecret(s string) ([]byte, error) {
	s = strings.TrimSpace(s)
	s = strings.TrimPrefix(s, SecretPrefix)
	if s == "" {
		return nil, fmt.Errorf("webhook secret is empty (%s)", secretHint)
	}
	enc := base64.StdEncoding
	if len(s)%4 != 0 {
		// Some tools strip the padding; the key is the same.
		enc = base64.RawStdEncoding
	}
	key, err := enc.DecodeString(s)
	if err != nil {
		// err names an input offset only, but say nothing of the input at all to be safe.
		return nil, fmt.Errorf("webhook secret is not valid base64 (%s)", secretHint)
	}
	if len(key) == 0 {
		return nil, fmt.Errorf("webhook secret decodes to an empty key (%s)", secretHint)
	}
	return key, nil
}

// Verifier checks the Standard Webhooks signatures of Replicate deliveries against one or
// more secrets. It is safe for concurrent use once built; set Now before sharing it. A zero
// Verifier has no secrets and rejects every delivery; it must not be copied after first use.
type Verifier struct {
	// Now returns the current time for the timestamp check. Default (nil): time.Now.
	Now func() time.Time

	keys      [][]byte
	tolerance time.Duration
	// states recycles the HMAC states and scratch buffers of finished calls, so that a
	// verification allocates nothing once the pool is warm.
	states sync.Pool
}

// verifyState is the per-call working set of a Verifier, reused through its pool.
type verifyState struct {
	macs   []hash.Hash     // one HMAC-SHA256 per key, in key order
	sums   [][macSize]byte // the expected signature per key, once computed
	prefix []byte          // id + "." + timestamp + "."
	enc    [macBase64Size]byte
	dec    [decodedSize]byte
}

// NewVerifier builds a Verifier that accepts a signature made with any of secrets (several
// during a rotation, at least one), each "whsec_<base64>". tolerance bounds the distance
// between a delivery's timestamp and now, either way; 0 means DefaultTolerance.
func NewVerifier(secrets []string, tolerance time.Duration) (*Verifier, error) {
	if len(secrets) == 0 {
		return nil, errors.New("at least one webhook secret is required")
	}
	if tolerance < 0 {
		return nil, fmt.Errorf("webhook tolerance must not be negative, got %s", tolerance)
	}
	if tolerance == 0 {
		tolerance = DefaultTolerance
	}
	v := &Verifier{tolerance: tolerance}
	for i, s := range secrets {
		key, err := ParseSecret(s)
		if err != nil {
			return nil, fmt.Errorf("webhook secret %d of %d: %w", i+1, len(secrets), err)
		}
		v.keys = append(v.keys, key)
	}
	return v, nil
}

// Tolerance is the largest accepted distance between a delivery's timestamp and now.
func (v *Verifier) Tolerance() time.Duration { return v.tolerance }

func (v *Verifier) newState() *verifyState {
	s := &verifyState{
		macs:   make([]hash.Hash, len(v.keys)),
		sums:   make([][macSize]byte, len(v.keys)),
		prefix: make([]byte, 0, prefixGuess),
	}
	for i, k := range v.keys {
		s.macs[i] = hmac.New(sha256.New, k)
	}
	return s
}

// Verify checks the webhook headers in h against body, the raw bytes as received. It returns
// nil when the timestamp is within the tolerance of now and at least one v1 signature matches
// one of the secrets. Entries of another version and malformed entries are skipped. Errors
// wrap ErrMissingHeaders, ErrBadTimestamp, ErrStaleTimestamp or ErrNoSignatureMatch.
func (v *Verifier) Verify(h http.Header, body []byte) error {
	id, tsText, sigs, err := v.checkHeaders(h)
	if err != nil {
		return err
	}
	if len(v.keys) == 0 {
		return fmt.Errorf("%w: verifier has no secrets", ErrNoSignatureMatch)
	}
	s, _ := v.states.Get().(*verifyState)
	if s == nil {
		s = v.newState()
	}
	ok := v.match(s, id, tsText, sigs, body)
	if cap(s.prefix) > maxPooledPrefix {
		// A huge webhook-id is not worth keeping memory for.
		s.prefix = make([]byte, 0, prefixGuess)
	}
	v.states.Put(s)
	if !ok {
		return ErrNoSignatureMatch
	}
	return nil
}

// CheckHeaders is Verify without the body: it fails as Verify would when a header is missing or
// the timestamp is malformed or out of tolerance, so that such a request can be refused before
// its body is read.
func (v *Verifier) CheckHeaders(h http.Header) error {
	_, _, _, err := v.checkHeaders(h)
	return err
}

// checkHeaders reads and checks the headers Verify needs besides the signatures' values.
func (v *Verifier) checkHeaders(h http.Header) (id, tsText string, sigs []string, err error) {
	id = header(h, canonicalID, HeaderID)
	tsText = header(h, canonicalTimestamp, HeaderTimestamp)
	sigs = h[canonicalSignature]
	if len(sigs) == 0 {
		sigs = h[HeaderSignature]
	}
	switch {
	case id == "":
		return "", "", nil, fmt.Errorf("%w: no %s", ErrMissingHeaders, HeaderID)
	case tsText == "":
		return "", "", nil, fmt.Errorf("%w: no %s", ErrMissingHeaders, HeaderTimestamp)
	case !anyNonEmpty(sigs):
		return "", "", nil, fmt.Errorf("%w: no %s", ErrMissingHeaders, HeaderSignature)
	}

	ts, ok := parseTimestamp(tsText)
	if !ok {
		return "", "", nil, fmt.Errorf("%w: want Unix seconds, got %d characters", ErrBadTimestamp, len(tsText))
	}
	now := time.Now
	if v.Now != nil {
		now = v.Now
	}
	// Whole seconds on both sides: the header has no finer precision, and a timestamp exactly
	// the tolerance away is still accepted. The differences are taken in uint64, where they
	// cannot overflow whatever the clock says.
	nowUnix := now().Unix()
	tol := uint64(v.tolerance / time.Second)
	switch {
	case ts < nowUnix && uint64(nowUnix)-uint64(ts) > tol:
		return "", "", nil, fmt.Errorf("%w: %s old, tolerance %s",
			ErrStaleTimestamp, seconds(uint64(nowUnix)-uint64(ts)), v.tolerance)
	case ts > nowUnix && uint64(ts)-uint64(nowUnix) > tol:
		return "", "", nil, fmt.Errorf("%w: %s in the future, tolerance %s",
			ErrStaleTimestamp, seconds(uint64(ts)-uint64(nowUnix)), v.tolerance)
	}
	return id, tsText, sigs, nil
}

// match reports whether any well-formed v1 entry of the signature header lines is the signature
// of the message under any key. The expected signatures are computed once, on the first entry
// worth comparing.
func (v *Verifier) match(s *verifyState, id, ts string, lines []string, body []byte) bool {
	computed := false
	for _, sigs := range lines {
		if v.matchLine(s, id, ts, sigs, body, &computed) {
			return true
		}
	}
	return false
}

// matchLine is match for one header line, a space-separated list of entries.
func (v *Verifier) matchLine(s *verifyState, id, ts, sigs string, body []byte, computed *bool) bool {
	for sigs != "" {
		var entry string
		if i := strings.IndexByte(sigs, ' '); i >= 0 {
			entry, sigs = sigs[:i], sigs[i+1:]
		} else {
			entry, sigs = sigs, ""
		}
		sig, ok := strings.CutPrefix(entry, "v1,")
		if !ok || len(sig) != macBase64Size {
			continue
		}
		n := copy(s.enc[:], sig)
		got, err := sigEncoding.Decode(s.dec[:], s.enc[:n])
		if err != nil || got != macSize {
			continue
		}
		if !*computed {
			s.prefix = append(append(append(append(s.prefix[:0], id...), '.'), ts...), '.')
			for i, m := range s.macs {
				m.Reset()
				m.Write(s.prefix)
				m.Write(body)
				m.Sum(s.sums[i][:0])
			}
			*computed = true
		}
		for i := range s.sums {
			if hmac.Equal(s.dec[:macSize], s.sums[i][:]) {
				return true
			}
		}
	}
	return false
}

// header returns the first value of a header stored under its canonical name (as net/http
// does) or, failing that, under its lowercase name (a header map built by hand).
func header(h http.Header, canonical, lower string) string {
	if v := h[canonical]; len(v) > 0 {
		return v[0]
	}
	if v := h[lower]; len(v) > 0 {
		return v[0]
	}
	return ""
}

func anyNonEmpty(values []string) bool {
	for _, v := range values {
		if v != "" {
			return true
		}
	}
	return false
}

// parseTimestamp reads a Unix time in seconds written as plain decimal digits: no sign, no
// spaces, as every Standard Webhooks sender writes it.
func parseTimestamp(s string) (int64, bool) {
	if len(s) == 0 || len(s) > maxTimestamp {
		return 0, false
	}
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return 0, false
		}
	}
	ts, err := strconv.ParseInt(s, 10, 64)
	return ts, err == nil
}

// seconds formats a whole number of seconds as a duration, saturating instead of overflowing.
func seconds(n uint64) time.Duration {
	if n > uint64(1<<63-1)/uint64(time.Second) {
		return time.Duration(1<<63 - 1).Truncate(time.Second)
	}
	return time.Duration(n) * time.Second
}

// Sign returns the v1 signature ("v1,<base64>") of a message under key: HMAC-SHA256 over
// id + "." + ts + "." + body, with ts in Unix seconds written in decimal.
func Sign(key []byte, id string, ts int64, body []byte) string {
	m := hmac.New(sha256.New, key)
	var buf [prefixGuess]byte
	p := append(buf[:0], id...)
	p = append(p, '.')
	p = strconv.AppendInt(p, ts, 10)
	p = append(p, '.')
	m.Write(p)
	m.Write(body)
	var sum [macSize]byte
	return "v1," + base64.StdEncoding.EncodeToString(m.Sum(sum[:0]))
}

// SignHeaders returns the headers of a delivery of body signed with secret ("whsec_<base64>")
// as message id at time ts, as Replicate would send them, with Content-Type application/json.
func SignHeaders(secret string, id string, ts time.Time, body []byte) (http.Header, error) {
	if id == "" {
		return nil, errors.New("webhook message id is required")
	}
	key, err := ParseSecret(secret)
	if err != nil {
		return nil, err
	}
	unix := ts.Unix()
	if unix < 0 {
		return nil, fmt.Errorf("webhook timestamp %s is before 1970", ts.UTC().Format(time.RFC3339))
	}
	h := make(http.Header, 4)
	h.Set(HeaderID, id)
	h.Set(HeaderTimestamp, strconv.FormatInt(unix, 10))
	h.Set(HeaderSignature, Sign(key, id, unix, body))
	h.Set("Content-Type", "application/json")
	return h, nil
}
