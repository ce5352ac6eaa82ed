package relay

import (
	"fmt"
	"maps"
	"sync"
	"testing"
)

func TestQueryCache(t *testing.T) {
	c := newQueryCache()
	q := c.get("kind=training&team=vision&team=nlp&customId=12%203")
	want := map[string]string{"kind": "training", "team": "vision", "customId": "12 3"}
	if !maps.Equal(q.meta, want) || q.kind != "training" {
		t.Fatalf("got meta %v kind %q, want %v and training", q.meta, q.kind, want)
	}
	if again := c.get("kind=training&team=vision&team=nlp&customId=12%203"); again != q {
		t.Error("the same query was parsed again")
	}
	if q := c.get(""); len(q.meta) != 0 || q.kind != "" {
		t.Errorf("empty query: %v %q", q.meta, q.kind)
	}
	// A pair url.ParseQuery cannot read is left out, as URL.Query leaves it.
	if q := c.get("a=%zz&b=2;c=3&kind=prediction"); !maps.Equal(q.meta, map[string]string{"kind": "prediction"}) {
		t.Errorf("unreadable pairs: %v", q.meta)
	}

	// Far more queries than slots, from several goroutines: each answer is its own query's.
	var wg sync.WaitGroup
	for g := range 4 {
		wg.Go(func() {
			for i := range 500 {
				raw := fmt.Sprintf("kind=prediction&n=%d", (i*7+g)%100)
				if q := c.get(raw); q.raw != raw || q.meta["n"] != fmt.Sprint((i*7+g)%100) || q.kind != "prediction" {
					t.Errorf("%s: got %q %v", raw, q.raw, q.meta)
					return
				}
			}
		})
	}
	wg.Wait()
}
