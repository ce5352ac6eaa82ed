package digest

import (
	"cmp"
	"math"
	"slices"
	"time"

	"github.com/mlrelay/relay/relay"
	"github.com/mlrelay/relay/relay/replicate"
)

// DefaultMaxItems is the limit Build applies when it is given none.
const DefaultMaxItems = 20

// MaxLinksPerGroup is the most runs an error group links to (fewer when the limit is lower).
const MaxLinksPerGroup = 5

// Summary is what a digest says about its items: the counts, the failures grouped, and the
// trainings. Strings in it are as the payloads held them, not escaped.
//
// Failures are runs that failed or were aborted (their deadline passed before they started).
// Canceled runs are not failures, since someone chose to stop them; they are counted in the
// totals only. Failed predictions are grouped by model and error; failed trainings are listed
// with the other trainings, and both count towards the compute time lost.
type Summary struct {
	// Name is the digest's name.
	Name string
	// From and To bound the period the digest covers, in the digest's time zone. They label
	// it: Build counts every item it is given, whatever its time.
	From, To time.Time
	// Total is the number of runs (each id counted once).
	Total int
	// ByStatus counts the runs by status, in lifecycle order, leaving out statuses with none.
	ByStatus []StatusCount
	// ByKind counts the runs by kind, predictions first, leaving out kinds with none.
	ByKind []KindCount

	// FailedPredictions and FailedTrainings count the runs that failed or were aborted.
	FailedPredictions, FailedTrainings int
	// FailedModels is the number of models with at least one failed prediction.
	FailedModels int
	// LostTime is the compute time (metrics.predict_time) of the failed runs, predictions and
	// trainings.
	LostTime time.Duration

	// Models are the models with failed predictions, most failures first, then by name; at
	// most the limit of them, and, across them, at most the limit of error groups.
	Models []ModelFailures
	// MoreModels is the number of models with failures left out of Models, and
	// MoreModelFailures the number of their failures.
	MoreModels, MoreModelFailures int

	// Trainings are the trainings, of every status, in the order they ended; at most the limit.
	Trainings []Item
	// MoreTrainings is the number of trainings left out of Trainings.
	MoreTrainings int

	// Limit is the limit the lists were held to.
	Limit int
}

// StatusCount is the number of runs with one status.
type StatusCount struct {
	Status replicate.Status
	Count  int
}

// KindCount is the number of runs of one kind, and how many of them have each status.
type KindCount struct {
	Kind     relay.Kind
	Count    int
	ByStatus []StatusCount
}

// ModelFailures are one model's failed predictions, grouped by error.
type ModelFailures struct {
	// Model is the model (Item.Subject).
	Model string
	// Failures is the number of failed predictions of the model, listed or not.
	Failures int
	// LostTime is their compute time.
	LostTime time.Duration
	// Groups are the failures grouped by error, biggest first, then by fingerprint.
	Groups []ErrorGroup
	// MoreGroups is the number of groups left out of Groups, and MoreFailures the number of
	// failures in them.
	MoreGroups, MoreFailures int
}

// ErrorGroup is the failures of one model with the same error fingerprint.
type ErrorGroup struct {
	// Fingerprint is the errors' fingerprint ("" when they have no error message).
	Fingerprint string
	// Aborted is true for a group of aborted runs, whose deadline passed before they started;
	// they are grouped apart from failed runs.
	Aborted bool
	// Example is the error line of the latest failure in the group, or "".
	Example string
	// Count is the number of failures in the group.
	Count int
	// First and Last are when the earliest and the latest failure ended.
	First, Last time.Time
	// LostTime is the failures' compute time.
	LostTime time.Duration
	// Runs are the latest failures, latest first, for links: at most MaxLinksPerGroup, and
	// no more than the limit.
	Runs []Item
	// MoreRuns is the number of failures left out of Runs.
	MoreRuns int
}

// Empty reports whether the digest has no runs at all, in which case it is not sent.
func (s *Summary) Empty() bool { return s.Total == 0 }

// Failures is the number of failed runs, predictions and trainings.
func (s *Summary) Failures() int { return s.FailedPredictions + s.FailedTrainings }

// Build summarises items for the digest name over the period from..to. maxItems limits the
// models, the error groups (across all models) and the trainings listed, and the links of each
// group (to at most MaxLinksPerGroup); what is left out is counted. maxItems <= 0 means
// DefaultMaxItems.
//
// Items with the same kind and id are one run, seen at its latest status (a rule that routes
// every event of a prediction into a digest counts it once). The result depends only on the
// items, not on their order.
func Build(name string, from, to time.Time, items []Item, maxItems int) *Summary {
	if maxItems <= 0 {
		maxItems = DefaultMaxItems
	}
	s := &Summary{Name: name, From: from, To: to, Limit: maxItems}
	runs := latest(items)
	s.Total = len(runs)
	s.ByStatus = countStatuses(runs)
	for _, k := range []relay.Kind{relay.KindPrediction, relay.KindTraining} {
		var of []Item
		for _, it := range runs {
			if it.Kind == k {
				of = append(of, it)
			}
		}
		if len(of) > 0 {
			s.ByKind = append(s.ByKind, KindCount{Kind: k, Count: len(of), ByStatus: countStatuses(of)})
		}
	}

	byModel := map[string][]Item{}
	var trainings []Item
	for _, it := range runs {
		if it.Failed() {
			s.LostTime = addDuration(s.LostTime, it.PredictDuration())
		}
		switch {
		case it.Kind == relay.KindTraining:
			trainings = append(trainings, it)
			if it.Failed() {
				s.FailedTrainings++
			}
		case it.Failed():
			s.FailedPredictions++
			byModel[it.Subject()] = append(byModel[it.Subject()], it)
		}
	}
	s.FailedModels = len(byModel)
	s.Models, s.MoreModels, s.MoreModelFailures = listModels(byModel, maxItems)

	inOrder := func(a, b Item) int { return cmp.Or(a.When().Compare(b.When()), cmp.Compare(a.ID, b.ID)) }
	if len(trainings) > maxItems {
		// The failed ones are what a failure digest is for: they are listed first, then the
		// oldest of the rest, all shown in order of time.
		slices.SortFunc(trainings, func(a, b Item) int {
			if a.Failed() != b.Failed() {
				if a.Failed() {
					return -1
				}
				return 1
			}
			return inOrder(a, b)
		})
		s.MoreTrainings = len(trainings) - maxItems
		trainings = trainings[:maxItems]
	}
	slices.SortFunc(trainings, inOrder)
	s.Trainings = trainings
	return s
}

// latest keeps one item per run (kind and id): the one furthest along its lifecycle, then the
// one received last. The result is sorted by kind and id.
func latest(items []Item) []Item {
	type key struct {
		kind relay.Kind
		id   string
	}
	seen := map[key]int{}
	var out []Item
	for _, it := range items {
		k := key{it.Kind, it.ID}
		i, ok := seen[k]
		if !ok {
			seen[k] = len(out)
			out = append(out, it)
			continue
		}
		if newer(it, out[i]) {
			out[i] = it
		}
	}
	slices.SortFunc(out, func(a, b Item) int {
		return cmp.Or(cmp.Compare(a.Kind, b.Kind), cmp.Compare(a.ID, b.ID))
	})
	return out
}

// newer reports whether a supersedes b as the state of one run. The comparison is total, so
// that the choice does not depend on the items' order.
func newer(a, b Item) bool {
	if c := cmp.Compare(a.Status.Stage(), b.Status.Stage()); c != 0 {
		return c > 0
	}
	if c := a.ReceivedAt.Compare(b.ReceivedAt); c != 0 {
		return c > 0
	}
	return cmp.Or(cmp.Compare(a.Status, b.Status), cmp.Compare(a.Error, b.Error),
		a.When().Compare(b.When()), cmp.Compare(a.PredictTime, b.PredictTime)) > 0
}

func countStatuses(items []Item) []StatusCount {
	n := map[replicate.Status]int{}
	for _, it := range items {
		n[it.Status]++
	}
	var out []StatusCount
	for _, st := range replicate.Statuses {
		if n[st] > 0 {
			out = append(out, StatusCount{st, n[st]})
			delete(n, st)
		}
	}
	// Statuses Replicate does not document (the parser refuses them, but stored items outlive
	// parsers) come last, by name.
	var rest []StatusCount
	for st, c := range n {
		rest = append(rest, StatusCount{st, c})
	}
	slices.SortFunc(rest, func(a, b StatusCount) int { return cmp.Compare(a.Status, b.Status) })
	return append(out, rest...)
}

// listModels groups each model's failures by error and lists at most limit models and limit
// groups. The groups are dealt out in turns, the first group of every listed model before any
// second one, so that one model with many different errors cannot crowd out the others.
func listModels(byModel map[string][]Item, limit int) (models []ModelFailures, more, moreFailures int) {
	var all []ModelFailures
	groups := map[string][]ErrorGroup{}
	for model, items := range byModel {
		m := ModelFailures{Model: model, Failures: len(items)}
		for _, it := range items {
			m.LostTime = addDuration(m.LostTime, it.PredictDuration())
		}
		all = append(all, m)
		groups[model] = groupErrors(items, min(limit, MaxLinksPerGroup))
	}
	slices.SortFunc(all, func(a, b ModelFailures) int {
		return cmp.Or(cmp.Compare(b.Failures, a.Failures), cmp.Compare(a.Model, b.Model))
	})
	if len(all) > limit {
		for _, m := range all[limit:] {
			more++
			moreFailures += m.Failures
		}
		all = all[:limit]
	}
	for budget, turn := limit, 0; budget > 0; turn++ {
		dealt := false
		for i := range all {
			g := groups[all[i].Model]
			if turn < len(g) && budget > 0 {
				all[i].Groups = append(all[i].Groups, g[turn])
				budget--
				dealt = true
			}
		}
		if !dealt {
			break
		}
	}
	for i := range all {
		for _, g := range groups[all[i].Model][len(all[i].Groups):] {
			all[i].MoreGroups++
			all[i].MoreFailures += g.Count
		}
	}
	return all, more, moreFailures
}

// groupErrors groups one model's failures by kind of failure and fingerprint, biggest group
// first, each with at most links runs.
func groupErrors(items []Item, links int) []ErrorGroup {
	type key struct {
		aborted     bool
		fingerprint string
	}
	byKey := map[key][]Item{}
	for _, it := range items {
		k := key{it.Status == replicate.Aborted, Fingerprint(it.Error)}
		byKey[k] = append(byKey[k], it)
	}
	var out []ErrorGroup
	for k, its := range byKey {
		// Latest first; the id breaks ties so that the order is the same on every run.
		slices.SortFunc(its, func(a, b Item) int {
			return cmp.Or(b.When().Compare(a.When()), cmp.Compare(a.ID, b.ID))
		})
		g := ErrorGroup{Fingerprint: k.fingerprint, Aborted: k.aborted, Example: its[0].Error,
			Count: len(its), First: its[len(its)-1].When(), Last: its[0].When()}
		for _, it := range its {
			g.LostTime = addDuration(g.LostTime, it.PredictDuration())
		}
		g.Runs = slices.Clone(its[:min(len(its), links)])
		g.MoreRuns = len(its) - len(g.Runs)
		out = append(out, g)
	}
	slices.SortFunc(out, func(a, b ErrorGroup) int {
		return cmp.Or(cmp.Compare(b.Count, a.Count), cmp.Compare(a.Fingerprint, b.Fingerprint),
			compareBool(a.Aborted, b.Aborted))
	})
	return out
}

func compareBool(a, b bool) int {
	switch {
	case a == b:
		return 0
	case a:
		return 1
	}
	return -1
}

// addDuration adds a non-negative d to sum, stopping at the largest duration rather than
// wrapping into a negative one: each run's compute time may be up to 10⁹ seconds.
func addDuration(sum, d time.Duration) time.Duration {
	if sum > math.MaxInt64-d {
		return math.MaxInt64
	}
	return sum + d
}
