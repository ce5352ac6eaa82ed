package config

import (
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"math"
	"strconv"
	"strings"
	"time"
)

// Duration is a time.Duration written in TOML as a string such as "90s", "5m" or "72h".
type Duration time.Duration

// D returns d as a time.Duration.
func (d Duration) D() time.Duration { return time.Duration(d) }

// String formats d compactly: "72h" rather than "72h0m0s".
func (d Duration) String() string {
	s := time.Duration(d).String()
	if strings.HasSuffix(s, "m0s") {
		s = s[:len(s)-2]
	}
	if strings.HasSuffix(s, "h0m") {
		s = s[:len(s)-2]
	}
	return s
}

// MarshalText implements encoding.TextMarshaler.
func (d Duration) MarshalText() ([]byte, error) { return []byte(d.String()), nil }

// UnmarshalText implements encoding.TextUnmarshaler.
func (d *Duration) UnmarshalText(b []byte) error {
	v, err := parseDuration(string(b))
	if err != nil {
		return err
	}
	*d = v
	return nil
}

func parseDuration(s string) (Duration, error) {
	v, err := time.ParseDuration(strings.TrimSpace(s))
	if err != nil {
		hint := ""
		if strings.ContainsAny(s, "dDwW") {
			hint = `; there is no day unit, write "168h" for a week`
		}
		return 0, fmt.Errorf("bad duration %q (want a number and a unit: ms, s, m or h, such as \"90s\", \"5m\" or \"72h\"%s)", s, hint)
	}
	return Duration(v), nil
}

// Size is a number of bytes, written in TOML as an integer of bytes or as a string with a unit:
// "512KiB", "10MiB", "1GiB" (powers of 1024) or "500KB", "1MB", "1GB" (powers of 1000).
type Size int64

// sizeUnits are the units a Size may be written in.
var sizeUnits = []struct {
	name string
	n    int64
}{
	{"TiB", 1 << 40}, {"GiB", 1 << 30}, {"MiB", 1 << 20}, {"KiB", 1 << 10},
	{"TB", 1e12}, {"GB", 1e9}, {"MB", 1e6}, {"KB", 1e3},
	{"B", 1},
}

// String formats s in the largest unit that divides it exactly, such as "10MiB", "2TB" or
// "1500B".
func (s Size) String() string {
	best := sizeUnits[len(sizeUnits)-1] // B
	for _, u := range sizeUnits {
		if s != 0 && int64(s)%u.n == 0 && u.n > best.n {
			best = u
		}
	}
	return strconv.FormatInt(int64(s)/best.n, 10) + best.name
}

// MarshalText implements encoding.TextMarshaler.
func (s Size) MarshalText() ([]byte, error) { return []byte(s.String()), nil }

// UnmarshalText implements encoding.TextUnmarshaler.
func (s *Size) UnmarshalText(b []byte) error {
	v, err := parseSize(string(b))
	if err != nil {
		return err
	}
	*s = v
	return nil
}

func parseSize(text string) (Size, error) {
	bad := fmt.Errorf(`bad size %q (want a whole number of bytes, or one with a unit: KiB, MiB, GiB, TiB, KB, MB, GB, TB, such as "10MiB")`, text)
	s := strings.TrimSpace(text)
	i := 0
	for i < len(s) && s[i] >= '0' && s[i] <= '9' {
		i++
	}
	if i == 0 {
		return 0, bad
	}
	n, err := strconv.ParseInt(s[:i], 10, 64)
	if err != nil {
		return 0, bad
	}
	unit := strings.TrimSpace(s[i:])
	if unit == "" {
		return Size(n), nil
	}
	for _, u := range sizeUnits {
		if strings.EqualFold(unit, u.name) {
			if n > math.MaxInt64/u.n {
				return 0, fmt.Errorf("size %q is too large", text)
			}
			return Size(n * u.n), nil
		}
	}
	return 0, bad
}

// Secret is a string that must never be shown: a signing secret, a token or a webhook URL.
// Every way of printing or encoding it (fmt with any verb, JSON, text, TOML, slog) gives
// "[redacted]", or "" when it is empty, so that whether it is set stays visible.
// Reveal returns the value for the one place that needs it.
type Secret string

const redacted = "[redacted]"

// Reveal returns the secret's value. Call it only to hand the value to the client that uses it.
func (s Secret) Reveal() string { return string(s) }

// String implements fmt.Stringer.
func (s Secret) String() string {
	if s == "" {
		return ""
	}
	return redacted
}

// GoString implements fmt.GoStringer.
func (s Secret) GoString() string { return s.String() }

// Format implements fmt.Formatter, so that no verb (not even %d or %x, which would otherwise
// print the underlying string) shows the value.
func (s Secret) Format(f fmt.State, verb rune) {
	if verb == 'q' {
		_, _ = io.WriteString(f, strconv.Quote(s.String()))
		return
	}
	_, _ = io.WriteString(f, s.String())
}

// MarshalText implements encoding.TextMarshaler.
func (s Secret) MarshalText() ([]byte, error) { return []byte(s.String()), nil }

// MarshalJSON implements json.Marshaler.
func (s Secret) MarshalJSON() ([]byte, error) { return json.Marshal(s.String()) }

// LogValue implements slog.LogValuer.
func (s Secret) LogValue() slog.Value { return slog.StringValue(s.String()) }
