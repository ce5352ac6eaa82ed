// Package digest is the pure core of digests: when one is due (Schedule), what each event
// leaves in it (Item), how failures are grouped (Fingerprint), and the summary a digest's
// templates render (Build). It keeps no state and reads no clock: storing items, and sending a
// digest when Schedule.Due says so, are the caller's job.
//
// The package imports relay (for Event), so relay itself cannot import it: the digest sender
// belongs in this package or beside it, not in package relay.
package digest
