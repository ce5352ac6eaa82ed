package discordbot

import (
	"strings"
	"unicode/utf16"

	"github.com/bwmarrin/discordgo"
)

// Discord's limits on what an answer carries.
const (
	// MaxContent is the longest message content Discord accepts, in characters.
	MaxContent = 2000
	// MaxChoices is the most autocomplete choices one answer may offer.
	MaxChoices = 25
	// maxChoiceText bounds a choice's name and (string) value.
	maxChoiceText = 100
)

// Pong answers a PING (response type 1).
func Pong() *discordgo.InteractionResponse {
	return &discordgo.InteractionResponse{Type: discordgo.InteractionResponsePong}
}

// Reply answers with a message everyone in the channel sees, under the user's command
// (response type 4). Content longer than MaxContent is cut with an ellipsis. No mention in it
// pings anyone: content echoes what users typed, and "@everyone" in a prompt must stay text.
func Reply(content string) *discordgo.InteractionResponse {
	return &discordgo.InteractionResponse{
		Type: discordgo.InteractionResponseChannelMessageWithSource,
		Data: &discordgo.InteractionResponseData{Content: truncate(content, MaxContent), AllowedMentions: noMentions()},
	}
}

// Ephemeral is Reply seen only by the user who asked (message flag 64): for refusals and
// errors that concern nobody else.
func Ephemeral(content string) *discordgo.InteractionResponse {
	r := Reply(content)
	r.Data.Flags = discordgo.MessageFlagsEphemeral
	return r
}

// Deferred acknowledges the interaction and promises a reply later (response type 5): Discord
// shows "thinking…" until the original response is edited through the interaction token.
// ephemeral makes that later reply visible to the user alone.
func Deferred(ephemeral bool) *discordgo.InteractionResponse {
	r := &discordgo.InteractionResponse{Type: discordgo.InteractionResponseDeferredChannelMessageWithSource}
	if ephemeral {
		r.Data = &discordgo.InteractionResponseData{Flags: discordgo.MessageFlagsEphemeral}
	}
	return r
}

// Choices answers an autocomplete interaction (response type 8) with values, each shown as it
// is. Only the first MaxChoices are sent, and values longer than Discord allows are left out:
// a choice that cannot be sent whole cannot be picked either.
func Choices(values ...string) *discordgo.InteractionResponse {
	choices := []*discordgo.ApplicationCommandOptionChoice{}
	for _, v := range values {
		if len(choices) == MaxChoices {
			break
		}
		if v == "" || utf16Len(v) > maxChoiceText {
			continue
		}
		choices = append(choices, &discordgo.ApplicationCommandOptionChoice{Name: v, Value: v})
	}
	return &discordgo.InteractionResponse{
		Type: discordgo.InteractionApplicationCommandAutocompleteResult,
		Data: &discordgo.InteractionResponseData{Choices: choices},
	}
}

// Suggest picks the candidates worth offering for what the user typed so far: those that
// start with it first, then those that contain it, case-insensitively, each group in the
// candidates' order, at most MaxChoices. Nothing typed offers the first MaxChoices.
func Suggest(candidates []string, typed string) []string {
	typed = strings.ToLower(strings.TrimSpace(typed))
	var prefix, inside []string
	for _, c := range candidates {
		lc := strings.ToLower(c)
		switch {
		case strings.HasPrefix(lc, typed):
			prefix = append(prefix, c)
		case strings.Contains(lc, typed):
			inside = append(inside, c)
		}
	}
	out := append(prefix, inside...)
	if len(out) > MaxChoices {
		out = out[:MaxChoices]
	}
	return out
}

// noMentions lets a message mention nobody. The empty list must be sent as [], which is what
// tells Discord not to parse any mention.
func noMentions() *discordgo.MessageAllowedMentions {
	return &discordgo.MessageAllowedMentions{Parse: []discordgo.AllowedMentionType{}}
}

// truncate cuts s to at most limit characters as Discord counts them (UTF-16 code units),
// ending with an ellipsis when it cuts.
func truncate(s string, limit int) string {
	if utf16Len(s) <= limit {
		return s
	}
	n := 0
	for i, r := range s {
		w := utf16.RuneLen(r)
		if w < 0 {
			w = 1
		}
		if n+w > limit-1 {
			return s[:i] + "…"
		}
		n += w
	}
	return s
}

func utf16Len(s string) int {
	n := 0
	for _, r := range s {
		if w := utf16.RuneLen(r); w > 0 {
			n += w
		} else {
			n++
		}
	}
	return n
}
