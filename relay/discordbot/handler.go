// Package discordbot is the core of the Discord bot: it receives slash-command interactions
// over HTTP, checks that they come from Discord, answers PING, and hands the /predict,
// /status and /cancel commands (and the model autocompletion) to a Commands implementation
// that does the work. It also holds the command definitions to register, the parsing of
// their options, and builders for the answers Discord accepts.
//
// It knows nothing of Replicate, the relay's store or its configuration: whoever wires the bot
// implements Commands with those.
package discordbot

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"regexp"
	"strconv"
	"time"

	"github.com/bwmarrin/discordgo"
)

// Commands does the work of the bot's commands. Each method gets a verified interaction of its
// command and returns the first answer, which Discord wants within 3 seconds: ctx ends a
// little before that (Options.AnswerWithin). Work that takes longer answers Deferred and
// carries on outside the call, editing the reply through the interaction token later.
//
// A nil answer is replaced by an apology the user alone sees.
type Commands interface {
	// Predict answers /predict; ParsePredict reads its options.
	Predict(ctx context.Context, in *Interaction) *discordgo.InteractionResponse
	// Status answers /status; ParsePredictionID reads its id.
	Status(ctx context.Context, in *Interaction) *discordgo.InteractionResponse
	// Cancel answers /cancel; ParsePredictionID reads its id.
	Cancel(ctx context.Context, in *Interaction) *discordgo.InteractionResponse
	// Autocomplete answers an autocomplete request of any of the commands (Focused says which
	// option), usually with Choices.
	Autocomplete(ctx context.Context, in *Interaction) *discordgo.InteractionResponse
}

// Defaults for Options.
const (
	// DefaultMaxBody bounds a request body. Interactions are a few kilobytes.
	DefaultMaxBody = 256 << 10
	// DefaultAnswerWithin is how long Commands get to answer, leaving room within Discord's
	// 3 seconds for the answer to travel.
	DefaultAnswerWithin = 2500 * time.Millisecond
)

// Options configure a Handler. Zero values take the defaults given.
type Options struct {
	// PublicKey is the application's public key from the developer portal, in hex. Required.
	PublicKey string
	// Tolerance bounds the distance between a request's signature timestamp and now, either
	// way. Default DefaultTolerance.
	Tolerance time.Duration
	// MaxBody bounds a request body; a larger one is answered 413. Default DefaultMaxBody.
	MaxBody int64
	// AnswerWithin is how long the context given to Commands lasts. Default
	// DefaultAnswerWithin.
	AnswerWithin time.Duration
	// Now is the clock for the timestamp check and Interaction.Received. Default time.Now.
	Now func() time.Time
	// Logger receives refused requests (at debug level: Discord sends bad signatures on
	// purpose to test the endpoint) and failures. Default slog.Default().
	Logger *slog.Logger
}

// Handler is the interactions endpoint, an http.Handler for POST requests from Discord. It is
// safe for concurrent use.
type Handler struct {
	verifier     *Verifier
	cmds         Commands
	maxBody      int64
	answerWithin time.Duration
	now          func() time.Time
	log          *slog.Logger
	replays      *replayGuard
}

// NewHandler returns the endpoint for o, handing commands to cmds.
func NewHandler(o Options, cmds Commands) (*Handler, error) {
	if cmds == nil {
		return nil, errors.New("discord interactions: no commands to answer with")
	}
	v, err := NewVerifier(o.PublicKey, o.Tolerance)
	if err != nil {
		return nil, err
	}
	if o.MaxBody < 0 || o.AnswerWithin < 0 {
		return nil, errors.New("discord interactions: max body and answer time must not be negative")
	}
	h := &Handler{verifier: v, cmds: cmds, maxBody: o.MaxBody, answerWithin: o.AnswerWithin, now: o.Now, log: o.Logger}
	if h.maxBody == 0 {
		h.maxBody = DefaultMaxBody
	}
	if h.answerWithin == 0 {
		h.answerWithin = DefaultAnswerWithin
	}
	if h.now == nil {
		h.now = time.Now
	}
	if h.log == nil {
		h.log = slog.Default()
	}
	v.Now = h.now
	// A replay is refused for as long as its timestamp could pass: the tolerance, either way.
	h.replays = newReplayGuard(2 * v.tolerance)
	return h, nil
}

// ServeHTTP implements http.Handler: 405 for anything but POST, 413 for a body over the
// limit, 401 for a request Discord did not sign (or signed too long ago), 400 for a body that
// is not an interaction, and otherwise 200 with the answer.
func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	received := h.now()
	if r.Method != http.MethodPost {
		w.Header().Set("Allow", http.MethodPost)
		writeError(w, http.StatusMethodNotAllowed, "method not allowed; use POST")
		return
	}
	if r.ContentLength > h.maxBody {
		writeError(w, http.StatusRequestEntityTooLarge, "body larger than "+strconv.FormatInt(h.maxBody, 10)+" bytes")
		return
	}
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, h.maxBody))
	if err != nil {
		var tooBig *http.MaxBytesError
		if errors.As(err, &tooBig) {
			writeError(w, http.StatusRequestEntityTooLarge, "body larger than "+strconv.FormatInt(h.maxBody, 10)+" bytes")
			return
		}
		writeError(w, http.StatusBadRequest, "reading body failed")
		return
	}
	if err := h.verifier.Verify(r.Header, body); err != nil {
		h.log.Debug("discord interaction refused", "err", err, "remote", r.RemoteAddr)
		writeError(w, http.StatusUnauthorized, "invalid request signature")
		return
	}
	var raw discordgo.Interaction
	if err := json.Unmarshal(body, &raw); err != nil || raw.Type == 0 {
		writeError(w, http.StatusBadRequest, "body is not a Discord interaction")
		return
	}
	in := &Interaction{Interaction: &raw, Received: received}
	if raw.Type != discordgo.InteractionPing && raw.ID != "" && !h.replays.first(raw.ID, received) {
		h.log.Warn("discord interaction refused: replayed", "interaction", raw.ID, "remote", r.RemoteAddr)
		writeError(w, http.StatusUnauthorized, "interaction already answered")
		return
	}

	ctx, cancel := context.WithTimeout(r.Context(), h.answerWithin)
	defer cancel()
	h.write(w, in, h.answer(ctx, in))
}

// answer picks the answer to a verified interaction.
func (h *Handler) answer(ctx context.Context, in *Interaction) *discordgo.InteractionResponse {
	name := in.Command()
	switch in.Type {
	case discordgo.InteractionPing:
		return Pong()
	case discordgo.InteractionApplicationCommandAutocomplete:
		if !known(name) {
			return Choices()
		}
		if resp := h.cmds.Autocomplete(ctx, in); resp != nil {
			return resp
		}
		return Choices()
	case discordgo.InteractionApplicationCommand:
		var run func(context.Context, *Interaction) *discordgo.InteractionResponse
		switch name {
		case CommandPredict:
			run = h.cmds.Predict
		case CommandStatus:
			run = h.cmds.Status
		case CommandCancel:
			run = h.cmds.Cancel
		default:
			h.log.Info("unknown discord command", "command", name, "interaction", in.ID)
			return Ephemeral("Sorry, I don't know " + commandName(name) + ". I can do /predict, /status and /cancel.")
		}
		if resp := run(ctx, in); resp != nil {
			return resp
		}
		h.log.Error("discord command gave no answer", "command", name, "interaction", in.ID)
		return Ephemeral("Sorry, something went wrong with /" + name + ". Please try again.")
	}
	return Ephemeral("Sorry, I can't handle that kind of interaction.")
}

func known(name string) bool {
	return name == CommandPredict || name == CommandStatus || name == CommandCancel
}

// commandNamePattern is what Discord allows as a command name.
var commandNamePattern = regexp.MustCompile(`^[-_\p{L}\p{N}]{1,32}$`)

// commandName shows a command's name to the user, or a neutral phrase when the name could
// carry markdown.
func commandName(name string) string {
	if commandNamePattern.MatchString(name) {
		return "/" + name
	}
	return "that command"
}

// write sends the answer: JSON, or multipart with payload_json when it carries files.
func (h *Handler) write(w http.ResponseWriter, in *Interaction, resp *discordgo.InteractionResponse) {
	var (
		contentType = "application/json"
		body        []byte
		err         error
	)
	switch {
	case resp.Type == discordgo.InteractionApplicationCommandAutocompleteResult:
		body, err = json.Marshal(autocompleteAnswer(resp))
	case resp.Data != nil && len(resp.Data.Files) > 0:
		contentType, body, err = discordgo.MultipartBodyWithJSON(resp, resp.Data.Files)
	default:
		body, err = json.Marshal(resp)
	}
	if err != nil {
		h.log.Error("encoding a discord answer failed", "err", err, "interaction", in.ID)
		writeError(w, http.StatusInternalServerError, "encoding the answer failed")
		return
	}
	w.Header().Set("Content-Type", contentType)
	w.Header().Set("Content-Length", strconv.Itoa(len(body)))
	w.WriteHeader(http.StatusOK)
	_, _ = w.Write(body)
}

// autocompleteResult is the answer to an autocomplete request as Discord wants it:
// discordgo's type leaves an empty choice list out (omitempty), while "no suggestions" must be
// sent as "choices": [].
type autocompleteResult struct {
	Type discordgo.InteractionResponseType `json:"type"`
	Data struct {
		Choices []*discordgo.ApplicationCommandOptionChoice `json:"choices"`
	} `json:"data"`
}

func autocompleteAnswer(resp *discordgo.InteractionResponse) autocompleteResult {
	a := autocompleteResult{Type: resp.Type}
	a.Data.Choices = []*discordgo.ApplicationCommandOptionChoice{}
	if resp.Data != nil && resp.Data.Choices != nil {
		a.Data.Choices = resp.Data.Choices
	}
	return a
}

// writeError answers with a JSON error, as the relay's other endpoints do.
func writeError(w http.ResponseWriter, status int, msg string) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("X-Content-Type-Options", "nosniff")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(struct {
		Error string `json:"error"`
	}{msg})
}
