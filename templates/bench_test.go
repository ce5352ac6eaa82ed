package templates

import (
	"strings"
	"testing"

	"github.com/mlrelay/relay/relay"
)

// benchLogs is about 8 KiB of log lines, as a failed run sends them.
var benchLogs = strings.Repeat("100%|██████████| 50/50 [00:08<00:00,  5.60it/s] step done\n", 128)[:8<<10] +
	"Traceback (most recent call last):\n  File \"/src/predict.py\", line 412, in predict\nException: NSFW content detected.\n"

// BenchmarkRender renders the default set for each target with two terminal events: a
// succeeded prediction with two images, and a failed one with about 8 KiB of logs. Besides the
// wall time it reports the process's CPU time per render (cpu-ns/op, GC included), which a busy
// machine disturbs less.
func BenchmarkRender(b *testing.B) {
	set, err := Load("")
	if err != nil {
		b.Fatal(err)
	}
	events := []struct {
		name string
		ev   *relay.Event
	}{
		{"succeeded", event(b, "prediction-succeeded.json", nil)},
		{"failed", event(b, "prediction-failed.json", map[string]any{"logs": benchLogs})},
	}
	for _, target := range Targets() {
		for _, e := range events {
			b.Run(target+"/"+e.name, func(b *testing.B) {
				b.ReportAllocs()
				cpu0 := cpuTime()
				for b.Loop() {
					if _, err := set.Render("default", target, e.ev); err != nil {
						b.Fatal(err)
					}
				}
				if cpu := cpuTime() - cpu0; cpu > 0 {
					b.ReportMetric(float64(cpu.Nanoseconds())/float64(b.N), "cpu-ns/op")
				}
			})
		}
	}
}
