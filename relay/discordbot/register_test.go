package discordbot

import (
	"context"
	"net/http"
	"net/http/httptest"
	"reflect"
	"strings"
	"testing"

	"github.com/bwmarrin/discordgo"

	"github.com/mlrelay/relay/notifiers/discordtest"
)

// registerOptions registers in a scope of the Discord stand-in, with the default HTTP client.
func registerOptions(s *discordtest.Server, guild string, cmds []*discordgo.ApplicationCommand) RegisterOptions {
	return RegisterOptions{APIURL: s.URL(), AppID: discordtest.ApplicationID, BotToken: discordtest.BotToken, GuildID: guild, Commands: cmds}
}

func ids(cmds []*discordgo.ApplicationCommand) map[string]string {
	out := map[string]string{}
	for _, c := range cmds {
		out[c.Name] = c.ID + " v" + c.Version
	}
	return out
}

func TestRegister(t *testing.T) {
	for _, scope := range []struct{ name, guild, other string }{
		{"global", "", discordtest.GuildID},
		{"guild", discordtest.GuildID, ""},
	} {
		t.Run(scope.name, func(t *testing.T) {
			s := discordtest.NewServer()
			defer s.Close()
			ctx := context.Background()
			register := func(step string, cmds []*discordgo.ApplicationCommand, want Registration) *Registration {
				t.Helper()
				reg, err := Register(ctx, registerOptions(s, scope.guild, cmds))
				if err != nil {
					t.Fatalf("%s: %v", step, err)
				}
				got := Registration{Added: reg.Added, Updated: reg.Updated, Removed: reg.Removed, Unchanged: reg.Unchanged}
				if !reflect.DeepEqual(got, want) {
					t.Errorf("%s: added %v, updated %v, removed %v, unchanged %v; want %v, %v, %v, %v", step,
						got.Added, got.Updated, got.Removed, got.Unchanged, want.Added, want.Updated, want.Removed, want.Unchanged)
				}
				if reg.GuildID != scope.guild || !reflect.DeepEqual(ids(reg.Commands), ids(s.Commands(scope.guild))) {
					t.Errorf("%s: registration in %q lists %v, Discord has %v", step, reg.GuildID, ids(reg.Commands), ids(s.Commands(scope.guild)))
				}
				return reg
			}
			all := []string{CommandPredict, CommandStatus, CommandCancel}

			first := register("first", nil, Registration{Added: all})
			if !first.Changed() || len(first.Commands) != 3 || first.Commands[0].ID == "" {
				t.Errorf("first registration: changed %t, commands %+v", first.Changed(), first.Commands)
			}

			// Discord's defaults and the fields it leaves out of its listing are no change.
			second := register("second", nil, Registration{Unchanged: all})
			if second.Changed() || !reflect.DeepEqual(ids(second.Commands), ids(first.Commands)) {
				t.Errorf("second registration changed something: %v, was %v", ids(second.Commands), ids(first.Commands))
			}
			if !strings.HasSuffix(second.String(), ": unchanged /predict, /status, /cancel") {
				t.Errorf("String() = %q", second.String())
			}

			described := Definitions()
			described[1].Description = "Show a prediction's progress"
			register("changed description", described, Registration{Updated: []string{CommandStatus}, Unchanged: []string{CommandPredict, CommandCancel}})
			if got := s.Commands(scope.guild)[1].Description; got != described[1].Description {
				t.Errorf("description on Discord: %q", got)
			}

			bounded := Definitions()
			bounded[0].Options[3].MaxValue = 2048 // width
			register("changed option bound", bounded, Registration{Updated: []string{CommandPredict, CommandStatus}, Unchanged: []string{CommandCancel}})

			stale := append(Definitions(), &discordgo.ApplicationCommand{Name: "imagine", Description: "An old command"})
			register("extra command", stale, Registration{Added: []string{"imagine"}, Updated: []string{CommandPredict}, Unchanged: all[1:]})
			reg := register("stale command", nil, Registration{Removed: []string{"imagine"}, Unchanged: all})
			if !strings.Contains(reg.String(), "removed /imagine; unchanged /predict, /status, /cancel") {
				t.Errorf("String() = %q", reg.String())
			}

			register("removing all", []*discordgo.ApplicationCommand{}, Registration{Removed: all})
			if n := len(s.Commands(scope.guild)); n != 0 {
				t.Errorf("%d commands left", n)
			}
			if n := len(s.Commands(scope.other)); n != 0 {
				t.Errorf("registering in %q changed %q: %d commands", scope.guild, scope.other, n)
			}
		})
	}
}

func TestRegisterRefused(t *testing.T) {
	badOrder := []*discordgo.ApplicationCommand{{Name: "predict", Description: "Run a model", Options: []*discordgo.ApplicationCommandOption{
		{Type: discordgo.ApplicationCommandOptionString, Name: "model", Description: "Model"},
		{Type: discordgo.ApplicationCommandOptionString, Name: "prompt", Description: "Prompt", Required: true},
	}}}
	const wrongToken = "MTIwMDAwMDAwMDAwMDAwMDAwMg.wrong.token-that-must-not-leak"
	tests := []struct {
		name  string
		setup func(*discordtest.Server, *RegisterOptions)
		want  []string // parts of the error
	}{
		{"bad token", func(_ *discordtest.Server, o *RegisterOptions) { o.BotToken = wrongToken },
			[]string{"the bot token was refused", `"401: Unauthorized"`, "Reset Token"}},
		{"other application", func(_ *discordtest.Server, o *RegisterOptions) { o.AppID = "1999999999999999999" },
			[]string{"application 1999999999999999999", `"Missing Access", code 50001`, "application id", "applications.commands"}},
		{"server without the scope", func(_ *discordtest.Server, o *RegisterOptions) { o.GuildID = "1150000000000000099" },
			[]string{"in server 1150000000000000099", `"Missing Access"`, "added to server 1150000000000000099 with the applications.commands scope"}},
		{"API URL without the version", func(s *discordtest.Server, o *RegisterOptions) { o.APIURL = s.BaseURL() },
			[]string{"not allowed to manage", "API URL"}},
		{"required option after an optional one", func(_ *discordtest.Server, o *RegisterOptions) { o.Commands = badOrder },
			[]string{"Discord refused the command definitions", `"Invalid Form Body", code 50035`,
				"/predict options.1: Required options must be placed before non-required options (APPLICATION_COMMAND_OPTIONS_REQUIRED_INVALID)"}},
		{"rate limited", func(s *discordtest.Server, _ *RegisterOptions) {
			s.FailNext(1, discordtest.Failure{RetryAfter: 1.5})
		}, []string{"rate limited", "try again in 1.5s"}},
		{"server error", func(s *discordtest.Server, _ *RegisterOptions) { s.ThenFail(2, discordtest.Failure{Status: 502}) },
			[]string{"GET " + "http://", "answered 502 Bad Gateway"}},
		{"no application id", func(_ *discordtest.Server, o *RegisterOptions) { o.AppID = "" }, []string{"application id is missing"}},
		{"application name for id", func(_ *discordtest.Server, o *RegisterOptions) { o.AppID = "relay-bot" }, []string{`application id "relay-bot" must be the numeric id`}},
		{"bad guild id", func(_ *discordtest.Server, o *RegisterOptions) { o.GuildID = "#general" }, []string{`guild id "#general"`}},
		{"no token", func(_ *discordtest.Server, o *RegisterOptions) { o.BotToken = " " }, []string{"bot token is missing"}},
		{"token with a space", func(_ *discordtest.Server, o *RegisterOptions) { o.BotToken = "Bot abc def" }, []string{"spaces or control characters"}},
		{"bad API URL", func(_ *discordtest.Server, o *RegisterOptions) { o.APIURL = "ftp://discord.com/api" }, []string{`API URL "ftp://discord.com/api"`}},
		{"nil command", func(_ *discordtest.Server, o *RegisterOptions) {
			o.Commands = []*discordgo.ApplicationCommand{nil}
		}, []string{"command 0 is nil"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := discordtest.NewServer()
			defer s.Close()
			if _, err := Register(context.Background(), registerOptions(s, "", []*discordgo.ApplicationCommand{{Name: "status", Description: "Status"}})); err != nil {
				t.Fatal(err)
			}
			o := registerOptions(s, "", nil)
			tt.setup(s, &o)
			reg, err := Register(context.Background(), o)
			if err == nil {
				t.Fatalf("registered: %v", reg)
			}
			for _, want := range tt.want {
				if !strings.Contains(err.Error(), want) {
					t.Errorf("error %q lacks %q", err, want)
				}
			}
			for _, secret := range []string{discordtest.BotToken, wrongToken} {
				if strings.Contains(err.Error(), secret) {
					t.Errorf("error contains the token: %q", err)
				}
			}
			if got := s.Commands(""); len(got) != 1 || got[0].Name != "status" {
				t.Errorf("a refused registration changed the commands: %+v", got)
			}
		})
	}
}

// TestRegisterNeverQuotesTheToken checks the errors of a server that echoes the token back.
func TestRegisterNeverQuotesTheToken(t *testing.T) {
	const token = "MTIwMDAwMDAwMDAwMDAwMDAwMg.echoed.secret-token"
	for _, status := range []int{http.StatusUnauthorized, http.StatusForbidden, http.StatusBadRequest, http.StatusInternalServerError} {
		srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Content-Type", "application/json")
			w.WriteHeader(status)
			auth := r.Header.Get("Authorization")
			_, _ = w.Write([]byte(`{"message":"bad ` + auth + `","code":0,"errors":{"0":{"_errors":[{"code":"X","message":"` + auth + `"}]}}}`))
		}))
		_, err := Register(context.Background(), RegisterOptions{APIURL: srv.URL, AppID: "1", BotToken: "Bot " + token})
		srv.Close()
		if err == nil || strings.Contains(err.Error(), token) || !strings.Contains(err.Error(), "[redacted]") {
			t.Errorf("%d: error %q", status, err)
		}
	}
}

func TestRegisterDoesNotFollowRedirects(t *testing.T) {
	elsewhere := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		t.Errorf("the redirect was followed (Authorization sent: %t)", r.Header.Get("Authorization") != "")
	}))
	defer elsewhere.Close()
	srv := httptest.NewServer(http.RedirectHandler(elsewhere.URL, http.StatusTemporaryRedirect))
	defer srv.Close()
	_, err := Register(context.Background(), RegisterOptions{APIURL: srv.URL, AppID: "1", BotToken: "t"})
	if err == nil || !strings.Contains(err.Error(), "answered 307") {
		t.Errorf("error %v", err)
	}
}

func TestSameDefinition(t *testing.T) {
	zero := 0.0
	base := func() *discordgo.ApplicationCommand {
		return &discordgo.ApplicationCommand{Name: "predict", Description: "Run", Options: []*discordgo.ApplicationCommandOption{
			{Type: discordgo.ApplicationCommandOptionInteger, Name: "seed", Description: "Seed", MinValue: &zero},
			{Type: discordgo.ApplicationCommandOptionString, Name: "ratio", Description: "Ratio",
				Choices: []*discordgo.ApplicationCommandOptionChoice{{Name: "square", Value: "1:1"}}},
		}}
	}
	nsfw := true
	tests := []struct {
		name   string
		change func(want, have *discordgo.ApplicationCommand)
		same   bool
	}{
		{"identical", func(_, _ *discordgo.ApplicationCommand) {}, true},
		{"ids, versions and Discord's defaults", func(_, h *discordgo.ApplicationCommand) {
			h.ID, h.Version, h.ApplicationID, h.Type = "1", "2", "3", discordgo.ChatApplicationCommand
			h.IntegrationTypes = &[]discordgo.ApplicationIntegrationType{discordgo.ApplicationIntegrationGuildInstall}
			h.NSFW = new(bool)
			h.Options[1].ChannelTypes = []discordgo.ChannelType{}
		}, true},
		{"description", func(w, _ *discordgo.ApplicationCommand) { w.Description = "Run a model" }, false},
		{"minimum 0 dropped", func(_, h *discordgo.ApplicationCommand) { h.Options[0].MinValue = nil }, false},
		{"option required", func(w, _ *discordgo.ApplicationCommand) { w.Options[0].Required = true }, false},
		{"options reordered", func(w, _ *discordgo.ApplicationCommand) { w.Options[0], w.Options[1] = w.Options[1], w.Options[0] }, false},
		{"choice value", func(w, _ *discordgo.ApplicationCommand) { w.Options[1].Choices[0].Value = "16:9" }, false},
		{"setting given", func(w, _ *discordgo.ApplicationCommand) { w.NSFW = &nsfw }, false},
		{"contexts given", func(w, _ *discordgo.ApplicationCommand) {
			w.Contexts = &[]discordgo.InteractionContextType{discordgo.InteractionContextGuild}
		}, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			want, have := base(), base()
			tt.change(want, have)
			if got := sameDefinition(want, have); got != tt.same {
				t.Errorf("sameDefinition = %t, want %t", got, tt.same)
			}
		})
	}
}
