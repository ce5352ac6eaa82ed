package smtptest

import (
	"bytes"
	"encoding/base64"
	"fmt"
	"io"
	"mime"
	"mime/multipart"
	"mime/quotedprintable"
	"net/mail"
	"net/textproto"
	"strings"
)

// maxDepth bounds the nesting of multiparts that ParseMessage follows.
const maxDepth = 10

// Part is one MIME entity of a parsed message: the message itself at the root, then its parts.
type Part struct {
	// Header is the entity's header as received; for the root, the message header.
	Header textproto.MIMEHeader
	// ContentType is the media type, lower case, e.g. "multipart/alternative" or "image/png";
	// "text/plain" when the header is absent.
	ContentType string
	// Params are the Content-Type parameters (charset, boundary, name).
	Params map[string]string
	// Disposition is "inline", "attachment" or "".
	Disposition string
	// Filename is the Content-Disposition filename, or else the Content-Type name.
	Filename string
	// ContentID is the Content-ID without its angle brackets.
	ContentID string
	// Encoding is the Content-Transfer-Encoding, lower case.
	Encoding string
	// Body is the decoded body (base64 and quoted-printable undone); nil for multiparts.
	Body []byte
	// Parts are the children of a multipart.
	Parts []*Part
}

// ParseMessage parses a message into its MIME tree with net/mail and mime/multipart.
func ParseMessage(raw []byte) (*Part, error) {
	msg, err := mail.ReadMessage(bytes.NewReader(raw))
	if err != nil {
		return nil, fmt.Errorf("smtptest: read message: %w", err)
	}
	return parseEntity(textproto.MIMEHeader(msg.Header), msg.Body, 0)
}

func parseEntity(h textproto.MIMEHeader, body io.Reader, depth int) (*Part, error) {
	p := &Part{Header: h, ContentType: "text/plain", Params: map[string]string{}}
	if ct := h.Get("Content-Type"); ct != "" {
		mt, params, err := mime.ParseMediaType(ct)
		if err != nil {
			return nil, fmt.Errorf("smtptest: Content-Type %q: %w", ct, err)
		}
		p.ContentType, p.Params = mt, params
	}
	if cd := h.Get("Content-Disposition"); cd != "" {
		d, params, err := mime.ParseMediaType(cd)
		if err != nil {
			return nil, fmt.Errorf("smtptest: Content-Disposition %q: %w", cd, err)
		}
		p.Disposition, p.Filename = d, params["filename"]
	}
	if p.Filename == "" {
		p.Filename = p.Params["name"]
	}
	p.ContentID = strings.TrimSuffix(strings.TrimPrefix(strings.TrimSpace(h.Get("Content-ID")), "<"), ">")
	p.Encoding = strings.ToLower(strings.TrimSpace(h.Get("Content-Transfer-Encoding")))

	if strings.HasPrefix(p.ContentType, "multipart/") {
		if depth >= maxDepth {
			return nil, fmt.Errorf("smtptest: multiparts nested deeper than %d", maxDepth)
		}
		boundary := p.Params["boundary"]
		if boundary == "" {
			return nil, fmt.Errorf("smtptest: %s without a boundary", p.ContentType)
		}
		mr := multipart.NewReader(body, boundary)
		for {
			// NextRawPart leaves quoted-printable alone, so that every encoding is undone here.
			child, err := mr.NextRawPart()
			if err == io.EOF {
				break
			}
			if err != nil {
				return nil, fmt.Errorf("smtptest: %s: %w", p.ContentType, err)
			}
			cp, err := parseEntity(child.Header, child, depth+1)
			if err != nil {
				return nil, err
			}
			p.Parts = append(p.Parts, cp)
		}
		return p, nil
	}

	var r io.Reader = body
	switch p.Encoding {
	case "base64":
		r = base64.NewDecoder(base64.StdEncoding, newlineStripper{body})
	case "quoted-printable":
		r = quotedprintable.NewReader(body)
	}
	b, err := io.ReadAll(r)
	if err != nil {
		return nil, fmt.Errorf("smtptest: %s body (%s): %w", p.ContentType, p.Encoding, err)
	}
	p.Body = b
	return p, nil
}

// newlineStripper drops CR and LF, which base64 bodies are wrapped with.
type newlineStripper struct{ r io.Reader }

func (n newlineStripper) Read(b []byte) (int, error) {
	for {
		c, err := n.r.Read(b)
		j := 0
		for _, x := range b[:c] {
			if x != '\r' && x != '\n' {
				b[j] = x
				j++
			}
		}
		if j > 0 || err != nil {
			return j, err
		}
	}
}

// Subject is the decoded Subject header (RFC 2047 encoded words undone).
func (p *Part) Subject() string { return decodeHeader(p.Header.Get("Subject")) }

// HeaderText is a header decoded from RFC 2047 encoded words.
func (p *Part) HeaderText(name string) string { return decodeHeader(p.Header.Get(name)) }

func decodeHeader(v string) string {
	d, err := new(mime.WordDecoder).DecodeHeader(v)
	if err != nil {
		return v
	}
	return d
}

// Walk calls fn for p and each part below it, depth first, in order.
func (p *Part) Walk(fn func(*Part)) {
	fn(p)
	for _, c := range p.Parts {
		c.Walk(fn)
	}
}

// Leaves lists the parts that are not multiparts, in order.
func (p *Part) Leaves() []*Part {
	var out []*Part
	p.Walk(func(q *Part) {
		if len(q.Parts) == 0 && !strings.HasPrefix(q.ContentType, "multipart/") {
			out = append(out, q)
		}
	})
	return out
}

// Find returns the first part with the given media type, or nil.
func (p *Part) Find(contentType string) *Part {
	var found *Part
	p.Walk(func(q *Part) {
		if found == nil && q.ContentType == contentType {
			found = q
		}
	})
	return found
}

// Structure describes the tree in one line per part, e.g.
//
//	multipart/mixed
//	  multipart/alternative
//	    text/plain; charset=UTF-8 (quoted-printable)
//	  image/png; inline; cid=out-0.png; filename=out-0.png (base64)
func (p *Part) Structure() string {
	var sb strings.Builder
	p.structure(&sb, 0)
	return sb.String()
}

func (p *Part) structure(sb *strings.Builder, depth int) {
	sb.WriteString(strings.Repeat("  ", depth))
	sb.WriteString(p.ContentType)
	if cs := p.Params["charset"]; cs != "" {
		sb.WriteString("; charset=" + cs)
	}
	if p.Disposition != "" {
		sb.WriteString("; " + p.Disposition)
	}
	if p.ContentID != "" {
		sb.WriteString("; cid=" + p.ContentID)
	}
	if p.Filename != "" {
		sb.WriteString("; filename=" + p.Filename)
	}
	if p.Encoding != "" && len(p.Parts) == 0 {
		sb.WriteString(" (" + p.Encoding + ")")
	}
	sb.WriteString("\n")
	for _, c := range p.Parts {
		c.structure(sb, depth+1)
	}
}
