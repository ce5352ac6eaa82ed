package templates

import (
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/mlrelay/relay/relay"
	"github.com/mlrelay/relay/relay/replicate"
)

// Check renders every set for every target it has with sample events of each kind and status,
// and every digest set with sample digests (CheckDigests), so that a template error
// text/template only finds when executing (a misspelt field, a function given the wrong type)
// fails at start-up rather than at the first delivery.
func (s *Set) Check() error {
	events, err := SampleEvents()
	if err != nil {
		return err
	}
	var errs []error
	for _, set := range s.names {
		for _, target := range Targets() {
			if !s.Has(set, target) {
				continue
			}
			for _, ev := range events {
				if _, err := s.Render(set, target, ev); err != nil {
					errs = append(errs, fmt.Errorf("with a %s %s: %w", ev.Status, ev.Kind, err))
					break
				}
			}
		}
	}
	errs = append(errs, s.CheckDigests())
	return errors.Join(errs...)
}

// SampleEvents returns events of every kind and status, parsed from Replicate's sample payloads
// (replicate.Samples) and from variants of them: a processing, a canceled and an aborted
// prediction, one whose output is text rather than files, and a processing, a failed and a
// canceled training.
func SampleEvents() ([]*relay.Event, error) {
	var out []*relay.Event
	byName := map[string]replicate.Sample{}
	for _, s := range replicate.Samples() {
		ev, err := relay.ParseEvent(s.Body, s.MessageID, s.Kind, nil, time.Unix(s.Timestamp, 0).UTC())
		if err != nil {
			return nil, fmt.Errorf("sample %s: %w", s.Name, err)
		}
		out = append(out, ev)
		byName[s.Name] = s
	}
	for _, v := range sampleVariants {
		s, ok := byName[v.from]
		if !ok {
			return nil, fmt.Errorf("no sample %s", v.from)
		}
		ev, err := variant(s, v.change)
		if err != nil {
			return nil, err
		}
		out = append(out, ev)
	}
	return out, nil
}

var sampleVariants = []struct {
	from   string
	change map[string]any
}{
	{"prediction-starting.json", map[string]any{"status": "processing", "started_at": "2025-05-01T18:29:28.332111Z"}},
	{"prediction-succeeded.json", map[string]any{"status": "canceled", "output": nil, "error": nil}},
	{"prediction-starting.json", map[string]any{"status": "aborted", "completed_at": "2025-05-01T18:34:28.326000Z"}},
	{"prediction-succeeded.json", map[string]any{"output": []any{"The answer", " is 42."}}},
	{"training-succeeded.json", map[string]any{"status": "processing", "output": nil, "completed_at": nil}},
	{"training-succeeded.json", map[string]any{"status": "failed", "output": nil, "error": "CUDA out of memory. Tried to allocate 2.00 GiB"}},
	{"training-succeeded.json", map[string]any{"status": "canceled", "output": nil}},
	{"training-succeeded.json", map[string]any{"status": "starting", "output": nil, "started_at": nil, "completed_at": nil}},
	{"training-succeeded.json", map[string]any{"status": "aborted", "output": nil, "started_at": nil}},
}

// variant parses sample s with the top-level fields in change replaced (nil makes a field null).
func variant(s replicate.Sample, change map[string]any) (*relay.Event, error) {
	var m map[string]any
	if err := json.Unmarshal(s.Body, &m); err != nil {
		return nil, fmt.Errorf("sample %s: %w", s.Name, err)
	}
	for k, v := range change {
		m[k] = v
	}
	body, err := json.Marshal(m)
	if err != nil {
		return nil, fmt.Errorf("sample %s: %w", s.Name, err)
	}
	ev, err := relay.ParseEvent(body, s.MessageID, s.Kind, nil, time.Unix(s.Timestamp, 0).UTC())
	if err != nil {
		return nil, fmt.Errorf("sample %s: %w", s.Name, err)
	}
	return ev, nil
}
