package main

import (
	"context"
	"errors"
	"fmt"
	"io"

	"github.com/mlrelay/relay/relay/discordbot"
)

// cmdDiscord runs `relay discord register [--guild ID]`: it registers the bot's commands with
// Discord, for one server (at once) or globally (Discord may take an hour to show them), and
// prints what changed.
func cmdDiscord(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	if len(args) == 0 || args[0] != "register" {
		return fmt.Errorf("%w: discord needs a subcommand: register [--guild ID]", errUsage)
	}
	fs, configPath := commandFlags("discord register", stderr)
	guild := fs.String("guild", "", "register for this server only (its id); without it, for every server")
	if err := parseFlags(fs, args[1:]); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("%w: discord register takes no arguments, got %q", errUsage, fs.Args())
	}
	cfg, err := loadConfig(*configPath)
	if err != nil {
		return err
	}
	b := cfg.Bot
	if !b.Enabled() {
		return errors.New("the bot is not configured: set DISCORD_APP_ID and DISCORD_PUBLIC_KEY, and pass the config that has [bot] with --config (see config.example.toml)")
	}
	reg, err := discordbot.Register(ctx, discordbot.RegisterOptions{APIURL: b.APIURL, AppID: b.AppID, BotToken: b.BotToken.Reveal(), GuildID: *guild})
	if err != nil {
		return err
	}
	fmt.Fprintln(stdout, reg.String())
	if !reg.Changed() {
		fmt.Fprintln(stdout, "nothing changed")
	}
	return nil
}
