package main

import (
	"context"
	"errors"
	"net"
	"net/http"
	"time"

	"github.com/mlrelay/relay/notifiers/slacktest"
)

// slackStandIn is the Slack stand-in on a loopback listener of the benchmark's own, and the
// tally of which prediction each message it received was about.
type slackStandIn struct {
	h   *slacktest.Handler
	srv *http.Server
	url string
	tag byte

	scanned      int               // messages of h already tallied
	count        map[int]int       // prediction → messages about it
	first        map[int]time.Time // prediction → receipt of its first message
	unidentified int               // messages naming no prediction of the run
	sample       string            // the text of the first message, for the report
}

func startSlack(tag byte) (*slackStandIn, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	h := slacktest.NewHandler()
	s := &slackStandIn{
		h:     h,
		srv:   &http.Server{Handler: h, ReadHeaderTimeout: 5 * time.Second},
		url:   "http://" + ln.Addr().String() + slacktest.WebhookPath,
		tag:   tag,
		count: map[int]int{},
		first: map[int]time.Time{},
	}
	go func() { _ = s.srv.Serve(ln) }()
	return s, nil
}

// scan tallies the messages received since the last scan.
func (s *slackStandIn) scan() {
	msgs := s.h.Messages()
	for _, m := range msgs[s.scanned:] {
		if s.sample == "" {
			s.sample = m.Text
		}
		ids := findPredIDs(m.Text, s.tag)
		if len(ids) == 0 {
			ids = findPredIDs(string(m.Blocks), s.tag)
		}
		if len(ids) != 1 {
			// None, or several: either way the message cannot be attributed.
			s.unidentified++
			continue
		}
		p := ids[0]
		s.count[p]++
		if _, ok := s.first[p]; !ok {
			s.first[p] = m.Time
		}
	}
	s.scanned = len(msgs)
}

// messages is the number of messages received so far.
func (s *slackStandIn) messages() int { return s.scanned }

// waitFor waits until every expected prediction has a message, or timeout, then for quiet more
// to catch late duplicates. It returns how long the wait for the expected messages took.
func (s *slackStandIn) waitFor(ctx context.Context, expected map[int]time.Time, timeout, quiet time.Duration) (time.Duration, bool) {
	start := time.Now()
	deadline := start.Add(timeout)
	missing := func() int {
		n := 0
		for p := range expected {
			if s.count[p] == 0 {
				n++
			}
		}
		return n
	}
	for {
		s.scan()
		if missing() == 0 {
			break
		}
		if time.Now().After(deadline) || ctx.Err() != nil {
			return time.Since(start), false
		}
		select {
		case <-ctx.Done():
		case <-time.After(50 * time.Millisecond):
		}
	}
	waited := time.Since(start)
	select {
	case <-ctx.Done():
	case <-time.After(quiet):
	}
	s.scan()
	return waited, true
}

func (s *slackStandIn) close() {
	s.h.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := s.srv.Shutdown(ctx); err != nil && !errors.Is(err, http.ErrServerClosed) {
		_ = s.srv.Close()
	}
}
