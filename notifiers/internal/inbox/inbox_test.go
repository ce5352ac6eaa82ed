package inbox

import (
	"strings"
	"testing"
	"time"
)

func TestInbox(t *testing.T) {
	var b Inbox[string]
	go func() {
		for _, m := range []string{"a", "b", "c"} {
			time.Sleep(5 * time.Millisecond)
			b.Add(m)
		}
	}()
	got, err := b.WaitFor(3, 5*time.Second)
	if err != nil || strings.Join(got, "") != "abc" {
		t.Fatalf("WaitFor(3) = %q, %v", got, err)
	}
	got, err = b.WaitFor(4, 50*time.Millisecond)
	if err == nil || len(got) != 3 || !strings.Contains(err.Error(), "3 of 4 messages") {
		t.Fatalf("WaitFor(4) = %q, %v; want the 3 so far and an error", got, err)
	}
	b.Reset()
	if len(b.All()) != 0 {
		t.Fatal("Reset kept messages")
	}
	// A waiter blocked across a Reset keeps waiting for new messages.
	done := make(chan []string)
	go func() { m, _ := b.WaitFor(1, 5*time.Second); done <- m }()
	time.Sleep(10 * time.Millisecond)
	b.Add("d")
	if m := <-done; len(m) != 1 || m[0] != "d" {
		t.Fatalf("waiter got %q", m)
	}
}
