package discordbot

import (
	"errors"
	"fmt"
	"math"
	"regexp"
	"slices"
	"strconv"
	"strings"

	"github.com/bwmarrin/discordgo"
)

// The commands and their options, by the names Discord sends back.
const (
	CommandPredict = "predict"
	CommandStatus  = "status"
	CommandCancel  = "cancel"

	OptionPrompt         = "prompt"
	OptionModel          = "model"
	OptionNegativePrompt = "negative_prompt"
	OptionWidth          = "width"
	OptionHeight         = "height"
	OptionAspectRatio    = "aspect_ratio"
	OptionNumOutputs     = "num_outputs"
	OptionSeed           = "seed"
	OptionInputs         = "inputs"
	OptionID             = "id"
)

// Bounds of the typed /predict options. They only keep obvious mistakes out; the model's own
// schema has the last word.
const (
	minSide       = 64
	maxSide       = 4096
	maxNumOutputs = 4 // more images than that make a crowded message
	maxModelRef   = 200
	maxIDText     = 200 // room for a pasted link
)

// aspectRatios are the choices offered for aspect_ratio: those most image models accept.
var aspectRatios = []string{"1:1", "16:9", "9:16", "4:3", "3:4", "3:2", "2:3", "4:5", "5:4", "21:9", "9:21"}

func ptr[T any](v T) *T { return &v }

// Definitions are the slash commands to register (PUT /applications/{app}/commands, or the
// guild's), in the shape discordgo's ApplicationCommandBulkOverwrite takes:
//
//	/predict prompt:<text> [model:<owner/name[:version]>] [negative_prompt] [width] [height]
//	         [aspect_ratio] [num_outputs] [seed] [inputs:<key=value ...>]
//	/status id:<prediction id or link>
//	/cancel id:<prediction id or link>
//
// prompt comes first because Discord lists required options before optional ones; model is
// optional so that a configured default model applies, and it is autocompleted from the
// allow-list. The commands exist in servers only: results are posted to a channel.
func Definitions() []*discordgo.ApplicationCommand {
	guildOnly := &[]discordgo.InteractionContextType{discordgo.InteractionContextGuild}
	choices := make([]*discordgo.ApplicationCommandOptionChoice, len(aspectRatios))
	for i, r := range aspectRatios {
		choices[i] = &discordgo.ApplicationCommandOptionChoice{Name: r, Value: r}
	}
	idOption := &discordgo.ApplicationCommandOption{
		Type: discordgo.ApplicationCommandOptionString, Name: OptionID, Required: true, MinLength: ptr(1), MaxLength: maxIDText,
		Description: "The prediction's id, or its replicate.com/p/… link",
	}
	return []*discordgo.ApplicationCommand{
		{
			Name: CommandPredict, Type: discordgo.ChatApplicationCommand, Contexts: guildOnly,
			Description: "Run a model on Replicate; the result is posted here",
			Options: []*discordgo.ApplicationCommandOption{
				{Type: discordgo.ApplicationCommandOptionString, Name: OptionPrompt, Required: true, MinLength: ptr(1),
					Description: "What to generate"},
				{Type: discordgo.ApplicationCommandOptionString, Name: OptionModel, Autocomplete: true, MaxLength: maxModelRef,
					Description: "Model to run, owner/name[:version] (default: the server's default model)"},
				{Type: discordgo.ApplicationCommandOptionString, Name: OptionNegativePrompt,
					Description: "What to keep out of the image"},
				{Type: discordgo.ApplicationCommandOptionInteger, Name: OptionWidth, MinValue: ptr(float64(minSide)), MaxValue: maxSide,
					Description: "Image width in pixels"},
				{Type: discordgo.ApplicationCommandOptionInteger, Name: OptionHeight, MinValue: ptr(float64(minSide)), MaxValue: maxSide,
					Description: "Image height in pixels"},
				{Type: discordgo.ApplicationCommandOptionString, Name: OptionAspectRatio, Choices: choices,
					Description: "Image shape, for models that take an aspect ratio instead of a size"},
				{Type: discordgo.ApplicationCommandOptionInteger, Name: OptionNumOutputs, MinValue: ptr(1.0), MaxValue: maxNumOutputs,
					Description: "How many images to make"},
				{Type: discordgo.ApplicationCommandOptionInteger, Name: OptionSeed, MinValue: ptr(0.0),
					Description: "Random seed, to repeat a result"},
				{Type: discordgo.ApplicationCommandOptionString, Name: OptionInputs,
					Description: `Other inputs as key=value pairs, e.g. guidance_scale=7.5 scheduler="K_EULER"`},
			},
		},
		{
			Name: CommandStatus, Type: discordgo.ChatApplicationCommand, Contexts: guildOnly,
			Description: "Show how a prediction is doing",
			Options:     []*discordgo.ApplicationCommandOption{idOption},
		},
		{
			Name: CommandCancel, Type: discordgo.ChatApplicationCommand, Contexts: guildOnly,
			Description: "Cancel a prediction you started",
			Options:     []*discordgo.ApplicationCommandOption{idOption},
		},
	}
}

// PredictArgs is what a /predict interaction asks for.
type PredictArgs struct {
	// Model is the model option as typed, trimmed; "" when left out, for the default model.
	Model string
	// Input is the model input: the prompt, the typed options given, and the inputs pairs.
	// Integers are int64, numbers float64.
	Input map[string]any
}

// typedOptions are the /predict options that go into the input under their own name.
var typedOptions = []string{OptionNegativePrompt, OptionWidth, OptionHeight, OptionAspectRatio, OptionNumOutputs, OptionSeed}

// ParsePredict reads a /predict interaction. Its errors are meant for the user who typed the
// command (in an ephemeral reply): they say what is wrong and how to write it instead. They
// may quote what the user typed; escape them for Discord markdown before sending.
func ParsePredict(in *Interaction) (PredictArgs, error) {
	if in.Command() != CommandPredict {
		return PredictArgs{}, fmt.Errorf("not a /%s command", CommandPredict)
	}
	args := PredictArgs{Input: map[string]any{}}
	prompt, _ := in.String(OptionPrompt)
	if strings.TrimSpace(prompt) == "" {
		return PredictArgs{}, errors.New("the prompt is empty: say what to generate")
	}
	args.Input[OptionPrompt] = strings.TrimSpace(prompt)
	if m, ok := in.String(OptionModel); ok {
		args.Model = strings.TrimSpace(m)
	}
	for _, name := range typedOptions {
		o := in.option(name)
		if o == nil {
			continue
		}
		switch o.Type {
		case discordgo.ApplicationCommandOptionInteger:
			n, ok := in.Int(name)
			if !ok {
				return PredictArgs{}, fmt.Errorf("%s must be a whole number", name)
			}
			args.Input[name] = n
		default:
			s, ok := in.String(name)
			if !ok {
				return PredictArgs{}, fmt.Errorf("%s must be text", name)
			}
			args.Input[name] = s
		}
	}
	if text, ok := in.String(OptionInputs); ok {
		extra, err := ParseInputs(text)
		if err != nil {
			return PredictArgs{}, err
		}
		for k, v := range extra {
			if _, dup := args.Input[k]; dup {
				return PredictArgs{}, fmt.Errorf("inputs: %s is given twice, as an option and in inputs; keep one", quoteBounded(k))
			}
			if err := checkTyped(k, v); err != nil {
				return PredictArgs{}, fmt.Errorf("inputs: %w", err)
			}
			args.Input[k] = v
		}
	}
	return args, nil
}

// checkTyped holds a value given in inputs to the bounds of the typed option of the same name,
// if there is one, as Discord holds the option itself: at most 4 images, sides of 64 to 4096
// pixels, an aspect ratio among the choices. Other inputs are the model's to check.
func checkTyped(name string, v any) error {
	n, isInt := v.(int64)
	between := func(lo, hi int64) error {
		if !isInt || n < lo || n > hi {
			return fmt.Errorf("%s must be a whole number from %d to %d, got %v", name, lo, hi, v)
		}
		return nil
	}
	switch name {
	case OptionWidth, OptionHeight:
		return between(minSide, maxSide)
	case OptionNumOutputs:
		return between(1, maxNumOutputs)
	case OptionSeed:
		return between(0, math.MaxInt64)
	case OptionAspectRatio:
		if s, ok := v.(string); !ok || !slices.Contains(aspectRatios, s) {
			return fmt.Errorf("%s must be one of %s, got %v", name, strings.Join(aspectRatios, ", "), v)
		}
	case OptionNegativePrompt:
		if _, ok := v.(string); !ok {
			return fmt.Errorf("%s must be text, got %v", name, v)
		}
	}
	return nil
}

var (
	// predictionID is what a prediction id looks like (Replicate's are 26 lowercase letters
	// and digits).
	predictionID = regexp.MustCompile(`^[A-Za-z0-9]{1,64}$`)
	// predictionLink finds the id in a link to a prediction: its web page or its API URL.
	predictionLink = regexp.MustCompile(`^(?:https?://)?(?:www\.)?(?:replicate\.com/p/|api\.replicate\.com/v1/predictions/)([A-Za-z0-9]+)/?(?:[?#].*)?$`)
)

// ParsePredictionID reads the id option of /status and /cancel: a prediction id, or a link to
// the prediction as Replicate shows it (https://replicate.com/p/<id>) or as the API gives it.
func ParsePredictionID(s string) (string, error) {
	s = strings.TrimSpace(s)
	if m := predictionLink.FindStringSubmatch(s); m != nil {
		s = m[1]
	}
	if !predictionID.MatchString(s) {
		return "", fmt.Errorf("%s is not a prediction id: give the id from the reply, like q7vz2m5c1srj40cjx3kr8f1n2w, or its replicate.com/p/… link", quoteBounded(s))
	}
	return s, nil
}

// quoteBounded quotes user text for an error message, cut to a readable length.
func quoteBounded(s string) string {
	const maxQuoted = 40
	if r := []rune(s); len(r) > maxQuoted {
		s = string(r[:maxQuoted]) + "…"
	}
	return strconv.Quote(s)
}
