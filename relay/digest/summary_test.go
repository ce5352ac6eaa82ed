package digest

import (
	"fmt"
	"math"
	"math/rand/v2"
	"reflect"
	"testing"
	"time"

	"github.com/mlrelay/relay/relay"
	"github.com/mlrelay/relay/relay/replicate"
)

var (
	periodFrom = time.Date(2025, 11, 21, 9, 0, 0, 0, time.UTC)
	periodTo   = periodFrom.Add(24 * time.Hour)
)

// run is an item of kind, status and model that ended minutes into the period.
func run(kind relay.Kind, id string, status replicate.Status, model, errLine string, minutes int, predict float64) Item {
	at := periodFrom.Add(time.Duration(minutes) * time.Minute)
	return Item{Kind: kind, ID: id, Model: model, Status: status, Error: errLine,
		CompletedAt: at, ReceivedAt: at.Add(time.Second), PredictTime: predict}
}

func pred(id string, status replicate.Status, model, errLine string, minutes int, predict float64) Item {
	return run(relay.KindPrediction, id, status, model, errLine, minutes, predict)
}

func TestBuild(t *testing.T) {
	oom := "CUDA out of memory. Tried to allocate 2.50 GiB"
	items := []Item{
		pred("p1", replicate.Failed, "acme/a", oom, 10, 12.5),
		pred("p2", replicate.Failed, "acme/a", "CUDA out of memory. Tried to allocate 1.00 GiB", 50, 7.5),
		pred("p3", replicate.Failed, "acme/a", "NSFW content detected", 30, 1),
		pred("p4", replicate.Aborted, "acme/b", "", 20, 0),
		pred("p5", replicate.Succeeded, "acme/b", "", 40, 3),
		pred("p6", replicate.Canceled, "acme/a", "", 60, 30),
		// p7 arrives twice, processing then failed: one run, failed.
		pred("p7", replicate.Processing, "acme/c", "", 5, 0),
		pred("p7", replicate.Failed, "acme/c", "boom", 70, 2),
		run(relay.KindTraining, "t1", replicate.Succeeded, "acme/trainer", "", 100, 600),
		run(relay.KindTraining, "t2", replicate.Failed, "acme/trainer", "out of disk", 90, 300),
	}
	s := Build("daily", periodFrom, periodTo, items, 10)

	if s.Name != "daily" || !s.From.Equal(periodFrom) || !s.To.Equal(periodTo) || s.Limit != 10 || s.Empty() {
		t.Errorf("header: %+v", s)
	}
	if s.Total != 9 {
		t.Errorf("Total = %d, want 9 (p7 once)", s.Total)
	}
	wantStatus := []StatusCount{{replicate.Succeeded, 2}, {replicate.Failed, 5}, {replicate.Canceled, 1}, {replicate.Aborted, 1}}
	if !reflect.DeepEqual(s.ByStatus, wantStatus) {
		t.Errorf("ByStatus = %v, want %v", s.ByStatus, wantStatus)
	}
	wantKind := []KindCount{
		{relay.KindPrediction, 7, []StatusCount{{replicate.Succeeded, 1}, {replicate.Failed, 4}, {replicate.Canceled, 1}, {replicate.Aborted, 1}}},
		{relay.KindTraining, 2, []StatusCount{{replicate.Succeeded, 1}, {replicate.Failed, 1}}},
	}
	if !reflect.DeepEqual(s.ByKind, wantKind) {
		t.Errorf("ByKind = %v, want %v", s.ByKind, wantKind)
	}
	// Canceled is not a failure: p6's 30 s are not lost time; t2's 300 s are.
	if s.FailedPredictions != 5 || s.FailedTrainings != 1 || s.Failures() != 6 || s.FailedModels != 3 {
		t.Errorf("failures: %d predictions, %d trainings, %d models", s.FailedPredictions, s.FailedTrainings, s.FailedModels)
	}
	if want := time.Duration(323 * time.Second); s.LostTime != want {
		t.Errorf("LostTime = %v, want %v", s.LostTime, want)
	}

	if len(s.Models) != 3 || s.Models[0].Model != "acme/a" || s.Models[1].Model != "acme/b" || s.Models[2].Model != "acme/c" {
		t.Fatalf("models: %+v", s.Models)
	}
	a := s.Models[0]
	if a.Failures != 3 || a.LostTime != 21*time.Second || len(a.Groups) != 2 || a.MoreGroups != 0 {
		t.Errorf("acme/a: %+v", a)
	}
	g := a.Groups[0]
	if g.Count != 2 || g.Fingerprint != "CUDA out of memory. Tried to allocate <size>" || g.Example != "CUDA out of memory. Tried to allocate 1.00 GiB" ||
		!g.First.Equal(items[0].CompletedAt) || !g.Last.Equal(items[1].CompletedAt) || g.LostTime != 20*time.Second {
		t.Errorf("the OOM group: %+v", g)
	}
	if len(g.Runs) != 2 || g.Runs[0].ID != "p2" || g.Runs[1].ID != "p1" || g.MoreRuns != 0 {
		t.Errorf("the OOM group's runs, latest first: %+v", g.Runs)
	}
	if b := s.Models[1].Groups; len(b) != 1 || !b[0].Aborted || b[0].Example != "" {
		t.Errorf("acme/b's aborted run: %+v", b)
	}
	if len(s.Trainings) != 2 || s.Trainings[0].ID != "t2" || s.Trainings[1].ID != "t1" || s.MoreTrainings != 0 {
		t.Errorf("trainings, in the order they ended: %+v", s.Trainings)
	}

	// The order of the items does not matter.
	for i := range 5 {
		shuffled := append([]Item(nil), items...)
		rand.New(rand.NewPCG(uint64(i), 7)).Shuffle(len(shuffled), func(i, j int) { shuffled[i], shuffled[j] = shuffled[j], shuffled[i] })
		if again := Build("daily", periodFrom, periodTo, shuffled, 10); !reflect.DeepEqual(again, s) {
			t.Fatalf("shuffled items give another summary:\n%+v\n%+v", again, s)
		}
	}
}

func TestBuildEmpty(t *testing.T) {
	s := Build("daily", periodFrom, periodTo, nil, 0)
	if !s.Empty() || s.Total != 0 || s.Models != nil || s.Trainings != nil || s.Limit != DefaultMaxItems {
		t.Errorf("empty summary: %+v", s)
	}
}

// TestBuildThousandFailures is a bad day: 1,000 failed predictions over 30 models, each model
// failing in a few ways with different numbers and paths in its errors, and 40 trainings.
func TestBuildThousandFailures(t *testing.T) {
	rng := rand.New(rand.NewPCG(3, 4))
	errorsLike := []func() string{
		func() string {
			return fmt.Sprintf("CUDA out of memory. Tried to allocate %.2f GiB (GPU %d; %.2f GiB total capacity)", rng.Float64()*10, rng.IntN(8), 40+rng.Float64()*40)
		},
		func() string { return fmt.Sprintf("File /tmp/%x/out-%d.png not found", rng.Uint32(), rng.IntN(100)) },
		func() string {
			return fmt.Sprintf("Prediction %016x timed out after %ds", rng.Uint64(), 60+rng.IntN(600))
		},
		func() string { return "NSFW content detected. Try running it again, or try a different prompt." },
		func() string { return fmt.Sprintf("KeyError: '%c%d'", 'a'+rune(rng.IntN(26)), rng.IntN(1000)) },
	}
	var items []Item
	perModel := map[string]int{}
	kinds := map[string]map[int]bool{} // which kinds of error each model has
	var lost time.Duration
	for i := range 1000 {
		// Model m fails with weight 30-m, so the counts differ; model m fails in (m%5)+1 ways.
		m := pickModel(rng)
		model := fmt.Sprintf("team/model-%02d", m)
		kind := rng.IntN(m%5 + 1)
		if kinds[model] == nil {
			kinds[model] = map[int]bool{}
		}
		kinds[model][kind] = true
		perModel[model]++
		predict := float64(rng.IntN(100)) / 4
		lost += time.Duration(predict * float64(time.Second))
		items = append(items, pred(fmt.Sprintf("f%04d", i), replicate.Failed, model, errorsLike[kind](), rng.IntN(24*60), predict))
	}
	for i := range 40 {
		items = append(items, run(relay.KindTraining, fmt.Sprintf("t%02d", i), replicate.Succeeded, "team/trainer", "", i*30, 100))
	}
	for i := range 200 {
		items = append(items, pred(fmt.Sprintf("ok%03d", i), replicate.Succeeded, "team/model-00", "", i, 1))
	}

	const limit = 12
	s := Build("daily", periodFrom, periodTo, items, limit)

	if s.Total != 1240 || s.FailedPredictions != 1000 || s.FailedModels != len(perModel) || s.LostTime != lost {
		t.Errorf("Total %d, FailedPredictions %d, FailedModels %d (want %d), LostTime %v (want %v)",
			s.Total, s.FailedPredictions, s.FailedModels, len(perModel), s.LostTime, lost)
	}
	// Limits: models, groups across models, links per group, trainings.
	if len(s.Models) != limit || s.MoreModels != len(perModel)-limit {
		t.Errorf("%d models listed, %d more; want %d and %d", len(s.Models), s.MoreModels, limit, len(perModel)-limit)
	}
	if len(s.Trainings) != limit || s.MoreTrainings != 40-limit {
		t.Errorf("%d trainings listed, %d more", len(s.Trainings), s.MoreTrainings)
	}
	groups, listed := 0, s.MoreModelFailures
	for i, m := range s.Models {
		if i > 0 && (m.Failures > s.Models[i-1].Failures || m.Failures == s.Models[i-1].Failures && m.Model < s.Models[i-1].Model) {
			t.Errorf("models out of order: %s (%d) after %s (%d)", m.Model, m.Failures, s.Models[i-1].Model, s.Models[i-1].Failures)
		}
		if m.Failures != perModel[m.Model] {
			t.Errorf("%s: %d failures, want %d", m.Model, m.Failures, perModel[m.Model])
		}
		// Grouping: one group per kind of error, whatever the numbers, paths and ids in it.
		if got, want := len(m.Groups)+m.MoreGroups, len(kinds[m.Model]); got != want {
			t.Errorf("%s: %d groups, want %d", m.Model, got, want)
		}
		if len(m.Groups) == 0 {
			t.Errorf("%s is listed without a group", m.Model)
		}
		sum := m.MoreFailures
		for j, g := range m.Groups {
			groups++
			sum += g.Count
			if j > 0 && g.Count > m.Groups[j-1].Count {
				t.Errorf("%s: groups out of order", m.Model)
			}
			if len(g.Runs) != min(g.Count, MaxLinksPerGroup) || len(g.Runs)+g.MoreRuns != g.Count {
				t.Errorf("%s: group of %d lists %d runs and %d more", m.Model, g.Count, len(g.Runs), g.MoreRuns)
			}
			if g.Example == "" || g.First.After(g.Last) {
				t.Errorf("%s: group %+v", m.Model, g)
			}
		}
		if sum != m.Failures {
			t.Errorf("%s: groups add up to %d, want %d", m.Model, sum, m.Failures)
		}
		listed += m.Failures
	}
	if groups != limit {
		t.Errorf("%d groups listed, want the limit, %d", groups, limit)
	}
	if listed != 1000 {
		t.Errorf("listed and counted failures add up to %d, want 1000", listed)
	}
}

// pickModel picks model m of 30 with weight 30-m.
func pickModel(rng *rand.Rand) int {
	n := rng.IntN(30 * 31 / 2)
	for m := 0; m < 30; m++ {
		if n < 30-m {
			return m
		}
		n -= 30 - m
	}
	return 29
}

// TestBuildListsFailedTrainingsFirst cuts a list of trainings where the failed one came last:
// it must still be listed, not left among "1 more".
func TestBuildListsFailedTrainingsFirst(t *testing.T) {
	var items []Item
	for i := range 20 {
		items = append(items, run(relay.KindTraining, fmt.Sprintf("ok%02d", i), replicate.Succeeded, "team/trainer", "", i, 100))
	}
	items = append(items, run(relay.KindTraining, "bad", replicate.Failed, "team/trainer", "loss is NaN", 30, 100))
	s := Build("daily", periodFrom, periodTo, items, 20)
	if s.FailedTrainings != 1 || len(s.Trainings) != 20 || s.MoreTrainings != 1 {
		t.Fatalf("FailedTrainings %d, %d listed, %d more", s.FailedTrainings, len(s.Trainings), s.MoreTrainings)
	}
	if last := s.Trainings[len(s.Trainings)-1]; last.ID != "bad" {
		t.Errorf("the failed training is not listed (last listed: %s)", last.ID)
	}
	for i := 1; i < len(s.Trainings); i++ {
		if s.Trainings[i].When().Before(s.Trainings[i-1].When()) {
			t.Errorf("trainings out of order: %s after %s", s.Trainings[i].ID, s.Trainings[i-1].ID)
		}
	}
}

// TestBuildFairShares checks that the groups are dealt out in turns: one model with many
// different errors does not crowd out the others.
func TestBuildFairShares(t *testing.T) {
	var items []Item
	for i := range 10 {
		items = append(items, pred(fmt.Sprintf("a%d", i), replicate.Failed, "acme/many", fmt.Sprintf("error kind %c", 'a'+i), i, 0))
	}
	items = append(items, pred("b", replicate.Failed, "acme/one", "boom", 1, 0), pred("c", replicate.Failed, "acme/two", "bang", 2, 0))
	s := Build("d", periodFrom, periodTo, items, 4)
	var got []string
	for _, m := range s.Models {
		got = append(got, fmt.Sprintf("%s:%d+%d", m.Model, len(m.Groups), m.MoreGroups))
	}
	if want := "[acme/many:2+8 acme/one:1+0 acme/two:1+0]"; fmt.Sprint(got) != want {
		t.Errorf("groups per model = %v, want %s", got, want)
	}
}

// Compute times add up without wrapping: ten failures at the largest predict_time an item
// takes (10⁹ s) exceed what a time.Duration holds, and the sums stop at the largest one.
func TestBuildLostTimeSaturates(t *testing.T) {
	var items []Item
	for i := range 10 {
		items = append(items, pred(fmt.Sprintf("p%d", i), replicate.Failed, "acme/m", "boom", i, 1e9))
	}
	s := Build("daily", periodFrom, periodTo, items, 0)
	if s.LostTime != math.MaxInt64 {
		t.Errorf("summary lost time %v, want the largest duration", s.LostTime)
	}
	if len(s.Models) != 1 || s.Models[0].LostTime != math.MaxInt64 {
		t.Fatalf("models %+v, want one with the largest duration", s.Models)
	}
	if g := s.Models[0].Groups; len(g) != 1 || g[0].LostTime != math.MaxInt64 {
		t.Errorf("error groups %+v, want one with the largest duration", g)
	}
}
