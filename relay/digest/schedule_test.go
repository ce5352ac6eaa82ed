package digest

import (
	"math/rand/v2"
	"strings"
	"testing"
	"time"
)

func berlin(t testing.TB) *time.Location {
	t.Helper()
	loc, err := time.LoadLocation("Europe/Berlin")
	if err != nil {
		t.Skipf("no time zone database: %v", err)
	}
	return loc
}

func mustParse(t testing.TB, spec string, loc *time.Location) Schedule {
	t.Helper()
	s, err := ParseSchedule(spec, loc)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func TestParseSchedule(t *testing.T) {
	from := time.Date(2025, 11, 21, 10, 17, 0, 0, time.UTC) // a Friday
	tests := []struct {
		spec string
		next string // the first tick after from, in UTC
	}{
		{"0 9 * * *", "2025-11-22T09:00:00Z"},
		{"  0 9 * * *  ", "2025-11-22T09:00:00Z"},
		{"0 9 * * 1-5", "2025-11-24T09:00:00Z"},
		{"*/30 * * * *", "2025-11-21T10:30:00Z"},
		{"@daily", "2025-11-22T00:00:00Z"},
		{"@midnight", "2025-11-22T00:00:00Z"},
		{"@hourly", "2025-11-21T11:00:00Z"},
		{"@weekly", "2025-11-23T00:00:00Z"},
		{"@monthly", "2025-12-01T00:00:00Z"},
		{"@yearly", "2026-01-01T00:00:00Z"},
		{"6h", "2025-11-21T12:00:00Z"},
		{"every 6h", "2025-11-21T12:00:00Z"},
		{"Every 6h", "2025-11-21T12:00:00Z"},
		{"@every 6h", "2025-11-21T12:00:00Z"},
		{"90m", "2025-11-21T10:30:00Z"},
		{"1m", "2025-11-21T10:18:00Z"},
		{"0 0 29 2 *", "2028-02-29T00:00:00Z"},
	}
	for _, tt := range tests {
		t.Run(tt.spec, func(t *testing.T) {
			s := mustParse(t, tt.spec, nil)
			if got := s.Next(from).UTC().Format(time.RFC3339); got != tt.next {
				t.Errorf("Next = %s, want %s", got, tt.next)
			}
			if s.String() != tt.spec || s.Location() != time.UTC {
				t.Errorf("String, Location = %q, %v", s.String(), s.Location())
			}
		})
	}
}

func TestParseScheduleErrors(t *testing.T) {
	tests := []struct{ spec, want string }{
		{"", "empty"},
		{"   ", "empty"},
		{"daily", `neither an interval such as "6h" nor a cron expression`},
		{"6", `neither an interval`},
		{"@dayly", "unknown descriptor"},
		{"@reboot", "unknown descriptor"},
		{"0 25 * * *", "above maximum"},
		{"0 9 * *", "expected exactly 5 fields"},
		{"0 0 9 * * *", "expected exactly 5 fields"},
		{"0 0 30 2 *", "never fires"},
		{"every six hours", "invalid duration"},
		{"every 30s", "shorter than the minimum, 1m0s"},
		{"-1h", "shorter than the minimum"},
		{"TZ=Europe/Berlin 0 9 * * *", "set the digest's time zone instead"},
		{"CRON_TZ=UTC", "set the digest's time zone instead"}, // robfig/cron panics on this one
	}
	for _, tt := range tests {
		t.Run(tt.spec, func(t *testing.T) {
			_, err := ParseSchedule(tt.spec, nil)
			if err == nil {
				t.Fatal("no error")
			}
			if !strings.HasPrefix(err.Error(), "schedule "+`"`+tt.spec+`"`) || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("error = %q, want it to name the spec and say %q", err, tt.want)
			}
		})
	}
}

// ticks lists the ticks of s from after, n of them.
func ticks(s Schedule, after time.Time, n int) []time.Time {
	var out []time.Time
	for t := after; len(out) < n; {
		t = s.Next(t)
		out = append(out, t)
	}
	return out
}

func formatAll(ts []time.Time) string {
	var out []string
	for _, t := range ts {
		out = append(out, t.Format("2006-01-02 15:04 MST"))
	}
	return strings.Join(out, ", ")
}

// TestDailyAt0900AcrossDST is the example config's schedule: 09:00 on the wall clock every
// day, so 23 hours apart when clocks go forward and 25 when they go back.
func TestDailyAt0900AcrossDST(t *testing.T) {
	loc := berlin(t)
	s := mustParse(t, "0 9 * * *", loc)
	tests := []struct {
		name  string
		after time.Time
		want  string
		gap   time.Duration // between the first two ticks
	}{
		{"clocks go forward", time.Date(2025, 3, 29, 9, 0, 0, 0, loc),
			"2025-03-30 09:00 CEST, 2025-03-31 09:00 CEST", 23 * time.Hour},
		{"clocks go back", time.Date(2025, 10, 25, 9, 0, 0, 0, loc),
			"2025-10-26 09:00 CET, 2025-10-27 09:00 CET", 25 * time.Hour},
		{"an ordinary day", time.Date(2025, 11, 21, 12, 0, 0, 0, loc),
			"2025-11-22 09:00 CET, 2025-11-23 09:00 CET", 21 * time.Hour},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := ticks(s, tt.after, 2)
			if formatAll(got) != tt.want {
				t.Errorf("ticks = %s, want %s", formatAll(got), tt.want)
			}
			if gap := got[0].Sub(tt.after); gap != tt.gap {
				t.Errorf("first tick %v after the last one, want %v", gap, tt.gap)
			}
			if got[0].Location() != loc {
				t.Errorf("tick in %v, want the schedule's zone", got[0].Location())
			}
		})
	}
}

// TestCronAcrossDST checks the rule for the hour a change skips or repeats: a skipped time
// fires when the clock jumps, a repeated one fires once.
func TestCronAcrossDST(t *testing.T) {
	loc := berlin(t)
	spring := time.Date(2025, 3, 29, 23, 0, 0, 0, loc)  // clocks go 02:00 → 03:00 on the 30th
	autumn := time.Date(2025, 10, 25, 23, 0, 0, 0, loc) // clocks go 03:00 → 02:00 on the 26th
	tests := []struct {
		spec  string
		after time.Time
		n     int
		want  string
	}{
		{"30 2 * * *", spring, 2, "2025-03-30 03:00 CEST, 2025-03-31 02:30 CEST"},
		{"30 2 * * *", autumn, 2, "2025-10-26 02:30 CEST, 2025-10-27 02:30 CET"},
		{"@hourly", spring, 4, "2025-03-30 00:00 CET, 2025-03-30 01:00 CET, 2025-03-30 03:00 CEST, 2025-03-30 04:00 CEST"},
		{"@hourly", autumn.Add(2 * time.Hour), 3, "2025-10-26 02:00 CEST, 2025-10-26 03:00 CET, 2025-10-26 04:00 CET"},
		{"*/30 * * * *", spring.Add(2 * time.Hour), 4, "2025-03-30 01:30 CET, 2025-03-30 03:00 CEST, 2025-03-30 03:30 CEST, 2025-03-30 04:00 CEST"},
		{"0 9 * * *", spring, 1, "2025-03-30 09:00 CEST"},
		{"@daily", spring, 2, "2025-03-30 00:00 CET, 2025-03-31 00:00 CEST"},
	}
	for _, tt := range tests {
		t.Run(tt.spec+" "+tt.after.Format("Jan"), func(t *testing.T) {
			if got := formatAll(ticks(mustParse(t, tt.spec, loc), tt.after, tt.n)); got != tt.want {
				t.Errorf("ticks = %s\nwant    %s", got, tt.want)
			}
		})
	}

	// During the repeated hour itself, the next 02:30 is tomorrow's: today's fired already.
	s := mustParse(t, "30 2 * * *", loc)
	second := time.Date(2025, 10, 26, 1, 15, 0, 0, time.UTC) // 02:15 CET, the second time round
	if got := s.Next(second).Format("2006-01-02 15:04 MST"); got != "2025-10-27 02:30 CET" {
		t.Errorf("Next during the repeated hour = %s", got)
	}
}

// TestIntervalAnchored checks that intervals are counted from midnight on 1 January 2020 in the
// zone, in elapsed time, so that two processes, started at different times, agree.
func TestIntervalAnchored(t *testing.T) {
	// Zones whose offset in 1970 differs from today's (London kept summer time all year; Istanbul
	// and Kathmandu moved since): "24h" is at midnight on their winter clocks all the same.
	for _, tz := range []string{"Europe/London", "Europe/Istanbul", "Asia/Kathmandu"} {
		zone, err := time.LoadLocation(tz)
		if err != nil {
			t.Fatal(err)
		}
		tick := mustParse(t, "24h", zone).Next(time.Date(2025, 11, 21, 10, 0, 0, 0, zone))
		if h, m, _ := tick.Clock(); h != 0 || m != 0 {
			t.Errorf("24h in %s fires at %s, want midnight", tz, tick.Format("15:04 MST"))
		}
	}
	loc := berlin(t)
	utc6h := mustParse(t, "6h", time.UTC)
	if got := formatAll(ticks(utc6h, time.Date(2025, 11, 21, 10, 17, 3, 5, time.UTC), 4)); got != "2025-11-21 12:00 UTC, 2025-11-21 18:00 UTC, 2025-11-22 00:00 UTC, 2025-11-22 06:00 UTC" {
		t.Errorf("6h in UTC: %s", got)
	}
	s := mustParse(t, "every 6h", loc)
	// Winter: on the wall clock at midnight, 6, 12 and 18; summer, an hour later; always six
	// hours apart, across the change too.
	if got := formatAll(ticks(s, time.Date(2025, 3, 29, 19, 0, 0, 0, loc), 4)); got != "2025-03-30 00:00 CET, 2025-03-30 07:00 CEST, 2025-03-30 13:00 CEST, 2025-03-30 19:00 CEST" {
		t.Errorf("6h in Berlin: %s", got)
	}
	prev := time.Time{}
	for _, tk := range ticks(s, time.Date(2025, 10, 25, 0, 0, 0, 0, loc), 12) {
		if !prev.IsZero() && tk.Sub(prev) != 6*time.Hour {
			t.Errorf("ticks %v and %v are %v apart", prev, tk, tk.Sub(prev))
		}
		prev = tk
	}
	// Two processes parse the schedule at different times and ask at different times.
	a, b := mustParse(t, "90m", loc), mustParse(t, "90m", loc)
	at := time.Date(2025, 6, 1, 12, 34, 0, 0, time.UTC)
	if !a.Next(at).Equal(b.Next(at.Add(-time.Minute))) {
		t.Errorf("two parses disagree: %v, %v", a.Next(at), b.Next(at.Add(-time.Minute)))
	}
	// Before the anchor too.
	old := time.Date(1969, 12, 31, 20, 0, 0, 0, time.UTC)
	if got := utc6h.Next(old); !got.Equal(time.Date(1970, 1, 1, 0, 0, 0, 0, time.UTC)) {
		t.Errorf("Next before the anchor = %v", got)
	}
	if got := utc6h.Prev(old); !got.Equal(time.Date(1969, 12, 31, 18, 0, 0, 0, time.UTC)) {
		t.Errorf("Prev before the anchor = %v", got)
	}
}

// TestPrevAgreesWithNext checks, at random times over two years, that Prev is the last tick at
// or before a time and Next the first after it, for every kind of schedule, across clock
// changes.
func TestPrevAgreesWithNext(t *testing.T) {
	loc := berlin(t)
	specs := []string{"0 9 * * *", "30 2 * * *", "@hourly", "*/15 * * * *", "0 9 * * 1-5", "@monthly", "6h", "90m", "0 0 29 2 *"}
	rng := rand.New(rand.NewPCG(1, 2))
	start := time.Date(2024, 1, 1, 0, 0, 0, 0, loc)
	for _, spec := range specs {
		t.Run(spec, func(t *testing.T) {
			s := mustParse(t, spec, loc)
			for range 300 {
				at := start.Add(time.Duration(rng.Int64N(int64(2 * 365 * 24 * time.Hour))))
				p, n := s.Prev(at), s.Next(at)
				if p.IsZero() || p.After(at) || !n.After(at) {
					t.Fatalf("at %v: Prev %v, Next %v", at, p, n)
				}
				if !s.Next(p).Equal(n) {
					t.Fatalf("at %v: Next(Prev) = %v, want %v", at, s.Next(p), n)
				}
				if !s.Prev(n).Equal(n) || !s.Prev(n.Add(-time.Nanosecond)).Equal(p) {
					t.Fatalf("at %v: Prev(Next) = %v, Prev(just before Next) = %v", at, s.Prev(n), s.Prev(n.Add(-time.Nanosecond)))
				}
			}
		})
	}
}

// TestDue is what the sender asks at start-up and at each wake-up: has a tick passed since the
// digest last went out?
func TestDue(t *testing.T) {
	loc := berlin(t)
	s := mustParse(t, "0 9 * * *", loc)
	sent := time.Date(2025, 11, 20, 9, 0, 0, 0, loc)
	tests := []struct {
		name string
		last time.Time
		now  time.Time
		want time.Time // zero: not due
	}{
		{"just sent", sent, sent, time.Time{}},
		{"a minute before the next", sent, time.Date(2025, 11, 21, 8, 59, 0, 0, loc), time.Time{}},
		{"on the tick", sent, time.Date(2025, 11, 21, 9, 0, 0, 0, loc), time.Date(2025, 11, 21, 9, 0, 0, 0, loc)},
		{"later that day", sent, time.Date(2025, 11, 21, 17, 0, 0, 0, loc), time.Date(2025, 11, 21, 9, 0, 0, 0, loc)},
		{"down for three days", sent, time.Date(2025, 11, 23, 18, 0, 0, 0, loc), time.Date(2025, 11, 23, 9, 0, 0, 0, loc)},
		{"never sent", time.Time{}, time.Date(2025, 11, 23, 8, 0, 0, 0, loc), time.Date(2025, 11, 22, 9, 0, 0, 0, loc)},
		{"sent late, after the tick", time.Date(2025, 11, 21, 9, 3, 0, 0, loc), time.Date(2025, 11, 21, 12, 0, 0, 0, loc), time.Time{}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, ok := s.Due(tt.last, tt.now)
			if ok != !tt.want.IsZero() || !got.Equal(tt.want) {
				t.Errorf("Due = %v, %v; want %v", got, ok, tt.want)
			}
		})
	}
	if _, ok := (Schedule{}).Due(time.Time{}, sent); ok {
		t.Error("the zero Schedule is due")
	}
}
