package slacktest

import (
	"bytes"
	"crypto/rand"
	"encoding/json"
	"fmt"
	"io"
	"mime"
	"mime/multipart"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"
)

// The file upload flow: files.getUploadURLExternal hands out an upload URL and a file ID for a
// file name and length, the client POSTs the bytes to the URL, and files.completeUploadExternal
// shares the uploaded files, by ID, in a channel and optionally a thread.
const (
	// GetUploadURLPath is the path of files.getUploadURLExternal.
	GetUploadURLPath = APIPath + "files.getUploadURLExternal"
	// CompleteUploadPath is the path of files.completeUploadExternal.
	CompleteUploadPath = APIPath + "files.completeUploadExternal"
	// UploadPath is the prefix of the upload URLs the stand-in hands out, on its own host. Like
	// Slack's (https://files.slack.com/upload/v1/...), each holds a one-off upload ID, and here
	// also a signature in its query string; either one wrong gets a 404.
	UploadPath = "/upload/v1/"
)

// maxUploadBody bounds one upload. Slack takes files of up to 1 GB; the stand-in keeps what it
// receives in memory, and a larger upload is answered 413.
const maxUploadBody = 64 << 20

// File is a file the stand-in received and shared with files.completeUploadExternal. Shared
// files are recorded here only, not as messages.
type File struct {
	// ID is the file's ID, e.g. F00000001.
	ID string
	// Name is the file name given to files.getUploadURLExternal.
	Name string
	// Title is the title given to files.completeUploadExternal, or Name when none was given
	// (as Slack does).
	Title string
	// Data is the bytes uploaded.
	Data []byte
	// Channel is the channel_id the file was shared in, or "" for a file left private.
	Channel string
	// ThreadTS is the thread_ts given: the ts of the message whose thread the file went to.
	ThreadTS string
	// Time is when the upload was completed.
	Time time.Time
}

// upload is a file between files.getUploadURLExternal and files.completeUploadExternal.
type upload struct {
	fileID   string
	uploadID string
	sig      string
	name     string
	length   int
	data     []byte
	uploaded bool
}

// FailNextFile scripts the next n requests to one step of the file upload flow, step being
// GetUploadURLPath, UploadPath or CompleteUploadPath, to fail with f, replacing any failures
// still scripted for that step: FailNextFile(step, 0, Failure{}) cancels them. The two Web API
// methods answer a failure as chat.postMessage does (200 with ok false unless f says otherwise);
// the upload URL as the webhook does (400 with a plain-text code unless f says otherwise). It
// panics on any other step.
func (h *Handler) FailNextFile(step string, n int, f Failure) {
	switch step {
	case GetUploadURLPath, UploadPath, CompleteUploadPath:
	default:
		panic(fmt.Sprintf("slacktest: FailNextFile: %q is not a step of the file upload flow", step))
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	h.fileFailures[step] = nil
	for range n {
		h.fileFailures[step] = append(h.fileFailures[step], f)
	}
}

// FileRequests is the number of requests made to the file upload flow's three steps, failed
// ones included.
func (h *Handler) FileRequests() int {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.fileRequests
}

// Files returns the files shared so far, in the order they were completed.
func (h *Handler) Files() []File {
	return h.files.All()
}

// WaitForFiles waits until at least n files were shared and returns them all. After timeout it
// returns those shared so far and an error.
func (h *Handler) WaitForFiles(n int, timeout time.Duration) ([]File, error) {
	files, err := h.files.WaitFor(n, timeout)
	if err != nil {
		err = fmt.Errorf("slacktest: files: %w", err)
	}
	return files, err
}

// scriptedFile answers a request to a step of the file upload flow with the next failure
// scripted for it, if any, and reports whether it did.
func (h *Handler) scriptedFile(w http.ResponseWriter, r *http.Request, step string, api bool) bool {
	h.mu.Lock()
	h.fileRequests++
	queue := h.fileFailures[step]
	if len(queue) == 0 {
		h.mu.Unlock()
		return false
	}
	f := queue[0]
	h.fileFailures[step] = queue[1:]
	h.mu.Unlock()
	return h.fail(w, r, f, api)
}

// serveGetUploadURL answers files.getUploadURLExternal: an upload URL on this server and a file
// ID, for a file name and a length in bytes, both required.
func (h *Handler) serveGetUploadURL(w http.ResponseWriter, r *http.Request, body []byte) {
	args, code := apiArgs(r.Header.Get("Content-Type"), body)
	if code != "" {
		writeAPIError(w, code, nil)
		return
	}
	if code := authError(r, args.Get("token")); code != "" {
		writeAPIError(w, code, nil)
		return
	}
	name := args.Get("filename")
	length, err := strconv.Atoi(args.Get("length"))
	if strings.TrimSpace(name) == "" || err != nil || length <= 0 {
		writeAPIError(w, "invalid_arguments", nil)
		return
	}
	h.mu.Lock()
	h.nextFile++
	u := &upload{
		fileID:   fmt.Sprintf("F%08d", h.nextFile),
		uploadID: fmt.Sprintf("UP%08d", h.nextFile),
		sig:      rand.Text(),
		name:     name,
		length:   length,
	}
	h.uploads[u.fileID] = u
	h.uploadIDs[u.uploadID] = u
	h.mu.Unlock()

	scheme := "http"
	if r.TLS != nil {
		scheme = "https"
	}
	uploadURL := scheme + "://" + r.Host + UploadPath + u.uploadID + "?" + url.Values{"sig": {u.sig}}.Encode()
	writeJSON(w, http.StatusOK, map[string]any{"ok": true, "upload_url": uploadURL, "file_id": u.fileID})
}

// serveUpload takes a file's bytes at its upload URL, raw or as the "file" part of a multipart
// form (Slack takes both), and answers 200 "OK - <length>". It insists on the length given to
// files.getUploadURLExternal, to catch a client that declares the wrong one.
func (h *Handler) serveUpload(w http.ResponseWriter, r *http.Request, body []byte) {
	id := strings.TrimPrefix(r.URL.Path, UploadPath)
	h.mu.Lock()
	u, ok := h.uploadIDs[id]
	h.mu.Unlock()
	if !ok || r.URL.Query().Get("sig") != u.sig {
		writeText(w, http.StatusNotFound, "not_found")
		return
	}
	data, err := uploadData(r.Header.Get("Content-Type"), body)
	if err != nil {
		writeText(w, http.StatusBadRequest, "invalid_form_data")
		return
	}
	if len(data) != u.length {
		writeText(w, http.StatusBadRequest, fmt.Sprintf("length_mismatch: %d bytes, %d declared", len(data), u.length))
		return
	}
	h.mu.Lock()
	u.data = data
	u.uploaded = true
	h.mu.Unlock()
	writeText(w, http.StatusOK, fmt.Sprintf("OK - %d", len(data)))
}

// uploadData is the file in an upload's body.
func uploadData(contentType string, body []byte) ([]byte, error) {
	mt, params, _ := mime.ParseMediaType(contentType)
	if mt != "multipart/form-data" {
		return body, nil
	}
	mr := multipart.NewReader(bytes.NewReader(body), params["boundary"])
	for {
		part, err := mr.NextPart()
		if err != nil {
			return nil, err // io.EOF too: a form without a file part
		}
		if part.FormName() == "file" {
			return io.ReadAll(part)
		}
	}
}

// serveCompleteUpload answers files.completeUploadExternal: it shares the uploaded files (the
// files argument, a JSON array of {"id","title"}) in channel_id, in the thread of thread_ts if
// given, or keeps them private without a channel_id. All the files must have been uploaded,
// else nothing is shared and the answer is file_not_found; a file can be completed only once.
// Of the optional arguments, only channel_id and thread_ts are looked at.
func (h *Handler) serveCompleteUpload(w http.ResponseWriter, r *http.Request, body []byte) {
	args, code := apiArgs(r.Header.Get("Content-Type"), body)
	if code != "" {
		writeAPIError(w, code, nil)
		return
	}
	if code := authError(r, args.Get("token")); code != "" {
		writeAPIError(w, code, nil)
		return
	}
	var list []struct {
		ID    string `json:"id"`
		Title string `json:"title"`
	}
	if err := json.Unmarshal([]byte(args.Get("files")), &list); err != nil || len(list) == 0 {
		writeAPIError(w, "invalid_arguments", nil)
		return
	}
	channel := args.Get("channel_id")
	threadTS := args.Get("thread_ts")

	h.mu.Lock()
	if channel != "" && h.channels[channel] != channel { // an ID, not a name
		h.mu.Unlock()
		writeAPIError(w, "channel_not_found", nil)
		return
	}
	seen := map[string]bool{}
	for _, f := range list {
		u, ok := h.uploads[f.ID]
		if !ok || !u.uploaded || seen[f.ID] {
			h.mu.Unlock()
			writeAPIError(w, "file_not_found", nil)
			return
		}
		seen[f.ID] = true
	}
	now := time.Now()
	var shared []File
	answer := []map[string]string{}
	for _, f := range list {
		u := h.uploads[f.ID]
		delete(h.uploads, u.fileID)
		delete(h.uploadIDs, u.uploadID)
		title := f.Title
		if title == "" {
			title = u.name
		}
		shared = append(shared, File{ID: u.fileID, Name: u.name, Title: title, Data: u.data, Channel: channel, ThreadTS: threadTS, Time: now})
		answer = append(answer, map[string]string{"id": u.fileID, "title": title})
	}
	h.mu.Unlock()
	for _, f := range shared {
		h.files.Add(f)
	}
	writeJSON(w, http.StatusOK, map[string]any{"ok": true, "files": answer})
}

// apiArgs reads a Web API call's arguments from a form or a JSON object; in JSON, a value that
// is not a string is kept as its JSON text (a length of 123 as "123", files as the array).
func apiArgs(contentType string, body []byte) (url.Values, string) {
	mt, _, _ := mime.ParseMediaType(contentType)
	switch mt {
	case "application/x-www-form-urlencoded", "":
		v, err := url.ParseQuery(string(body))
		if err != nil {
			return nil, "invalid_form_data"
		}
		return v, ""
	case "application/json":
		var obj map[string]json.RawMessage
		if err := json.Unmarshal(body, &obj); err != nil {
			return nil, "invalid_json"
		}
		v := url.Values{}
		for k, raw := range obj {
			var s string
			if json.Unmarshal(raw, &s) == nil {
				v.Set(k, s)
			} else if !isNull(raw) {
				v.Set(k, string(raw))
			}
		}
		return v, ""
	}
	return nil, "invalid_form_data"
}
