package relay

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"slices"
	"strconv"
	"sync"
	"time"
)

// Verifier checks a webhook's signature headers against its raw body.
type Verifier interface {
	Verify(h http.Header, body []byte) error
	// CheckHeaders fails as Verify would for reasons the body plays no part in (a missing
	// header, a stale timestamp), so that the body need not be read.
	CheckHeaders(h http.Header) error
}

// Receiver is the HTTP handler for Replicate webhooks. It answers 2xx only once the
// deliveries the event implies are durable:
//
//	405 wrong method, 413 body over MaxBody, 401 bad or missing signature or stale timestamp,
//	400 malformed payload, 503 store unavailable (Replicate retries terminal events),
//	200 accepted, duplicate, stale or ignored (not stored: see Ignored).
type Receiver struct {
	Verifier  Verifier
	Rules     []*CompiledRule
	Committer *Committer
	MaxBody   int64            // default 10 MiB
	Logger    *slog.Logger     // default slog.Default()
	Now       func() time.Time // default time.Now
	// DedupWindow is how long the store remembers message ids. When set, the ids the store
	// recorded lately are also remembered in memory, and a retried delivery of one of them is
	// answered as a duplicate without a transaction. 0 asks the store every time.
	DedupWindow time.Duration

	once    sync.Once
	recent  *recentIDs // nil without DedupWindow
	queries *queryCache
}

func (rc *Receiver) init() {
	if rc.DedupWindow > 0 {
		rc.recent = newRecentIDs(rc.DedupWindow, recentCapacity)
	}
	rc.queries = newQueryCache()
}

// MaxIDLength bounds a webhook's message id and its prediction or training id, in bytes: both
// are keys of the store's indexes, and PostgreSQL refuses an index entry over about 2.7 KB
// (with the whole batch it came in). Replicate's are about 30.
const MaxIDLength = 1024

var bufPool = sync.Pool{New: func() any { return new(bytes.Buffer) }}

func (rc *Receiver) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodPost {
		w.Header().Set("Allow", http.MethodPost)
		writeJSONError(w, http.StatusMethodNotAllowed, "method not allowed; use POST")
		return
	}
	log := rc.Logger
	if log == nil {
		log = slog.Default()
	}
	// A request without the webhook headers, or with a stale timestamp, is refused before its
	// body (up to MaxBody) is read into memory.
	if err := rc.Verifier.CheckHeaders(r.Header); err != nil {
		log.Warn("webhook rejected", "reason", err.Error(), "remote", r.RemoteAddr)
		writeJSONError(w, http.StatusUnauthorized, err.Error())
		return
	}
	limit := rc.MaxBody
	if limit <= 0 {
		limit = 10 << 20
	}
	buf := bufPool.Get().(*bytes.Buffer)
	buf.Reset()
	defer func() {
		if buf.Cap() <= 1<<20 { // do not keep outsized buffers alive
			bufPool.Put(buf)
		}
	}()
	if _, err := buf.ReadFrom(http.MaxBytesReader(w, r.Body, limit)); err != nil {
		var tooBig *http.MaxBytesError
		if errors.As(err, &tooBig) {
			writeJSONError(w, http.StatusRequestEntityTooLarge, "body larger than "+strconv.FormatInt(limit, 10)+" bytes")
			return
		}
		writeJSONError(w, http.StatusBadRequest, "reading body failed")
		return
	}
	body := buf.Bytes()
	if err := rc.Verifier.Verify(r.Header, body); err != nil {
		log.Warn("webhook rejected", "reason", err.Error(), "remote", r.RemoteAddr)
		writeJSONError(w, http.StatusUnauthorized, err.Error())
		return
	}

	now := time.Now
	if rc.Now != nil {
		now = rc.Now
	}
	rc.once.Do(rc.init)
	q := rc.queries.get(r.URL.RawQuery)
	meta, kind := q.meta, q.kind
	msgID := r.Header.Get("webhook-id")
	received := now().UTC()
	// Most deliveries are processing events with growing logs that no rule wants: route on the
	// head of the payload, parse it whole only when a rule's expression needs it, and check it
	// whole (CheckEvent) when it is going to be stored, which proves the dispatcher can read it.
	ev, err := ParseHead(body, msgID, kind, meta, received)
	if err != nil {
		writeJSONError(w, http.StatusBadRequest, err.Error())
		return
	}
	var full *Event
	parseFull := func() bool {
		if full == nil {
			if full, err = ParseEvent(body, msgID, kind, meta, received); err != nil {
				writeJSONError(w, http.StatusBadRequest, err.Error())
				return false
			}
		}
		return true
	}

	// A retry of a delivery stored lately: the store would answer duplicate, with nothing to
	// change. Checked after parsing, so that a malformed body is refused whatever its id.
	if rc.recent != nil && rc.recent.seen(msgID, received) {
		writeAck(w, Duplicate, 0, 0)
		return
	}

	item := &Ingest{
		MessageID:  msgID,
		Kind:       ev.Kind,
		SubjectID:  ev.ID,
		Status:     ev.Status,
		ReceivedAt: received,
		Meta:       meta,
	}
	for _, rule := range rc.Rules {
		if !rule.matchHead(ev) {
			continue
		}
		if rule.HasExpression() {
			if !parseFull() {
				return
			}
			ok, err := rule.matchExpression(full)
			if err != nil {
				log.Warn("rule expression failed; rule skipped for this event", "rule", rule.Name, "id", ev.ID, "err", err)
				continue
			}
			if !ok {
				continue
			}
		}
		for _, n := range rule.Notify {
			item.Deliveries = append(item.Deliveries, DeliverySpec{Rule: rule.Name, Notifier: n, Template: rule.Template})
		}
		for _, d := range rule.Digests {
			if !slices.Contains(item.Digests, d) {
				item.Digests = append(item.Digests, d)
			}
		}
	}
	if len(item.Deliveries) > 0 || len(item.Digests) > 0 {
		// The dispatcher parses it again to send it: an event it could not read is refused now.
		if full == nil {
			if err := CheckEvent(body, kind); err != nil {
				writeJSONError(w, http.StatusBadRequest, err.Error())
				return
			}
		}
		// The pooled buffer outlives the store's use of it: Submit returns only once the
		// item is committed, or was never taken.
		item.Body = body
	} else if !ev.Terminal() && !rc.stageMatters(ev.Status.Stage()) {
		// Most webhooks are processing events that no rule wants. Storing them would change
		// nothing: they create no deliveries, Replicate never retries a non-terminal event, and
		// no rule could match an earlier status that their stage would make stale. Only
		// terminal events and events with deliveries need the disk; skipping it here roughly
		// doubles throughput (see the README's figures).
		writeAck(w, Ignored, 0, 0)
		return
	}

	// What is stored as text must be storable as text everywhere: a single NUL would make
	// PostgreSQL refuse the whole group commit, every webhook in it answered 503, and so would
	// a key too long for its index.
	switch {
	case q.unstorable != "":
		writeJSONError(w, http.StatusBadRequest, fmt.Sprintf("query parameter %q: a NUL byte or invalid UTF-8 in its name or value", q.unstorable))
		return
	case !isStorable(msgID):
		writeJSONError(w, http.StatusBadRequest, "webhook-id: a NUL byte or invalid UTF-8")
		return
	case len(msgID) > MaxIDLength:
		writeJSONError(w, http.StatusBadRequest, fmt.Sprintf("webhook-id: longer than %d bytes", MaxIDLength))
		return
	case !isStorable(ev.ID):
		writeJSONError(w, http.StatusBadRequest, "id: a NUL byte or invalid UTF-8")
		return
	case len(ev.ID) > MaxIDLength:
		writeJSONError(w, http.StatusBadRequest, fmt.Sprintf("id: longer than %d bytes", MaxIDLength))
		return
	}
	if err := rc.Committer.Submit(r.Context(), item); err != nil {
		log.Error("webhook not stored; answering 503 so the sender retries", "id", ev.ID, "webhook_id", msgID, "err", err)
		w.Header().Set("Retry-After", "5")
		writeJSONError(w, http.StatusServiceUnavailable, "temporarily unable to store the event")
		return
	}
	if rc.recent != nil && item.Outcome != Duplicate {
		// Recorded as received now. (A duplicate's id was recorded at its first delivery, a
		// time unknown here, after which the store forgets it.)
		rc.recent.add(msgID, received)
	}
	if item.Outcome != Accepted || item.Created > 0 {
		log.Debug("webhook", "outcome", item.Outcome.String(), "kind", ev.Kind, "id", ev.ID,
			"status", ev.Status, "webhook_id", msgID, "deliveries", item.Created)
	}
	writeAck(w, item.Outcome, item.Created, item.Collected)
}

// stageMatters reports whether recording that a prediction reached stage could change a later
// decision: whether any rule could match an event of an earlier stage.
func (rc *Receiver) stageMatters(stage int) bool {
	for _, r := range rc.Rules {
		if r.MayMatchBefore(stage) {
			return true
		}
	}
	return false
}

func writeAck(w http.ResponseWriter, o Outcome, created, collected int) {
	// Most answers are the same few bytes (ignored, duplicate): they and the header value are
	// made once. The header's slice is shared, which net/http allows: it only reads it.
	w.Header()["Content-Type"] = jsonContentType
	w.WriteHeader(http.StatusOK)
	var body []byte
	if created == 0 && collected == 0 && o >= 0 && int(o) < len(plainAcks) {
		body = plainAcks[o]
	} else {
		body = ackBody(o, created, collected)
	}
	_, _ = w.Write(body)
}

var (
	jsonContentType = []string{"application/json"}
	// plainAcks are the answers that created nothing, by outcome.
	plainAcks [Ignored + 1][]byte
)

func init() {
	for o := range plainAcks {
		plainAcks[o] = ackBody(Outcome(o), 0, 0)
	}
}

// ackBody is the answer to a stored or ignored webhook: its outcome, the deliveries it created
// and, when there are any, the digest items it added.
func ackBody(o Outcome, created, collected int) []byte {
	b := make([]byte, 0, 64)
	b = append(b, `{"outcome":"`...)
	b = append(b, o.String()...)
	b = append(b, `","deliveries":`...)
	b = strconv.AppendInt(b, int64(created), 10)
	if collected > 0 {
		b = append(b, `,"digest_items":`...)
		b = strconv.AppendInt(b, int64(collected), 10)
	}
	return append(b, "}\n"...)
}

func writeJSONError(w http.ResponseWriter, code int, msg string) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("X-Content-Type-Options", "nosniff")
	w.WriteHeader(code)
	_ = json.NewEncoder(w).Encode(struct {
		Error string `json:"error"`
	}{msg})
}
