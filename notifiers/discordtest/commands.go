package discordtest

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"regexp"
	"strconv"
	"strings"
	"unicode/utf8"

	"github.com/bwmarrin/discordgo"
)

// firstCommandID is the id given to the first command registered; each later command id, and
// each command version, is one more.
const firstCommandID = 1400000000000000001

// Discord's limits on command definitions, from its API reference.
const (
	maxCommands           = 100 // chat input commands per scope
	maxCommandOptions     = 25
	maxCommandChoices     = 25
	maxCommandName        = 32
	maxCommandDescription = 100
	maxChoiceText         = 100
	maxOptionLength       = 6000 // bound of min_length and max_length
	maxCommandSize        = 4000 // names, descriptions and choices of a command, together
	maxOptionDepth        = 2    // a subcommand group holds subcommands, which hold options
)

// commandNamePattern is what a chat input command's name, and an option's, must match (and it
// must be lowercase where its letters have a lowercase).
var commandNamePattern = regexp.MustCompile(`^[-_'\p{L}\p{N}\p{Devanagari}\p{Thai}]{1,32}$`)

// AddGuild makes a guild exist with the application added to it with the applications.commands
// scope, so that the application may overwrite its commands there.
func (h *Handler) AddGuild(id string) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.guilds[id] = true
}

// Commands returns the application's commands registered in a guild, or with guildID "" the
// global ones, as Discord lists them (with ids, versions and Discord's defaults), in the order
// registered. They are copies.
func (h *Handler) Commands(guildID string) []*discordgo.ApplicationCommand {
	h.mu.Lock()
	defer h.mu.Unlock()
	out := make([]*discordgo.ApplicationCommand, 0, len(h.commands[guildID]))
	for _, c := range h.commands[guildID] {
		out = append(out, copyCommand(c))
	}
	return out
}

// serveCommands answers GET and PUT /applications/{app}/commands and
// /applications/{app}/guilds/{guild}/commands (guild "" for the former). Only BotToken may, and
// only for ApplicationID: another application is 403 Missing Access, as is a guild the
// application was not added to (or was added to without the applications.commands scope). PUT
// is a bulk overwrite: the commands listed replace all others, keeping the ids of those that
// already existed (matched by id, else by type and name), with a new version where their
// definition changed.
func (h *Handler) serveCommands(w http.ResponseWriter, r *http.Request, app, guild string) {
	var body []byte
	if r.Method == http.MethodPut {
		b, err := io.ReadAll(http.MaxBytesReader(w, r.Body, maxBody))
		if err != nil {
			h.mu.Lock()
			h.requests++
			h.mu.Unlock()
			writeError(w, http.StatusRequestEntityTooLarge, 40005, "Request entity too large", nil)
			return
		}
		body = b
	}
	if h.scripted(w, r) {
		return
	}
	if r.Header.Get("Authorization") != "Bot "+BotToken {
		writeError(w, http.StatusUnauthorized, 0, "401: Unauthorized", nil)
		return
	}
	if !isSnowflake(app) || (guild != "" && !isSnowflake(guild)) {
		writeError(w, http.StatusNotFound, 0, "404: Not Found", nil)
		return
	}
	h.mu.Lock()
	added := guild == "" || h.guilds[guild]
	h.mu.Unlock()
	if app != ApplicationID || !added {
		writeError(w, http.StatusForbidden, 50001, "Missing Access", nil)
		return
	}
	if r.Method == http.MethodGet {
		h.mu.Lock()
		list := wireCommands(h.commands[guild])
		h.mu.Unlock()
		writeJSON(w, http.StatusOK, list)
		return
	}

	if !json.Valid(body) {
		writeError(w, http.StatusBadRequest, 50109, "The request body contains invalid JSON.", nil)
		return
	}
	var cmds []*discordgo.ApplicationCommand
	if err := json.Unmarshal(body, &cmds); err != nil {
		e := formErrors{}
		e.add("BASE_TYPE_ARRAY", "Must be an array of application commands: "+err.Error())
		writeError(w, http.StatusBadRequest, 50035, "Invalid Form Body", e)
		return
	}
	if errs := validateCommands(cmds); errs != nil {
		writeError(w, http.StatusBadRequest, 50035, "Invalid Form Body", errs)
		return
	}
	h.mu.Lock()
	h.overwrite(guild, cmds)
	list := wireCommands(h.commands[guild])
	h.mu.Unlock()
	writeJSON(w, http.StatusOK, list)
}

// overwrite replaces the commands of a scope by cmds. The caller holds mu.
func (h *Handler) overwrite(guild string, cmds []*discordgo.ApplicationCommand) {
	old := h.commands[guild]
	next := func() string {
		id := strconv.FormatInt(h.nextCommandID, 10)
		h.nextCommandID++
		return id
	}
	out := make([]*discordgo.ApplicationCommand, 0, len(cmds))
	for _, c := range cmds {
		n := copyCommand(c)
		if n.Type == 0 {
			n.Type = discordgo.ChatApplicationCommand
		}
		n.ApplicationID, n.GuildID = ApplicationID, guild
		if n.NSFW == nil {
			n.NSFW = new(bool)
		}
		if n.IntegrationTypes == nil {
			n.IntegrationTypes = &[]discordgo.ApplicationIntegrationType{discordgo.ApplicationIntegrationGuildInstall}
		}
		prev := findCommand(old, func(o *discordgo.ApplicationCommand) bool { return c.ID != "" && o.ID == c.ID })
		if prev == nil {
			prev = findCommand(old, func(o *discordgo.ApplicationCommand) bool { return o.Type == n.Type && o.Name == n.Name })
		}
		switch {
		case prev == nil:
			n.ID, n.Version = next(), next()
		case definition(prev) != definition(n):
			n.ID, n.Version = prev.ID, next()
		default:
			n.ID, n.Version = prev.ID, prev.Version
		}
		out = append(out, n)
	}
	h.commands[guild] = out
}

func findCommand(cmds []*discordgo.ApplicationCommand, match func(*discordgo.ApplicationCommand) bool) *discordgo.ApplicationCommand {
	for _, c := range cmds {
		if match(c) {
			return c
		}
	}
	return nil
}

// definition is a command's definition as JSON, without what Discord assigns, to tell whether
// an overwrite changed it.
func definition(c *discordgo.ApplicationCommand) string {
	d := *c
	d.ID, d.Version, d.ApplicationID, d.GuildID = "", "", "", ""
	b, _ := json.Marshal(d)
	return string(b)
}

// copyCommand copies a command deeply.
func copyCommand(c *discordgo.ApplicationCommand) *discordgo.ApplicationCommand {
	b, err := json.Marshal(c)
	if err != nil {
		panic("discordtest: copying a command: " + err.Error())
	}
	var out discordgo.ApplicationCommand
	if err := json.Unmarshal(b, &out); err != nil {
		panic("discordtest: copying a command: " + err.Error())
	}
	return &out
}

// wireCommands is how Discord lists commands: settings never set are null, and an option
// leaves out what is false or empty (discordgo would send "required": false, "choices": null).
func wireCommands(cmds []*discordgo.ApplicationCommand) []map[string]any {
	out := []map[string]any{}
	for _, c := range cmds {
		b, _ := json.Marshal(c)
		var v map[string]any
		_ = json.Unmarshal(b, &v)
		for _, k := range []string{"name_localizations", "description_localizations", "default_member_permissions", "contexts"} {
			if _, ok := v[k]; !ok {
				v[k] = nil
			}
		}
		if opts, ok := v["options"].([]any); ok && len(opts) > 0 {
			v["options"] = pruneOptions(opts)
		} else {
			delete(v, "options")
		}
		out = append(out, v)
	}
	return out
}

// pruneOptions drops the null, false and empty fields of options, and of their options.
func pruneOptions(opts []any) []any {
	for _, o := range opts {
		m, ok := o.(map[string]any)
		if !ok {
			continue
		}
		for k, v := range m {
			switch v := v.(type) {
			case nil:
				delete(m, k)
			case bool:
				if !v {
					delete(m, k)
				}
			case []any:
				if len(v) == 0 {
					delete(m, k)
				} else if k == "options" {
					pruneOptions(v)
				}
			case map[string]any:
				if len(v) == 0 {
					delete(m, k)
				}
			}
		}
	}
	return opts
}

// validateCommands checks a bulk overwrite the way Discord does before applying any of it,
// and returns the problems found in Discord's nested shape ({"0": {"options": {"2": ...}}}),
// or nil. The codes are Discord's where its answers show them (names, lengths, option order,
// duplicates); the others are descriptive stand-ins.
func validateCommands(cmds []*discordgo.ApplicationCommand) map[string]any {
	e := formErrors{}
	type key struct {
		typ  discordgo.ApplicationCommandType
		name string
	}
	seen := map[key]bool{}
	chat := 0
	for i, c := range cmds {
		at := func(path ...string) []string { return append([]string{strconv.Itoa(i)}, path...) }
		if c == nil {
			e.add("MODEL_TYPE_REQUIRED", "This field is required", at()...)
			continue
		}
		typ := c.Type
		if typ == 0 {
			typ = discordgo.ChatApplicationCommand
		}
		switch typ {
		case discordgo.ChatApplicationCommand:
			chat++
			checkName(e, c.Name, at("name")...)
			checkLength(e, c.Description, 1, maxCommandDescription, at("description")...)
			checkOptions(e, c.Options, 1, at("options")...)
			if n := commandSize(c); n > maxCommandSize {
				e.add("APPLICATION_COMMAND_TOO_LARGE", fmt.Sprintf("Command exceeds maximum size (%d)", maxCommandSize), at()...)
			}
		case discordgo.UserApplicationCommand, discordgo.MessageApplicationCommand:
			// Context menu commands may be mixed case with spaces, and have no description or
			// options.
			checkLength(e, c.Name, 1, maxCommandName, at("name")...)
			if c.Description != "" {
				e.add("BASE_TYPE_BAD_LENGTH", "Must be 0 in length.", at("description")...)
			}
			if len(c.Options) > 0 {
				e.add("BASE_TYPE_MAX_LENGTH", "Must be 0 or fewer in length.", at("options")...)
			}
		default:
			e.add("BASE_TYPE_CHOICES", "Value must be one of {1, 2, 3}.", at("type")...)
		}
		k := key{typ, c.Name}
		if seen[k] {
			e.add("APPLICATION_COMMANDS_DUPLICATE_NAME", "Application command names must be unique", at()...)
		}
		seen[k] = true
	}
	if chat > maxCommands {
		e.add("BASE_TYPE_MAX_LENGTH", fmt.Sprintf("Must be %d or fewer in length.", maxCommands))
	}
	if len(e) == 0 {
		return nil
	}
	return e
}

// checkName records a problem with a chat input command's name or an option's.
func checkName(e formErrors, name string, path ...string) {
	switch {
	case utf8.RuneCountInString(name) < 1 || utf8.RuneCountInString(name) > maxCommandName:
		e.add("BASE_TYPE_BAD_LENGTH", fmt.Sprintf("Must be between 1 and %d in length.", maxCommandName), path...)
	case !commandNamePattern.MatchString(name):
		e.add("STRING_TYPE_REGEX", "String value did not match validation regex.", path...)
		e.add("APPLICATION_COMMAND_INVALID_NAME", "Command name is invalid", path...)
	case strings.ToLower(name) != name:
		e.add("APPLICATION_COMMAND_INVALID_NAME", "Command name is invalid", path...)
	}
}

// checkLength records a problem when s is not min to max characters long.
func checkLength(e formErrors, s string, min, max int, path ...string) {
	if n := utf8.RuneCountInString(s); n < min || n > max {
		e.add("BASE_TYPE_BAD_LENGTH", fmt.Sprintf("Must be between %d and %d in length.", min, max), path...)
	}
}

// checkOptions records the problems of a command's options, or a subcommand's, at depth 1 and
// below.
func checkOptions(e formErrors, opts []*discordgo.ApplicationCommandOption, depth int, path ...string) {
	if len(opts) > maxCommandOptions {
		e.add("BASE_TYPE_MAX_LENGTH", fmt.Sprintf("Must be %d or fewer in length.", maxCommandOptions), path...)
	}
	names := map[string]bool{}
	optional := false
	for j, o := range opts {
		at := func(more ...string) []string {
			return append(append(append([]string{}, path...), strconv.Itoa(j)), more...)
		}
		if o == nil {
			e.add("MODEL_TYPE_REQUIRED", "This field is required", at()...)
			continue
		}
		if o.Type < discordgo.ApplicationCommandOptionSubCommand || o.Type > discordgo.ApplicationCommandOptionAttachment {
			e.add("BASE_TYPE_CHOICES", "Value must be one of {1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11}.", at("type")...)
		}
		checkName(e, o.Name, at("name")...)
		checkLength(e, o.Description, 1, maxCommandDescription, at("description")...)
		if names[o.Name] {
			e.add("APPLICATION_COMMAND_OPTIONS_NAME_ALREADY_EXISTS", "Option name already used in this command", at("name")...)
		}
		names[o.Name] = true

		sub := o.Type == discordgo.ApplicationCommandOptionSubCommand || o.Type == discordgo.ApplicationCommandOptionSubCommandGroup
		if sub {
			if depth > maxOptionDepth {
				e.add("APPLICATION_COMMAND_OPTION_TYPE_INVALID", "Subcommands cannot be nested this deep", at("type")...)
			}
			checkOptions(e, o.Options, depth+1, at("options")...)
			continue
		}
		if o.Required && optional {
			e.add("APPLICATION_COMMAND_OPTIONS_REQUIRED_INVALID", "Required options must be placed before non-required options", at()...)
		}
		optional = optional || !o.Required
		if len(o.Options) > 0 {
			e.add("BASE_TYPE_MAX_LENGTH", "Must be 0 or fewer in length.", at("options")...)
		}
		if len(o.Choices) > maxCommandChoices {
			e.add("BASE_TYPE_MAX_LENGTH", fmt.Sprintf("Must be %d or fewer in length.", maxCommandChoices), at("choices")...)
		}
		if o.Autocomplete && len(o.Choices) > 0 {
			e.add("APPLICATION_COMMAND_OPTION_AUTOCOMPLETE_CHOICES", "Autocomplete cannot be set with choices", at("autocomplete")...)
		}
		for k, ch := range o.Choices {
			if ch == nil {
				e.add("MODEL_TYPE_REQUIRED", "This field is required", at("choices", strconv.Itoa(k))...)
				continue
			}
			checkLength(e, ch.Name, 1, maxChoiceText, at("choices", strconv.Itoa(k), "name")...)
			if s, ok := ch.Value.(string); ok {
				checkLength(e, s, 1, maxChoiceText, at("choices", strconv.Itoa(k), "value")...)
			}
		}
		if o.MinLength != nil && (*o.MinLength < 0 || *o.MinLength > maxOptionLength) {
			e.add("NUMBER_TYPE_MAX", fmt.Sprintf("int value should be between 0 and %d.", maxOptionLength), at("min_length")...)
		}
		if o.MaxLength < 0 || o.MaxLength > maxOptionLength {
			e.add("NUMBER_TYPE_MAX", fmt.Sprintf("int value should be between 1 and %d.", maxOptionLength), at("max_length")...)
		}
	}
}

// commandSize is what counts towards a command's size limit: the characters of its name,
// description, and its options' names, descriptions and choices.
func commandSize(c *discordgo.ApplicationCommand) int {
	n := utf8.RuneCountInString(c.Name) + utf8.RuneCountInString(c.Description)
	var walk func([]*discordgo.ApplicationCommandOption)
	walk = func(opts []*discordgo.ApplicationCommandOption) {
		for _, o := range opts {
			if o == nil {
				continue
			}
			n += utf8.RuneCountInString(o.Name) + utf8.RuneCountInString(o.Description)
			for _, ch := range o.Choices {
				if ch == nil {
					continue
				}
				n += utf8.RuneCountInString(ch.Name)
				if s, ok := ch.Value.(string); ok {
					n += utf8.RuneCountInString(s)
				}
			}
			walk(o.Options)
		}
	}
	walk(c.Options)
	return n
}

// isSnowflake reports whether s is a Discord id: decimal digits.
func isSnowflake(s string) bool {
	if s == "" || len(s) > 20 {
		return false
	}
	for _, r := range s {
		if r < '0' || r > '9' {
			return false
		}
	}
	return true
}
