package digest

import (
	"fmt"
	"strings"
	"time"

	"github.com/robfig/cron/v3"
)

// MinInterval is the shortest interval a schedule may have: a digest more often than that is a
// stream of notifications, which rules already do better.
const MinInterval = time.Minute

// Schedule says when a digest goes out: at the ticks of a cron expression read on the wall clock
// of a time zone, or every fixed interval. The zero Schedule has no ticks. A Schedule is a value
// and safe for concurrent use.
//
// Cron expressions follow the wall clock, with one rule for the hour that a change to or from
// daylight saving time skips or repeats: a time the clock skips (02:30 on the morning clocks go
// forward) fires once, when the clock jumps; a time it repeats (02:30 on the morning clocks go
// back) fires once, the first time. "0 9 * * *" is therefore at 09:00 every day, 23 or 25 hours
// apart around a change.
//
// Intervals are elapsed time, the same length whatever the clock says, counted from midnight on
// 1 January 2020 in the zone (a recent date: many zones kept another offset in 1970, which
// would put the ticks an odd hour off midnight), so that every process (and every restart)
// agrees on the ticks:
// "6h" in UTC is at 00:00, 06:00, 12:00 and 18:00. In a zone with daylight saving time the ticks
// stay six hours apart and move an hour on the wall clock in summer; for times of day that
// follow the clock, use a cron expression ("0 */6 * * *").
type Schedule struct {
	spec   string
	loc    *time.Location
	cron   *cron.SpecSchedule // read in UTC on wall-clock times; nil for an interval
	every  time.Duration      // the interval, or 0 for a cron expression
	anchor time.Time          // the first tick of an interval: 2020-01-01 00:00 in loc
}

// cronParser reads the five standard fields and the descriptors (@daily, @hourly, ...).
var cronParser = cron.NewParser(cron.Minute | cron.Hour | cron.Dom | cron.Month | cron.Dow | cron.Descriptor)

// ParseSchedule reads spec, in the time zone loc (UTC when nil), as one of:
//
//   - a cron expression of five fields, minute hour day-of-month month day-of-week:
//     "0 9 * * *" is 09:00 every day, "0 9 * * 1-5" on weekdays, "*/30 * * * *" every half hour;
//   - a descriptor: @hourly, @daily (or @midnight), @weekly (Sunday at midnight), @monthly,
//     @yearly (or @annually);
//   - an interval written as a Go duration, at least MinInterval: "6h", "90m", "every 6h" or
//     "@every 6h".
//
// The zone comes from loc only: a "TZ=" or "CRON_TZ=" prefix in spec is refused, so that one
// setting decides it. Errors name the spec.
func ParseSchedule(spec string, loc *time.Location) (Schedule, error) {
	if loc == nil {
		loc = time.UTC
	}
	s := Schedule{spec: spec, loc: loc}
	text := strings.TrimSpace(spec)
	lower := strings.ToLower(text)
	fail := func(format string, args ...any) (Schedule, error) {
		return Schedule{}, fmt.Errorf("schedule %q: %s", spec, fmt.Sprintf(format, args...))
	}
	switch {
	case text == "":
		return fail("empty (want a cron expression such as \"0 9 * * *\", a descriptor such as @daily, or an interval such as \"6h\")")
	case strings.HasPrefix(lower, "tz=") || strings.HasPrefix(lower, "cron_tz="):
		return fail("a time zone in the expression is not supported: set the digest's time zone instead")
	}
	if rest, ok := cutPrefixFold(text, "every "); ok {
		return s.interval(strings.TrimSpace(rest))
	}
	if rest, ok := cutPrefixFold(text, "@every "); ok {
		return s.interval(strings.TrimSpace(rest))
	}
	fields := strings.Fields(text)
	if len(fields) == 1 && !strings.HasPrefix(text, "@") {
		if _, err := time.ParseDuration(text); err != nil {
			return fail("neither an interval such as \"6h\" nor a cron expression of five fields such as \"0 9 * * *\"")
		}
		return s.interval(text)
	}
	parsed, err := cronParser.Parse(text)
	if err != nil {
		if strings.HasPrefix(text, "@") {
			return fail("unknown descriptor (want @hourly, @daily, @midnight, @weekly, @monthly, @yearly or @annually)")
		}
		return fail("%v", err)
	}
	spc, ok := parsed.(*cron.SpecSchedule)
	if !ok { // only @every gives another type, and it is handled above
		return fail("unsupported schedule")
	}
	// The expression is evaluated on wall-clock times written as UTC; see Schedule.
	spc.Location = time.UTC
	s.cron = spc
	// An expression such as "0 0 30 2 *" (30 February) is valid but never fires.
	if s.Next(time.Date(2000, 1, 1, 0, 0, 0, 0, time.UTC)).IsZero() {
		return fail("never fires")
	}
	return s, nil
}

// interval completes s as an interval schedule of the duration text.
func (s Schedule) interval(text string) (Schedule, error) {
	d, err := time.ParseDuration(text)
	if err != nil {
		return Schedule{}, fmt.Errorf("schedule %q: %w", s.spec, err)
	}
	if d < MinInterval {
		return Schedule{}, fmt.Errorf("schedule %q: interval %v is shorter than the minimum, %v", s.spec, d, MinInterval)
	}
	s.every = d
	s.anchor = time.Date(2020, 1, 1, 0, 0, 0, 0, s.loc)
	return s, nil
}

func cutPrefixFold(s, prefix string) (string, bool) {
	if len(s) >= len(prefix) && strings.EqualFold(s[:len(prefix)], prefix) {
		return s[len(prefix):], true
	}
	return s, false
}

// String is the spec the schedule was parsed from.
func (s Schedule) String() string { return s.spec }

// Location is the time zone the schedule is read in.
func (s Schedule) Location() *time.Location {
	if s.loc == nil {
		return time.UTC
	}
	return s.loc
}

// Interval is the interval of an interval schedule, or 0 for a cron expression.
func (s Schedule) Interval() time.Duration { return s.every }

// Next is the first tick strictly after after, in the schedule's zone. It is the zero time when
// there is none within five years (never for an interval or a schedule ParseSchedule accepted)
// and for the zero Schedule.
func (s Schedule) Next(after time.Time) time.Time {
	switch {
	case s.every > 0:
		k := s.ticksUntil(after)
		return s.anchor.Add(time.Duration(k) * s.every).Add(s.every).In(s.loc)
	case s.cron != nil:
		return s.cronNext(after)
	}
	return time.Time{}
}

// Prev is the last tick at or before at, in the schedule's zone: the end of the period that
// ended most recently. It is the zero time when there is none within the five years before at.
func (s Schedule) Prev(at time.Time) time.Time {
	switch {
	case s.every > 0:
		k := s.ticksUntil(at)
		return s.anchor.Add(time.Duration(k) * s.every).In(s.loc)
	case s.cron != nil:
		// Walk forward from ever earlier starts: ticks are found only by Next, so Prev agrees
		// with Next on every tick, whatever the clock changes in between.
		for _, back := range []time.Duration{time.Hour, 25 * time.Hour, 8 * 24 * time.Hour, 32 * 24 * time.Hour, 367 * 24 * time.Hour, 5 * 367 * 24 * time.Hour} {
			var last time.Time
			for t := s.Next(at.Add(-back)); !t.IsZero() && !t.After(at); t = s.Next(t) {
				last = t
			}
			if !last.IsZero() {
				return last
			}
		}
	}
	return time.Time{}
}

// Due reports the tick a digest should go out for by now, given the tick it last went out for:
// the latest tick after last and at or before now. ok is false when no tick has passed since
// last. Ticks missed while the relay was down collapse into the latest one, so a digest three
// days late is sent once, at start-up, covering the three days. A zero last means never sent:
// the latest tick is due. Recording the tick rather than the time of sending keeps the periods
// back to back.
func (s Schedule) Due(last, now time.Time) (tick time.Time, ok bool) {
	p := s.Prev(now)
	if p.IsZero() || !p.After(last) {
		return time.Time{}, false
	}
	return p, true
}

// ticksUntil is the number of whole intervals from the anchor to t, rounded down (negative
// before the anchor).
func (s Schedule) ticksUntil(t time.Time) int64 {
	elapsed := t.Sub(s.anchor)
	k := int64(elapsed / s.every)
	if elapsed < 0 && elapsed%s.every != 0 {
		k--
	}
	return k
}

// cronNext finds the next tick on the wall clock: the expression runs over wall-clock times
// written as UTC, and each wall-clock tick is then placed on the real clock of the zone.
func (s Schedule) cronNext(after time.Time) time.Time {
	w := wallClock(after.In(s.loc))
	for {
		w = s.cron.Next(w)
		if w.IsZero() {
			return time.Time{}
		}
		// A wall-clock tick in the hour repeated when clocks go back, already past as its first
		// occurrence, is skipped: each wall-clock time fires once.
		if t := s.instant(w); t.After(after) {
			return t
		}
	}
}

// wallClock is the wall-clock reading of t, written as a UTC time.
func wallClock(t time.Time) time.Time {
	return time.Date(t.Year(), t.Month(), t.Day(), t.Hour(), t.Minute(), t.Second(), t.Nanosecond(), time.UTC)
}

// instant places the wall-clock time w on the real clock of the schedule's zone. A time that
// does not exist (skipped when clocks go forward) is the instant the clock jumped over it; a
// time that exists twice (repeated when clocks go back) is its first occurrence.
func (s Schedule) instant(w time.Time) time.Time {
	t := time.Date(w.Year(), w.Month(), w.Day(), w.Hour(), w.Minute(), w.Second(), w.Nanosecond(), s.loc)
	if got := wallClock(t); !got.Equal(w) {
		// Skipped: time.Date gave a reading on one side of the jump; the jump is the boundary
		// of that reading's zone period.
		start, end := t.ZoneBounds()
		if got.After(w) {
			return start
		}
		return end
	}
	start, _ := t.ZoneBounds()
	if start.IsZero() {
		return t
	}
	_, before := start.Add(-time.Second).Zone()
	_, now := t.Zone()
	if back := time.Duration(before-now) * time.Second; back > 0 {
		if first := t.Add(-back); wallClock(first).Equal(w) {
			return first
		}
	}
	return t
}
