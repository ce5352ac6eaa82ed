package config

import (
	"time"

	"github.com/mlrelay/relay/relay/digest"
)

// Digest is one [digests.NAME] table: a message at scheduled times that sums up the events
// rules collect for it (rules name it in `digest`).
type Digest struct {
	// Name is the NAME of the table: lowercase letters, digits, "_" and "-".
	Name string `toml:"-"`
	// Schedule is when the digest goes out: a cron expression ("0 9 * * *": 09:00 every day;
	// "@daily", "@hourly", "@weekly") or an interval ("6h"). Required.
	Schedule string `toml:"schedule"`
	// Timezone is the IANA zone the schedule and the message's times are in. Default "UTC".
	Timezone string `toml:"timezone"`
	// Notify names the notifiers the digest goes to. Required.
	Notify []string `toml:"notify"`
	// Template is the template set that renders it. Default "digest".
	Template string `toml:"template"`
	// MaxItems bounds the models, error groups and trainings listed; the rest are counted.
	// Default 20.
	MaxItems int `toml:"max_items"`

	// Spec is the digest ready to run, set once the table is valid.
	Spec digest.Spec `toml:"-"`
}

func newDigest(name string) *Digest {
	return &Digest{Name: name, Timezone: "UTC", Template: "digest", MaxItems: digest.DefaultMaxItems}
}

func (l *loader) checkDigest(p path, c *Config, d *Digest) {
	loc, err := time.LoadLocation(d.Timezone)
	if err != nil || d.Timezone == "" || d.Timezone == "Local" {
		l.fail(p.add("timezone"), `unknown time zone %q (want an IANA name such as "Europe/Berlin", or "UTC")`, d.Timezone)
		loc = nil
	}
	var sched digest.Schedule
	switch {
	case d.Schedule == "":
		l.fail(p.add("schedule"), `is required (a cron expression such as "0 9 * * *", or an interval such as "6h")`)
	case loc != nil:
		if sched, err = digest.ParseSchedule(d.Schedule, loc); err != nil {
			l.fail(p.add("schedule"), "%v", err)
		}
	}
	if len(d.Notify) == 0 {
		l.fail(p.add("notify"), "names no notifier")
	}
	seen := map[string]bool{}
	for _, n := range d.Notify {
		switch {
		case seen[n]:
			l.fail(p.add("notify"), "%q is listed twice", n)
		case c.Notifiers[n] == nil:
			l.fail(p.add("notify"), "unknown notifier %q (defined: %s)", n, c.notifierNames())
		}
		seen[n] = true
	}
	if d.Template == "" {
		l.fail(p.add("template"), `is empty (the default is "digest")`)
	}
	if d.MaxItems < 1 || d.MaxItems > 1000 {
		l.fail(p.add("max_items"), "must be between 1 and 1000, got %d", d.MaxItems)
	}
	d.Spec = digest.Spec{Name: d.Name, Schedule: sched, Notify: d.Notify, Template: d.Template, MaxItems: d.MaxItems}
}
