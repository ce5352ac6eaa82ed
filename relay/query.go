package relay

import (
	"hash/maphash"
	"net/url"
	"strings"
	"sync/atomic"
	"unicode/utf8"
)

// hookQuery is what the receiver reads from a hook URL's query: the metadata of its events (the
// first value of each parameter) and the kind it names.
type hookQuery struct {
	raw  string
	meta map[string]string
	kind string
	// unstorable names a parameter whose name or value no store can keep as text (a NUL, or
	// invalid UTF-8), or is "".
	unstorable string
}

// queryCache remembers the hook URLs' queries lately parsed. Replicate posts every webhook of a
// run to the URL it was given, and a team uses a handful of them (?kind=training, ?team=vision),
// so almost every request finds its query here and parsing it (a map per request) is spared.
// The maps are shared between the events of one URL: Event.Meta is never modified.
//
// A fixed number of slots bounds it whatever the queries: a query whose slot holds another
// replaces it.
type queryCache struct {
	seed  maphash.Seed
	slots [queryCacheSlots]atomic.Pointer[hookQuery]
}

const queryCacheSlots = 16

func newQueryCache() *queryCache { return &queryCache{seed: maphash.MakeSeed()} }

// get returns the parsed form of the raw query.
func (c *queryCache) get(raw string) *hookQuery {
	slot := &c.slots[maphash.String(c.seed, raw)%queryCacheSlots]
	if q := slot.Load(); q != nil && q.raw == raw {
		return q
	}
	q := parseHookQuery(raw)
	slot.Store(q)
	return q
}

// parseHookQuery parses a raw query as url.URL.Query does: pairs it cannot read are left out.
func parseHookQuery(raw string) *hookQuery {
	v, _ := url.ParseQuery(raw)
	meta := make(map[string]string, len(v))
	q := &hookQuery{raw: raw, meta: meta}
	for k, vs := range v {
		if len(vs) > 0 {
			meta[k] = vs[0]
			if !isStorable(k) || !isStorable(vs[0]) {
				q.unstorable = k
			}
		}
	}
	q.kind = meta["kind"]
	return q
}

// isStorable reports whether s can be stored as text: valid UTF-8 without NUL, which
// PostgreSQL's text and jsonb refuse.
func isStorable(s string) bool {
	return strings.IndexByte(s, 0) < 0 && utf8.ValidString(s)
}

// storableText is s made storable: invalid UTF-8 and NULs become U+FFFD.
func storableText(s string) string {
	if isStorable(s) {
		return s
	}
	return strings.ReplaceAll(strings.ToValidUTF8(s, "\uFFFD"), "\x00", "\uFFFD")
}
