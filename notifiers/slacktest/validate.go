package slacktest

import (
	"encoding/json"
	"fmt"
	"strings"
	"unicode/utf8"
)

// Limits Slack enforces on a message, from the Block Kit reference.
const (
	maxText        = 40000
	maxBlocks      = 50
	maxBlockID     = 255
	maxHeader      = 150
	maxSectionText = 3000
	maxFields      = 10
	maxFieldText   = 2000
	maxImageURL    = 3000
	maxAltText     = 2000
	maxElements    = 25
	maxContextElts = 10
	maxButtonText  = 75
	maxActionID    = 255
)

// validate checks a message the way Slack does before posting it. It returns "" when the message
// is acceptable, else Slack's error code and, for invalid_blocks, messages in Slack's format
// ("[ERROR] ... [json-pointer:/blocks/0/text/text]").
func validate(text string, blocks json.RawMessage) (code string, details []string) {
	if utf8.RuneCountInString(text) > maxText {
		return "msg_too_long", nil
	}
	if len(blocks) == 0 {
		if strings.TrimSpace(text) == "" {
			return "no_text", nil
		}
		return "", nil
	}
	var list []json.RawMessage
	if err := json.Unmarshal(blocks, &list); err != nil {
		return "invalid_blocks_format", nil
	}
	if len(list) == 0 && strings.TrimSpace(text) == "" {
		return "no_text", nil
	}
	v := &validator{ids: map[string]bool{}, actions: map[string]bool{}}
	if len(list) > maxBlocks {
		v.fail("/blocks", "no more than %d items allowed", maxBlocks)
	}
	for i, raw := range list {
		v.block(fmt.Sprintf("/blocks/%d", i), raw)
	}
	if len(v.errs) > 0 {
		return "invalid_blocks", v.errs
	}
	return "", nil
}

// validator collects the problems found in one message's blocks.
type validator struct {
	errs    []string
	ids     map[string]bool
	actions map[string]bool
}

func (v *validator) fail(ptr, format string, args ...any) {
	v.errs = append(v.errs, fmt.Sprintf("[ERROR] "+format+" [json-pointer:%s]", append(args, ptr)...))
}

// object is a block or element decoded loosely, so that wrong types are reported, not fatal.
type object map[string]json.RawMessage

func (o object) str(key string) (string, bool) {
	raw, ok := o[key]
	if !ok {
		return "", false
	}
	var s string
	if json.Unmarshal(raw, &s) != nil {
		return "", false
	}
	return s, true
}

func (v *validator) block(ptr string, raw json.RawMessage) {
	var b object
	if json.Unmarshal(raw, &b) != nil {
		v.fail(ptr, "must be an object")
		return
	}
	typ, _ := b.str("type")
	if id, ok := b.str("block_id"); ok {
		switch {
		case utf8.RuneCountInString(id) > maxBlockID:
			v.fail(ptr+"/block_id", "must be less than %d characters", maxBlockID+1)
		case v.ids[id]:
			v.fail(ptr+"/block_id", "duplicate block_id")
		}
		v.ids[id] = true
	}
	switch typ {
	case "":
		v.fail(ptr+"/type", "missing required field: type")
	case "header":
		v.text(ptr+"/text", b["text"], true, maxHeader)
	case "section":
		_, hasText := b["text"]
		fields, hasFields := b["fields"]
		if !hasText && !hasFields {
			v.fail(ptr, "must provide text or fields")
		}
		if hasText {
			v.text(ptr+"/text", b["text"], false, maxSectionText)
		}
		if hasFields {
			var list []json.RawMessage
			if json.Unmarshal(fields, &list) != nil {
				v.fail(ptr+"/fields", "must be an array")
				break
			}
			if len(list) > maxFields {
				v.fail(ptr+"/fields", "no more than %d items allowed", maxFields)
			}
			for i, f := range list {
				v.text(fmt.Sprintf("%s/fields/%d", ptr, i), f, false, maxFieldText)
			}
		}
	case "image":
		v.image(ptr, b)
	case "actions":
		list := v.elements(ptr, b, maxElements)
		for i, raw := range list {
			v.element(fmt.Sprintf("%s/elements/%d", ptr, i), raw)
		}
	case "context":
		list := v.elements(ptr, b, maxContextElts)
		for i, raw := range list {
			eptr := fmt.Sprintf("%s/elements/%d", ptr, i)
			var e object
			if json.Unmarshal(raw, &e) != nil {
				v.fail(eptr, "must be an object")
				continue
			}
			if t, _ := e.str("type"); t == "image" {
				v.image(eptr, e)
			} else {
				v.text(eptr, raw, false, maxSectionText)
			}
		}
	}
}

// text checks a text object: its type, and a text of 1 to max characters.
func (v *validator) text(ptr string, raw json.RawMessage, plainOnly bool, max int) {
	if raw == nil {
		v.fail(ptr, "missing required field: text")
		return
	}
	var t object
	if json.Unmarshal(raw, &t) != nil {
		v.fail(ptr, "must be an object")
		return
	}
	switch typ, _ := t.str("type"); {
	case typ == "plain_text":
	case typ == "mrkdwn" && !plainOnly:
		if _, ok := t["emoji"]; ok {
			v.fail(ptr+"/emoji", "mrkdwn text objects cannot have an emoji field")
		}
	case plainOnly:
		v.fail(ptr+"/type", "must be plain_text")
	default:
		v.fail(ptr+"/type", "must be one of plain_text, mrkdwn")
	}
	s, ok := t.str("text")
	n := utf8.RuneCountInString(s)
	switch {
	case !ok || n == 0:
		v.fail(ptr+"/text", "must be more than 0 characters")
	case n > max:
		v.fail(ptr+"/text", "must be less than %d characters", max+1)
	}
}

// image checks an image block or element.
func (v *validator) image(ptr string, b object) {
	u, hasURL := b.str("image_url")
	_, hasFile := b["slack_file"]
	switch {
	case !hasURL && !hasFile:
		v.fail(ptr, "must provide image_url or slack_file")
	case hasURL && len(u) > maxImageURL:
		v.fail(ptr+"/image_url", "must be less than %d characters", maxImageURL+1)
	case hasURL && !strings.HasPrefix(u, "https://") && !strings.HasPrefix(u, "http://"):
		v.fail(ptr+"/image_url", "must be a valid URL")
	}
	alt, _ := b.str("alt_text")
	switch n := utf8.RuneCountInString(alt); {
	case n == 0:
		v.fail(ptr+"/alt_text", "must be more than 0 characters")
	case n > maxAltText:
		v.fail(ptr+"/alt_text", "must be less than %d characters", maxAltText+1)
	}
	if t, ok := b["title"]; ok {
		v.text(ptr+"/title", t, true, maxAltText)
	}
}

// elements returns a block's elements after checking there are 1 to max of them.
func (v *validator) elements(ptr string, b object, max int) []json.RawMessage {
	var list []json.RawMessage
	if json.Unmarshal(b["elements"], &list) != nil {
		v.fail(ptr+"/elements", "must be an array")
		return nil
	}
	switch {
	case len(list) == 0:
		v.fail(ptr+"/elements", "must provide at least 1 item")
	case len(list) > max:
		v.fail(ptr+"/elements", "no more than %d items allowed", max)
	}
	return list
}

// element checks an interactive element; only buttons are looked at closely.
func (v *validator) element(ptr string, raw json.RawMessage) {
	var e object
	if json.Unmarshal(raw, &e) != nil {
		v.fail(ptr, "must be an object")
		return
	}
	if id, ok := e.str("action_id"); ok {
		switch {
		case utf8.RuneCountInString(id) > maxActionID:
			v.fail(ptr+"/action_id", "must be less than %d characters", maxActionID+1)
		case v.actions[id]:
			v.fail(ptr+"/action_id", "duplicate action_id")
		}
		v.actions[id] = true
	}
	if t, _ := e.str("type"); t != "button" {
		return
	}
	v.text(ptr+"/text", e["text"], true, maxButtonText)
	if u, ok := e.str("url"); ok && len(u) > maxImageURL {
		v.fail(ptr+"/url", "must be less than %d characters", maxImageURL+1)
	}
}
