package discordbot

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/bwmarrin/discordgo"
)

// DefaultAPIURL is the base of Discord's REST API.
const DefaultAPIURL = "https://discord.com/api/v10"

const (
	// defaultRegisterTimeout bounds each request of the default HTTP client.
	defaultRegisterTimeout = 30 * time.Second
	// maxRegisterAnswer bounds what is read of an answer: 100 commands of at most 4000
	// characters each, with room for the JSON around them.
	maxRegisterAnswer = 8 << 20
	// maxQuotedMessage bounds how much of Discord's error message goes into an error.
	maxQuotedMessage = 200
)

// RegisterOptions configure Register. Zero values take the defaults given.
type RegisterOptions struct {
	// APIURL is the base of the REST API. Default DefaultAPIURL.
	APIURL string
	// AppID is the application's id (Developer Portal → General Information → Application
	// ID). Required.
	AppID string
	// BotToken is the application's bot token, with or without the "Bot " prefix. Required. It
	// is a secret: no error contains it.
	BotToken string
	// GuildID registers the commands in that server only, where they show at once. Default "":
	// global commands, in every server the application is in.
	GuildID string
	// HTTPClient sends the requests. Default: a client with a 30-second timeout that follows
	// no redirects, so that the token goes nowhere else.
	HTTPClient *http.Client
	// Commands are the commands wanted, all of them: any other command of the application in
	// that scope is removed. Default Definitions(); an empty, non-nil list removes them all.
	Commands []*discordgo.ApplicationCommand
}

// Registration is what Register changed. Command names are listed in the order of the
// commands wanted, and removed ones in Discord's order.
type Registration struct {
	// GuildID is the server registered in, "" for the global commands.
	GuildID string
	// Added are the commands that did not exist.
	Added []string
	// Updated are the commands whose definition differed: their description, options or a
	// setting the wanted definition sets.
	Updated []string
	// Removed are the commands that existed and are not wanted.
	Removed []string
	// Unchanged are the commands already defined as wanted.
	Unchanged []string
	// Commands are the commands as Discord now has them, with their ids.
	Commands []*discordgo.ApplicationCommand
}

// Changed reports whether the registration added, updated or removed a command.
func (r *Registration) Changed() bool {
	return len(r.Added)+len(r.Updated)+len(r.Removed) > 0
}

// String summarises the registration in one line, e.g. "global commands: added /predict;
// unchanged /status, /cancel".
func (r *Registration) String() string {
	scope := "global commands"
	if r.GuildID != "" {
		scope = "commands of server " + r.GuildID
	}
	var parts []string
	for _, g := range []struct {
		what  string
		names []string
	}{{"added", r.Added}, {"updated", r.Updated}, {"removed", r.Removed}, {"unchanged", r.Unchanged}} {
		if len(g.names) == 0 {
			continue
		}
		slashed := make([]string, len(g.names))
		for i, n := range g.names {
			slashed[i] = "/" + n
		}
		parts = append(parts, g.what+" "+strings.Join(slashed, ", "))
	}
	if len(parts) == 0 {
		return scope + ": none"
	}
	return scope + ": " + strings.Join(parts, "; ")
}

// Register makes the application's commands in a scope (a server, or global) the ones wanted:
// it reads the commands Discord has, overwrites them all at once with the wanted ones (PUT
// /applications/{app}/commands, or the server's), and reports what that added, updated,
// removed and left unchanged. The overwrite is sent even when nothing differs: the comparison
// ignores settings a definition leaves out, and the overwrite returns those to Discord's
// defaults.
//
// Global commands can take a while to show in Discord's clients; a server's show at once.
// Errors say what to check: the bot token (401), the application id or the
// applications.commands scope (403, 404), the definitions (400, with Discord's findings); they
// never contain the token.
func Register(ctx context.Context, o RegisterOptions) (*Registration, error) {
	c, err := newRegistrar(o)
	if err != nil {
		return nil, err
	}
	wanted := o.Commands
	if wanted == nil {
		wanted = Definitions()
	}
	for i, w := range wanted {
		if w == nil {
			return nil, fmt.Errorf("discord register: command %d is nil", i)
		}
	}
	var current []*discordgo.ApplicationCommand
	if err := c.call(ctx, http.MethodGet, nil, &current); err != nil {
		return nil, c.redact(err)
	}
	reg := compare(wanted, current)
	reg.GuildID = c.guildID
	if err := c.call(ctx, http.MethodPut, wanted, &reg.Commands); err != nil {
		return nil, c.redact(c.named(err, wanted))
	}
	return reg, nil
}

// registrar calls the commands endpoint of one scope.
type registrar struct {
	endpoint string // .../applications/{app}/commands, or .../guilds/{guild}/commands
	appID    string
	guildID  string
	token    string
	client   *http.Client
}

// newRegistrar checks o and fills in its defaults. Its errors never quote the token.
func newRegistrar(o RegisterOptions) (*registrar, error) {
	token := strings.TrimSpace(o.BotToken)
	token = strings.TrimSpace(strings.TrimPrefix(token, "Bot "))
	c := &registrar{appID: strings.TrimSpace(o.AppID), guildID: strings.TrimSpace(o.GuildID), token: token, client: o.HTTPClient}
	switch {
	case c.appID == "":
		return nil, errors.New("discord register: the application id is missing (Developer Portal → General Information → Application ID)")
	case !IsSnowflake(c.appID):
		return nil, fmt.Errorf("discord register: application id %q must be the numeric id (Developer Portal → General Information → Application ID)", c.appID)
	case c.guildID != "" && !IsSnowflake(c.guildID):
		return nil, fmt.Errorf("discord register: guild id %q must be a server's numeric id (Developer Mode, then Copy Server ID)", c.guildID)
	case token == "":
		return nil, errors.New("discord register: the bot token is missing (Developer Portal → Bot → Reset Token)")
	case strings.ContainsFunc(token, func(r rune) bool { return r <= ' ' || r == 0x7f }):
		return nil, errors.New("discord register: the bot token contains spaces or control characters")
	}
	api := strings.TrimSpace(o.APIURL)
	if api == "" {
		api = DefaultAPIURL
	}
	u, err := url.Parse(api)
	if err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" || u.User != nil || u.RawQuery != "" || u.Fragment != "" {
		return nil, fmt.Errorf("discord register: API URL %q must be an http(s) URL without user info, query or fragment", api)
	}
	c.endpoint = strings.TrimRight(api, "/") + "/applications/" + c.appID + "/commands"
	if c.guildID != "" {
		c.endpoint = strings.TrimRight(api, "/") + "/applications/" + c.appID + "/guilds/" + c.guildID + "/commands"
	}
	if c.client == nil {
		c.client = &http.Client{
			Timeout:       defaultRegisterTimeout,
			CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
		}
	}
	return c, nil
}

// scope names the commands the registrar manages, for errors.
func (c *registrar) scope() string {
	if c.guildID == "" {
		return "the global commands of application " + c.appID
	}
	return "the commands of application " + c.appID + " in server " + c.guildID
}

// call sends a request with body as JSON (none when nil) and decodes a 2xx answer into out.
func (c *registrar) call(ctx context.Context, method string, body, out any) error {
	var rd io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			return fmt.Errorf("discord register: encoding the commands: %w", err)
		}
		rd = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, method, c.endpoint, rd)
	if err != nil {
		return fmt.Errorf("discord register: %w", err)
	}
	req.Header.Set("Authorization", "Bot "+c.token)
	// Discord wants bots to say who they are, in this form.
	req.Header.Set("User-Agent", "DiscordBot (https://github.com/mlrelay/relay, 1)")
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := c.client.Do(req)
	if err != nil {
		// The client's error names the method and URL.
		return fmt.Errorf("discord register: %w", err)
	}
	defer resp.Body.Close()
	answer, err := io.ReadAll(io.LimitReader(resp.Body, maxRegisterAnswer))
	if err != nil {
		return fmt.Errorf("discord register: reading the answer to %s %s: %w", method, c.endpoint, err)
	}
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		return c.refused(method, resp, answer)
	}
	if err := json.Unmarshal(answer, out); err != nil {
		return fmt.Errorf("discord register: the answer to %s %s is not a list of commands: %w", method, c.endpoint, err)
	}
	return nil
}

// discordError is Discord's error body.
type discordError struct {
	Message    string          `json:"message"`
	Code       int             `json:"code"`
	Errors     json.RawMessage `json:"errors"`
	RetryAfter float64         `json:"retry_after"`
}

// formError is a refused definition: 400 with the problems Discord found, by path.
type formError struct {
	said     string // the status and Discord's message
	problems []problem
}

// problem is one of Discord's findings: where ("0.options.1.name"), and what.
type problem struct{ path, text string }

func (e *formError) Error() string {
	var b strings.Builder
	fmt.Fprintf(&b, "discord register: Discord refused the command definitions (%s)", e.said)
	for i, p := range e.problems {
		sep := "; "
		if i == 0 {
			sep = ": "
		}
		b.WriteString(sep + p.path + ": " + p.text)
	}
	return b.String()
}

// refused turns a non-2xx answer into an error that says what to check.
func (c *registrar) refused(method string, resp *http.Response, body []byte) error {
	var e discordError
	_ = json.Unmarshal(body, &e)
	said := resp.Status
	if said == "" {
		said = strconv.Itoa(resp.StatusCode)
	}
	if e.Message != "" {
		said += fmt.Sprintf(", Discord said %q, code %d", bound(e.Message), e.Code)
	}
	switch resp.StatusCode {
	case http.StatusUnauthorized:
		return fmt.Errorf("discord register: the bot token was refused (%s): check the bot token (Developer Portal → Bot → Reset Token)", said)
	case http.StatusForbidden, http.StatusNotFound:
		check := "the application id is that of the bot token's application, and that the application has the applications.commands scope"
		if c.guildID != "" {
			check = "the application id is right, and that the bot was added to server " + c.guildID + " with the applications.commands scope"
		}
		if resp.StatusCode == http.StatusNotFound && e.Code == 0 {
			// Discord's router, not the commands endpoint, answered.
			check += " (and that the API URL is Discord's, with its version)"
		}
		return fmt.Errorf("discord register: not allowed to manage %s (%s): check that %s", c.scope(), said, check)
	case http.StatusBadRequest:
		return &formError{said: said, problems: flatten(e.Errors)}
	case http.StatusTooManyRequests:
		after := e.RetryAfter
		if after <= 0 {
			after, _ = strconv.ParseFloat(resp.Header.Get("Retry-After"), 64)
		}
		return fmt.Errorf("discord register: rate limited by Discord (%s): try again in %s", said, time.Duration(after*float64(time.Second)).Round(time.Millisecond))
	}
	return fmt.Errorf("discord register: %s %s answered %s", method, c.endpoint, said)
}

// named replaces the command index at the start of the paths in a formError with the
// command's name: "0.options.1" becomes "/predict options.1".
func (c *registrar) named(err error, cmds []*discordgo.ApplicationCommand) error {
	var fe *formError
	if !errors.As(err, &fe) {
		return err
	}
	for i, p := range fe.problems {
		first, rest, _ := strings.Cut(p.path, ".")
		n, convErr := strconv.Atoi(first)
		if convErr != nil || n < 0 || n >= len(cmds) {
			continue
		}
		fe.problems[i].path = strings.TrimSpace("/" + cmds[n].Name + " " + rest)
	}
	return fe
}

// flatten lists Discord's nested form errors ({"0": {"name": {"_errors": [...]}}}) by path,
// sorted.
func flatten(raw json.RawMessage) []problem {
	var tree map[string]any
	if json.Unmarshal(raw, &tree) != nil {
		return nil
	}
	var out []problem
	var walk func(path string, node map[string]any)
	walk = func(path string, node map[string]any) {
		for k, v := range node {
			if k == "_errors" {
				list, _ := v.([]any)
				for _, item := range list {
					m, _ := item.(map[string]any)
					msg, _ := m["message"].(string)
					code, _ := m["code"].(string)
					out = append(out, problem{path: formPath(path), text: bound(msg) + " (" + bound(code) + ")"})
				}
				continue
			}
			if child, ok := v.(map[string]any); ok {
				walk(path+"."+k, child)
			}
		}
	}
	walk("", tree)
	slices.SortFunc(out, func(a, b problem) int { return strings.Compare(a.path+a.text, b.path+b.text) })
	return out
}

// formPath trims the leading dot of a path; the root is "body".
func formPath(p string) string {
	if p == "" {
		return "body"
	}
	return strings.TrimPrefix(p, ".")
}

// bound cuts text Discord sent to a length fit for an error message.
func bound(s string) string {
	if r := []rune(s); len(r) > maxQuotedMessage {
		return string(r[:maxQuotedMessage]) + "…"
	}
	return s
}

// redact removes the token from an error, however it got there; what it wraps stays
// reachable with errors.Is and errors.As.
func (c *registrar) redact(err error) error {
	if err == nil || !strings.Contains(err.Error(), c.token) {
		return err
	}
	return &redactedError{msg: strings.ReplaceAll(err.Error(), c.token, "[redacted]"), err: err}
}

type redactedError struct {
	msg string
	err error
}

func (e *redactedError) Error() string { return e.msg }
func (e *redactedError) Unwrap() error { return e.err }

// compare sorts the wanted commands into added, updated and unchanged against the current
// ones, and lists the current ones not wanted as removed. Commands are matched by type and
// name, as Discord matches them in an overwrite.
func compare(wanted, current []*discordgo.ApplicationCommand) *Registration {
	type key struct {
		typ  discordgo.ApplicationCommandType
		name string
	}
	keyOf := func(c *discordgo.ApplicationCommand) key { return key{commandType(c), c.Name} }
	have := map[key]*discordgo.ApplicationCommand{}
	for _, c := range current {
		if c != nil {
			have[keyOf(c)] = c
		}
	}
	reg := &Registration{}
	kept := map[key]bool{}
	for _, w := range wanted {
		k := keyOf(w)
		kept[k] = true
		switch h, ok := have[k]; {
		case !ok:
			reg.Added = append(reg.Added, w.Name)
		case !sameDefinition(w, h):
			reg.Updated = append(reg.Updated, w.Name)
		default:
			reg.Unchanged = append(reg.Unchanged, w.Name)
		}
	}
	for _, c := range current {
		if c != nil && !kept[keyOf(c)] {
			reg.Removed = append(reg.Removed, c.Name)
		}
	}
	return reg
}

// commandType is a command's type, CHAT_INPUT when left out.
func commandType(c *discordgo.ApplicationCommand) discordgo.ApplicationCommandType {
	if c.Type == 0 {
		return discordgo.ChatApplicationCommand
	}
	return c.Type
}

// sameDefinition reports whether a command Discord has is defined as wanted. Ids, versions and
// the like that Discord assigns are ignored, and so are settings the wanted definition leaves
// out, which Discord fills with its defaults.
func sameDefinition(want, have *discordgo.ApplicationCommand) bool {
	if commandType(want) != commandType(have) || want.Name != have.Name || want.Description != have.Description {
		return false
	}
	if !sameJSON(want.Options, have.Options) {
		return false
	}
	set := []struct {
		given      bool
		want, have any
	}{
		{want.NameLocalizations != nil, want.NameLocalizations, have.NameLocalizations},
		{want.DescriptionLocalizations != nil, want.DescriptionLocalizations, have.DescriptionLocalizations},
		{want.DefaultMemberPermissions != nil, want.DefaultMemberPermissions, have.DefaultMemberPermissions},
		{want.NSFW != nil, want.NSFW, have.NSFW},
		{want.DMPermission != nil, want.DMPermission, have.DMPermission},
		{want.Contexts != nil, want.Contexts, have.Contexts},
		{want.IntegrationTypes != nil, want.IntegrationTypes, have.IntegrationTypes},
	}
	for _, s := range set {
		if s.given && !sameJSON(s.want, s.have) {
			return false
		}
	}
	return true
}

// sameJSON reports whether a and b say the same as JSON, counting null, false and empty lists
// and objects as absent, since Discord leaves such fields out of what it lists. Values in a
// list keep their place: a choice's value 0 or "" still counts.
func sameJSON(a, b any) bool {
	return reflect.DeepEqual(canonical(a), canonical(b))
}

func canonical(v any) any {
	b, err := json.Marshal(v)
	if err != nil {
		return err.Error()
	}
	var out any
	if err := json.Unmarshal(b, &out); err != nil {
		return err.Error()
	}
	return prune(out)
}

// prune drops the fields of objects that are null, false, or empty lists or objects, at any
// depth; an empty result is nil.
func prune(v any) any {
	switch v := v.(type) {
	case map[string]any:
		for k, x := range v {
			x = prune(x)
			if x == nil || x == false {
				delete(v, k)
				continue
			}
			v[k] = x
		}
		if len(v) == 0 {
			return nil
		}
		return v
	case []any:
		if len(v) == 0 {
			return nil
		}
		for i, x := range v {
			v[i] = prune(x)
		}
		return v
	}
	return v
}
