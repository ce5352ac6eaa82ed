package main

import (
	"os"
	"runtime/debug"
)

// The relay's garbage-collector settings, unless GOGC or GOMEMLIMIT say otherwise. Its live
// heap is small (tens of MB) while every webhook allocates its body and a parse of it, so the
// default GOGC=100 collects several times a second for little gain. Letting the heap grow to
// five times the live data halves the collector's share of the CPU under load; the soft limit
// makes the collector work harder before the process grows past it.
const (
	gcPercent = 400
	gcLimit   = 256 << 20
)

// tuneGC applies the settings above where the environment does not set its own.
func tuneGC() {
	if os.Getenv("GOGC") == "" {
		debug.SetGCPercent(gcPercent)
	}
	if os.Getenv("GOMEMLIMIT") == "" {
		debug.SetMemoryLimit(gcLimit)
	}
}
