// Package attach downloads a prediction's output files so that notifiers can send the files
// themselves: Replicate deletes outputs about an hour after a run, and a link posted in a
// message dies with them.
//
// It refuses to become a fetcher of arbitrary URLs: only https, only hosts on an allow-list
// (default replicate.delivery), redirects only within the allow-list, and every download
// bounded in size and time.
package attach

import (
	"context"
	"errors"
	"fmt"
	"io"
	"mime"
	"net"
	"net/http"
	"net/url"
	"path"
	"strings"
	"time"

	"github.com/mlrelay/relay/relay"
)

// Options configure a Fetcher. Zero values take the defaults in brackets.
type Options struct {
	// Hosts are the hosts files may come from: a name matches itself, and ".example.com"
	// matches any subdomain of example.com. [replicate.delivery]
	Hosts []string
	// MaxBytes bounds one file. [8 MiB]
	MaxBytes int64
	// MaxFiles bounds the files fetched for one message; the rest stay links. [4]
	MaxFiles int
	// Timeout bounds one download. [20s]
	Timeout time.Duration
	// Client makes the requests (tests give one that trusts their TLS server). Its redirect
	// policy is replaced by the Fetcher's. [a client of its own]
	Client *http.Client
}

// Fetcher downloads output files. It is safe for concurrent use.
type Fetcher struct {
	hosts    []string
	maxBytes int64
	maxFiles int
	timeout  time.Duration
	client   *http.Client
}

// New returns a Fetcher with o's settings, defaults filled in.
func New(o Options) *Fetcher {
	f := &Fetcher{hosts: o.Hosts, maxBytes: o.MaxBytes, maxFiles: o.MaxFiles, timeout: o.Timeout}
	if len(f.hosts) == 0 {
		f.hosts = []string{"replicate.delivery"}
	}
	if f.maxBytes <= 0 {
		f.maxBytes = 8 << 20
	}
	if f.maxFiles <= 0 {
		f.maxFiles = 4
	}
	if f.timeout <= 0 {
		f.timeout = 20 * time.Second
	}
	c := &http.Client{}
	if o.Client != nil {
		*c = *o.Client
	}
	c.CheckRedirect = func(req *http.Request, via []*http.Request) error {
		if len(via) >= 3 {
			return errors.New("too many redirects")
		}
		return f.allowed(req.URL)
	}
	f.client = c
	return f
}

// ErrNotAllowed is wrapped by the error for a URL the Fetcher refuses to download.
var ErrNotAllowed = errors.New("not an allowed download")

// Fetch downloads up to MaxFiles of urls, in order. It returns the files it got and an error
// for each URL it could not get (refused, failed, too large, or over the count), so that the
// caller can keep those as links. It never fails as a whole.
func (f *Fetcher) Fetch(ctx context.Context, urls []string) ([]relay.Attachment, []error) {
	var (
		files []relay.Attachment
		errs  []error
	)
	if extra := len(urls) - f.maxFiles; extra > 0 {
		// One error for the lot: an output may list any number of URLs, and each would be a
		// line of the caller's log.
		errs = append(errs, fmt.Errorf("%d more files not attached: at most %d files per message", extra, f.maxFiles))
		urls = urls[:f.maxFiles]
	}
	for _, u := range urls {
		a, err := f.fetch(ctx, u)
		if err != nil {
			errs = append(errs, fmt.Errorf("%s: %w", u, err))
			continue
		}
		files = append(files, a)
	}
	return files, errs
}

func (f *Fetcher) allowed(u *url.URL) error {
	if u.Scheme != "https" {
		return fmt.Errorf("%w: scheme %q (only https)", ErrNotAllowed, u.Scheme)
	}
	if u.User != nil {
		return fmt.Errorf("%w: URL with user information", ErrNotAllowed)
	}
	host := strings.ToLower(u.Hostname())
	// An IP address matches only itself. Anything else must be a plain host name: a bracketed
	// address with a zone ("[::1%25a.cdn.example]") ends in an allowed suffix and connects to
	// ::1.
	ip := net.ParseIP(host) != nil
	if !ip && strings.IndexFunc(host, func(r rune) bool {
		return !(r >= 'a' && r <= 'z' || r >= '0' && r <= '9' || r == '.' || r == '-' || r == '_')
	}) >= 0 {
		return fmt.Errorf("%w: host %q is not a plain host name", ErrNotAllowed, host)
	}
	for _, h := range f.hosts {
		h = strings.ToLower(h)
		if host == h || (!ip && strings.HasPrefix(h, ".") && strings.HasSuffix(host, h)) {
			return nil
		}
	}
	return fmt.Errorf("%w: host %q is not on the allow-list", ErrNotAllowed, host)
}

func (f *Fetcher) fetch(ctx context.Context, raw string) (relay.Attachment, error) {
	u, err := url.Parse(raw)
	if err != nil {
		return relay.Attachment{}, fmt.Errorf("%w: unparsable URL", ErrNotAllowed)
	}
	if err := f.allowed(u); err != nil {
		return relay.Attachment{}, err
	}
	ctx, cancel := context.WithTimeout(ctx, f.timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u.String(), nil)
	if err != nil {
		return relay.Attachment{}, err
	}
	resp, err := f.client.Do(req)
	if err != nil {
		var ue *url.Error
		if errors.As(err, &ue) {
			err = ue.Err // the URL is already in the message
		}
		return relay.Attachment{}, fmt.Errorf("download failed: %w", err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return relay.Attachment{}, fmt.Errorf("download failed: %s", resp.Status)
	}
	if resp.ContentLength > f.maxBytes {
		return relay.Attachment{}, fmt.Errorf("file of %d bytes is over the limit of %d", resp.ContentLength, f.maxBytes)
	}
	data, err := io.ReadAll(io.LimitReader(resp.Body, f.maxBytes+1))
	if err != nil {
		return relay.Attachment{}, fmt.Errorf("download failed: %w", err)
	}
	if int64(len(data)) > f.maxBytes {
		return relay.Attachment{}, fmt.Errorf("file is over the limit of %d bytes", f.maxBytes)
	}
	return relay.Attachment{Name: fileName(u), ContentType: contentType(resp.Header.Get("Content-Type"), u, data), Data: data, URL: raw}, nil
}

// fileName is the last element of the URL's path, reduced to safe characters.
func fileName(u *url.URL) string {
	name := path.Base(u.Path)
	var b strings.Builder
	for _, r := range name {
		switch {
		case r >= 'a' && r <= 'z', r >= 'A' && r <= 'Z', r >= '0' && r <= '9', r == '.', r == '-', r == '_':
			b.WriteRune(r)
		default:
			b.WriteByte('_')
		}
	}
	if s := strings.Trim(b.String(), "."); strings.Trim(s, "_") != "" {
		return s
	}
	return "output"
}

// contentType trusts a specific Content-Type header, then the file extension, then sniffing.
func contentType(header string, u *url.URL, data []byte) string {
	if mt, _, err := mime.ParseMediaType(header); err == nil && mt != "application/octet-stream" {
		return mt
	}
	if t := mime.TypeByExtension(path.Ext(u.Path)); t != "" {
		return t
	}
	return http.DetectContentType(data)
}
