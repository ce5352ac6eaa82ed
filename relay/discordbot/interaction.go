package discordbot

import (
	"math"
	"time"

	"github.com/bwmarrin/discordgo"
)

// TokenLifetime is how long an interaction's token can edit the reply or add follow-ups,
// counted from the interaction; after it only a bot token can post.
const TokenLifetime = 15 * time.Minute

// Interaction is a verified interaction as Discord sent it, with the moment it arrived.
type Interaction struct {
	*discordgo.Interaction
	// Received is when the request arrived (by the Handler's clock).
	Received time.Time
}

// TokenExpires is when the interaction token stops working: Received plus TokenLifetime.
func (in *Interaction) TokenExpires() time.Time { return in.Received.Add(TokenLifetime) }

// Command is the name of the command invoked, for a command or an autocomplete interaction;
// "" for any other kind.
func (in *Interaction) Command() string {
	if d, ok := in.Data.(discordgo.ApplicationCommandInteractionData); ok {
		return d.Name
	}
	return ""
}

// UserID is the id of the user who invoked the interaction, in a server or a direct message.
func (in *Interaction) UserID() string {
	switch {
	case in.Member != nil && in.Member.User != nil:
		return in.Member.User.ID
	case in.User != nil:
		return in.User.ID
	}
	return ""
}

// option returns the top-level option called name, if the user gave it.
func (in *Interaction) option(name string) *discordgo.ApplicationCommandInteractionDataOption {
	d, ok := in.Data.(discordgo.ApplicationCommandInteractionData)
	if !ok {
		return nil
	}
	for _, o := range d.Options {
		if o != nil && o.Name == name {
			return o
		}
	}
	return nil
}

// String returns the value of a string option, and whether the user gave it.
func (in *Interaction) String(name string) (string, bool) {
	o := in.option(name)
	if o == nil {
		return "", false
	}
	s, ok := o.Value.(string)
	return s, ok
}

// Int returns the value of an integer option, and whether the user gave one.
func (in *Interaction) Int(name string) (int64, bool) {
	o := in.option(name)
	if o == nil {
		return 0, false
	}
	// JSON numbers arrive as float64; Discord keeps integer options within ±2^53, where
	// float64 is exact.
	f, ok := o.Value.(float64)
	if !ok || f != math.Trunc(f) || math.Abs(f) > 1<<53 {
		return 0, false
	}
	return int64(f), true
}

// Float returns the value of a number option, and whether the user gave one.
func (in *Interaction) Float(name string) (float64, bool) {
	o := in.option(name)
	if o == nil {
		return 0, false
	}
	f, ok := o.Value.(float64)
	return f, ok
}

// Bool returns the value of a boolean option, and whether the user gave it.
func (in *Interaction) Bool(name string) (bool, bool) {
	o := in.option(name)
	if o == nil {
		return false, false
	}
	b, ok := o.Value.(bool)
	return b, ok
}

// Focused returns the option being typed in an autocomplete interaction, and the text typed
// so far; ok is false when no option is focused.
func (in *Interaction) Focused() (name, typed string, ok bool) {
	d, isCmd := in.Data.(discordgo.ApplicationCommandInteractionData)
	if !isCmd {
		return "", "", false
	}
	for _, o := range d.Options {
		if o != nil && o.Focused {
			// Discord sends the partial text as a string, whatever the option's type.
			s, _ := o.Value.(string)
			return o.Name, s, true
		}
	}
	return "", "", false
}
