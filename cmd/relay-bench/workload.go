package main

import (
	"math/rand/v2"
	"strconv"
	"strings"
	"time"
)

// The workload is a pure function of its parameters: the body and webhook-id of message (p, e),
// event e of prediction p, are always the same, so a duplicate re-sends exactly the bytes and
// the id of the original, as Replicate's retries do. Nothing is kept per message.

// workload describes the messages of every prediction.
type workload struct {
	// Processing is K, the number of processing events between starting and the terminal one.
	Processing int
	// DupRatio is the share of all sends that re-send an earlier message (0.10 by default).
	DupRatio float64
	// FailedRatio is the share of predictions that end failed rather than succeeded.
	FailedRatio float64
	// Seed varies the plans (which messages are duplicated) between runs.
	Seed uint64
	// Base is the created_at of prediction 0; later ones are spread after it.
	Base time.Time
	// Tag makes the ids of one run distinct from those of another (one lowercase letter).
	Tag byte
}

// idPrefix starts every prediction id; idDigits base-36 digits follow, so every id is 26
// characters long like Replicate's and no id contains another.
const (
	idPrefix = "bench"
	idDigits = 20
	idLen    = len(idPrefix) + 1 + idDigits
)

// predID is the id of prediction p, e.g. "bencha00000000000000000002s".
func (w *workload) predID(p int) string {
	var b [idLen]byte
	copy(b[:], idPrefix)
	b[len(idPrefix)] = w.Tag
	s := strconv.FormatUint(uint64(p), 36)
	i := len(idPrefix) + 1
	for range idDigits - len(s) {
		b[i] = '0'
		i++
	}
	copy(b[i:], s)
	return string(b[:])
}

// parsePredID returns the prediction number of an id made by predID with tag.
func parsePredID(id string, tag byte) (int, bool) {
	if len(id) != idLen || !strings.HasPrefix(id, idPrefix) || id[len(idPrefix)] != tag {
		return 0, false
	}
	n, err := strconv.ParseUint(id[len(idPrefix)+1:], 36, 63)
	if err != nil {
		return 0, false
	}
	return int(n), true
}

// findPredIDs returns the distinct predictions of run tag whose ids appear in text.
func findPredIDs(text string, tag byte) []int {
	var out []int
	for {
		i := strings.Index(text, idPrefix)
		if i < 0 {
			return out
		}
		if i+idLen <= len(text) {
			if p, ok := parsePredID(text[i:i+idLen], tag); ok {
				dup := false
				for _, q := range out {
					dup = dup || q == p
				}
				if !dup {
					out = append(out, p)
				}
			}
		}
		text = text[i+len(idPrefix):]
	}
}

// events is the number of distinct messages of a prediction: starting, K processing, terminal.
func (w *workload) events() int { return w.Processing + 2 }

// terminal is the event number of the terminal message.
func (w *workload) terminal() int { return w.Processing + 1 }

// msgID is the webhook-id of event e of prediction p, identical on every re-send.
func (w *workload) msgID(p, e int) string {
	return "msg_" + w.predID(p) + "_" + strconv.Itoa(e)
}

// failed reports whether prediction p ends failed (else succeeded).
func (w *workload) failed(p int) bool {
	return w.rng(p, 1).Float64() < w.FailedRatio
}

func (w *workload) rng(p int, stream uint64) *rand.Rand {
	return rand.New(rand.NewPCG(w.Seed^uint64(p)*0x9e3779b97f4a7c15, stream))
}

// step is one send: event Event of the prediction, a re-send of an earlier one if Dup.
type step struct {
	Event int
	Dup   bool
}

// plan is the order in which one sender posts prediction p's messages: each event once, in
// order, and duplicates. After each original message, with probability DupRatio/(1-DupRatio)
// (so that duplicates make DupRatio of all sends), one re-send is due: half of them retry the
// terminal delivery (they come after it, as Replicate's retries do), the others repeat the
// message just sent (a sender that did not see the answer).
func (w *workload) plan(p int, buf []step) []step {
	r := w.rng(p, 2)
	buf = buf[:0]
	perOriginal := 0.0
	if w.DupRatio > 0 && w.DupRatio < 1 {
		perOriginal = w.DupRatio / (1 - w.DupRatio)
	}
	retries := 0
	for e := range w.events() {
		buf = append(buf, step{Event: e})
		if r.Float64() >= perOriginal {
			continue
		}
		if e == w.terminal() || r.IntN(2) == 0 {
			retries++
		} else {
			buf = append(buf, step{Event: e, Dup: true})
		}
	}
	for range retries {
		buf = append(buf, step{Event: w.terminal(), Dup: true})
	}
	return buf
}

// A log corpus cut at line boundaries: event e of K carries the first logSize(e) bytes or so.
const (
	logMin = 500
	logMax = 8 << 10
)

var corpus = buildCorpus()

type logCorpus struct {
	escaped string // the whole log, JSON-escaped
	rawEnd  []int  // raw length after each line
	escEnd  []int  // escaped length after each line
}

func buildCorpus() *logCorpus {
	var lines []string
	lines = append(lines,
		"Using seed: 1234",
		"Prompt: an astronaut riding a horse on mars, 35mm photo",
		"txt2img mode",
		"Loading pipeline components...: 100%|██████████| 7/7 [00:00<00:00, 12.31it/s]")
	for i := 0; ; i++ {
		pct := i * 100 / 200
		bar := strings.Repeat("█", pct/10) + strings.Repeat(" ", 10-pct/10)
		lines = append(lines, " "+strconv.Itoa(pct)+"%|"+bar+"| "+strconv.Itoa(i/4)+"/50 [00:"+
			twoDigits(i/25)+"<00:"+twoDigits(8-i/25)+",  5.6"+strconv.Itoa(i%10)+"it/s]")
		n := 0
		for _, l := range lines {
			n += len(l) + 1
		}
		if n > logMax+200 {
			break
		}
	}
	c := &logCorpus{}
	var esc strings.Builder
	raw := 0
	for _, l := range lines {
		raw += len(l) + 1
		esc.WriteString(l)
		esc.WriteString(`\n`)
		c.rawEnd = append(c.rawEnd, raw)
		c.escEnd = append(c.escEnd, esc.Len())
	}
	c.escaped = esc.String()
	return c
}

func twoDigits(n int) string {
	if n < 10 {
		return "0" + strconv.Itoa(n)
	}
	return strconv.Itoa(n)
}

// logs returns the escaped logs of about size raw bytes, whole lines.
func (c *logCorpus) logs(size int) string {
	if size <= 0 {
		return ""
	}
	end := 0
	for i, r := range c.rawEnd {
		if r > size {
			break
		}
		end = c.escEnd[i]
	}
	return c.escaped[:end]
}

// logSize is the size of the logs of event e: none when starting, growing from logMin to
// logMax over the processing events, logMax at the end.
func (w *workload) logSize(e int) int {
	switch {
	case e == 0:
		return 0
	case e >= w.terminal():
		return logMax
	case w.Processing <= 1:
		return logMin
	}
	return logMin + (logMax-logMin)*(e-1)/(w.Processing-1)
}

var prompts = []string{
	"an astronaut riding a horse on mars, 35mm photo",
	"a photo of a rainbow colored corgi",
	"a watercolor painting of a lighthouse at dawn",
	"isometric pixel art of a tiny coffee shop",
}

const (
	modelName    = "stability-ai/sdxl"
	modelVersion = "39ed52f2a78e934b3ba6e2a89f5b1c712de7dfea535525255b1aa35c5565e08b"
	errorText    = "NSFW content detected. Try running it again, or try a different prompt."
	// HookQuery is the query the webhook URL carries, as documented for Replicate.
	hookQuery = "?kind=prediction"
)

// body appends the JSON body of event e of prediction p to dst, in the shape of the fixtures
// (GET /v1/predictions/{id}). Bodies are built by appending, not by encoding/json, so that the
// load generator spends its CPU on sending.
func (w *workload) body(dst []byte, p, e int) []byte {
	id := w.predID(p)
	r := w.rng(p, 3)
	prompt := prompts[r.IntN(len(prompts))]
	outputs := 1 + r.IntN(2)
	seed := r.IntN(100000)
	blob := strconv.FormatUint(r.Uint64(), 36) + strconv.FormatUint(r.Uint64(), 36)

	created := w.Base.Add(time.Duration(p) * time.Millisecond)
	started := created.Add(6 * time.Millisecond)
	completed := started.Add(time.Duration(w.Processing)*500*time.Millisecond + 123*time.Millisecond)
	status := "processing"
	switch {
	case e == 0:
		status = "starting"
	case e == w.terminal() && w.failed(p):
		status = "failed"
	case e == w.terminal():
		status = "succeeded"
	}

	b := append(dst, `{"id":"`...)
	b = append(b, id...)
	b = append(b, `","model":"`+modelName+`","version":"`+modelVersion+`","input":{"prompt":"`...)
	b = append(b, prompt...)
	b = append(b, `","num_outputs":`...)
	b = strconv.AppendInt(b, int64(outputs), 10)
	b = append(b, `,"width":1024,"height":1024,"seed":`...)
	b = strconv.AppendInt(b, int64(seed), 10)
	b = append(b, `},"logs":"`...)
	b = append(b, corpus.logs(w.logSize(e))...)
	b = append(b, `","output":`...)
	if status == "succeeded" {
		b = append(b, '[')
		for i := range outputs {
			if i > 0 {
				b = append(b, ',')
			}
			b = append(b, `"https://replicate.delivery/pbxt/`...)
			b = append(b, blob...)
			b = append(b, `/out-`...)
			b = strconv.AppendInt(b, int64(i), 10)
			b = append(b, `.png"`...)
		}
		b = append(b, ']')
	} else {
		b = append(b, "null"...)
	}
	b = append(b, `,"data_removed":false,"error":`...)
	if status == "failed" {
		b = append(b, `"`+errorText+`"`...)
	} else {
		b = append(b, "null"...)
	}
	b = append(b, `,"source":"api","status":"`...)
	b = append(b, status...)
	b = append(b, `","created_at":`...)
	b = appendTime(b, created, true)
	b = append(b, `,"started_at":`...)
	b = appendTime(b, started, e > 0)
	b = append(b, `,"completed_at":`...)
	b = appendTime(b, completed, e == w.terminal())
	b = append(b, `,"metrics":`...)
	if e == w.terminal() {
		b = append(b, `{"predict_time":`...)
		b = strconv.AppendFloat(b, completed.Sub(started).Seconds(), 'f', 6, 64)
		b = append(b, `,"total_time":`...)
		b = strconv.AppendFloat(b, completed.Sub(created).Seconds(), 'f', 6, 64)
		b = append(b, '}')
	} else {
		b = append(b, "{}"...)
	}
	b = append(b, `,"webhook":"https://relay.example.com/webhooks/replicate`+hookQuery+`"`...)
	b = append(b, `,"webhook_events_filter":["start","output","logs","completed"],"urls":{"cancel":"https://api.replicate.com/v1/predictions/`...)
	b = append(b, id...)
	b = append(b, `/cancel","get":"https://api.replicate.com/v1/predictions/`...)
	b = append(b, id...)
	b = append(b, `","web":"https://replicate.com/p/`...)
	b = append(b, id...)
	b = append(b, `"}}`...)
	return b
}

func appendTime(b []byte, t time.Time, set bool) []byte {
	if !set {
		return append(b, "null"...)
	}
	b = append(b, '"')
	b = t.UTC().AppendFormat(b, "2006-01-02T15:04:05.000000Z")
	return append(b, '"')
}
