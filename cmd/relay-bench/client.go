package main

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/url"
	"strconv"
	"sync"
	"time"

	"github.com/mlrelay/relay/relay/replicate"
)

// poster is one sender's keep-alive HTTP/1.1 connection to the server under test, posting
// signed webhooks. It speaks just enough HTTP/1.1 for that, on one goroutine with one write
// and (usually) one read per request. The load generator shares the machine's two cores with
// the server it measures, so its own cost is measurement noise: net/http's client spends
// three goroutines and a dozen allocations on each request, about twice what this does,
// which takes CPU from whichever server is being measured.
type poster struct {
	addr    string // host:port
	head    []byte // "POST <target> HTTP/1.1\r\nHost: ...\r\n...", the constant part of every request
	key     []byte // the signing key
	timeout time.Duration

	mu   sync.Mutex // guards conn against the cancellation, which may come from another goroutine
	conn net.Conn
	br   *bufio.Reader
	req  []byte // the request head being built
	stop func() bool
}

// newPoster prepares a poster for the webhook URL rawURL; it connects on first use.
func newPoster(ctx context.Context, rawURL, secret string) (*poster, error) {
	u, err := url.Parse(rawURL)
	if err != nil {
		return nil, err
	}
	if u.Scheme != "http" {
		return nil, fmt.Errorf("%s: only http:// is supported", rawURL)
	}
	key, err := replicate.ParseSecret(secret)
	if err != nil {
		return nil, err
	}
	p := &poster{addr: u.Host, key: key, timeout: 30 * time.Second}
	p.head = fmt.Appendf(nil, "POST %s HTTP/1.1\r\nHost: %s\r\nUser-Agent: relay-bench\r\nContent-Type: application/json\r\n",
		u.RequestURI(), u.Host)
	// A cancelled run ends the request in flight at once rather than at its timeout.
	p.stop = context.AfterFunc(ctx, func() {
		p.mu.Lock()
		defer p.mu.Unlock()
		if p.conn != nil {
			_ = p.conn.SetDeadline(time.Now())
		}
	})
	return p, nil
}

// close closes the connection.
func (p *poster) close() {
	p.stop()
	p.drop()
}

// post sends body signed now as message id and reads the answer into resp. It returns the
// status code and the latency from the request's first byte to the answer's last. On any
// error the connection is closed, and the next post dials again.
func (p *poster) post(ctx context.Context, id string, body []byte, resp *[]byte) (code int, lat time.Duration, err error) {
	if err := ctx.Err(); err != nil {
		return 0, 0, err
	}
	now := time.Now()
	ts := now.Unix()
	r := append(p.req[:0], p.head...)
	r = append(r, "Content-Length: "...)
	r = strconv.AppendInt(r, int64(len(body)), 10)
	r = append(r, "\r\n"+replicate.HeaderID+": "...)
	r = append(r, id...)
	r = append(r, "\r\n"+replicate.HeaderTimestamp+": "...)
	r = strconv.AppendInt(r, ts, 10)
	r = append(r, "\r\n"+replicate.HeaderSignature+": "...)
	r = append(r, replicate.Sign(p.key, id, ts, body)...)
	r = append(r, "\r\n\r\n"...)
	p.req = r

	if p.conn == nil {
		c, err := net.DialTimeout("tcp", p.addr, 5*time.Second)
		if err != nil {
			return 0, 0, err
		}
		p.mu.Lock()
		p.conn, p.br = c, bufio.NewReaderSize(c, 4<<10)
		p.mu.Unlock()
		if ctx.Err() != nil { // cancelled while dialling: AfterFunc saw no connection
			p.drop()
			return 0, 0, ctx.Err()
		}
	}
	t0 := time.Now()
	_ = p.conn.SetDeadline(t0.Add(p.timeout))
	bufs := net.Buffers{r, body}
	if _, err := bufs.WriteTo(p.conn); err != nil {
		p.drop()
		return 0, time.Since(t0), err
	}
	code, keep, err := readResponse(p.br, resp)
	lat = time.Since(t0)
	if err != nil {
		p.drop()
		return 0, lat, fmt.Errorf("reading answer: %w", err)
	}
	if !keep {
		p.drop()
	}
	return code, lat, nil
}

// drop closes the connection, if any; the next post dials again.
func (p *poster) drop() {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.conn != nil {
		p.conn.Close()
		p.conn = nil
	}
}

// maxAnswer bounds the body of an answer that is kept; the rest is read and discarded.
const maxAnswer = 64 << 10

// readResponse reads one HTTP/1.1 response: its status code, whether the connection may be
// reused, and its body (up to maxAnswer bytes kept in resp).
func readResponse(br *bufio.Reader, resp *[]byte) (code int, keep bool, err error) {
	line, err := readLine(br)
	if err != nil {
		return 0, false, err
	}
	// "HTTP/1.1 200 OK"
	if len(line) < 12 || !bytes.HasPrefix(line, []byte("HTTP/1.")) || line[8] != ' ' {
		return 0, false, fmt.Errorf("malformed status line %q", line)
	}
	code, err = strconv.Atoi(string(line[9:12]))
	if err != nil {
		return 0, false, fmt.Errorf("malformed status line %q", line)
	}
	keep = line[7] == '1'
	length, chunked := -1, false
	for {
		line, err := readLine(br)
		if err != nil {
			return 0, false, err
		}
		if len(line) == 0 {
			break
		}
		colon := bytes.IndexByte(line, ':')
		if colon < 0 {
			return 0, false, fmt.Errorf("malformed header line %q", line)
		}
		name, value := line[:colon], bytes.TrimSpace(line[colon+1:])
		switch {
		case bytes.EqualFold(name, []byte("Content-Length")):
			if length, err = strconv.Atoi(string(value)); err != nil || length < 0 {
				return 0, false, fmt.Errorf("malformed Content-Length %q", value)
			}
		case bytes.EqualFold(name, []byte("Transfer-Encoding")):
			chunked = bytes.EqualFold(value, []byte("chunked"))
		case bytes.EqualFold(name, []byte("Connection")):
			if bytes.EqualFold(value, []byte("close")) {
				keep = false
			}
		}
	}
	*resp = (*resp)[:0]
	switch {
	case chunked:
		for {
			line, err := readLine(br)
			if err != nil {
				return 0, false, err
			}
			if i := bytes.IndexByte(line, ';'); i >= 0 {
				line = line[:i]
			}
			n, err := strconv.ParseInt(string(bytes.TrimSpace(line)), 16, 64)
			if err != nil || n < 0 {
				return 0, false, fmt.Errorf("malformed chunk size %q", line)
			}
			if n == 0 {
				for { // trailers, then the empty line
					if line, err = readLine(br); err != nil || len(line) == 0 {
						return code, keep, err
					}
				}
			}
			if err := readBody(br, int(n), resp); err != nil {
				return 0, false, err
			}
			if line, err = readLine(br); err != nil || len(line) != 0 {
				return 0, false, errors.New("malformed chunk end")
			}
		}
	case length >= 0:
		return code, keep, readBody(br, length, resp)
	case code == 204 || code == 304 || code/100 == 1:
		return code, keep, nil
	default: // the body runs to the end of the connection
		err := readBody(br, -1, resp)
		return code, false, err
	}
}

// readBody appends n bytes of br to resp, keeping at most maxAnswer of them and discarding
// the rest; n < 0 reads to the end of the connection.
func readBody(br *bufio.Reader, n int, resp *[]byte) error {
	var src io.Reader = br
	if n >= 0 {
		src = io.LimitReader(br, int64(n))
	}
	b := bytes.NewBuffer(*resp)
	kept, err := io.Copy(b, io.LimitReader(src, int64(max(0, maxAnswer-len(*resp)))))
	*resp = b.Bytes()
	if err != nil {
		return err
	}
	skipped, err := io.Copy(io.Discard, src)
	if err != nil {
		return err
	}
	if n >= 0 && kept+skipped < int64(n) {
		return io.ErrUnexpectedEOF
	}
	return nil
}

// readLine reads one CRLF- (or LF-) terminated line without its terminator. The line is only
// valid until the next read.
func readLine(br *bufio.Reader) ([]byte, error) {
	line, err := br.ReadSlice('\n')
	if err != nil {
		if errors.Is(err, bufio.ErrBufferFull) {
			return nil, errors.New("header line too long")
		}
		if errors.Is(err, io.EOF) {
			return nil, io.ErrUnexpectedEOF
		}
		return nil, err
	}
	line = line[:len(line)-1]
	if n := len(line); n > 0 && line[n-1] == '\r' {
		line = line[:n-1]
	}
	return line, nil
}
