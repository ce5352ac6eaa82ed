package relay

import (
	"hash/maphash"
	"net/url"
	"sync/atomic"
)

// hookQuery is what the receiver reads from a hook URL's query: the metadata of its events (the
// first value of each parameter) and the kind it names.
type hookQuery struct {
	raw  string
	meta map[string]string
	kind string
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
	for k, vs := range v {
		if len(vs) > 0 {
			meta[k] = vs[0]
		}
	}
	return &hookQuery{raw: raw, meta: meta, kind: meta["kind"]}
}
