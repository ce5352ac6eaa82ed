package config

import (
	"bytes"
	"encoding/json"
	"fmt"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/BurntSushi/toml"
)

func TestSecretNeverPrinted(t *testing.T) {
	const value = "xoxb-SECRETVALUE"
	s := Secret(value)
	type holder struct {
		Token Secret
		Name  string
	}
	h := holder{Token: s, Name: "n"}

	var logText, logJSON bytes.Buffer
	slog.New(slog.NewTextHandler(&logText, nil)).Info("m", "token", s, "holder", h)
	slog.New(slog.NewJSONHandler(&logJSON, nil)).Info("m", "token", s, "holder", h)
	jsonOut, err := json.Marshal(h)
	if err != nil {
		t.Fatal(err)
	}
	text, err := s.MarshalText()
	if err != nil {
		t.Fatal(err)
	}
	var tomlOut bytes.Buffer
	if err := toml.NewEncoder(&tomlOut).Encode(h); err != nil {
		t.Fatal(err)
	}

	outputs := map[string]string{
		"%v":          fmt.Sprintf("%v", s),
		"%s":          fmt.Sprintf("%s", s),
		"%q":          fmt.Sprintf("%q", s),
		"%x":          fmt.Sprintf("%x", s),
		"%d":          fmt.Sprintf("%d", s),
		"%+v struct":  fmt.Sprintf("%+v", h),
		"%#v struct":  fmt.Sprintf("%#v", h),
		"%v pointer":  fmt.Sprintf("%v", &h),
		"String":      s.String(),
		"GoString":    s.GoString(),
		"MarshalText": string(text),
		"json":        string(jsonOut),
		"toml":        tomlOut.String(),
		"slog text":   logText.String(),
		"slog json":   logJSON.String(),
		"error":       fmt.Errorf("wrapped %v: %w", s, fmt.Errorf("%s", s)).Error(),
	}
	for name, out := range outputs {
		t.Run(name, func(t *testing.T) {
			if strings.Contains(out, "SECRETVALUE") {
				t.Errorf("shows the secret: %s", out)
			}
			if !strings.Contains(out, "[redacted]") {
				t.Errorf("does not say [redacted]: %s", out)
			}
		})
	}
	if s.Reveal() != value {
		t.Errorf("Reveal() = %q, want %q", s.Reveal(), value)
	}
}

func TestSecretEmpty(t *testing.T) {
	var s Secret
	j, _ := json.Marshal(s)
	for name, out := range map[string]string{
		"%v":   fmt.Sprintf("%v", s),
		"%q":   fmt.Sprintf("%q", s),
		"json": string(j),
		"slog": s.LogValue().String(),
	} {
		if strings.Contains(out, "redacted") {
			t.Errorf("%s of an empty secret = %s, want it to look empty", name, out)
		}
	}
}

func TestDuration(t *testing.T) {
	tests := []struct {
		in   string
		want time.Duration
		text string
	}{
		{"5m", 5 * time.Minute, "5m"},
		{"72h", 72 * time.Hour, "72h"},
		{"1h30m", 90 * time.Minute, "1h30m"},
		{"90s", 90 * time.Second, "1m30s"},
		{"1h0m5s", time.Hour + 5*time.Second, "1h0m5s"},
		{"250ms", 250 * time.Millisecond, "250ms"},
		{" 10s ", 10 * time.Second, "10s"},
		{"0s", 0, "0s"},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			var d Duration
			if err := d.UnmarshalText([]byte(tt.in)); err != nil {
				t.Fatal(err)
			}
			if d.D() != tt.want {
				t.Errorf("D() = %v, want %v", d.D(), tt.want)
			}
			if d.String() != tt.text {
				t.Errorf("String() = %q, want %q", d.String(), tt.text)
			}
			var back Duration
			if err := back.UnmarshalText([]byte(d.String())); err != nil || back != d {
				t.Errorf("round trip of %q gave %v, %v", d.String(), back, err)
			}
		})
	}
	for _, bad := range []string{"", "5", "5 minutes", "7d", "1w", "m"} {
		t.Run("bad "+bad, func(t *testing.T) {
			var d Duration
			err := d.UnmarshalText([]byte(bad))
			if err == nil {
				t.Fatalf("%q: no error", bad)
			}
			if strings.ContainsAny(bad, "dw") && !strings.Contains(err.Error(), `"168h"`) {
				t.Errorf("%q: error %v does not suggest hours", bad, err)
			}
		})
	}
}

func TestSize(t *testing.T) {
	tests := []struct {
		in   string
		want Size
		text string
	}{
		{"10MiB", 10 << 20, "10MiB"},
		{"512KiB", 512 << 10, "512KiB"},
		{"1MB", 1_000_000, "1MB"},
		{"1GiB", 1 << 30, "1GiB"},
		{"2TB", 2e12, "2TB"},
		{"1500", 1500, "1500B"},
		{"1500B", 1500, "1500B"},
		{"10 mib", 10 << 20, "10MiB"},
		{"2048KiB", 2 << 20, "2MiB"},
		{"0", 0, "0B"},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			var s Size
			if err := s.UnmarshalText([]byte(tt.in)); err != nil {
				t.Fatal(err)
			}
			if s != tt.want || s.String() != tt.text {
				t.Errorf("got %d %q, want %d %q", s, s.String(), tt.want, tt.text)
			}
		})
	}
	for _, bad := range []string{"", "MiB", "-1", "1.5MiB", "10M", "10 megs", "9999999999TiB", "99999999999999999999"} {
		t.Run("bad "+bad, func(t *testing.T) {
			var s Size
			if err := s.UnmarshalText([]byte(bad)); err == nil {
				t.Errorf("%q: no error, got %d", bad, s)
			}
		})
	}
}
