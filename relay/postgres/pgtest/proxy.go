package pgtest

import (
	"net"
	"net/url"
	"sync"
	"testing"
)

// Proxy stands between the stores of a test and the test server, so that the test can take the
// server away from them (refusing connections and dropping the open ones) and bring it back, or
// make it fall silent, without touching the server, which other tests share.
type Proxy struct {
	target string // the server's host:port
	addr   string // the proxy's, fixed by the first Start so that URLs through it stay valid

	mu     sync.Mutex
	ln     net.Listener
	conns  map[net.Conn]bool
	silent bool
	wg     sync.WaitGroup
}

// NewProxy starts a proxy to the server of u, a URL made by URL, and returns it with u rewritten
// to go through it. The proxy stops when t ends; a store connected through a silenced proxy
// should be closed after the proxy stops (a t.Cleanup(p.Stop) registered after opening it), as
// pgx waits up to 15 seconds for a connection it gave up on to be closed from the other side.
func NewProxy(t testing.TB, u string) (*Proxy, string) {
	t.Helper()
	pu, err := url.Parse(u)
	if err != nil {
		t.Fatalf("pgtest: proxy: %v", err)
	}
	p := &Proxy{target: pu.Host, conns: map[net.Conn]bool{}}
	p.Start(t)
	t.Cleanup(p.Stop)
	pu.Host = p.addr
	return p, pu.String()
}

// Start listens, at the same address as before if the proxy ran already, and forwards the
// connections it accepts to the server.
func (p *Proxy) Start(t testing.TB) {
	t.Helper()
	addr := p.addr
	if addr == "" {
		addr = "127.0.0.1:0"
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		t.Fatalf("pgtest: proxy: %v", err)
	}
	p.mu.Lock()
	p.ln, p.addr, p.silent = ln, ln.Addr().String(), false
	p.mu.Unlock()
	p.wg.Go(func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			p.mu.Lock()
			p.conns[c] = true
			silent := p.silent
			p.mu.Unlock()
			if silent {
				continue // held open, never answered
			}
			server, err := net.Dial("tcp", p.target)
			if err != nil {
				c.Close()
				continue
			}
			p.mu.Lock()
			p.conns[server] = true
			p.mu.Unlock()
			p.wg.Go(func() { p.pipe(server, c) })
			p.wg.Go(func() { p.pipe(c, server) })
		}
	})
}

// pipe copies from src to dst until either closes, dropping what it reads while silent.
func (p *Proxy) pipe(dst, src net.Conn) {
	defer dst.Close()
	defer src.Close()
	buf := make([]byte, 32<<10)
	for {
		n, err := src.Read(buf)
		p.mu.Lock()
		silent := p.silent
		p.mu.Unlock()
		if n > 0 && !silent {
			if _, err := dst.Write(buf[:n]); err != nil {
				return
			}
		}
		if err != nil {
			return
		}
	}
}

// Stop refuses new connections and drops the open ones, as a server going away would, and
// waits until the proxy's goroutines have ended. Stopping a stopped proxy does nothing.
func (p *Proxy) Stop() {
	p.mu.Lock()
	if p.ln != nil {
		p.ln.Close()
		p.ln = nil
	}
	for c := range p.conns {
		c.Close()
		delete(p.conns, c)
	}
	p.mu.Unlock()
	p.wg.Wait()
}

// Silence makes the server stop answering while connections stay open and new ones are
// accepted, as behind a network that drops packets, until the proxy is stopped and started again.
func (p *Proxy) Silence() {
	p.mu.Lock()
	p.silent = true
	p.mu.Unlock()
}
