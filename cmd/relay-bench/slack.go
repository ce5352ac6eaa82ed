package main

import (
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/mlrelay/relay/notifiers/slacktest"
)

// slackStandIn is the Slack stand-in on a loopback listener of the benchmark's own, and the
// tally of which prediction each message it received was about.
//
// It answers every post to the incoming webhook "ok" at once and checks the messages later (the
// decoding and Block Kit validation of slacktest, which answers 400 with Slack's error code to a
// message Slack refuses): Slack's work is not done on the machine the relay is measured on, and
// a message Slack would have refused still fails the run. (So the relay's answer to such a 400,
// sending the message again without its images, is not exercised here; its tests cover it.)
type slackStandIn struct {
	srv *http.Server
	url string
	tag byte

	mu    sync.Mutex
	posts []slackPost // received, in order

	scanned      int               // posts already tallied
	count        map[int]int       // prediction → messages about it
	first        map[int]time.Time // prediction → receipt of its first message
	status       map[int]string    // prediction → the outcome its first message names (statusWord)
	unidentified int               // messages naming no prediction of the run
	refused      int               // messages Slack would have refused
	refusal      string            // the error code of the first of them
	sample       string            // the text of the first message, for the report
}

// slackPost is a post as received.
type slackPost struct {
	contentType string
	body        []byte
	at          time.Time
}

func startSlack(tag byte) (*slackStandIn, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	s := &slackStandIn{
		url:    "http://" + ln.Addr().String() + slacktest.WebhookPath,
		tag:    tag,
		count:  map[int]int{},
		first:  map[int]time.Time{},
		status: map[int]string{},
	}
	s.srv = &http.Server{Handler: s, ReadHeaderTimeout: 5 * time.Second}
	go func() { _ = s.srv.Serve(ln) }()
	return s, nil
}

// ServeHTTP records a post to the webhook and answers like Slack does to a message it accepts.
func (s *slackStandIn) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	switch {
	case r.URL.Path != slacktest.WebhookPath:
		writeSlackText(w, http.StatusNotFound, "no_service")
		return
	case r.Method != http.MethodPost:
		writeSlackText(w, http.StatusMethodNotAllowed, "invalid_method")
		return
	}
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, 1<<20))
	if err != nil {
		writeSlackText(w, http.StatusRequestEntityTooLarge, "request_too_large")
		return
	}
	p := slackPost{contentType: r.Header.Get("Content-Type"), body: body, at: time.Now()}
	s.mu.Lock()
	s.posts = append(s.posts, p)
	s.mu.Unlock()
	writeSlackText(w, http.StatusOK, "ok")
}

// writeSlackText answers as the incoming webhook does: plain text, an error code or "ok".
func writeSlackText(w http.ResponseWriter, status int, text string) {
	w.Header().Set("Content-Type", "text/html") // as Slack labels its webhook answers
	w.WriteHeader(status)
	_, _ = io.WriteString(w, text)
}

// requests is the number of posts received so far.
func (s *slackStandIn) requests() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.posts)
}

// scan checks and tallies the messages received since the last scan.
func (s *slackStandIn) scan() {
	s.mu.Lock()
	posts := s.posts[s.scanned:len(s.posts):len(s.posts)]
	s.mu.Unlock()
	defer func() {
		// Checked: a long soak need not keep every message. (Under the lock, as a post that
		// grows the slice copies these elements.)
		s.mu.Lock()
		for i := range posts {
			posts[i].body = nil
		}
		s.mu.Unlock()
	}()
	for _, p := range posts {
		m, code := slacktest.CheckWebhook(p.contentType, p.body)
		if code != "" {
			if s.refused == 0 {
				s.refusal = code
			}
			s.refused++
			continue
		}
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
		id := ids[0]
		s.count[id]++
		if _, ok := s.first[id]; !ok {
			s.first[id] = p.at
			s.status[id] = statusWord(m.Text)
		}
	}
	s.scanned += len(posts)
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
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := s.srv.Shutdown(ctx); err != nil && !errors.Is(err, http.ErrServerClosed) {
		_ = s.srv.Close()
	}
}

// statusWord is the outcome the first line of a message names: "failed", "succeeded" or "".
func statusWord(text string) string {
	first, _, _ := strings.Cut(text, "\n")
	switch {
	case strings.Contains(first, "failed"):
		return "failed"
	case strings.Contains(first, "succeeded"):
		return "succeeded"
	}
	return ""
}
