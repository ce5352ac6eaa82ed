package discordtest

import (
	"fmt"
	"net/url"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/bwmarrin/discordgo"
)

// formErrors collects problems in Discord's nested shape:
// {"embeds": {"0": {"title": {"_errors": [{"code": "BASE_TYPE_MAX_LENGTH", "message": "..."}]}}}}.
type formErrors map[string]any

// add records a problem at path (e.g. "embeds", "0", "title").
func (e formErrors) add(code, message string, path ...string) {
	m := map[string]any(e)
	for _, p := range path {
		next, ok := m[p].(map[string]any)
		if !ok {
			next = map[string]any{}
			m[p] = next
		}
		m = next
	}
	list, _ := m["_errors"].([]any)
	m["_errors"] = append(list, map[string]any{"code": code, "message": message})
}

// maxLength records a problem when s is longer than n characters.
func (e formErrors) maxLength(s string, n int, path ...string) {
	if utf8.RuneCountInString(s) > n {
		e.add("BASE_TYPE_MAX_LENGTH", fmt.Sprintf("Must be %d or fewer in length.", n), path...)
	}
}

// validate checks a message the way Discord does before posting it, and returns the problems
// found, or nil.
func validate(p *payload, webhook bool) map[string]any {
	e := formErrors{}
	e.maxLength(p.Content, maxContent, "content")
	if webhook {
		e.maxLength(p.Username, maxUsername, "username")
		if lower := strings.ToLower(p.Username); strings.Contains(lower, "discord") || strings.Contains(lower, "clyde") {
			e.add("USERNAME_INVALID_CONTAINS", "Username cannot contain \"discord\" or \"clyde\"", "username")
		}
		if p.AvatarURL != "" && !wellFormed(p.AvatarURL, false) {
			e.add("URL_TYPE_INVALID_URL", "Not a well formed URL.", "avatar_url")
		}
	} else if p.Username != "" || p.AvatarURL != "" {
		// A bot cannot change its name per message; Discord ignores the fields, the stand-in
		// flags them so that a notifier sending them is noticed.
		e.add("UNKNOWN_FIELD", "username and avatar_url are for webhooks only", "username")
	}
	if len(p.Embeds) > maxEmbeds {
		e.add("BASE_TYPE_MAX_LENGTH", fmt.Sprintf("Must be %d or fewer in length.", maxEmbeds), "embeds")
	}
	total := 0
	for i, em := range p.Embeds {
		at := func(path ...string) []string { return append([]string{"embeds", strconv.Itoa(i)}, path...) }
		if em == nil {
			e.add("MODEL_TYPE_REQUIRED", "This field is required", at()...)
			continue
		}
		e.maxLength(em.Title, maxTitle, at("title")...)
		e.maxLength(em.Description, maxDescription, at("description")...)
		total += utf8.RuneCountInString(em.Title) + utf8.RuneCountInString(em.Description)
		if em.URL != "" && !wellFormed(em.URL, false) {
			e.add("URL_TYPE_INVALID_URL", "Not a well formed URL.", at("url")...)
		}
		if len(em.Fields) > maxFields {
			e.add("BASE_TYPE_MAX_LENGTH", fmt.Sprintf("Must be %d or fewer in length.", maxFields), at("fields")...)
		}
		for j, f := range em.Fields {
			fat := at("fields", strconv.Itoa(j))
			if f == nil {
				e.add("MODEL_TYPE_REQUIRED", "This field is required", fat...)
				continue
			}
			if strings.TrimSpace(f.Name) == "" {
				e.add("BASE_TYPE_REQUIRED", "This field is required", append(fat, "name")...)
			}
			if strings.TrimSpace(f.Value) == "" {
				e.add("BASE_TYPE_REQUIRED", "This field is required", append(fat, "value")...)
			}
			e.maxLength(f.Name, maxFieldName, append(fat, "name")...)
			e.maxLength(f.Value, maxFieldValue, append(fat, "value")...)
			total += utf8.RuneCountInString(f.Name) + utf8.RuneCountInString(f.Value)
		}
		if em.Footer != nil {
			e.maxLength(em.Footer.Text, maxFooter, at("footer", "text")...)
			total += utf8.RuneCountInString(em.Footer.Text)
		}
		if em.Author != nil {
			e.maxLength(em.Author.Name, maxAuthorName, at("author", "name")...)
			total += utf8.RuneCountInString(em.Author.Name)
		}
		if em.Image != nil && !wellFormed(em.Image.URL, true) {
			e.add("URL_TYPE_INVALID_URL", "Not a well formed URL.", at("image", "url")...)
		}
		if em.Thumbnail != nil && !wellFormed(em.Thumbnail.URL, true) {
			e.add("URL_TYPE_INVALID_URL", "Not a well formed URL.", at("thumbnail", "url")...)
		}
		if em.Timestamp != "" && !validTimestamp(em.Timestamp) {
			e.add("DATE_TYPE_PARSE", "Could not parse "+em.Timestamp+". Should be ISO8601.", at("timestamp")...)
		}
		if em.Color < 0 || em.Color > 0xFFFFFF {
			e.add("NUMBER_TYPE_MAX", "int value should be less than or equal to 16777215.", at("color")...)
		}
	}
	if total > maxEmbedTotal {
		e.add("MAX_EMBED_SIZE_EXCEEDED", "Embed size exceeds maximum size of 6000", "embeds")
	}
	if len(p.files) > maxFiles {
		e.add("BASE_TYPE_MAX_LENGTH", fmt.Sprintf("Must be %d or fewer in length.", maxFiles), "attachments")
	}
	if am := p.AllowedMentions; am != nil {
		for i, t := range am.Parse {
			switch t {
			case discordgo.AllowedMentionTypeRoles, discordgo.AllowedMentionTypeUsers, discordgo.AllowedMentionTypeEveryone:
			default:
				e.add("BASE_TYPE_CHOICES", "Value must be one of {'roles', 'users', 'everyone'}.", "allowed_mentions", "parse", strconv.Itoa(i))
			}
		}
	}
	if len(e) == 0 {
		return nil
	}
	return e
}

// wellFormed reports whether u is an http(s) URL (or, where attachments are allowed, an
// attachment://name reference) of acceptable length.
func wellFormed(u string, attachment bool) bool {
	if len(u) > maxURL {
		return false
	}
	if name, ok := strings.CutPrefix(u, "attachment://"); ok {
		return attachment && name != "" && !strings.ContainsAny(name, "/ ")
	}
	p, err := url.Parse(u)
	return err == nil && (p.Scheme == "https" || p.Scheme == "http") && p.Host != ""
}

// validTimestamp reports whether s is an ISO 8601 timestamp Discord accepts.
func validTimestamp(s string) bool {
	for _, layout := range []string{"2006-01-02T15:04:05Z07:00", "2006-01-02T15:04:05.999999999Z07:00"} {
		if _, err := time.Parse(layout, s); err == nil {
			return true
		}
	}
	return false
}
