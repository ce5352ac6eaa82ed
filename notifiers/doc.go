// Package notifiers holds the relay.Notifier implementations: one file per destination (Slack,
// Discord, email, the console), each building its provider's payload as typed structs and classifying its own
// failures with relay.Permanent, relay.Retryable and relay.RateLimited so that the dispatcher only
// has to obey. Destination URLs and tokens are secrets: no error returned by this package contains
// them.
package notifiers
